"""A dashboard user for the tests: an httpx client that logs in through the login form
and posts forms with the page's CSRF token, as a browser does."""

from __future__ import annotations

import html
import re

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Dash:
    def __init__(self, cloud):
        self.cloud = cloud
        self.http = httpx.Client(base_url=cloud.url, follow_redirects=False, timeout=60)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Dash:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def login(self, user: str, password: str, domain: str = "Default") -> httpx.Response:
        page = self.http.get("/dashboard/login")
        token = _CSRF.search(page.text).group(1)
        r = self.http.post("/dashboard/login", data={"csrf_token": token, "domain": domain, "username": user,
                                                     "password": password})
        if r.status_code == 303:
            self.csrf = _CSRF.search(self.get("/dashboard/project/").text).group(1)
        return r

    def get(self, path: str, **kw) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict | None = None, csrf: bool = True) -> httpx.Response:
        return self.http.post(path, data={**({"csrf_token": self.csrf} if csrf else {}), **(data or {})})


def text(r: httpx.Response) -> str:
    """The page's text with entities decoded (what the user reads)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", r.text))
