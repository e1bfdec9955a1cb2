"""The dashboard's page machinery, shared by its panels (web.py, identity.py, ...): the
``page`` decorator (session, CSRF, admin check, error page), ``Page`` (one request: its
form, its backend calls, its rendering) and the security headers every answer carries.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from onestack.common.http import MAX_BODY, media_type
from onestack.dashboard import sessions
from onestack.dashboard.backend import IDENTITY, Api, Failure
from onestack.dashboard.sessions import Login

log = logging.getLogger(__name__)

COOKIE = "onestack_session"
LOGIN_COOKIE = "onestack_login_csrf"  # (double-submit token of the login form, before any session)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin"}

env = jinja2.Environment(loader=jinja2.PackageLoader("onestack.dashboard", "templates"),
                         autoescape=True, undefined=jinja2.StrictUndefined)


class Page:
    """One request of a logged-in user: its session, its form, its backend calls."""

    def __init__(self, request: Request, login: Login, form: Form):
        self.request, self.login, self.form = request, login, form
        self.api = Api(login)
        self.root = request.scope.get("root_path", "")
        self._projects: asyncio.Task | None = None

    def prefetch(self) -> None:
        """Start asking for the header's project list now, beside the page's own calls."""
        self._projects = asyncio.ensure_future(self.api.gather(p=IDENTITY + "/auth/projects"))

    def url(self, path: str) -> str:
        return self.root + path

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.url(path), status_code=303)

    async def render(self, template: str, status: int = 200, **values) -> Response:
        got = await (self._projects or self.api.gather(p=IDENTITY + "/auth/projects"))
        projects = got["p"] or {}
        html = env.get_template(template).render(
            root=self.root, login=self.login, csrf=self.login.csrf, panel=template.split(".")[0],
            projects=sorted(projects.get("projects", []), key=lambda p: p["name"]),
            **{"errors": {}, "form": self.form, **values})
        return HTMLResponse(html, status_code=status)

    def fragment(self, template: str, **values) -> Response:
        html = env.get_template(template).render(root=self.root, csrf=self.login.csrf, login=self.login, **values)
        return HTMLResponse(html)


Handler = Callable[[Page], Awaitable[Response]]


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def with_headers(resp: Response) -> Response:
    resp.headers.update(HEADERS)
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp


def page(admin: bool = False, bare: bool = False):
    """A handler for logged-in users (``admin``: with the admin role); a POST must carry the
    session's CSRF token. A failure of a call the handler did not catch is the error page.
    ``bare``: a GET that answers no full page (a fragment, a download): no header to fill."""

    def wrap(fn: Handler):
        async def endpoint(request: Request) -> Response:
            login = await run_in_threadpool(sessions.find, request.cookies.get(COOKIE))
            root = request.scope.get("root_path", "")
            if login is None:
                if request.method == "GET" and not request.headers.get("x-refresh"):
                    nxt = quote(request.url.path, safe="/")
                    return with_headers(RedirectResponse(f"{root}/login?next={nxt}", status_code=303))
                return with_headers(error_page(root, 401, "Your session has ended: log in again."))
            form = Form([])
            if request.method == "POST":
                form = await read_form(request)
                # (a form's field; a script's raw upload sends it as a header)
                sent = form.get("csrf_token") or request.headers.get("x-csrf-token", "")
                if not hmac.compare_digest(sent.encode(), login.csrf.encode()):
                    return with_headers(error_page(root, 403, "The form was refused: its CSRF token is "
                                                           "missing or wrong. Reload the page and try again."))
            if admin and not login.is_admin:
                return with_headers(error_page(root, 403, "This page is for administrators: your role in "
                                                       f"project {login.project_name} does not allow it.", login))
            p = Page(request, login, form)
            if request.method == "GET" and not bare:
                p.prefetch()
            try:
                return with_headers(await fn(p))
            except Failure as e:
                if e.status == 401:  # the token was revoked or expired under us
                    await run_in_threadpool(sessions.delete, login)
                    return with_headers(RedirectResponse(f"{root}/login", status_code=303))
                return with_headers(error_page(root, e.status if 400 <= e.status < 600 else 502, e.message,
                                            login))
            except Exception:  # a page, not a bare 500: the details go to the log
                log.exception("dashboard page %s failed", request.url.path)
                return with_headers(error_page(root, 500, "The page could not be shown: an unexpected error "
                                                       "(the log has the details).", login))

        endpoint.__name__ = fn.__name__
        endpoint.show = fn  # (the page itself: a refused form shows it again with the error)
        return endpoint

    return wrap


class Form(dict):
    """A form's fields (the last value of each), and every value of a repeated one."""

    def __init__(self, pairs: list[tuple[str, str]]):
        super().__init__(pairs)
        self.pairs = pairs

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key and v]


async def read_form(request: Request) -> Form:
    """The fields of a urlencoded form post (the only kind these pages send; anything else is
    an empty form, which its CSRF check refuses)."""
    if media_type(request) != "application/x-www-form-urlencoded":
        return Form([])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:  # (no form of these pages is near this: not read further)
            return Form([])
        chunks.append(chunk)
    return Form(parse_qsl(b"".join(chunks).decode("utf-8", "replace"), keep_blank_values=True))


def error_page(root: str, status: int, message: str, login: Login | None = None) -> Response:
    html = env.get_template("error.html").render(root=root, login=login, status=status, message=message,
                                                  csrf=login.csrf if login else "", projects=[], panel="error")
    return HTMLResponse(html, status_code=status)


def fail(e: Failure) -> int:
    """The status of a page that shows a refused form again."""
    return e.status if 400 <= e.status < 500 else 502

