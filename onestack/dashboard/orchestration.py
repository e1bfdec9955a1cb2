"""The Orchestration panels: the project's stacks (a list that refreshes itself), launching
one from a template (typed, or read from a file by the page's script) with parameters, and
a stack's detail (overview and outputs, resources, events, template); delete.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import yaml
from starlette.responses import Response

from onestack.dashboard.backend import Failure
from onestack.dashboard.pages import Page, fail, page


def _base(p: Page) -> str:
    return f"/orchestration/v1/{p.login.project_id}"


def _stack_path(p: Page) -> str:
    return f"{_base(p)}/stacks/{quote(p.request.path_params['name'], safe='')}/{quote(p.request.path_params['id'])}"


def parameters(text: str) -> dict[str, str]:
    """``key=value`` lines (blank lines skipped); Failure 400 names a line that is not."""
    out = {}
    for line in text.splitlines():
        if line.strip():
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise Failure(400, f"Parameter line {line.strip()!r} is not key=value.")
            out[key.strip()] = value.strip()
    return out


@page()
async def stacks(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(stacks=f"{_base(p)}/stacks?sort_keys=stack_name&sort_dir=asc")
    if got["stacks"] is None and not errors:
        errors = {"list": "The orchestration service did not list the stacks."}
    return await p.render("stacks.html", status=status, errors=errors or {},
                          stacks=(got["stacks"] or {}).get("stacks", []))


@page()
async def stack_create(p: Page) -> Response:
    f = p.form
    try:
        if not f.get("template", "").strip():
            raise Failure(400, "Give a template: type it, or choose its file.")
        body: dict[str, Any] = {"stack_name": f.get("name", "").strip(), "template": f["template"],
                                "parameters": parameters(f.get("parameters", "")),
                                "disable_rollback": not f.get("rollback")}
        if f.get("timeout", "").strip():
            body["timeout_mins"] = f["timeout"].strip()
        made = (await p.api.post(f"{_base(p)}/stacks", body))["stack"]
    except Failure as e:
        return await stacks.show(p, {"launch": e.message}, fail(e))
    return p.redirect(f"/project/stacks/{quote(body['stack_name'], safe='')}/{made['id']}")


@page()
async def stack_detail(p: Page) -> Response:
    """One stack: overview with parameters and outputs, resources, events, template."""
    path = _stack_path(p)
    stack = (await p.api.get(path))["stack"]
    got = await p.api.gather(resources=f"{path}/resources", events=f"{path}/events?sort_dir=asc",
                             template=f"{path}/template")
    params = {k: v for k, v in (stack.get("parameters") or {}).items() if not k.startswith("OS::")}
    return await p.render(
        "stack.html", stack=stack, parameters=params, outputs=stack.get("outputs") or [],
        resources=sorted((got["resources"] or {}).get("resources", []), key=lambda r: r["resource_name"]),
        events=(got["events"] or {}).get("events", []),
        template_text=_yaml(got["template"]))


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False) if doc else ""


@page()
async def stack_action(p: Page) -> Response:
    try:
        if p.form.get("action") != "delete":
            raise Failure(400, "Unknown action: stacks are deleted here.")
        await p.api.delete(_stack_path(p))
    except Failure as e:
        return await stacks.show(p, {"list": e.message}, fail(e))
    return p.redirect("/project/stacks")
