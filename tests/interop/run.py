#!/usr/bin/env python3
"""Run the interop guidelines' Tempest tests against a running onestack.

What it does, in order:
  1. installs Tempest and heat-tempest-plugin into their own virtualenv (.venv-tempest), once;
  2. reads admin (and demo) credentials from `onestack openrc`, or from OS_* with --use-env;
  3. asks the cloud what it offers (the token's catalog is the truth);
  4. per guideline (the platform, then an add-on such as orchestration when the catalog offers
     its service), writes a Tempest workspace in .interop/ (etc/tempest*.conf, .stestr.conf)
     and runs the selected capabilities' tests with `tempest run --load-list`;
  5. prints `<capability>: N passed, N failed[, N skipped]` and, last, the totals.

Standard library only: Tempest, stestr and the subunit parser live in .venv-tempest and are
reached through subprocesses. All HTTP goes to loopback addresses only.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import difflib
import fnmatch
import hashlib
import io
import ipaddress
import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# INTEROP_WORKSPACE: a run of its own (`make test` runs two guidelines at once)
WORKSPACE = Path(os.environ.get("INTEROP_WORKSPACE") or REPO / ".interop")
TEMPEST_VENV = REPO / ".venv-tempest"
REQUIREMENTS = HERE / "requirements.txt"
ONESTACK = REPO / ".venv" / "bin" / "onestack"
SHARED = REPO.parent / "shared"
# Guidelines by short name (--guideline / GUIDELINE=): file, and the catalog type an add-on
# tests (None: always run). With none named, the platform runs, then each add-on whose
# service the catalog offers.
GUIDELINES = {
    "platform": (SHARED / "interop-2020.06-platform.json", None),
    "orchestration": (SHARED / "interop-2020.06-orchestration.json", "orchestration"),
    # not an interop guideline: the telemetry-tempest-plugin tests that fit onestack (the file
    # says why each one left out is)
    "telemetry": (HERE / "telemetry.json", "alarming"),
}
# What `tempest run --list-tests` prints that are tests: Tempest's and its plugins'.
TEST_PACKAGES = ("tempest.", "heat_tempest_plugin.", "telemetry_tempest_plugin.")

# Tempest's [service_available] flag -> catalog service types that mean "present".
SERVICE_TYPES = {
    "nova": ("compute",),
    "glance": ("image",),
    "neutron": ("network",),
    "cinder": ("volumev3", "block-storage", "volume"),
    "swift": ("object-store",),
    "heat": ("orchestration",),  # heat-tempest-plugin's flag
    "aodh": ("alarming",),  # telemetry-tempest-plugin's flags
    "gnocchi": ("metric",),
    "ceilometer": (),  # onestack's collector is no Ceilometer (its API is long gone)
}

# What onestack's identity service implements. Edit here when it grows; options that the
# installed Tempest no longer knows are dropped (with a note) before the file is written.
IDENTITY_FEATURES = {
    "api_v2": "false",
    "api_v3": "true",
    "application_credentials": "true",
    "access_rules": "false",
    "project_tags": "true",
    # true when the cloud's settings can be read (security_options), else false
    "security_compliance": "true",
}
# Tempest's security compliance tests must know how the cloud is set: its [identity]
# options <- onestack's identity.* keys (Keystone's [security_compliance] ones).
SECURITY_OPTIONS = {
    "user_lockout_failure_attempts": "lockout_failure_attempts",
    "user_lockout_duration": "lockout_duration",
    "user_unique_last_password_count": "unique_last_password_count",
    "user_minimum_password_age": "minimum_password_age",
}
# Tempest's lockout test sleeps out the whole lockout_duration: a longer one skips it.
LOCKOUT_WAIT_MAX = 60


class SetupError(Exception):
    """The run cannot start: every selected test then counts as failed, with this reason."""


def say(message: str) -> None:
    print(f"interop: {message}", flush=True)


# --------------------------------------------------------------------------- guideline


@dataclass
class Guideline:
    name: str
    caps: dict[str, list[str]]  # capability -> test ids (no `[...]` suffix)
    ids: dict[str, str] = field(default_factory=dict)  # test id -> idempotent id, where given
    service: str | None = None  # an add-on's catalog type; None: always run
    named: bool = False  # asked for by name: its service missing is an error, not a note

    def tests(self) -> set[str]:
        return {t for tests in self.caps.values() for t in tests}


UUID_ATTR = re.compile(r"\[(?:[^\]]*,)?id-([0-9a-f-]{36})\b")


def load_guideline(path: Path, name: str = "", service: str | None = None) -> Guideline:
    """Either layout: the platform file's {capability: [test ids]}, or interop schema 2.0
    (add-ons: `capabilities` -> `tests` -> {test id: {idempotent_id, flagged?}}), of which
    the capabilities its components require, without their flagged tests (excused)."""
    with path.open() as f:
        doc = json.load(f)
    name = name or path.stem
    if "capabilities" not in doc:
        caps = {cap: [strip_attrs(t) for t in tests] for cap, tests in doc.items()}
        ids = {strip_attrs(t): m.group(1) for tests in doc.values() for t in tests
               if (m := UUID_ATTR.search(t))}
        return Guideline(name, caps, ids, service)
    required = {c for comp in doc.get("components", {}).values()
                for c in comp.get("capabilities", {}).get("required", [])}
    caps, ids = {}, {}
    for cap, body in doc["capabilities"].items():
        if cap not in required:
            continue
        tests = {strip_attrs(t): v for t, v in body.get("tests", {}).items()
                 if not v.get("flagged")}
        caps[cap] = list(tests)
        ids.update({t: v["idempotent_id"] for t, v in tests.items() if v.get("idempotent_id")})
    return Guideline(name, caps, ids, service)


def load_guidelines(spec: str) -> list[Guideline]:
    """`spec`: comma-separated short names (GUIDELINES) or file paths; empty: the platform,
    then the add-ons (run only where the catalog offers their service)."""
    items = [s.strip() for s in spec.split(",") if s.strip()]
    chosen = []
    for item in items or list(GUIDELINES):
        path, service = GUIDELINES.get(item, (Path(item), None))
        known = [n for n, (p, _) in GUIDELINES.items() if p.resolve() == path.resolve()]
        name = known[0] if known else path.stem
        service = GUIDELINES[name][1] if known else service
        if not path.is_file():
            print(f"interop: no guideline {item} (a name of {', '.join(GUIDELINES)}, or a file)",
                  file=sys.stderr)
            raise SystemExit(2)
        guideline = load_guideline(path, name, service)
        guideline.named = bool(items)
        chosen.append(guideline)
    return chosen


def strip_attrs(test_id: str) -> str:
    # Tempest ids carry their attributes: `pkg.Class.test_x[id-<uuid>,smoke]`.
    return test_id.split("[", 1)[0]


def select_caps(guidelines: list[Guideline], spec: str) -> list[Guideline]:
    """Keep the capabilities named in `spec` (comma-separated names or shell globs), and the
    guidelines that have any of them."""
    patterns = [p.strip() for p in spec.split(",") if p.strip()]
    if not patterns:
        return guidelines
    unmatched = [p for p in patterns if not any(fnmatch.filter(g.caps, p) for g in guidelines)]
    if unmatched:
        print(
            f"interop: no capability matches {', '.join(unmatched)} (see --list)", file=sys.stderr
        )
        raise SystemExit(2)
    for g in guidelines:
        g.caps = {c: t for c, t in g.caps.items()
                  if any(fnmatch.fnmatchcase(c, p) for p in patterns)}
    return [g for g in guidelines if g.caps]


# --------------------------------------------------------------------------- tempest venv


def run_quiet(cmd: list[str], log: Path, timeout: float) -> None:
    """Run a setup command with its output in `log`; show the tail only when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SetupError(f"`{' '.join(cmd)}` exited {rc}:\n{tail}")


def ensure_tempest() -> Path:
    """Create .venv-tempest and install Tempest and its plugins; skipped when requirements.txt
    is unchanged."""
    bin_dir = TEMPEST_VENV / "bin"
    stamp = TEMPEST_VENV / ".onestack-requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if (bin_dir / "tempest").exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return bin_dir
    if not (bin_dir / "python").exists():
        say(f"creating {TEMPEST_VENV.name}")
        run_quiet(
            ["/usr/bin/python3", "-m", "venv", str(TEMPEST_VENV)], WORKSPACE / "venv.log", 300
        )
    say(f"installing Tempest ({REQUIREMENTS.relative_to(REPO)}), log in {WORKSPACE / 'pip.log'}")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
    run_quiet(pip, WORKSPACE / "pip.log", 1200)
    stamp.write_text(wanted + "\n")
    return bin_dir


# Runs inside .venv-tempest: where Tempest is, its and its plugins' versions, and every
# option they know (list_opts() includes the plugins').
TEMPEST_FACTS = """
import importlib.metadata, json, os, tempest
from tempest import config
options = {}
for group, opts in config.list_opts():
    name = getattr(group, "name", group) or "DEFAULT"
    options.setdefault(name, []).extend(o.name for o in opts)
versions = {}
for dist in ("tempest", "heat-tempest-plugin", "telemetry-tempest-plugin"):
    try:
        versions[dist] = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        pass
print(json.dumps({"versions": versions,
                  "package": os.path.dirname(tempest.__file__), "options": options}))
"""


def tempest_facts(bin_dir: Path) -> dict:
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", TEMPEST_FACTS], capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise SetupError(f"cannot import tempest:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


# --------------------------------------------------------------------------- credentials


@dataclass
class Creds:
    auth_url: str
    username: str
    password: str
    project_name: str
    user_domain: str = "Default"
    project_domain: str = "Default"
    region: str = "RegionOne"


def parse_openrc(text: str) -> dict[str, str]:
    """OS_* variables from `export NAME=value` lines; values may be shell-quoted."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote: not a line we understand
            continue
        if words[:1] == ["export"]:
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep and name.startswith("OS_"):
                env[name] = value
    return env


def creds_from_env(env: Mapping[str, str], source: str) -> Creds:
    missing = [
        k
        for k in ("OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_PROJECT_NAME")
        if not env.get(k)
    ]
    if missing:
        raise SetupError(f"{source} lacks {', '.join(missing)}")
    domain = env.get("OS_DOMAIN_NAME") or "Default"
    return Creds(
        auth_url=env["OS_AUTH_URL"],
        username=env["OS_USERNAME"],
        password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"],
        user_domain=env.get("OS_USER_DOMAIN_NAME") or domain,
        project_domain=env.get("OS_PROJECT_DOMAIN_NAME") or domain,
        region=env.get("OS_REGION_NAME") or "RegionOne",
    )


def openrc_creds(project: str) -> Creds:
    if not ONESTACK.exists():
        raise SetupError(f"{ONESTACK.relative_to(REPO)} not found (install onestack, or --use-env)")
    out = subprocess.run(
        [str(ONESTACK), "openrc", project], capture_output=True, text=True, timeout=60
    )
    if out.returncode != 0:
        raise SetupError(
            f"`onestack openrc {project}` exited {out.returncode}: {out.stderr.strip()}"
        )
    return creds_from_env(parse_openrc(out.stdout), f"`onestack openrc {project}`")


# --------------------------------------------------------------------------- the cloud


def check_local(url: str) -> None:
    """Refuse any address off this machine: the harness and Tempest talk to loopback only."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise SetupError(f"refusing to use {url}: only loopback addresses are allowed")


# Local cloud, possibly self-signed: no certificate check, and no proxy from the environment.
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    urllib.request.HTTPSHandler(context=ssl._create_unverified_context()),
)


def http(method: str, url: str, body: object = None, token: str | None = None):
    """(status, headers, JSON body or None). Connection errors raise OSError."""
    check_local(url)
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["X-Auth-Token"] = token
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=20) as resp:
            status, head, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, head, raw = err.code, err.headers, err.read()
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return status, head, doc


def identity_v3(auth_url: str) -> str:
    url = auth_url.rstrip("/")
    return url if url.endswith("/v3") else url + "/v3"


def cloud_root(auth_url: str) -> str:
    """http://host:port/identity/v3 -> http://host:port"""
    parts = urllib.parse.urlsplit(auth_url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass
class Cloud:
    token: str = ""
    catalog: dict[str, list[dict]] = field(default_factory=dict)  # type -> endpoints
    token_body: dict = field(default_factory=dict)
    region: str = "RegionOne"

    def has(self, *types: str) -> bool:
        return any(t in self.catalog for t in types)

    def url(self, *types: str) -> str | None:
        """The public endpoint of the first listed type present, preferring our region."""
        for stype in types:
            endpoints = [e for e in self.catalog.get(stype, []) if e.get("interface") == "public"]
            endpoints.sort(key=lambda e: e.get("region_id", e.get("region")) != self.region)
            if endpoints:
                return endpoints[0]["url"].rstrip("/")
        return None

    def get(self, url: str) -> object:
        status, _, doc = http("GET", url, token=self.token)
        if status != 200:
            raise SetupError(f"GET {url} answered {status}")
        return doc


def root_services(creds: Creds) -> list[str] | None:
    """What the unauthenticated root document lists; informative only (the catalog decides)."""
    try:
        status, _, doc = http("GET", cloud_root(creds.auth_url) + "/")
    except OSError:
        return None
    if status != 200 or not isinstance(doc, dict):
        return None
    services = doc.get("services", doc)
    if isinstance(services, dict):
        return sorted(services)
    if isinstance(services, list):
        return sorted(
            str(s.get("type") or s.get("name")) if isinstance(s, dict) else str(s) for s in services
        )
    return None


def connect(creds: Creds) -> Cloud:
    """Password-authenticate (Keystone v3) and keep the token and its catalog."""
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": creds.username,
                        "password": creds.password,
                        "domain": {"name": creds.user_domain},
                    }
                },
            },
            "scope": {
                "project": {"name": creds.project_name, "domain": {"name": creds.project_domain}}
            },
        }
    }
    url = identity_v3(creds.auth_url) + "/auth/tokens"
    try:
        status, headers, doc = http("POST", url, body)
    except OSError as err:
        raise SetupError(f"no answer from {url}: {err}") from err
    if status != 201 or not isinstance(doc, dict) or "token" not in doc:
        raise SetupError(f"POST {url} answered {status}: {json.dumps(doc)[:300]}")
    catalog: dict[str, list[dict]] = {}
    for service in doc["token"].get("catalog", []):
        for endpoint in service.get("endpoints", []):
            check_local(endpoint["url"])  # Tempest would follow these: keep them on loopback
        catalog.setdefault(service["type"], []).extend(service.get("endpoints", []))
    return Cloud(headers.get("X-Subject-Token", ""), catalog, doc["token"], creds.region)


# --------------------------------------------------------------------------- service lookups
# Only identity exists in onestack today; these run when the catalog lists the service and
# fill the options Tempest needs to create servers, volumes, etc. in that service.


def version_range(cloud: Cloud, url: str) -> tuple[str, str] | None:
    """(min, max) microversion from a versioned endpoint's document, if it says."""
    try:
        doc = cloud.get(url + "/")
    except (SetupError, OSError):
        return None
    if not isinstance(doc, dict):
        return None
    entries = [doc["version"]] if "version" in doc else doc.get("versions", [])
    ranges = [(e.get("min_version"), e.get("version")) for e in entries if isinstance(e, dict)]
    ranges = [r for r in ranges if r[0] and r[1]]
    return max(ranges, key=lambda r: [int(x) for x in r[1].split(".")]) if ranges else None


def versioned(url: str, version: str) -> str:
    """An endpoint cut to `.../<version>` (dropping any project id), or extended to it."""
    match = re.search(rf"^(.*?/{re.escape(version)})(/|$)", url)
    return match.group(1) if match else url + "/" + version


# onestack's image service checks that uploaded data matches its disk_format.
# Tempest's listing tests upload random bytes under the first six (container,
# disk) format pairs it is told of, and skip unless told that the cloud takes
# such data. Told of raw as the only disk format, Tempest uploads random bytes
# only as raw, which they honestly are, so that is what it is told.
IMAGE_OPTIONS = {
    "disk_formats": "raw",
    "container_formats": "bare,ami,ari,aki,ovf,ova",
}
IMAGE_FEATURES = {
    "image_format_enforcement": "false",
    "import_image": "true",
    "os_glance_reserved": "true",
}


# what onestack's compute does (a single-node cloud resizes in place)
COMPUTE_FEATURES = {
    "resize": "true", "pause": "true", "suspend": "true", "rescue": "true", "shelve": "true",
    "snapshot": "true", "console_output": "true", "change_password": "false", "live_migration": "false",
    "cold_migration": "false", "vnc_console": "true", "serial_console": "false",
}


def smallest_flavors(cloud: Cloud) -> list[dict]:
    """The flavors, smallest first (the tiny image boots in the smallest, 128 MiB)."""
    base = versioned(cloud.url("compute"), "v2.1")
    flavors = cloud.get(base + "/flavors/detail")["flavors"]
    flavors.sort(key=lambda f: (f.get("ram", 0), f.get("vcpus", 0), f.get("disk", 0)))
    if not flavors:
        raise SetupError("compute lists no flavor: create one before running interop")
    return flavors


def compute_options(cloud: Cloud, guests: tuple[str, str] | None = None) -> dict[str, str]:
    """[compute] options; with validation on, servers boot the tiny image and its copy
    (`guests`): Tempest SSHes into servers of both, and some tests want two distinct ids."""
    base = versioned(cloud.url("compute"), "v2.1")
    flavors = smallest_flavors(cloud)
    options = {
        "flavor_ref": flavors[0]["id"],
        "flavor_ref_alt": flavors[min(1, len(flavors) - 1)]["id"],
    }
    if cloud.has("image"):
        images = cloud.get(versioned(cloud.url("image"), "v2") + "/images?status=active&visibility=public")["images"]
        if not images:
            raise SetupError("image service lists no active image: upload one first")
        options["image_ref"] = images[0]["id"]
        options["image_ref_alt"] = images[min(1, len(images) - 1)]["id"]
    if guests:
        options["image_ref"], options["image_ref_alt"] = guests
    micro = version_range(cloud, base)
    if micro:
        options["min_microversion"], options["max_microversion"] = micro
    return options


def network_options(cloud: Cloud) -> tuple[dict[str, str], dict[str, str]]:
    """([network], [network-feature-enabled]) options."""
    base = versioned(cloud.url("network"), "v2.0")
    options: dict[str, str] = {}
    external = cloud.get(base + "/networks?router:external=true")["networks"]
    if external:
        options["public_network_id"] = external[0]["id"]
        options["floating_network_name"] = external[0]["name"]
    aliases = [e["alias"] for e in cloud.get(base + "/extensions").get("extensions", [])]
    return options, {"api_extensions": ",".join(sorted(aliases)) or "None"}


def volume_options(cloud: Cloud) -> dict[str, str]:
    stype = next(t for t in SERVICE_TYPES["cinder"] if cloud.has(t))
    options = {"catalog_type": stype}
    micro = version_range(cloud, versioned(cloud.url(stype), "v3"))
    if micro:
        options["min_microversion"], options["max_microversion"] = micro
    return options


# Tempest's object-storage tests run as a user with operator_role on a fresh project; the
# quota tests also need a user with reseller_admin_role (onestack's bootstrap creates it).
OBJECT_STORAGE_OPTIONS = {
    "operator_role": "member",
    "reseller_admin_role": "ResellerAdmin",
    "endpoint_type": "public",
    "catalog_type": "object-store",
}
OBJECT_STORAGE_FEATURES = {
    "container_sync": "false",  # old-style container sync between clusters: not implemented
    "object_versioning": "true",
    "discoverability": "true",
}
# Digests Tempest can sign temporary URLs with, best first (it takes one hashlib name).
TEMPURL_DIGESTS = ("sha256", "sha512", "sha1")


def object_storage_info_url(endpoint: str) -> str:
    """`GET /info` beside the versioned path, found as Tempest finds it.

    http://host/object-store/v1/AUTH_x -> http://host/object-store/info
    """
    parts = urllib.parse.urlsplit(endpoint)
    base = re.split(r"(^|/)+v\d+(\.\d+)?", parts.path)[0]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, base + "/info", "", ""))


def object_storage_options(cloud: Cloud) -> tuple[dict[str, str], dict[str, str]]:
    """([object-storage], [object-storage-feature-enabled]) options, from the cloud's /info."""
    options = dict(OBJECT_STORAGE_OPTIONS)
    features = dict(OBJECT_STORAGE_FEATURES)
    url = object_storage_info_url(cloud.url("object-store") or "")
    try:
        status, _, info = http("GET", url)  # unauthenticated, as Tempest and swiftclient ask
    except OSError as err:
        status, info = f"no answer ({err})", None
    if status != 200 or not isinstance(info, dict):
        # Tempest's object-storage tests would all fail in their set-up: say why here instead
        say(f"GET {url} answered {status}: object-storage discoverability off, no optional APIs")
        features.update(discoverability="false", discoverable_apis="")
        return options, features
    # Each top-level key but "swift" names a middleware (slo, tempurl, account_quotas, ...):
    # Tempest's requires_ext(service='object') checks these names.
    features["discoverable_apis"] = ",".join(sorted(k for k in info if k != "swift"))
    digests = (info.get("tempurl") or {}).get("allowed_digests") or []
    chosen = next((d for d in TEMPURL_DIGESTS if d in digests), None)
    if chosen:
        features["tempurl_digest_hashlib"] = chosen
    elif "tempurl" in info:
        say(f"tempurl lists no digest Tempest can use ({digests}); Tempest's default is kept")
    return options, features


# --------------------------------------------------------------------------- orchestration
# heat-tempest-plugin does not use Tempest's credentials: its tests run as one non-admin user
# (demo), a few as admin, as [heat_plugin] says. They make stacks of OS::Heat::TestResource
# and the like; two boot a server of `minimal_image_ref`/`minimal_instance_type` on
# `fixed_network_name`; the scenario test makes its own network, volume and server. None logs
# into a guest, so the add-on needs no validation (and runs outside the public namespace).
HEAT_OPTIONS = {
    "catalog_type": "orchestration",
    "endpoint_type": "public",
    "auth_version": "3",  # deprecated in the plugin (v3 is the only one): for older plugins
    "disable_ssl_certificate_validation": "true",  # as for the rest: the cloud's own cert
    "skip_functional_tests": "false",  # the guideline is mostly functional tests,
    "skip_scenario_tests": "false",  # and one scenario test (BasicResourcesTest)
    "convergence_engine_enabled": "true",  # Heat's default; no guideline test depends on it
    "build_timeout": "300",  # per stack, as tempest gives a server (plugin default 1200): stacks here take seconds
    "build_interval": "1",  # between status polls (default 4: most stacks here take < 1 s)
    # test_hidden_stack creates a stack tagged so and checks that stack list hides it: the
    # cloud must hide this tag (Heat's hidden_stack_tags; DevStack sets it to "hidden")
    "hidden_stack_tag": "hidden",
}


def heat_options(admin: Creds, demo: Creds, cloud: Cloud) -> dict[str, str]:
    """[heat_plugin]: who the plugin's tests run as, and the flavors, image and networks of
    the servers they boot, looked up in the cloud (as demo, who owns them)."""
    options = {
        **HEAT_OPTIONS,
        "auth_url": identity_v3(admin.auth_url),
        "region": admin.region,
        "username": demo.username,
        "password": demo.password,
        "project_name": demo.project_name,
        "user_domain_name": demo.user_domain,
        "project_domain_name": demo.project_domain,
        "admin_username": admin.username,
        "admin_password": admin.password,
        "admin_project_name": admin.project_name,
    }
    if cloud.has("compute"):
        flavors = smallest_flavors(cloud)
        options["minimal_instance_type"] = flavors[0]["name"]
        options["instance_type"] = flavors[min(1, len(flavors) - 1)]["name"]
    if cloud.has("image"):
        image = public_image(cloud, GUEST_IMAGE) or public_image(cloud, "")
        if image:  # by id: names need not be unique
            options["image_ref"] = options["minimal_image_ref"] = image
        else:
            say("no public image for heat's servers (`onestack image register tiny` makes "
                f"{GUEST_IMAGE})")
    if cloud.has("network"):
        options.update(heat_networks(connect(demo)))
    return options


def heat_networks(demo: Cloud) -> dict[str, str]:
    """The demo project's own network (DevStack's `private`, preferred) and its subnet, and the
    external network, as the plugin's network options."""
    base = versioned(demo.url("network"), "v2.0")
    project = demo.token_body.get("project", {}).get("id")
    networks = demo.get(base + "/networks")["networks"]
    external = [n for n in networks if n.get("router:external")]
    own = [n for n in networks if n.get("project_id") == project and not n.get("router:external")]
    own.sort(key=lambda n: (n.get("name") != "private", n.get("name", "")))
    options = {}
    if external:
        options["floating_network_name"] = external[0]["name"]
    if not own:
        say("the demo project has no network of its own: heat's server tests will not find one")
        return options
    options["fixed_network_name"] = options["network_for_ssh"] = own[0]["name"]
    subnets = demo.get(base + f"/subnets?network_id={own[0]['id']}")["subnets"]
    if subnets:
        options["fixed_subnet_name"] = subnets[0]["name"]
    return options


# --------------------------------------------------------------------------- validation
# Tempest's validation tests SSH into guests through floating IPs. The external network is
# inside onestack's namespace `onestack-public`, bridged to no host NIC, so with validation
# on Tempest runs in that namespace: `onestack netns exec public --api` also forwards the
# API's loopback address there while it runs, so the catalog's URLs work unchanged.

GUEST_IMAGE = "onestack-tiny-x86_64"  # `onestack image register tiny`: guest/README.md
GUEST_IMAGE_ALT = GUEST_IMAGE + "-alt"  # a copy: image_ref_alt, a distinct id that boots too
NETNS_API = ["netns", "exec", "public", "--api", "--"]
# The tiny guest answers SSH ~4 s after QEMU starts (TCG), ~30 s on a busy 2-core machine:
# Tempest's default waits (300 s to build, and to SSH) leave room and still end a hung test.
# Each connection attempt gets 10 s (Tempest: 60): a SYN sent while the guest boots is
# then sent again soon, not after the kernel's SYN backoff (retries at 1, 3, 7, 15, 31 s).
VALIDATION_OPTIONS = {
    "run_validation": "true",
    "connect_method": "floating",  # Tempest makes a floating IP per server it checks
    "auth_method": "keypair",
    "ip_version_for_ssh": "4",
    "security_group": "true",  # ... and a security group opening SSH and ping
    "security_group_rules": "true",
    # the tiny image logs in as CirrOS does (busybox + dropbear)
    "image_ssh_user": "cirros",
    "image_alt_ssh_user": "cirros",
    "image_ssh_password": "gocubsgo",
    "image_alt_ssh_password": "gocubsgo",
    "ssh_timeout": "300",
    "connect_timeout": "10",
    "ping_timeout": "120",
}


def netns_api_cmd() -> list[str]:
    return [str(ONESTACK), *NETNS_API]


def public_image(cloud: Cloud, name: str) -> str | None:
    """The id of an active public image named `name` (any, when `name` is empty)."""
    query = f"/images?{f'name={name}&' if name else ''}status=active&visibility=public"
    images = cloud.get(versioned(cloud.url("image"), "v2") + query).get("images", [])
    return images[0]["id"] if images else None


def guest_image(cloud: Cloud) -> tuple[str | None, str]:
    """The id of the image Tempest can SSH into, or None and why validation cannot run here."""
    if not all(cloud.has(t) for t in ("compute", "network", "image")):
        return None, "it needs the compute, network and image services"
    if os.geteuid() != 0:
        return None, "entering the public namespace needs root"
    compute = versioned(cloud.url("compute"), "v2.1")
    try:
        hypervisors = cloud.get(compute + "/os-hypervisors/detail").get("hypervisors", [])
        image = public_image(cloud, GUEST_IMAGE)
    except (SetupError, OSError) as err:
        return None, str(err)
    if not any(h.get("hypervisor_type", "fake") != "fake" for h in hypervisors):
        return None, "compute has only simulated hosts (compute.driver = fake)"
    if not image:
        return None, f"no public image {GUEST_IMAGE} (`onestack image register tiny`)"
    if not ONESTACK.exists():
        return None, f"{ONESTACK.relative_to(REPO)} not found"
    probe = subprocess.run(
        [*netns_api_cmd(), "true"], env=tempest_env(None), capture_output=True, text=True,
        timeout=60,
    )
    if probe.returncode != 0:
        return None, f"`onestack {' '.join(NETNS_API)} true` failed: {probe.stderr.strip()[-300:]}"
    return image, ""


def alt_guest_image(cloud: Cloud) -> str:
    """The copy of the tiny image, registered (once: it is idempotent) when missing."""
    image = public_image(cloud, GUEST_IMAGE_ALT)
    if image:
        return image
    say(f"registering {GUEST_IMAGE_ALT}, a copy of {GUEST_IMAGE} for image_ref_alt")
    cmd = [str(ONESTACK), "image", "register", "tiny", "--name", GUEST_IMAGE_ALT]
    run_quiet(cmd, WORKSPACE / "register-alt.log", 600)  # env: the same cloud's ONESTACK_*
    image = public_image(cloud, GUEST_IMAGE_ALT)
    if not image:
        raise SetupError(f"`{' '.join(cmd)}` left no public image {GUEST_IMAGE_ALT}")
    return image


def decide_validation(mode: str, cloud: Cloud) -> tuple[str, str] | None:
    """--validation auto|on|off -> the (image, alt image) to boot (validation on), or None."""
    if mode == "off":
        say("validation off (--validation off): tests that SSH into guests are skipped")
        return None
    image, why_not = guest_image(cloud)
    if image is None and mode == "on":
        raise SetupError(f"--validation on, but {why_not}")
    if image is None:
        say(f"validation off ({why_not}): tests that SSH into guests are skipped")
        return None
    say(f"validation on: Tempest SSHes into {GUEST_IMAGE} guests through floating IPs, "
        "from the public namespace")
    return image, alt_guest_image(cloud)


# Runs inside .venv-tempest: which of the given tests check guests over SSH when validation
# is on. A test counts if its own code, or its class's (and test-module parents') set-up,
# reads CONF.validation, makes validation resources or waits for SSHABLE/PINGABLE; the
# shared base classes, which offer these to every test, are not read.
VALIDATION_USERS = """
import importlib, inspect, json, re, sys
uses = re.compile(r"CONF\\.validation\\.|validation_resources|validatable|SSHABLE|PINGABLE")
def own_source(cls, method):
    parts = []
    for klass in cls.__mro__:
        mod = klass.__module__
        if not mod.startswith(("tempest.api.", "tempest.scenario.")) or mod.endswith(".base"):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("test_") and name != method:
                continue
            func = inspect.unwrap(getattr(attr, "__func__", attr))
            if inspect.isfunction(func):
                parts.append(inspect.getsource(func))
    return "".join(parts)
keep = []
for test in json.load(sys.stdin):
    path, method = test.split("[", 1)[0].rsplit(".", 1)
    module, cls = path.rsplit(".", 1)
    if uses.search(own_source(getattr(importlib.import_module(module), cls), method)):
        keep.append(test)
json.dump(keep, sys.stdout)
"""


def validation_users(bin_dir: Path, conf_path: Path, tests: list[str]) -> set[str]:
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", VALIDATION_USERS],
        input=json.dumps(tests), cwd=WORKSPACE, env=tempest_env(conf_path),
        capture_output=True, text=True, timeout=300,
    )
    if out.returncode != 0:
        raise SetupError(f"cannot tell which tests use validation:\n{out.stderr[-2000:]}")
    return set(json.loads(out.stdout))


# --------------------------------------------------------------------------- telemetry
# telemetry-tempest-plugin's sections (its tests use Tempest's credentials). Aodh's tests of
# gnocchi rules run when [service_available] gnocchi and metric_backends has gnocchi; its
# "sql" test when alarm_backend is mysql (it checks sort and limit, which any SQL store
# does alike: SQLite and PostgreSQL here). Gnocchi's gabbi files get the metric endpoint.
TELEMETRY_SECTIONS = {
    "alarming_plugin": {"catalog_type": "alarming", "endpoint_type": "public"},
    "metric": {"catalog_type": "metric", "endpoint_type": "public"},
    "telemetry_services": {"metric_backends": "gnocchi", "alarm_backend": "mysql"},
    "telemetry": {"disable_ssl_certificate_validation": "true"},
}


# --------------------------------------------------------------------------- tempest.conf


def security_options() -> dict[str, str] | None:
    """Tempest's [identity] user_* options for the cloud's security compliance settings,
    read from the configuration `onestack up` read (the same file and ONESTACK_*
    environment: `make interop` starts the cloud so); None if it cannot be read."""
    code = ("import json; from onestack.config import load; "
            "print(json.dumps(vars(load().identity)))")
    try:
        out = subprocess.run([str(ONESTACK.parent / "python"), "-c", code], capture_output=True,
                             text=True, timeout=60, check=True)
        identity = json.loads(out.stdout)
        options = {t: str(int(identity[k])) for t, k in SECURITY_OPTIONS.items()}
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None
    if int(options["user_lockout_duration"]) > LOCKOUT_WAIT_MAX:
        options["user_lockout_failure_attempts"] = "0"
    return options


def tempest_conf(
    admin: Creds, cloud: Cloud, static_accounts: bool, guests: tuple[str, str] | None = None
) -> dict[str, dict[str, str]]:
    """The whole tempest.conf as {section: {option: value}}; `guests`: validation on, the
    images to boot."""
    available = {flag: cloud.has(*types) for flag, types in SERVICE_TYPES.items()}
    project = cloud.token_body.get("project", {})
    conf: dict[str, dict[str, str]] = {
        "DEFAULT": {"log_dir": str(WORKSPACE / "logs"), "log_file": "tempest.log"},
        "oslo_concurrency": {"lock_path": str(WORKSPACE / "tempest_lock")},
        "auth": {
            "use_dynamic_credentials": str(not static_accounts).lower(),
            "admin_username": admin.username,
            "admin_password": admin.password,
            "admin_project_name": admin.project_name,
            "admin_domain_name": admin.user_domain,
            "admin_user_domain_name": admin.user_domain,
            "admin_project_domain_name": admin.project_domain,
            "default_credentials_domain_name": admin.user_domain,
            # per-project networks only make sense when there is a network service
            "create_isolated_networks": str(available["neutron"]).lower(),
        },
        "identity": {
            "uri_v3": identity_v3(admin.auth_url),
            "auth_version": "v3",
            "region": admin.region,
            "v3_endpoint_type": "public",
            "disable_ssl_certificate_validation": "true",
            "admin_role": "admin",
        },
        "identity-feature-enabled": dict(IDENTITY_FEATURES),
        "service_available": {
            **{k: str(v).lower() for k, v in available.items()},
            "horizon": "false",
        },
        # SSH into guests only when they are real and Tempest runs in the public namespace
        "validation": dict(VALIDATION_OPTIONS) if guests else {"run_validation": "false"},
    }
    security = security_options()
    if security is None:
        conf["identity-feature-enabled"]["security_compliance"] = "false"
    else:
        conf["identity"].update(security)
    if project.get("domain", {}).get("id") and admin.project_domain == "Default":
        conf["identity"]["default_domain_id"] = project["domain"]["id"]
    if static_accounts:
        conf["auth"]["test_accounts_file"] = str(WORKSPACE / "etc" / "accounts.yaml")
    for flag, section in (
        ("nova", "compute"),
        ("glance", "image"),
        ("neutron", "network"),
        ("swift", "object-storage"),
    ):
        if available[flag]:
            conf[section] = {"region": admin.region}
    if available["glance"]:
        conf["image"].update(IMAGE_OPTIONS)
        conf["image-feature-enabled"] = dict(IMAGE_FEATURES)
    if available["nova"]:
        conf["compute"].update(compute_options(cloud, guests))
        conf["compute-feature-enabled"] = dict(COMPUTE_FEATURES)
    if available["neutron"]:
        network, features = network_options(cloud)
        conf["network"].update(network)
        conf["network-feature-enabled"] = features
    if available["swift"]:
        storage, features = object_storage_options(cloud)
        conf["object-storage"].update(storage)
        conf["object-storage-feature-enabled"] = features
    if available["cinder"]:
        conf["volume"] = {"region": admin.region, **volume_options(cloud)}
        conf["volume-feature-enabled"] = {"backup": "false"}
    return conf


def drop_unknown(
    conf: dict[str, dict[str, str]], known: dict[str, list[str]], version: str
) -> None:
    """Remove options this Tempest (and its plugins) does not define, so the file says only
    what counts."""
    dropped = []
    for section, options in conf.items():
        if section in ("DEFAULT", "oslo_concurrency"):  # oslo.log / oslo.concurrency options
            continue
        for name in list(options):
            if name not in known.get(section, ()):
                dropped.append(f"[{section}] {name}")
                del options[name]
    if dropped:
        say(f"not options of {version}, left out: {', '.join(dropped)}")


# stestr runs each group on one worker: a test class (Tempest's rule), and each YAML file of
# heat's gabbi API tests (`test_heat_api.<file>_<test>`), whose tests run in sequence.
GROUP_REGEX = r"heat_tempest_plugin\.tests\.api\.test_heat_api\.[^_]+|([^\.]*\.)*"


def write_workspace(
    conf: dict[str, dict[str, str]], package: str, accounts: list[Creds],
    conf_name: str = "tempest.conf",
) -> Path:
    for sub in ("etc", "logs", "tempest_lock"):
        (WORKSPACE / sub).mkdir(parents=True, exist_ok=True)
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # keep option names as written
    for section, options in conf.items():
        if section != "DEFAULT":
            parser.add_section(section)
        for name, value in options.items():
            # oslo.config expands $name references: a literal $ must be doubled
            parser.set(section, name, value.replace("$", "$$"))
    path = WORKSPACE / "etc" / conf_name  # holds the admin password: owner only
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("# Written by tests/interop/run.py for the running cloud; rewritten each run.\n")
        parser.write(f)
    if accounts:  # JSON is YAML: no YAML writer needed
        rows = [
            {
                "username": c.username,
                "password": c.password,
                "project_name": c.project_name,
                "domain_name": c.user_domain,
                "roles": ["admin"] if i == 0 else ["member"],
            }
            for i, c in enumerate(accounts)
        ]
        accounts_path = WORKSPACE / "etc" / "accounts.yaml"
        accounts_path.write_text(json.dumps(rows, indent=2) + "\n")
        accounts_path.chmod(0o600)
    (WORKSPACE / ".stestr.conf").write_text(
        "[DEFAULT]\n"
        f"test_path={package}/test_discover\n"
        f"top_dir={os.path.dirname(package)}\n"
        f"group_regex={GROUP_REGEX}\n"
    )
    return path


# --------------------------------------------------------------------------- running


def tempest_env(conf_path: Path | None) -> dict[str, str]:
    # Worker processes find the config through these (what `--config-file` sets in-process).
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    if conf_path:
        env.update(TEMPEST_CONFIG_DIR=str(conf_path.parent), TEMPEST_CONFIG=conf_path.name)
    return env


def ensure_stestr_repo(bin_dir: Path) -> None:
    if not (WORKSPACE / ".stestr").is_dir():
        subprocess.run(
            [str(bin_dir / "stestr"), "init"],
            cwd=WORKSPACE,
            check=True,
            capture_output=True,
            timeout=60,
        )


def list_tempest_tests(bin_dir: Path, conf_path: Path) -> list[str]:
    out = subprocess.run(
        [str(bin_dir / "tempest"), "run", "--config-file", str(conf_path), "--list-tests"],
        cwd=WORKSPACE,
        env=tempest_env(conf_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    tests = [line.strip() for line in out.stdout.splitlines() if line.startswith(TEST_PACKAGES)]
    if out.returncode != 0 or not tests:
        raise SetupError(f"`tempest run --list-tests` failed:\n{(out.stdout + out.stderr)[-3000:]}")
    return tests


def resolve(
    wanted: set[str], listed: list[str], ids: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Guideline id -> the id Tempest runs (with its [id-...] suffix), and the moved ones.

    Tests sometimes move to another class or module between Tempest releases but keep their
    idempotent id (`ids`, where the guideline gives it) or their method name: such a test is
    matched to the test with that id, else to the closest same-named test of the same service.
    """
    by_plain = {strip_attrs(t): t for t in listed}
    by_uuid = {m.group(1): t for t in listed if (m := UUID_ATTR.search(t))}
    by_method: dict[str, list[str]] = defaultdict(list)
    for plain in by_plain:
        by_method[plain.rsplit(".", 1)[-1]].append(plain)
    full, moved = {}, {}
    for test in sorted(wanted):
        if test in by_plain:
            full[test] = by_plain[test]
            continue
        uuid = (ids or {}).get(test)
        if uuid in by_uuid:
            full[test], moved[test] = by_uuid[uuid], strip_attrs(by_uuid[uuid])
            continue
        service = ".".join(test.split(".")[:3]) + "."  # e.g. tempest.api.network.
        candidates = [p for p in by_method[test.rsplit(".", 1)[-1]] if p.startswith(service)]
        if candidates:
            best = max(candidates, key=lambda p: difflib.SequenceMatcher(None, test, p).ratio())
            full[test], moved[test] = by_plain[best], best
    return full, moved


def stop_group(proc: subprocess.Popen, flag: threading.Event) -> None:
    """--timeout: end tempest and its workers (its own process group)."""
    flag.set()
    with contextlib.suppress(ProcessLookupError):  # it may just have ended
        os.killpg(proc.pid, signal.SIGKILL)


def run_tempest(
    bin_dir: Path,
    conf_path: Path,
    load_list: Path,
    concurrency: int,
    timeout: float,
    verbose: bool,
    in_public: bool = False,
    tag: str = "",
) -> Path:
    """Run Tempest; return the subunit stream it wrote (partial if it was stopped).

    Tempest writes subunit (`--subunit`) which is saved as it arrives, so a timeout keeps the
    results so far, and is fed to stestr's subunit-trace for the readable log. `in_public`:
    in the external network's namespace, with the API forwarded there (validation on). `tag`
    names an add-on's files (last-run-orchestration.log, ...).
    """
    stream_path = WORKSPACE / f"last-run{tag}.subunit"
    log_path = WORKSPACE / f"last-run{tag}.log"
    cmd = [
        *(netns_api_cmd() if in_public else []),
        str(bin_dir / "tempest"),
        "run",
        "--subunit",
        "--config-file",
        str(conf_path),
        "--load-list",
        str(load_list),
        "--concurrency",
        str(concurrency),
    ]
    # subunit_trace needs subunit.test_results imported, which its own __main__ forgets
    trace_cmd = [
        str(bin_dir / "python"),
        "-c",
        "import subunit.test_results, stestr.subunit_trace as t; t.main()",
    ]
    say(f"running tempest (output in {log_path})")
    with log_path.open("w") as log, stream_path.open("wb") as stream:
        tempest = subprocess.Popen(
            cmd,
            cwd=WORKSPACE,
            env=tempest_env(conf_path),
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
        )
        trace = subprocess.Popen(
            trace_cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        copier = threading.Thread(target=tee, args=(tempest.stdout, stream, trace.stdin))
        copier.start()
        timed_out = threading.Event()
        timer = threading.Timer(timeout, stop_group, (tempest, timed_out))
        timer.start()
        try:
            for line in io.TextIOWrapper(trace.stdout, errors="replace"):
                log.write(line)
                log.flush()
                # subunit-trace's per-test lines start with the worker, e.g. "{0} tempest..."
                if verbose or line.startswith("{"):
                    print(line.rstrip("\n"), flush=True)
            copier.join()
            tempest.wait()
            trace.wait()
        finally:
            timer.cancel()
    if timed_out.is_set():
        say(f"tempest was stopped after {timeout:.0f}s (--timeout)")
    return stream_path


def tee(source, *sinks) -> None:
    """Copy Tempest's subunit bytes to the saved stream and to subunit-trace, then close."""
    while chunk := source.read1(65536):
        for sink in sinks:
            sink.write(chunk)
            sink.flush()
    sinks[-1].close()  # subunit-trace ends at end of input


# Runs inside .venv-tempest: a subunit v2 stream -> {test id: {status, traceback, reason}}.
SUBUNIT_TO_JSON = """
import json, sys
import subunit, testtools
results = {}
def keep(test):
    row = {"status": test["status"]}
    for name in ("traceback", "reason"):
        if name in test["details"]:
            row[name] = test["details"][name].as_text()
    results[test["id"]] = row
sink = testtools.StreamToDict(keep)
sink.startTestRun()
with open(sys.argv[1], "rb") as stream:
    subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout").run(sink)
sink.stopTestRun()
json.dump(results, sys.stdout)
"""


def read_results(bin_dir: Path, stream: Path) -> dict[str, dict]:
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", SUBUNIT_TO_JSON, str(stream)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise SetupError(f"cannot parse {stream}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


# --------------------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""


UNFINISHED = ("exists", "inprogress")  # subunit: enumerated or started, never ended
CLASS_FIXTURE = re.compile(r"^(setUpClass|tearDownClass) \((.+)\)$")


def package_version(test: str, versions: Mapping[str, str]) -> str:
    """`tempest 47.0.0`, `heat-tempest-plugin 3.0.0`: what a test id would come from."""
    dist = test.split(".", 1)[0].replace("_", "-")
    return f"{dist} {versions.get(dist, '(not installed)')}"


def outcomes(
    wanted: set[str], full: dict[str, str], records: dict[str, dict], versions: Mapping[str, str]
) -> tuple[dict[str, Outcome], list[str]]:
    """Each guideline test's outcome, and the class clean-up errors (reported, not counted)."""
    by_plain = {strip_attrs(k): v for k, v in records.items()}
    class_setup, cleanup_errors = {}, []
    for test_id, row in records.items():
        match = CLASS_FIXTURE.match(test_id)
        if match and match.group(1) == "setUpClass":
            class_setup[match.group(2)] = row
        elif match and row["status"] == "fail":
            cleanup_errors.append(f"{test_id}\n{row.get('traceback', '')}")
    result = {}
    for test in wanted:
        if test not in full:
            result[test] = Outcome("skipped", f"not in {package_version(test, versions)}")
            continue
        plain = strip_attrs(full[test])
        row = by_plain.get(plain)
        if row is None or row["status"] in UNFINISHED:  # listed, then its class never ran it
            row = class_setup.get(plain.rsplit(".", 1)[0], row)
        result[test] = outcome_of(row)
    return result, cleanup_errors


def outcome_of(row: dict | None) -> Outcome:
    if row is None:
        return Outcome("failed", "not run (import error, crash or timeout: see last-run.log)")
    status = row["status"]
    if status in ("success", "xfail"):
        return Outcome("passed")
    if status == "skip":
        return Outcome("skipped", row.get("reason", "").strip() or "skipped")
    if status in ("fail", "uxsuccess"):
        return Outcome("failed", row.get("traceback", "") or status)
    return Outcome("failed", "started but did not finish (timeout, or its worker died)")


# a frame of the test's own code, Tempest's or heat-tempest-plugin's
OWN_FRAME = re.compile(
    r"/(tempest|heat_tempest_plugin/tests|telemetry_tempest_plugin(/aodh)?)/(api|scenario|functional)/"
)


def key_lines(traceback: str, limit: int = 10) -> list[str]:
    """The useful part of a traceback: the test's own frame, the last frame, the exception."""
    lines = [
        line for line in traceback.rstrip().splitlines() if set(line.strip()) - set("^~")
    ]  # drop blanks and 3.11's ^^^ markers
    frames = [i for i, line in enumerate(lines) if line.lstrip().startswith('File "')]
    if not frames:
        return [line[:300] for line in lines[:limit]]

    def frame(i: int) -> list[str]:  # the File line, and its source line when there is one
        indent = len(lines[i]) - len(lines[i].lstrip())
        has_source = i + 1 < len(lines) and len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
        return lines[i : i + 1 + has_source]

    own = [i for i in frames if OWN_FRAME.search(lines[i])]
    last = frame(frames[-1])
    picked = (frame(own[-1]) if own and own[-1] != frames[-1] else []) + last
    exception = lines[frames[-1] + len(last) :]
    return [line[:300] for line in (picked + exception)[:limit]]


def count(results: list[Outcome]) -> str:
    tally = {s: sum(o.status == s for o in results) for s in ("passed", "failed", "skipped")}
    line = f"{tally['passed']} passed, {tally['failed']} failed"
    return line + (f", {tally['skipped']} skipped" if tally["skipped"] else "")


def report(
    caps: dict[str, list[str]],
    result: dict[str, Outcome],
    cleanup_errors: list[str],
    moved: dict[str, str],
) -> bool:
    """Print details, then one line per capability (main prints the totals). True if all
    passed."""
    caps_of: dict[str, list[str]] = defaultdict(list)
    for cap, tests in caps.items():
        for test in tests:
            caps_of[test].append(cap)
    for old, new in sorted(moved.items()):
        say(f"moved or renamed in this version: {old} -> {new}")
    # A traceback is shown once for the tests that share it (a class set-up failure fails the
    # whole class); one-line reasons (skips, "not run") once per reason.
    tracebacks: dict[tuple[str, ...], list[str]] = defaultdict(list)
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for test in sorted(caps_of):
        outcome = result[test]
        if outcome.status == "failed" and "\n" in outcome.detail.strip():
            tracebacks[tuple(key_lines(outcome.detail))].append(test)
        elif outcome.status != "passed":
            grouped[(outcome.status, outcome.detail.strip()[:200])].append(test)
    for lines, tests in tracebacks.items():
        for test in tests:
            print(f"FAILED {test} ({', '.join(caps_of[test])})")
        for line in lines:
            print(f"    {line}")
    for (status, reason), tests in sorted(grouped.items()):
        print(f"{status.upper()} {len(tests)} test(s): {reason}")
        if status == "failed" or reason.startswith("not in "):
            for test in tests[:20]:
                print(f"    {test}")
            if len(tests) > 20:
                print(f"    ... and {len(tests) - 20} more")
    for error in cleanup_errors:
        print(f"CLEAN-UP ERROR (not counted) {error.splitlines()[0]}")
        for line in key_lines("\n".join(error.splitlines()[1:])):
            print(f"    {line}")
    for cap, tests in caps.items():
        print(f"{cap}: {count([result[t] for t in tests])}")
    return all(result[t].status != "failed" for t in caps_of)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--caps",
        default=os.environ.get("CAPS", ""),
        help="comma-separated capability names or globs (default: $CAPS, else all)",
    )
    parser.add_argument("--list", action="store_true", help="list capabilities and test counts")
    parser.add_argument("--install", action="store_true",
                        help="only install Tempest and its plugins into .venv-tempest (`make install-test`)")
    parser.add_argument("--timeout", type=float, default=1800, help="total seconds (default 1800)")
    parser.add_argument(
        "--use-env",
        action="store_true",
        help="take the admin credentials from OS_* in the environment",
    )
    parser.add_argument(
        "--static-credentials",
        action="store_true",
        help="use the admin and demo accounts instead of creating projects/users",
    )
    parser.add_argument(
        "--validation",
        choices=("auto", "on", "off"),
        default=os.environ.get("VALIDATION") or "auto",
        help="SSH into guests (Tempest's run_validation): auto (default, or $VALIDATION) turns "
        "it on when the cloud boots real guests, runs the network agent and has the tiny image",
    )
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help="run only the selected tests that check guests over SSH (implies --validation on)",
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--guideline",
        default=os.environ.get("GUIDELINE") or os.environ.get("INTEROP_GUIDELINE") or "",
        help=f"comma-separated guideline names ({', '.join(GUIDELINES)}) or files (default: "
        "$GUIDELINE, else the platform and the add-ons whose service the catalog offers)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="echo all tempest output")
    return parser.parse_args(argv)


@dataclass
class SetUp:
    """What every guideline's run shares."""

    bin_dir: Path
    facts: dict
    admin: Creds
    accounts: list[Creds]  # --static-credentials: admin, demo
    cloud: Cloud
    guests: tuple[str, str] | None  # validation on: the images to boot


def set_up(args: argparse.Namespace) -> SetUp:
    """Once for all guidelines: venv, credentials, the cloud and its catalog, validation."""
    bin_dir = ensure_tempest()
    facts = tempest_facts(bin_dir)
    admin = creds_from_env(os.environ, "the environment") if args.use_env else openrc_creds("admin")
    check_local(admin.auth_url)
    accounts = []
    if args.static_credentials:
        # Tests run as demo (member), admin tests as admin: enough for one worker only.
        accounts = [admin, openrc_creds("demo")]
        args.concurrency = 1
    listed = root_services(admin)
    say(f"cloud root lists: {', '.join(listed) if listed else '(nothing readable)'}")
    cloud = connect(admin)
    say(f"catalog: {', '.join(sorted(cloud.catalog)) or '(empty)'}")
    guests = decide_validation(args.validation, cloud)
    return SetUp(bin_dir, facts, admin, accounts, cloud, guests)


def versions_label(versions: Mapping[str, str]) -> str:
    return ", ".join(f"{dist} {v}" for dist, v in versions.items())


def prepare(
    args: argparse.Namespace, setup: SetUp, guideline: Guideline, tag: str, deadline: float
):
    """Everything before one guideline's run: its tempest.conf, load list, and the tests."""
    conf = tempest_conf(setup.admin, setup.cloud, args.static_credentials, setup.guests)
    if guideline.service == "orchestration":
        # heat-tempest-plugin's own section; only for its run: with it, listing the tests
        # already calls the orchestration API (which the platform run need not depend on)
        conf["heat_plugin"] = heat_options(setup.admin, openrc_creds("demo"), setup.cloud)
    if guideline.service == "alarming":
        conf.update({section: dict(opts) for section, opts in TELEMETRY_SECTIONS.items()})
    drop_unknown(conf, setup.facts["options"], versions_label(setup.facts["versions"]))
    conf_path = write_workspace(conf, setup.facts["package"], setup.accounts, f"tempest{tag}.conf")
    ensure_stestr_repo(setup.bin_dir)
    listed = list_tempest_tests(setup.bin_dir, conf_path)
    full, moved = resolve(guideline.tests(), listed, guideline.ids)
    if args.validation_only:
        users = validation_users(setup.bin_dir, conf_path, sorted(full.values()))
        full = {t: f for t, f in full.items() if f in users}
        moved = {t: m for t, m in moved.items() if t in full}
        say(f"--validation-only: {len(full)} of the selected {guideline.name} tests check "
            "guests over SSH")
    load_list = WORKSPACE / f"load-list{tag}.txt"
    load_list.write_text("".join(f"{t}\n" for t in sorted(set(full.values()))))
    if time.monotonic() > deadline:
        raise SetupError("--timeout spent before the tests started")
    return conf_path, load_list, full, moved


def only(caps: dict[str, list[str]], tests: set[str]) -> dict[str, list[str]]:
    """The capabilities narrowed to `tests`, those left empty dropped."""
    narrowed = {cap: [t for t in ts if t in tests] for cap, ts in caps.items()}
    return {cap: ts for cap, ts in narrowed.items() if ts}


@dataclass
class Run:
    guideline: Guideline
    result: dict[str, Outcome]
    cleanup_errors: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)


def failed_run(guideline: Guideline, why: str) -> Run:
    return Run(guideline, {t: Outcome("failed", f"not run: {why}") for t in guideline.tests()})


def run_guideline(args: argparse.Namespace, setup: SetUp, guideline: Guideline, deadline: float):
    """Run one guideline's selected tests; None when --validation-only leaves none of them."""
    # the platform's files keep their names; an add-on's are tagged (tempest-orchestration.conf)
    tag = f"-{guideline.name}" if guideline.service else ""
    try:
        conf_path, load_list, full, moved = prepare(args, setup, guideline, tag, deadline)
        if args.validation_only:
            if not full:
                return None
            guideline.caps = only(guideline.caps, set(full))
        stream = run_tempest(
            setup.bin_dir,
            conf_path,
            load_list,
            max(1, args.concurrency),
            max(1.0, deadline - time.monotonic()),
            args.verbose,
            # validation SSHes from the public namespace; the add-ons' tests log into no guest
            in_public=setup.guests is not None and not guideline.service,
            tag=tag,
        )
        records = read_results(setup.bin_dir, stream)
        (WORKSPACE / f"results{tag}.json").write_text(json.dumps(records, indent=1))
        result, cleanup_errors = outcomes(
            guideline.tests(), full, records, setup.facts["versions"]
        )
        return Run(guideline, result, cleanup_errors, moved)
    except (SetupError, subprocess.SubprocessError, OSError) as err:
        say(f"cannot run the {guideline.name} tests: {err}")
        return failed_run(guideline, str(err).splitlines()[0])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.validation_only:
        args.validation = "on"
    deadline = time.monotonic() + args.timeout
    guidelines = select_caps(load_guidelines(args.guideline), args.caps)
    if args.list:
        for g in guidelines:
            offered = f", run when the catalog offers {g.service}" if g.service else ""
            print(f"guideline {g.name} ({len(g.caps)} capabilities, "
                  f"{len(g.tests())} distinct tests{offered}):")
            for cap, tests in g.caps.items():
                print(f"{cap}: {len(tests)} tests")
        return 0
    WORKSPACE.mkdir(exist_ok=True)
    if args.install:
        ensure_tempest()
        return 0
    setup, why = None, ""
    try:
        setup = set_up(args)
    except (SetupError, subprocess.SubprocessError, OSError) as err:
        say(f"cannot run the tests: {err}")
        why = str(err).splitlines()[0]
    runs: list[Run] = []
    notes: list[str] = []  # printed just before the totals
    ok = True
    for g in guidelines:
        if g.service and setup and not setup.cloud.has(g.service):
            notes.append(f"{g.name}: not offered by this cloud")
            ok = ok and not g.named  # asked for by name, it is missing; else a note only
        elif setup is None and g.service and not g.named:
            notes.append(f"{g.name}: not run (no catalog to tell whether this cloud offers it)")
        elif setup is None:
            runs.append(failed_run(g, why))
        elif run := run_guideline(args, setup, g, deadline):
            runs.append(run)
        else:
            notes.append(f"{g.name}: --validation-only: none of its tests checks guests over SSH")
    if args.validation_only and not runs:
        say("cannot run the tests: none of the selected tests checks guests over SSH")
        ok = False
    for run in runs:
        ok = report(run.guideline.caps, run.result, run.cleanup_errors, run.moved) and ok
    if len(runs) > 1:
        for run in runs:
            print(f"guideline {run.guideline.name}: {count(list(run.result.values()))}")
    for note in notes:
        print(note)
    # Totals count each test once, even when it belongs to several capabilities.
    print(count([o for run in runs for o in run.result.values()]), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
