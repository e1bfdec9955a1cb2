"""The dashboard's pages without a cloud: cookies over https, the login form's CSRF."""

from __future__ import annotations

import asyncio

import httpx

from onestack.dashboard import web


async def _get_and_post(base: str) -> tuple[httpx.Response, httpx.Response]:
    transport = httpx.ASGITransport(app=web.build(), root_path="/dashboard")
    async with httpx.AsyncClient(transport=transport, base_url=base) as c:
        page = await c.get("/dashboard/login")
        forged = await c.post("/dashboard/login", data={"username": "demo", "password": "x",
                                                        "csrf_token": "forged"})
        return page, forged


def test_cookies_secure_under_https_and_login_needs_its_csrf_token():
    page, forged = asyncio.run(_get_and_post("https://cloud.example"))
    cookie = page.headers["set-cookie"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert page.headers["x-frame-options"] == "DENY"
    assert forged.status_code == 403 and "CSRF" in forged.text
    page, _ = asyncio.run(_get_and_post("http://cloud.example"))
    assert "secure" not in page.headers["set-cookie"].lower()
