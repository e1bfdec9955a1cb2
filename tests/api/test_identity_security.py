"""Keystone's security compliance ([security_compliance] there, identity.* keys here)
through the real `openstack` CLI and openstacksdk: password complexity, expiry and
change upon first use, the password history, the minimum password age, lockout,
inactive accounts, and the user options that exempt a user from each.

Two clouds, each with the features turned on through ONESTACK_IDENTITY_* variables.
Days cannot pass in a test: where one must (inactivity), the test moves the stored
day back in the cloud's database, as time would."""

from __future__ import annotations

import sqlite3
from datetime import date, timedelta

import httpx
import openstack
import pytest

from tests.api.test_identity_resources import low, osc, osj, password_env, refused, sdk, suffix
from tests.api.test_identity_tokens import forget, token_env
from tests.cloud import Cloud

RULE = "at least 8 characters, one of them a digit"
SECURE = {
    "ONESTACK_IDENTITY_LOCKOUT_FAILURE_ATTEMPTS": "2",
    "ONESTACK_IDENTITY_LOCKOUT_DURATION": "3600",
    "ONESTACK_IDENTITY_PASSWORD_EXPIRES_DAYS": "90",
    "ONESTACK_IDENTITY_UNIQUE_LAST_PASSWORD_COUNT": "3",
    "ONESTACK_IDENTITY_PASSWORD_REGEX": r"^(?=.*\d).{8,}$",
    "ONESTACK_IDENTITY_PASSWORD_REGEX_DESCRIPTION": RULE,
    "ONESTACK_IDENTITY_CHANGE_PASSWORD_UPON_FIRST_USE": "true",
}


@pytest.fixture(scope="module")
def secure():
    c = Cloud("security", extra_env=SECURE)
    try:
        c.start()
        yield c
    finally:
        forget(c)
        c.stop()


def _member(c, name: str, password: str, *options: str) -> dict:
    """A user with the member role on demo, made with the CLI (and OPTIONS flags)."""
    u = osj(c, "user", "create", "--project", "demo", "--password", password, *options, name)
    osc(c, "role", "add", "--project", "demo", "--user", name, "member")
    return u


def _login(c, name: str, password: str):
    return osc(c, "token", "issue", env=password_env(c, name, password, project="demo"), check=False)


def _change(c, user_id: str, original: str, new: str) -> httpx.Response:
    """POST /v3/users/{id}/password without a token: the only way in for a user whose
    password has expired (every client logs in first, and that login is refused)."""
    return httpx.post(f"{c.url}/identity/v3/users/{user_id}/password",
                      json={"user": {"original_password": original, "password": new}})


def _error(r: httpx.Response, code: int) -> str:
    assert r.status_code == code, r.text
    return r.json()["error"]["message"]


def test_complexity_first_use_expiry_and_history(secure):
    c, name = secure, f"sec-{suffix()}"
    # a password that misses password_regex is refused, with the description
    r = osc(c, "user", "create", "--password", "short", name, check=False)
    assert refused(r, f"The password does not match the requirements: {RULE}.")
    assert refused(r, "400: Client Error")
    u = _member(c, name, "initial-pw1")
    try:
        # an administrator's password must be changed upon first use: it has expired already
        r = _login(c, name, "initial-pw1")
        assert refused(r, "401")
        assert f"The password is expired and needs to be changed for user: {u['id']}." in r.stderr
        # ... which its user may still do, and the new one lasts password_expires_days
        assert _error(_change(c, u["id"], "initial-pw1", "weak"), 400) == (
            f"The password does not match the requirements: {RULE}.")
        assert _change(c, u["id"], "initial-pw1", "second-pw2").status_code == 204
        assert osj(c, "token", "issue", env=password_env(c, name, "second-pw2", project="demo"))
        shown = low(osj(c, "user", "show", name))
        expires = date.fromisoformat(shown["password_expires_at"][:10])
        assert expires == date.today() + timedelta(days=90)

        # self-service changes through the CLI, as the user: the last 3 must differ
        me = password_env(c, name, "second-pw2", project="demo")
        old_token = osj(c, "token", "issue", env=me)["id"]
        r = osc(c, "user", "password", "set", "--original-password", "second-pw2",
                "--password", "second-pw2", env=me, check=False)
        reuse = ("The new password cannot be identical to a previous password. The total "
                 "number which includes the new password must be unique is 3.")
        assert refused(r, reuse) and refused(r, "400: Client Error")
        osc(c, "user", "password", "set", "--original-password", "second-pw2",
            "--password", "third-pw3", env=me)
        # a change revokes the user's tokens: one is then not found (404, as Keystone)
        r = osc(c, "token", "issue", env=token_env(c, old_token, project_name="demo",
                                                    project_domain_name="Default"), check=False)
        assert refused(r, "Failed to validate token") and refused(r, "404")
        me = password_env(c, name, "third-pw3", project="demo")
        for old in ("initial-pw1", "second-pw2"):  # both among the last 3
            r = osc(c, "user", "password", "set", "--original-password", "third-pw3",
                    "--password", old, env=me, check=False)
            assert refused(r, reuse)
        osc(c, "user", "password", "set", "--original-password", "third-pw3",
            "--password", "fourth-pw4", env=me)
        osc(c, "user", "password", "set", "--original-password", "fourth-pw4",
            "--password", "fifth-pw5", env=password_env(c, name, "fourth-pw4", project="demo"))
        # second-pw2 has left the last 3: usable again
        assert _change(c, u["id"], "fifth-pw5", "second-pw2").status_code == 204
        # a wrong original password is 401 and changes nothing
        assert _change(c, u["id"], "nope", "sixth-pw6").status_code == 401

        # an administrator's reset ignores the history, and must be changed again
        osc(c, "user", "set", "--password", "third-pw3", name)
        assert "expired" in _login(c, name, "third-pw3").stderr
        # the password_expires_at filter sees it: expired already, not in 90 days
        conn = sdk(c)
        soon = (date.today() + timedelta(days=1)).isoformat() + "T00:00:00Z"
        expired = {x.name for x in conn.identity.users(password_expires_at=f"lt:{soon}")}
        later = {x.name for x in conn.identity.users(password_expires_at=f"gte:{soon}")}
        assert name in expired and name not in later
        assert "admin" not in expired | later  # no expiry: matches no comparison
        differ = {x.name for x in conn.identity.users(password_expires_at=f"neq:{soon}")}
        assert name in differ and "admin" not in differ
        # and so does the list of a group's users
        g = conn.identity.create_group(name=name, domain_id="default")
        try:
            conn.identity.add_user_to_group(u["id"], g)
            assert [x.name for x in conn.identity.group_users(
                g, password_expires_at=f"lte:{soon}")] == [name]
            assert list(conn.identity.group_users(g, password_expires_at=f"gt:{soon}")) == []
        finally:
            conn.identity.delete_group(g)
        # a user with a password history can be deleted
        osc(c, "user", "delete", name)
        assert conn.identity.find_user(name) is None
    finally:
        osc(c, "user", "delete", name, check=False)


def test_password_expires_at_filter_errors(secure):
    conn = sdk(secure)
    with pytest.raises(openstack.exceptions.BadRequestException,
                       match="The given operator xx is not valid. It must be one of the "
                             "following: 'eq', 'neq', 'lt', 'lte', 'gt', or 'gte'."):
        list(conn.identity.users(password_expires_at="xx:2030-01-01T00:00:00Z"))
    with pytest.raises(openstack.exceptions.BadRequestException,
                       match="Timestamp not in expected format"):
        list(conn.identity.users(password_expires_at="lt:tomorrow"))
    # no operator means eq
    assert list(conn.identity.users(password_expires_at="2001-01-01T00:00:00Z")) == []


def test_user_options_exempt_from_first_use_expiry_and_lockout(secure):
    c, name = secure, f"svc-{suffix()}"
    u = _member(c, name, "service-pw1", "--ignore-change-password-upon-first-use",
                "--ignore-password-expiry", "--ignore-lockout-failure-attempts")
    try:
        assert low(u)["options"] == {"ignore_change_password_upon_first_use": True,
                                     "ignore_password_expiry": True,
                                     "ignore_lockout_failure_attempts": True}
        assert low(u)["password_expires_at"] is None  # exempt from expiry
        assert _login(c, name, "service-pw1").returncode == 0  # not to change first
        # failures never lock it
        for _ in range(3):
            assert refused(_login(c, name, "wrong-pw99"), "401")
        assert _login(c, name, "service-pw1").returncode == 0
        # options are merged: the --no- flag sets just that one to false
        osc(c, "user", "set", "--no-ignore-lockout-failure-attempts", name)
        assert low(osj(c, "user", "show", name))["options"] == {
            "ignore_change_password_upon_first_use": True, "ignore_password_expiry": True,
            "ignore_lockout_failure_attempts": False}
        # now two failures lock it, with Keystone's message, even for the right password
        for _ in range(2):
            assert refused(_login(c, name, "wrong-pw99"), "401")
        r = _login(c, name, "service-pw1")
        assert f"The account is locked for user: {u['id']}." in r.stderr
        assert "401" in r.stderr
        # lock_password forbids self-service changes (not an administrator's reset)
        osc(c, "user", "set", "--enable-lock-password", "--password", "reset-pw2", name)
        r = _change(c, u["id"], "reset-pw2", "other-pw3")
        assert _error(r, 400).startswith("You cannot change your password at this time due to "
                                         "password policy disallowing password changes.")
        assert _login(c, name, "reset-pw2").returncode == 0  # the reset also unlocked it
    finally:
        osc(c, "user", "delete", name, check=False)


def test_options_refused_when_unknown_or_not_boolean(secure):
    admin = secure.sdk()
    try:
        for options, words in (({"no_such_option": True}, "'no_such_option' was unexpected"),
                               ({"ignore_password_expiry": "yes"}, "not of type 'boolean'")):
            with pytest.raises(openstack.exceptions.BadRequestException, match=words):
                admin.identity.create_user(name=f"bad-{suffix()}", password="valid-pw1",
                                           options=options)
        assert not [x for x in admin.identity.users() if x.name.startswith("bad-")]
    finally:
        admin.close()


def _db_set(c: Cloud, sql: str, *args) -> None:
    with sqlite3.connect(c.state / "onestack.db") as db:
        db.execute(sql, args)


def test_minimum_age_and_inactivity():
    c = Cloud("security-age", extra_env={
        "ONESTACK_IDENTITY_MINIMUM_PASSWORD_AGE": "2",
        "ONESTACK_IDENTITY_DISABLE_USER_ACCOUNT_DAYS_INACTIVE": "30",
    })
    try:
        c.start()
        name = f"age-{suffix()}"
        u = _member(c, name, "first")
        assert _login(c, name, "first").returncode == 0
        # the first self-service change is allowed (an administrator set "first") ...
        osc(c, "user", "password", "set", "--original-password", "first", "--password", "second",
            env=password_env(c, name, "first", project="demo"))
        # ... the next must wait minimum_password_age days
        r = osc(c, "user", "password", "set", "--original-password", "second",
                "--password", "third", env=password_env(c, name, "second", project="demo"),
                check=False)
        assert refused(r, "400: Client Error")
        assert ("You cannot change your password at this time due to the minimum password age. "
                "Once you change your password, it must be used for 2 day(s) before it can be "
                "changed. Please try again in 1 day(s) or contact your administrator to reset "
                "your password.") in r.stderr
        # an administrator may reset it, and that one its user may change at once
        conn = sdk(c)
        conn.identity.update_user(u["id"], password="reset")
        assert _change(c, u["id"], "reset", "fourth").status_code == 204

        # last_active_at is recorded per day; 30 days without a login disables the account
        assert _login(c, name, "fourth").returncode == 0
        _db_set(c, "UPDATE identity_user SET last_active_at = ? WHERE id = ?",
                (date.today() - timedelta(days=31)).isoformat(), u["id"])
        assert low(osj(c, "user", "show", name))["enabled"] is False
        r = _login(c, name, "fourth")
        assert f"The account is disabled for user: {u['id']}." in r.stderr
        assert "401" in r.stderr
        # ignore_user_inactivity exempts it (sdk: the CLI has no flag for this option)
        conn.identity.update_user(u["id"], options={"ignore_user_inactivity": True})
        assert _login(c, name, "fourth").returncode == 0
        assert low(osj(c, "user", "show", name))["enabled"] is True
        # without it, enabling the user again starts a new period
        conn.identity.update_user(u["id"], options={"ignore_user_inactivity": None})
        _db_set(c, "UPDATE identity_user SET last_active_at = ? WHERE id = ?",
                (date.today() - timedelta(days=31)).isoformat(), u["id"])
        assert refused(_login(c, name, "fourth"), "disabled")
        osc(c, "user", "set", "--enable", name)
        assert _login(c, name, "fourth").returncode == 0
    finally:
        forget(c)
        c.stop()
