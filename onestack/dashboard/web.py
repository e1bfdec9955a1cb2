"""The dashboard's pages: server-rendered (Jinja2, autoescaped) with a small script that
refreshes lists in place. Every page is a handler of (Page) that asks the backend for what
it shows; forms post back here, guarded by the session's CSRF token.

Security: the session cookie is HttpOnly, SameSite=Lax and Secure over https; every page
carries a CSP (scripts from here only, no framing), X-Frame-Options and nosniff; the token
stays in the server-side session (never in a page, a URL or a log line).
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import shlex
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

import yaml
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from onestack.common import tls
from onestack.dashboard import backend, sessions
from onestack.dashboard import identity as ident
from onestack.dashboard import orchestration as orch
from onestack.dashboard.backend import COMPUTE, IDENTITY, IMAGE, NETWORK, NOVA_VERSION, Failure
from onestack.dashboard.pages import COOKIE, LOGIN_COOKIE, Form, Page, page
from onestack.dashboard.pages import env as _env
from onestack.dashboard.pages import error_page as _error
from onestack.dashboard.pages import fail as _fail
from onestack.dashboard.pages import read_form as _form
from onestack.dashboard.pages import secure as _secure
from onestack.dashboard.pages import with_headers as _with_headers
from onestack.dashboard.sessions import Login

log = logging.getLogger(__name__)

_conf: Any = None


def configure(conf) -> None:
    global _conf
    _conf = conf


# -- login -----------------------------------------------------------------------------

def _next(value: str, root: str) -> str:
    """Only a path of the dashboard itself (no open redirect)."""
    return value if value.startswith(root + "/") and not value.startswith("//") else root + "/project/"


async def login_form(request: Request, error: str = "", status: int = 200, values: dict | None = None) -> Response:
    root = request.scope.get("root_path", "")
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    html = _env.get_template("login.html").render(
        root=root, csrf=token, error=error, values=values or {"domain": "Default"},
        next=_next(request.query_params.get("next", ""), root), login=None, projects=[], panel="login")
    resp = HTMLResponse(html, status_code=status)
    resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                    path=root + "/")
    return _with_headers(resp)


async def login_post(request: Request) -> Response:
    root = request.scope.get("root_path", "")
    form = await _form(request)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(form.get("csrf_token", "").encode(), cookie.encode()):
        return _with_headers(_error(root, 403, "The form was refused: its CSRF token is missing or wrong. "
                                               "Reload the page and try again."))
    values = {"domain": form.get("domain", "").strip() or "Default", "username": form.get("username", "").strip()}
    if not values["username"] or not form.get("password"):
        return await login_form(request, "Enter a user name and a password.", 400, values)
    try:
        login = await backend.authenticate(values["domain"], values["username"], form["password"])
    except Failure as e:
        msg = ("Invalid credentials: check the domain, the user name and the password." if e.status == 401
               else e.message)
        return await login_form(request, msg, 401 if e.status == 401 else _fail(e), values)
    secret = await run_in_threadpool(sessions.create, login)
    log.info("dashboard login of %s (%s) to project %s", login.user_name, login.user_id, login.project_id)
    resp = RedirectResponse(_next(form.get("next", ""), root), status_code=303)
    resp.set_cookie(COOKIE, secret, httponly=True, samesite="lax", secure=_secure(request), path=root + "/")
    resp.delete_cookie(LOGIN_COOKIE, path=root + "/")
    return _with_headers(resp)


@page()
async def logout(p: Page) -> Response:
    await backend.revoke(p.login)
    await run_in_threadpool(sessions.delete, p.login)
    resp = p.redirect("/login")
    resp.delete_cookie(COOKIE, path=p.root + "/")
    return resp


@page()
async def switch_project(p: Page) -> Response:
    scoped = await backend.rescope(p.login, p.form.get("project_id", ""))
    await run_in_threadpool(sessions.rescope, p.login, scoped)
    return p.redirect("/project/")


@page()
async def switch_region(p: Page) -> Response:
    region = p.form.get("region", "")
    if region not in p.login.endpoints:
        return _error(p.root, 400, f"There is no region {region!r} in the catalog.", p.login)
    await run_in_threadpool(sessions.set_region, p.login, region)
    return p.redirect("/project/")


async def home(request: Request) -> Response:
    return _with_headers(RedirectResponse(request.scope.get("root_path", "") + "/project/", status_code=303))


# -- project: overview ------------------------------------------------------------------

def _gauge(label: str, used, limit) -> dict:
    used = used or 0
    unlimited = limit is None or limit < 0
    pct = 0 if unlimited or not limit else min(100, round(100 * used / limit))
    return {"label": label, "used": used, "limit": "∞" if unlimited else limit, "pct": pct}


@page()
async def overview(p: Page) -> Response:
    pid = p.login.project_id
    got = await p.api.gather(
        compute=f"{COMPUTE}/os-quota-sets/{pid}/detail", network=f"{NETWORK}/quotas/{pid}/details.json",
        volume=f"{p.api.volume}/os-quota-sets/{pid}?usage=true")
    gauges = []
    cq = (got["compute"] or {}).get("quota_set", {})
    for key, label in (("instances", "Instances"), ("cores", "VCPUs"), ("ram", "RAM (MiB)"),
                       ("key_pairs", "Key pairs")):
        if key in cq:
            gauges.append(_gauge(label, cq[key].get("in_use"), cq[key].get("limit")))
    vq = (got["volume"] or {}).get("quota_set", {})
    for key, label in (("volumes", "Volumes"), ("gigabytes", "Volume storage (GiB)"), ("snapshots", "Snapshots")):
        if isinstance(vq.get(key), dict):
            gauges.append(_gauge(label, vq[key].get("in_use"), vq[key].get("limit")))
    nq = (got["network"] or {}).get("quota", {})
    for key, label in (("floatingip", "Floating IPs"), ("network", "Networks"), ("router", "Routers"),
                       ("security_group", "Security groups"), ("port", "Ports")):
        if isinstance(nq.get(key), dict):
            gauges.append(_gauge(label, nq[key].get("used"), nq[key].get("limit")))
    return await p.render("overview.html", gauges=gauges)


# -- project: instances -----------------------------------------------------------------

PAGE = 50  # instances per page of the list (the API pages too: no list grows without bound)


def _servers_query(marker: str) -> str:
    return f"{COMPUTE}/servers/detail?" + urlencode(
        [("limit", PAGE), ("sort_key", "display_name"), ("sort_dir", "asc"), ("sort_key", "uuid"),
         ("sort_dir", "asc")] + ([("marker", marker)] if marker else []))


def _server_rows(listing: dict | None, image_list: dict | None) -> tuple[list[dict], str]:
    """A page of the servers API as the list shows it, and the next page's marker ('' when last)."""
    images = {i["id"]: i["name"] for i in (image_list or {}).get("images", [])}
    servers = []
    for s in (listing or {}).get("servers", []):
        image = s.get("image") or {}
        addrs = [a["addr"] for net in (s.get("addresses") or {}).values() for a in net]
        servers.append({"id": s["id"], "name": s["name"], "status": s["status"],
                        "task": s.get("OS-EXT-STS:task_state") or "",
                        "image": images.get(image.get("id"), image.get("id", "(volume)")) if image else "(volume)",
                        "flavor": (s.get("flavor") or {}).get("original_name", ""),
                        "addresses": ", ".join(addrs), "key_name": s.get("key_name") or "",
                        "locked": bool(s.get("locked"))})
    more = (listing or {}).get("servers_links") and len(servers) == PAGE
    return servers, servers[-1]["id"] if more else ""


async def _servers(p: Page, marker: str = "") -> tuple[list[dict], str]:
    """One page of instances by name, and the marker of the next page ('' when last)."""
    got = await p.api.gather(servers=_servers_query(marker), images=f"{IMAGE}/images?limit=1000")
    if got["servers"] is None and marker:  # (the marker's instance is gone: the first page)
        return await _servers(p)
    return _server_rows(got["servers"], got["images"])


async def _server_choices(p: Page) -> list[dict]:
    """Every instance's id and name (the choices of an attach or associate form)."""
    got = await p.api.gather(servers=f"{COMPUTE}/servers?limit=1000")
    return sorted(({"id": s["id"], "name": s["name"]} for s in (got["servers"] or {}).get("servers", [])),
                  key=lambda s: (s["name"].lower(), s["id"]))


def _room(quota: dict) -> dict:
    """What the project may still launch (instances, VCPUs, RAM), for the launch form:
    the quota impact it shows, and why launching is not offered when nothing fits."""
    room = {}
    for key, label in (("instances", "instances"), ("cores", "VCPUs"), ("ram", "MiB of RAM")):
        q = quota.get(key) or {}
        limit, used = q.get("limit", -1), (q.get("in_use") or 0) + (q.get("reserved") or 0)
        room[key] = {"label": label, "used": used, "limit": limit, "free": None if limit < 0 else max(0, limit - used)}
    full = [r["label"] for r in room.values() if r["free"] == 0]
    return {"items": room, "full": full}


@page()
async def instances(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    marker = p.request.query_params.get("marker", "")
    got = await p.api.gather(  # (one round of calls for the list and the launch form)
        servers=_servers_query(marker), images=f"{IMAGE}/images?limit=1000", flavors=f"{COMPUTE}/flavors/detail",
        networks=f"{NETWORK}/networks", keypairs=f"{COMPUTE}/os-keypairs",
        groups=f"{NETWORK}/security-groups?project_id={p.login.project_id}",
        quota=f"{COMPUTE}/os-quota-sets/{p.login.project_id}/detail",
        volumes=f"{p.api.volume}/volumes/detail?status=available", snapshots=f"{p.api.volume}/snapshots",
        server_groups=f"{COMPUTE}/os-server-groups")
    if got["servers"] is None and marker:
        servers, next_marker = await _servers(p)
    else:
        servers, next_marker = _server_rows(got["servers"], got["images"])
    return await p.render(
        "instances.html", status=status, errors=errors or {}, marker=marker, servers=servers, next_marker=next_marker,
        room=_room((got["quota"] or {}).get("quota_set", {})),
        images=sorted((got["images"] or {}).get("images", []), key=lambda i: i["name"] or ""),
        flavors=sorted((got["flavors"] or {}).get("flavors", []), key=lambda f: (f["vcpus"], f["ram"])),
        networks=[n for n in (got["networks"] or {}).get("networks", []) if not n.get("router:external")],
        keypairs=[k["keypair"] for k in (got["keypairs"] or {}).get("keypairs", [])],
        groups=sorted({g["name"] for g in (got["groups"] or {}).get("security_groups", [])}),
        chosen_groups=p.form.all("security_groups") if p.form else ["default"],
        preset_image=p.request.query_params.get("image", ""),  # (the Images panel's "Launch")
        volumes=(got["volumes"] or {}).get("volumes", []),
        snapshots=[x for x in (got["snapshots"] or {}).get("snapshots", []) if x.get("status") == "available"],
        server_groups=(got["server_groups"] or {}).get("server_groups", []))


@page(bare=True)
async def instance_rows(p: Page) -> Response:
    servers, _ = await _servers(p, p.request.query_params.get("marker", ""))
    return p.fragment("_instance_rows.html", servers=servers)


SOURCES = ("image", "image-volume", "volume", "snapshot")


def _server_request(f: Form, count: int) -> dict:
    """The launch form as a servers API request: its boot source (an image, an image on a
    new volume, a volume, a volume snapshot), network, security groups, key pair, user
    data, server group and metadata. Failure 400 names a field that cannot be sent."""
    source = f.get("source") or "image"
    if source not in SOURCES:
        raise Failure(400, f"Unknown boot source {source!r}.")
    server: dict[str, Any] = {"name": f.get("name", "").strip(), "flavorRef": f.get("flavor", ""),
                              "min_count": count, "max_count": count,
                              "networks": [{"uuid": f["network"]}] if f.get("network") else "auto"}
    if source == "image":
        server["imageRef"] = f.get("image", "")
    else:
        uuid_field = {"image-volume": "image", "volume": "volume", "snapshot": "snapshot"}[source]
        if not f.get(uuid_field):
            raise Failure(400, f"Choose the {uuid_field} to boot from.")
        bdm: dict[str, Any] = {"boot_index": 0, "uuid": f[uuid_field], "destination_type": "volume",
                               "source_type": "image" if source == "image-volume" else source,
                               "delete_on_termination": bool(f.get("delete_on_termination"))}
        if source != "volume":
            try:
                bdm["volume_size"] = int(f.get("volume_size") or 0)
            except ValueError:
                raise Failure(400, "The new volume's size is a whole number of GiB.") from None
        server["block_device_mapping_v2"] = [bdm]
        server["imageRef"] = ""
    if f.get("key_name"):
        server["key_name"] = f["key_name"]
    if groups := f.all("security_groups"):
        server["security_groups"] = [{"name": g} for g in groups]
    if f.get("user_data", "").strip():
        server["user_data"] = base64.b64encode(f["user_data"].replace("\r\n", "\n").encode()).decode()
    metadata = {}
    for line in f.get("metadata", "").splitlines():
        if line.strip():
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise Failure(400, f"Metadata line {line.strip()!r} is not key=value.")
            metadata[key.strip()] = value.strip()
    if metadata:
        server["metadata"] = metadata
    request = {"server": server}
    if f.get("server_group"):
        request["os:scheduler_hints"] = {"group": f["server_group"]}
    return request


@page()
async def launch(p: Page) -> Response:
    f = p.form
    try:
        count = int(f.get("count") or 1)
    except ValueError:
        count = 0
    if not 1 <= count <= 100:
        return await instances.show(p, {"launch": "Count must be a number from 1 to 100."}, 400)
    try:
        server = _server_request(f, count)
    except Failure as e:
        return await instances.show(p, {"launch": e.message}, e.status)
    try:
        await p.api.post(f"{COMPUTE}/servers", server, headers=NOVA_VERSION)
    except Failure as e:
        return await instances.show(p, {"launch": e.message}, _fail(e))
    return p.redirect("/project/instances")


@page()
async def instance_detail(p: Page) -> Response:
    """One instance: overview, console log and action log (Horizon's detail tabs)."""
    sid = quote(p.request.path_params["id"])
    server = (await p.api.get(f"{COMPUTE}/servers/{sid}", headers=NOVA_VERSION))["server"]
    got = await p.api.gather(actions=f"{COMPUTE}/servers/{sid}/os-instance-actions",
                             flavors=f"{COMPUTE}/flavors/detail", interfaces=f"{COMPUTE}/servers/{sid}/os-interface",
                             networks=f"{NETWORK}/networks")
    try:
        log_text = (await p.api.post(f"{COMPUTE}/servers/{sid}/action", {"os-getConsoleOutput": {"length": 200}},
                                     headers=NOVA_VERSION) or {}).get("output", "")
    except Failure as e:
        log_text = f"(no console log: {e.message})"
    console, console_error = "", ""
    if server["status"] == "ACTIVE":
        try:
            console = (await p.api.post(f"{COMPUTE}/servers/{sid}/remote-consoles",
                                        {"remote_console": {"protocol": "vnc", "type": "novnc"}},
                                        headers=NOVA_VERSION))["remote_console"]["url"]
        except Failure as e:
            console_error = e.message
    else:
        console_error = f"The instance is {server['status']}: a console needs it ACTIVE."
    if console and not console.startswith(_conf.public_url + "/"):
        console_error, console = f"The console is served elsewhere: {console}", ""  # (not framed from here)
    addrs = [f"{net}: {a['addr']}" for net, items in (server.get("addresses") or {}).items() for a in items]
    return await p.render("instance.html", server=server, addresses=addrs, console_log=log_text,
                          console=console, console_error=console_error,
                          flavors=sorted((got["flavors"] or {}).get("flavors", []), key=lambda f: (f["vcpus"], f["ram"])),
                          interfaces=(got["interfaces"] or {}).get("interfaceAttachments", []),
                          networks={n["id"]: n.get("name") or n["id"] for n in (got["networks"] or {}).get("networks", [])
                                    if not n.get("router:external")},
                          actions=(got["actions"] or {}).get("instanceActions", []))


ACTIONS = {"start": {"os-start": None}, "stop": {"os-stop": None}, "reboot": {"reboot": {"type": "SOFT"}},
           "hard-reboot": {"reboot": {"type": "HARD"}}, "lock": {"lock": None}, "unlock": {"unlock": None},
           "shelve": {"shelve": None}, "unshelve": {"unshelve": None}, "pause": {"pause": None},
           "unpause": {"unpause": None}, "confirm-resize": {"confirmResize": None},
           "revert-resize": {"revertResize": None}}


@page()
async def instance_action(p: Page) -> Response:
    sid, action = p.request.path_params["id"], p.form.get("action", "")
    try:
        if action == "delete":
            await p.api.delete(f"{COMPUTE}/servers/{quote(sid)}")
        elif action in ACTIONS:
            await p.api.post(f"{COMPUTE}/servers/{quote(sid)}/action", ACTIONS[action], headers=NOVA_VERSION)
        elif action == "resize":
            await p.api.post(f"{COMPUTE}/servers/{quote(sid)}/action",
                             {"resize": {"flavorRef": p.form.get("flavor", "")}}, headers=NOVA_VERSION)
        elif action == "snapshot":
            name = p.form.get("snapshot_name", "").strip() or f"{p.form.get('name', 'instance')}-snapshot"
            await p.api.post(f"{COMPUTE}/servers/{quote(sid)}/action", {"createImage": {"name": name}},
                             headers=NOVA_VERSION)
        elif action == "attach-interface":  # a new port on the network, made by compute
            await p.api.post(f"{COMPUTE}/servers/{quote(sid)}/os-interface",
                             {"interfaceAttachment": {"net_id": p.form.get("network", "")}}, headers=NOVA_VERSION)
            return p.redirect(f"/project/instances/{quote(sid)}#interfaces")
        elif action == "detach-interface":
            await p.api.delete(f"{COMPUTE}/servers/{quote(sid)}/os-interface/{quote(p.form.get('port_id', ''))}")
            return p.redirect(f"/project/instances/{quote(sid)}#interfaces")
        else:
            raise Failure(400, f"Unknown action {action!r}: choose one of the instance's actions.")
    except Failure as e:
        return await instances.show(p, {"servers": e.message}, _fail(e))
    return p.redirect("/project/instances")


# -- project: images, key pairs ----------------------------------------------------------

@page()
async def images(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(images=f"{IMAGE}/images?limit=1000")
    rows = sorted((got["images"] or {}).get("images", []), key=lambda i: (i.get("name") or "").lower())
    return await p.render("images.html", status=status, errors=errors or {}, images=rows)


@page()
async def image_upload(p: Page) -> Response:
    """A new image whose data is the raw body (sent by the page's script, streamed on to the
    image service); data that is refused takes the new image away again."""
    q = p.request.query_params
    body = {"name": q.get("name", "").strip(), "disk_format": q.get("disk_format") or "qcow2",
            "container_format": "bare", "visibility": q.get("visibility") or "private"}
    image = await p.api.post(f"{IMAGE}/images", body)
    headers = {"Content-Type": "application/octet-stream"}
    if p.request.headers.get("content-length"):
        headers["Content-Length"] = p.request.headers["content-length"]
    try:
        await p.api.request("PUT", f"{IMAGE}/images/{image['id']}/file", headers=headers, content=p.request.stream())
    except Failure:
        await p.api.delete(f"{IMAGE}/images/{image['id']}")
        raise
    return Response(b"", status_code=201)


@page()
async def image_action(p: Page) -> Response:
    try:
        if p.form.get("action") != "delete":
            raise Failure(400, "Unknown action: images are deleted here.")
        await p.api.delete(f"{IMAGE}/images/{quote(p.request.path_params['id'])}")
    except Failure as e:
        return await images.show(p, {"list": e.message}, _fail(e))
    return p.redirect("/project/images")


@page()
async def keypairs(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(keypairs=f"{COMPUTE}/os-keypairs")
    rows = [k["keypair"] for k in (got["keypairs"] or {}).get("keypairs", [])]
    return await p.render("keypairs.html", status=status, errors=errors or {}, keypairs=rows)


@page()
async def keypair_create(p: Page) -> Response:
    """A new key pair: its private key is this answer, a download (kept nowhere)."""
    name = p.form.get("name", "").strip()
    try:
        kp = (await p.api.post(f"{COMPUTE}/os-keypairs", {"keypair": {"name": name}}, headers=NOVA_VERSION))["keypair"]
    except Failure as e:
        return await keypairs.show(p, {"create": e.message}, _fail(e))
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in kp["name"]) + ".pem"
    return Response(kp["private_key"], media_type="application/x-pem-file",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@page()
async def keypair_import(p: Page) -> Response:
    body = {"keypair": {"name": p.form.get("name", "").strip(), "public_key": p.form.get("public_key", "").strip()}}
    try:
        await p.api.post(f"{COMPUTE}/os-keypairs", body, headers=NOVA_VERSION)
    except Failure as e:
        return await keypairs.show(p, {"import": e.message}, _fail(e))
    return p.redirect("/project/key_pairs")


@page()
async def keypair_delete(p: Page) -> Response:
    try:
        await p.api.delete(f"{COMPUTE}/os-keypairs/{quote(p.request.path_params['name'])}")
    except Failure as e:
        return await keypairs.show(p, {"list": e.message}, _fail(e))
    return p.redirect("/project/key_pairs")


# -- project: volumes --------------------------------------------------------------------

@page()
async def volumes(p: Page, errors: dict | None = None, status: int = 200, transfer: dict | None = None
                  ) -> Response:
    """Volumes, their snapshots, backups and transfers; ``transfer``: one just created,
    whose authorization key this page shows once."""
    got = await p.api.gather(volumes=f"{p.api.volume}/volumes/detail", snapshots=f"{p.api.volume}/snapshots/detail",
                             backups=f"{p.api.volume}/backups/detail",
                             transfers=f"{p.api.volume}/os-volume-transfer/detail")
    servers = await _server_choices(p)
    names = {s["id"]: s["name"] for s in servers}
    rows = []
    for v in (got["volumes"] or {}).get("volumes", []):
        attached = ", ".join(f"{names.get(a['server_id'], a['server_id'])} on {a.get('device') or '?'}"
                             for a in v.get("attachments", []))
        rows.append({**v, "attached": attached})
    rows.sort(key=lambda v: ((v.get("name") or "").lower(), v["id"]))
    names = {v["id"]: v.get("name") or v["id"] for v in rows}
    snaps = [{**x, "volume": names.get(x["volume_id"], x["volume_id"])}
             for x in (got["snapshots"] or {}).get("snapshots", [])]
    backups = [{**b, "volume": names.get(b["volume_id"], b["volume_id"])}
               for b in (got["backups"] or {}).get("backups", [])]
    transfers = [{**t, "volume": names.get(t["volume_id"], t["volume_id"])}
                 for t in (got["transfers"] or {}).get("transfers", [])]
    return await p.render("volumes.html", status=status, errors=errors or {}, volumes=rows, servers=servers,
                          snapshots=sorted(snaps, key=lambda x: x.get("name") or ""),
                          backups=sorted(backups, key=lambda x: (x.get("name") or "", x["id"])),
                          transfers=sorted(transfers, key=lambda x: (x.get("name") or "", x["id"])),
                          transfer=transfer)


@page()
async def volume_create(p: Page) -> Response:
    try:
        size = int(p.form.get("size") or 0)
    except ValueError:
        return await volumes.show(p, {"create": "Size must be a whole number of GiB."}, 400)
    body = {"volume": {"name": p.form.get("name", "").strip(), "size": size,
                       "description": p.form.get("description", "")}}
    try:
        await p.api.post(f"{p.api.volume}/volumes", body)
    except Failure as e:
        return await volumes.show(p, {"create": e.message}, _fail(e))
    return p.redirect("/project/volumes")


@page()
async def volume_action(p: Page) -> Response:
    vid, action = quote(p.request.path_params["id"]), p.form.get("action", "")
    try:
        if action == "delete":
            await p.api.delete(f"{p.api.volume}/volumes/{vid}")
        elif action == "attach":
            sid = quote(p.form.get("server_id", ""))
            if not sid:
                raise Failure(400, "Choose the instance to attach the volume to.")
            await p.api.post(f"{COMPUTE}/servers/{sid}/os-volume_attachments",
                             {"volumeAttachment": {"volumeId": p.request.path_params["id"]}}, headers=NOVA_VERSION)
        elif action == "extend":
            try:
                size = int(p.form.get("new_size") or 0)
            except ValueError:
                raise Failure(400, "The new size is a whole number of GiB.") from None
            await p.api.post(f"{p.api.volume}/volumes/{vid}/action", {"os-extend": {"new_size": size}})
        elif action == "snapshot":
            await p.api.post(f"{p.api.volume}/snapshots", {"snapshot": {
                "volume_id": p.request.path_params["id"], "name": p.form.get("snapshot_name", "").strip(),
                "force": False}})
        elif action == "detach":
            sid = quote(p.form.get("server_id", ""))
            await p.api.delete(f"{COMPUTE}/servers/{sid}/os-volume_attachments/{vid}", headers=NOVA_VERSION)
        elif action == "backup":
            await p.api.post(f"{p.api.volume}/backups", {"backup": {
                "volume_id": p.request.path_params["id"], "name": p.form.get("backup_name", "").strip() or None}})
        elif action == "transfer":
            made = (await p.api.post(f"{p.api.volume}/os-volume-transfer", {"transfer": {
                "volume_id": p.request.path_params["id"], "name": p.form.get("transfer_name", "").strip() or None}}))
            return await volumes.show(p, transfer=made["transfer"], status=202)
        else:
            raise Failure(400, f"Unknown action {action!r}: choose attach, detach, extend, snapshot, backup, "
                               "transfer or delete.")
    except Failure as e:
        return await volumes.show(p, {"list": e.message}, _fail(e))
    return p.redirect("/project/volumes")


@page()
async def backup_action(p: Page) -> Response:
    """Restore a backup (on a new volume, or over an available one) or delete it."""
    bid, action = quote(p.request.path_params["id"]), p.form.get("action", "")
    try:
        if action == "restore":
            restore = {"volume_id": p.form["volume_id"]} if p.form.get("volume_id") else {}
            if p.form.get("name", "").strip() and not restore:
                restore["name"] = p.form["name"].strip()
            await p.api.post(f"{p.api.volume}/backups/{bid}/restore", {"restore": restore})
        elif action == "delete":
            await p.api.delete(f"{p.api.volume}/backups/{bid}")
        else:
            raise Failure(400, f"Unknown action {action!r}: choose restore or delete.")
    except Failure as e:
        return await volumes.show(p, {"backups": e.message}, _fail(e))
    return p.redirect("/project/volumes")


@page()
async def transfer_action(p: Page) -> Response:
    """Accept a transfer (its id and authorization key, from the giving project) or cancel
    one of this project's."""
    f, action = p.form, p.form.get("action", "")
    try:
        tid = quote(f.get("id", "").strip())
        if not tid:
            raise Failure(400, "Give the transfer's ID.")
        if action == "accept":
            await p.api.post(f"{p.api.volume}/os-volume-transfer/{tid}/accept",
                             {"accept": {"auth_key": f.get("auth_key", "").strip()}})
        elif action == "cancel":
            await p.api.delete(f"{p.api.volume}/os-volume-transfer/{tid}")
        else:
            raise Failure(400, f"Unknown action {action!r}: choose accept or cancel.")
    except Failure as e:
        return await volumes.show(p, {"accept" if action == "accept" else "transfers": e.message}, _fail(e))
    return p.redirect("/project/volumes")


# -- project: network -------------------------------------------------------------------

@page()
async def networks(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(networks=f"{NETWORK}/networks", subnets=f"{NETWORK}/subnets",
                             routers=f"{NETWORK}/routers",
                             groups=f"{NETWORK}/security-groups?project_id={p.login.project_id}")
    subnets = {s["id"]: s for s in (got["subnets"] or {}).get("subnets", [])}
    nets = (got["networks"] or {}).get("networks", [])
    names = {n["id"]: n.get("name") or n["id"] for n in nets}
    rows = []
    for n in nets:
        cidrs = [f"{subnets[s]['name']} {subnets[s]['cidr']}" for s in n.get("subnets", []) if s in subnets]
        rows.append({**n, "cidrs": ", ".join(cidrs)})
    rows.sort(key=lambda n: ((n.get("name") or "").lower(), n["id"]))
    routers = []
    for r in (got["routers"] or {}).get("routers", []):
        gw = (r.get("external_gateway_info") or {}).get("network_id")
        routers.append({**r, "gateway": names.get(gw, gw or "")})
    groups = [{**g, "rule_count": len(g.get("security_group_rules") or [])}
              for g in (got["groups"] or {}).get("security_groups", [])]
    return await p.render("networks.html", status=status, errors=errors or {}, networks=rows,
                          subnets=sorted(subnets.values(), key=lambda x: x.get("name") or ""),
                          routers=sorted(routers, key=lambda r: r.get("name") or ""),
                          groups=sorted(groups, key=lambda g: g.get("name") or ""))


@page()
async def network_create(p: Page) -> Response:
    """A network with one IPv4 subnet (Horizon's create network wizard, in one form); a
    refused subnet takes its new network away again, so nothing half-made is left."""
    name, cidr = p.form.get("name", "").strip(), p.form.get("cidr", "").strip()
    try:
        net = (await p.api.post(f"{NETWORK}/networks", {"network": {"name": name}}))["network"]
        if cidr:
            try:
                await p.api.post(f"{NETWORK}/subnets", {"subnet": {
                    "network_id": net["id"], "name": p.form.get("subnet_name", "").strip() or f"{name}-subnet",
                    "cidr": cidr, "ip_version": 4}})
            except Failure:
                await p.api.delete(f"{NETWORK}/networks/{net['id']}")
                raise
    except Failure as e:
        return await networks.show(p, {"create": e.message}, _fail(e))
    return p.redirect("/project/networks")


@page()
async def router_create(p: Page) -> Response:
    """A router, its gateway on an external network, and an interface on a subnet; a refused
    interface takes the new router away again."""
    f = p.form
    router: dict[str, Any] = {"name": f.get("name", "").strip()}
    if f.get("external_network_id"):
        router["external_gateway_info"] = {"network_id": f["external_network_id"]}
    try:
        made = (await p.api.post(f"{NETWORK}/routers", {"router": router}))["router"]
        if f.get("subnet_id"):
            try:
                await p.api.put(f"{NETWORK}/routers/{made['id']}/add_router_interface", {"subnet_id": f["subnet_id"]})
            except Failure:
                await p.api.delete(f"{NETWORK}/routers/{made['id']}")
                raise
    except Failure as e:
        return await networks.show(p, {"router": e.message}, _fail(e))
    return p.redirect("/project/networks")


@page()
async def rule_create(p: Page) -> Response:
    """An ingress rule (protocol, port range, remote CIDR) in a security group."""
    f = p.form
    rule: dict[str, Any] = {"security_group_id": f.get("security_group_id", ""), "direction": "ingress",
                            "ethertype": "IPv4"}
    if f.get("protocol"):
        rule["protocol"] = f["protocol"]
    try:
        low, _, high = f.get("port", "").strip().partition("-")
        if low:
            rule["port_range_min"], rule["port_range_max"] = int(low), int(high or low)
    except ValueError:
        return await networks.show(p, {"rule": "Port: a number, or a range such as 8000-8080."}, 400)
    if f.get("remote_ip_prefix", "").strip():
        rule["remote_ip_prefix"] = f["remote_ip_prefix"].strip()
    try:
        await p.api.post(f"{NETWORK}/security-group-rules", {"security_group_rule": rule})
    except Failure as e:
        return await networks.show(p, {"rule": e.message}, _fail(e))
    return p.redirect("/project/networks")


@page()
async def topology(p: Page) -> Response:
    """Networks as vertical bars, routers and instances as boxes joined to the networks
    their ports are on: an SVG drawn here (server-side, escaped), refreshed in place."""
    got = await p.api.gather(networks=f"{NETWORK}/networks", routers=f"{NETWORK}/routers",
                             ports=f"{NETWORK}/ports", servers=f"{COMPUTE}/servers?limit=1000")
    nets = sorted((got["networks"] or {}).get("networks", []),
                  key=lambda n: (not n.get("router:external"), (n.get("name") or "").lower()))
    column = {n["id"]: i for i, n in enumerate(nets)}
    links: dict[str, set[int]] = {}
    for port in (got["ports"] or {}).get("ports", []):
        if port.get("device_id") and port.get("network_id") in column:
            links.setdefault(port["device_id"], set()).add(column[port["network_id"]])
    devices = []
    for r in sorted((got["routers"] or {}).get("routers", []), key=lambda r: r.get("name") or ""):
        gw = (r.get("external_gateway_info") or {}).get("network_id")
        cols = links.get(r["id"], set()) | ({column[gw]} if gw in column else set())
        devices.append({"kind": "router", "name": r.get("name") or r["id"], "cols": sorted(cols)})
    for sv in sorted((got["servers"] or {}).get("servers", []), key=lambda x: x["name"]):
        devices.append({"kind": "instance", "name": sv["name"], "cols": sorted(links.get(sv["id"], set()))})
    width = max(1, len(nets)) * TOPO_COL + 220
    height = 70 + max(1, len(devices)) * TOPO_ROW
    return await p.render("topology.html", nets=nets, devices=devices, width=width, height=height,
                          col=TOPO_COL, row=TOPO_ROW)


TOPO_COL, TOPO_ROW = 110, 46  # the drawing's grid: a network's column, a device's row


@page()
async def floating_ips(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(fips=f"{NETWORK}/floatingips",
                             external=f"{NETWORK}/networks?router:external=true",
                             ports=f"{NETWORK}/ports?device_owner=compute:nova")
    servers = await _server_choices(p)
    names = {s["id"]: s["name"] for s in servers}
    port_server = {pt["id"]: names.get(pt["device_id"], pt["device_id"]) for pt in (got["ports"] or {}).get("ports", [])}
    rows = [{**f, "server": port_server.get(f.get("port_id"), f.get("port_id") or "")}
            for f in (got["fips"] or {}).get("floatingips", [])]
    rows.sort(key=lambda f: f["floating_ip_address"] or "")
    return await p.render("floating_ips.html", status=status, errors=errors or {}, fips=rows, servers=servers,
                          external=(got["external"] or {}).get("networks", []))


@page()
async def fip_allocate(p: Page) -> Response:
    try:
        await p.api.post(f"{NETWORK}/floatingips", {"floatingip": {"floating_network_id": p.form.get("network_id", "")}})
    except Failure as e:
        return await floating_ips.show(p, {"allocate": e.message}, _fail(e))
    return p.redirect("/project/floating_ips")


@page()
async def fip_action(p: Page) -> Response:
    fid, action = quote(p.request.path_params["id"]), p.form.get("action", "")
    try:
        if action == "associate":
            sid = p.form.get("server_id", "")
            ports = (await p.api.get(f"{NETWORK}/ports", params={"device_id": sid}))["ports"] if sid else []
            if not ports:
                raise Failure(400, "Choose an instance with a port to associate the floating IP with.")
            await p.api.put(f"{NETWORK}/floatingips/{fid}", {"floatingip": {"port_id": ports[0]["id"]}})
        elif action == "disassociate":
            await p.api.put(f"{NETWORK}/floatingips/{fid}", {"floatingip": {"port_id": None}})
        elif action == "release":
            await p.api.delete(f"{NETWORK}/floatingips/{fid}")
        else:
            raise Failure(400, f"Unknown action {action!r}: choose associate, disassociate or release.")
    except Failure as e:
        return await floating_ips.show(p, {"list": e.message}, _fail(e))
    return p.redirect("/project/floating_ips")


# -- project: object store ------------------------------------------------------------------

PUBLIC_READ = ".r:*,.rlistings"


def _obj(name: str) -> str:
    return quote(name, safe="/")


@page()
async def containers(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(containers=f"{p.api.account}?format=json&limit=1000")
    return await p.render("containers.html", status=status, errors=errors or {}, containers=got["containers"] or [])


@page()
async def container_create(p: Page) -> Response:
    name = p.form.get("name", "").strip()
    try:
        if not name or "/" in name:
            raise Failure(400, "A container name is required and has no '/'.")
        headers = {"X-Container-Read": PUBLIC_READ} if p.form.get("public") else {}
        await p.api.request("PUT", f"{p.api.account}/{quote(name)}", headers=headers)
    except Failure as e:
        return await containers.show(p, {"create": e.message}, _fail(e))
    return p.redirect(f"/project/containers/{quote(name)}")


@page()
async def container(p: Page, errors: dict | None = None, status: int = 200, prefix: str | None = None) -> Response:
    """One container's pseudo-folder (``prefix``): its folders and its objects."""
    name = p.request.path_params["name"]
    prefix = p.request.query_params.get("prefix", "") if prefix is None else prefix
    head = await p.api.request("HEAD", f"{p.api.account}/{quote(name)}")
    listing = await p.api.get(f"{p.api.account}/{quote(name)}",
                              params={"format": "json", "delimiter": "/", "prefix": prefix, "limit": 1000})
    folders = [x["subdir"] for x in listing if "subdir" in x]
    objects = [x for x in listing if "name" in x and x["name"] != prefix]
    crumbs, acc = [], ""
    for part in [x for x in prefix.split("/") if x]:
        acc += part + "/"
        crumbs.append({"name": part, "prefix": acc})
    public = ".r:" in head.headers.get("x-container-read", "")
    return await p.render("container.html", status=status, errors=errors or {}, name=name, prefix=prefix,
                          folders=folders, objects=objects, crumbs=crumbs, public=public,
                          public_url=f"{_conf.public_url}{p.api.account}/{quote(name)}/")


@page()
async def container_action(p: Page) -> Response:
    name, f = p.request.path_params["name"], p.form
    prefix = f.get("prefix", "")
    base = f"{p.api.account}/{quote(name)}"
    back = f"/project/containers/{quote(name)}" + (f"?prefix={quote(prefix)}" if prefix else "")
    try:
        action = f.get("action", "")
        if action == "folder":
            folder = f.get("folder", "").strip().strip("/")
            if not folder:
                raise Failure(400, "A folder name is required.")
            await p.api.request("PUT", f"{base}/{_obj(prefix + folder + '/')}", content=b"")
        elif action == "delete":
            await p.api.delete(f"{base}/{_obj(f.get('object', ''))}")
        elif action in ("public", "private"):
            read = PUBLIC_READ if action == "public" else ""
            await p.api.request("POST", base, headers={"X-Container-Read": read})
        elif action == "delete-container":
            await p.api.delete(base)
            return p.redirect("/project/containers")
        else:
            raise Failure(400, f"Unknown action {action!r}.")
    except Failure as e:
        return await container.show(p, {"objects": e.message}, _fail(e), prefix)
    return p.redirect(back)


@page()
async def object_upload(p: Page) -> Response:
    """An object's data, sent by the page's script as the raw body (streamed on to the
    object store as it arrives: no size limit here, the store's own applies)."""
    name, obj = p.request.path_params["name"], p.request.query_params.get("object", "")
    if not obj or obj.endswith("/"):
        return _error(p.root, 400, "The object needs a name.", p.login)
    headers = {"Content-Type": p.request.headers.get("content-type") or "application/octet-stream"}
    if p.request.headers.get("content-length"):
        headers["Content-Length"] = p.request.headers["content-length"]
    await p.api.request("PUT", f"{p.api.account}/{quote(name)}/{_obj(obj)}", headers=headers,
                        content=p.request.stream())
    return Response(b"", status_code=201)


@page(bare=True)
async def object_download(p: Page) -> Response:
    name, obj = p.request.path_params["name"], p.request.path_params["object"]
    r = await p.api.stream(f"{p.api.account}/{quote(name)}/{_obj(obj)}")
    filename = obj.rsplit("/", 1)[-1] or "object"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    headers = {"Content-Disposition": f"attachment; filename=\"{safe}\"; filename*=UTF-8''{quote(filename)}"}
    if r.headers.get("content-length"):
        headers["Content-Length"] = r.headers["content-length"]
    return StreamingResponse(r.aiter_raw(), media_type="application/octet-stream", headers=headers,
                             background=BackgroundTask(r.aclose))


# -- project: API access ----------------------------------------------------------------

@page()
async def api_access(p: Page) -> Response:
    got = await p.api.gather(catalog=IDENTITY + "/auth/catalog")
    rows = []
    for svc in (got["catalog"] or {}).get("catalog", []):
        for ep in svc.get("endpoints", []):
            if ep.get("interface") == "public":
                rows.append({"type": svc["type"], "name": svc.get("name", ""), "url": ep["url"],
                             "region": ep.get("region_id") or ep.get("region", "")})
    return await p.render("api_access.html", endpoints=sorted(rows, key=lambda r: r["type"]))


def _cacert() -> str:
    ca = tls.ca_file(_conf) if _conf.scheme == "https" else None
    return str(ca) if ca else ""


def _rc_values(login: Login) -> dict[str, str]:
    return {"auth_url": f"{_conf.public_url}{IDENTITY}", "username": login.user_name,
            "project_name": login.project_name, "project_id": login.project_id,
            "user_domain_name": login.domain, "project_domain_id": "default" if login.domain.lower() == "default"
            else login.domain, "region_name": login.region or _conf.identity.region}


@page(bare=True)
async def openrc(p: Page) -> Response:
    """Horizon's openrc: everything but the password, which it asks for when sourced."""
    v = _rc_values(p.login)
    env = {"OS_AUTH_URL": v["auth_url"], "OS_AUTH_TYPE": "password", "OS_USERNAME": v["username"],
           "OS_PROJECT_ID": v["project_id"], "OS_PROJECT_NAME": v["project_name"],
           "OS_USER_DOMAIN_NAME": v["user_domain_name"], "OS_PROJECT_DOMAIN_ID": v["project_domain_id"],
           "OS_REGION_NAME": v["region_name"], "OS_IDENTITY_API_VERSION": "3", "OS_INTERFACE": "public"}
    if ca := _cacert():
        env["OS_CACERT"] = ca
    lines = ["#!/usr/bin/env bash", "# onestack credentials of this user and project: source this file,",
             "# give the password, then use the openstack command"]
    lines += [f"export {k}={shlex.quote(val)}" for k, val in env.items()]
    lines += [f'echo "Please enter your OpenStack password for project {shlex.quote(v["project_name"])} '
              f'as user {shlex.quote(v["username"])}: "',
              "read -sr OS_PASSWORD_INPUT", 'export OS_PASSWORD="$OS_PASSWORD_INPUT"', ""]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in v["project_name"])
    return Response("\n".join(lines), media_type="text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{name}-openrc.sh"'})


@page(bare=True)
async def clouds_yaml(p: Page) -> Response:
    v = _rc_values(p.login)
    cloud: dict[str, Any] = {
        "auth": {"auth_url": v["auth_url"], "username": v["username"], "project_id": v["project_id"],
                 "project_name": v["project_name"], "user_domain_name": v["user_domain_name"],
                 "project_domain_id": v["project_domain_id"]},
        "region_name": v["region_name"], "interface": "public", "identity_api_version": 3}
    if ca := _cacert():
        cloud["cacert"] = ca
    text = "# add the password under auth (or let the client ask for it)\n"
    text += yaml.safe_dump({"clouds": {"onestack": cloud}}, sort_keys=False)
    return Response(text, media_type="application/x-yaml",
                    headers={"Content-Disposition": 'attachment; filename="clouds.yaml"'})


# -- admin and identity -----------------------------------------------------------------

@page(admin=True)
async def admin_overview(p: Page) -> Response:
    got = await p.api.gather(hypervisors=f"{COMPUTE}/os-hypervisors/detail", services=f"{COMPUTE}/os-services",
                             agents=f"{NETWORK}/agents", volume_services=f"{p.api.volume}/os-services")
    return await p.render("admin.html", hypervisors=(got["hypervisors"] or {}).get("hypervisors", []),
                          services=(got["services"] or {}).get("services", []),
                          agents=(got["agents"] or {}).get("agents", []),
                          volume_services=(got["volume_services"] or {}).get("services", []))


@page(admin=True)
async def admin_instances(p: Page) -> Response:
    """Every project's instances (50 a page, by name), with their project and host."""
    marker = p.request.query_params.get("marker", "")
    query = _servers_query(marker).replace("?", "?all_tenants=1&", 1)
    got = await p.api.gather(servers=query, images=f"{IMAGE}/images?limit=1000", projects=IDENTITY + "/projects")
    servers, next_marker = _server_rows(got["servers"], got["images"])
    details = {s["id"]: s for s in (got["servers"] or {}).get("servers", [])}
    names = {x["id"]: x["name"] for x in (got["projects"] or {}).get("projects", [])}
    for s in servers:
        d = details[s["id"]]
        s["project"] = names.get(d.get("tenant_id"), d.get("tenant_id", ""))
        s["host"] = d.get("OS-EXT-SRV-ATTR:host") or ""
    return await p.render("admin_instances.html", servers=servers, marker=marker, next_marker=next_marker)


@page(admin=True)
async def flavors(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(flavors=f"{COMPUTE}/flavors/detail?is_public=None")
    rows = sorted((got["flavors"] or {}).get("flavors", []), key=lambda f: (f["vcpus"], f["ram"], f["name"]))
    return await p.render("flavors.html", status=status, errors=errors or {}, flavors=rows)


@page(admin=True)
async def flavor_post(p: Page) -> Response:
    f = p.form
    try:
        if f.get("action") == "delete":
            await p.api.delete(f"{COMPUTE}/flavors/{quote(f.get('id', ''))}")
        else:
            try:
                sizes = {k: int(f.get(k) or 0) for k in ("vcpus", "ram", "disk")}
            except ValueError:
                raise Failure(400, "VCPUs, RAM and disk are whole numbers.") from None
            flavor = {"name": f.get("name", "").strip(), **sizes}
            if f.get("id", "").strip():
                flavor["id"] = f["id"].strip()
            await p.api.post(f"{COMPUTE}/flavors", {"flavor": flavor}, headers=NOVA_VERSION)
    except Failure as e:
        return await flavors.show(p, {"list" if f.get("action") == "delete" else "create": e.message}, _fail(e))
    return p.redirect("/admin/flavors")


QUOTA_FIELDS = (("instances", "Instances"), ("cores", "VCPUs"), ("ram", "RAM (MiB)"), ("key_pairs", "Key pairs"),
                ("server_groups", "Server groups"), ("server_group_members", "Server group members"),
                ("metadata_items", "Metadata items"))


@page(admin=True)
async def default_quotas(p: Page, errors: dict | None = None, status: int = 200) -> Response:
    got = await p.api.gather(defaults=f"{COMPUTE}/os-quota-class-sets/default")
    values = (got["defaults"] or {}).get("quota_class_set", {})
    return await p.render("quotas.html", status=status, errors=errors or {}, values=values,
                          fields=[f for f in QUOTA_FIELDS if f[0] in values])


@page(admin=True)
async def default_quotas_post(p: Page) -> Response:
    """The compute defaults every project has unless its own quota says otherwise."""
    values = {}
    try:
        for key, label in QUOTA_FIELDS:
            if p.form.get(key, "").strip():
                try:
                    values[key] = int(p.form[key])
                except ValueError:
                    raise Failure(400, f"{label}: a whole number (-1: unlimited).") from None
        await p.api.put(f"{COMPUTE}/os-quota-class-sets/default", {"quota_class_set": values}, headers=NOVA_VERSION)
    except Failure as e:
        return await default_quotas.show(p, {"quotas": e.message}, _fail(e))
    return p.redirect("/admin/quotas")


def build() -> Starlette:
    static = StaticFiles(directory=str(resources.files("onestack.dashboard") / "static"))
    routes = [
        Route("/", home),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/switch", switch_project, methods=["POST"]),
        Route("/region", switch_region, methods=["POST"]),
        Route("/project/", overview),
        Route("/project/instances", instances, methods=["GET"]),
        Route("/project/instances", launch, methods=["POST"]),
        Route("/project/instances/rows", instance_rows),
        Route("/project/instances/{id}", instance_detail, methods=["GET"]),
        Route("/project/instances/{id}", instance_action, methods=["POST"]),
        Route("/project/images", images, methods=["GET"]),
        Route("/project/images/upload", image_upload, methods=["POST"]),
        Route("/project/images/{id}", image_action, methods=["POST"]),
        Route("/project/key_pairs", keypairs, methods=["GET"]),
        Route("/project/key_pairs/create", keypair_create, methods=["POST"]),
        Route("/project/key_pairs/import", keypair_import, methods=["POST"]),
        Route("/project/key_pairs/{name}/delete", keypair_delete, methods=["POST"]),
        Route("/project/volumes", volumes, methods=["GET"]),
        Route("/project/volumes", volume_create, methods=["POST"]),
        Route("/project/volumes/{id}", volume_action, methods=["POST"]),
        Route("/project/volume_backups/{id}", backup_action, methods=["POST"]),
        Route("/project/volume_transfers", transfer_action, methods=["POST"]),
        Route("/project/networks", networks, methods=["GET"]),
        Route("/project/networks", network_create, methods=["POST"]),
        Route("/project/routers", router_create, methods=["POST"]),
        Route("/project/topology", topology),
        Route("/project/security_group_rules", rule_create, methods=["POST"]),
        Route("/project/floating_ips", floating_ips, methods=["GET"]),
        Route("/project/floating_ips", fip_allocate, methods=["POST"]),
        Route("/project/floating_ips/{id}", fip_action, methods=["POST"]),
        Route("/project/containers", containers, methods=["GET"]),
        Route("/project/containers", container_create, methods=["POST"]),
        Route("/project/containers/{name}", container, methods=["GET"]),
        Route("/project/containers/{name}", container_action, methods=["POST"]),
        Route("/project/containers/{name}/upload", object_upload, methods=["POST"]),
        Route("/project/containers/{name}/objects/{object:path}", object_download, methods=["GET"]),
        Route("/project/stacks", orch.stacks, methods=["GET"]),
        Route("/project/stacks", orch.stack_create, methods=["POST"]),
        Route("/project/stacks/{name}/{id}", orch.stack_detail, methods=["GET"]),
        Route("/project/stacks/{name}/{id}", orch.stack_action, methods=["POST"]),
        Route("/project/api_access", api_access),
        Route("/project/api_access/openrc", openrc),
        Route("/project/api_access/clouds.yaml", clouds_yaml),
        Route("/admin/", admin_overview),
        Route("/admin/instances", admin_instances),
        Route("/admin/flavors", flavors, methods=["GET"]),
        Route("/admin/flavors", flavor_post, methods=["POST"]),
        Route("/admin/quotas", default_quotas, methods=["GET"]),
        Route("/admin/quotas", default_quotas_post, methods=["POST"]),
        Route("/identity/", ident.identity, methods=["GET"]),
        Route("/identity/projects/{id}", ident.project_detail, methods=["GET"]),
        Route("/identity/projects/{id}", ident.project_post, methods=["POST"]),
        Route("/identity/users/{id}", ident.user_detail, methods=["GET"]),
        Route("/identity/users/{id}", ident.user_post, methods=["POST"]),
        Route("/identity/groups", ident.groups, methods=["GET"]),
        Route("/identity/groups", ident.groups_post, methods=["POST"]),
        Route("/identity/groups/{id}", ident.group_detail, methods=["GET"]),
        Route("/identity/groups/{id}", ident.group_post, methods=["POST"]),
        Route("/identity/roles", ident.roles, methods=["GET"]),
        Route("/identity/roles", ident.roles_post, methods=["POST"]),
        Route("/identity/application_credentials", ident.app_credentials, methods=["GET"]),
        Route("/identity/application_credentials", ident.app_credentials_post, methods=["POST"]),
        Route("/identity/{what}", ident.identity_post, methods=["POST"]),
        Mount("/static", static),
    ]

    async def http_error(request: Request, exc: HTTPException) -> Response:
        root = request.scope.get("root_path", "")
        if exc.status_code == 404:
            return _with_headers(_error(root, 404, f"There is no page at {request.url.path}."))
        if exc.status_code == 405:
            return _with_headers(_error(root, 405, f"{request.method} is not how {request.url.path} is used."))
        return _with_headers(_error(root, exc.status_code, str(exc.detail)))

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
