"""The `onestack` command: up, down, status, openrc, clouds-yaml, identity ..."""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from onestack import __version__
from onestack.common import tls
from onestack.config import Config, ConfigError, load

app = typer.Typer(add_completion=False, no_args_is_help=True, help="onestack: an OpenStack-compatible cloud.")
identity_app = typer.Typer(no_args_is_help=True, help="Identity service maintenance.")
app.add_typer(identity_app, name="identity")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

CLUSTER_CONTROLLER = "cluster-controller.toml"  # (onestack.cluster.local writes it)
ConfigOpt = typer.Option(None, "--config", "-c", help="TOML config file (default /etc/onestack/onestack.toml).")


def fail(message: str, code: int = 1):
    err.print(f"[bold red]onestack:[/] {message}", highlight=False)
    raise typer.Exit(code)


def _conf(path: Path | None, host: str | None = None, port: int | None = None, role: str | None = None,
          adopt_tls: bool = True) -> Config:
    """The configuration; ``adopt_tls``: as the last `up` served (https or not), which
    every command but `up` itself (which decides it) wants."""
    try:
        conf = load(path)
    except ConfigError as e:
        fail(str(e))
    if host is not None:
        conf.server.host = host
    if port is not None:
        conf.server.port = port
    cluster = conf.state_dir / CLUSTER_CONTROLLER
    if cluster.exists() and (path is None or Path(path).resolve() != cluster.resolve()):
        # a multi-node cloud runs from this state dir (`onestack cluster up`): its controller
        conf = _conf(cluster, host, port, role, adopt_tls)
    if role is not None:
        conf.node.roles = role
    if adopt_tls:
        tls.adopt(conf)
        if conf.scheme == "https" and tls.trust_file(conf).exists():  # this command's own clients
            os.environ.setdefault("SSL_CERT_FILE", str(tls.trust_file(conf)))  # (image build, node add)
    return conf


def _roles(conf: Config) -> frozenset[str]:
    from onestack import services

    try:
        return services.parse_roles(conf.node.roles)
    except ValueError as e:
        fail(f"node.roles: {e}")


# -- process helpers ----------------------------------------------------------


def _running_pid(conf: Config) -> int | None:
    try:
        pid = int(conf.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _https(conf: Config):
    """The SSL context our own requests to the cloud verify with (None: plain http)."""
    return tls.client_context(conf) if conf.scheme == "https" else None


def _get_json(url: str, timeout: float = 2.0, context=None):
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"null")
        except ValueError:
            return e.code, None


def _local_url(conf: Config) -> str:
    host = conf.server.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{conf.scheme}://{host}:{conf.server.port}"


def _services_answering(conf: Config) -> tuple[bool, list[dict], str]:
    """(all answer, service list, reason) from GET / and each service's root."""
    base = _local_url(conf)
    context = _https(conf)
    try:
        status, listing = _get_json(base + "/", context=context)
    except OSError as e:
        return False, [], f"{base}/ does not answer ({getattr(e, 'reason', e)})"
    if status != 200 or not isinstance(listing, dict):
        return False, [], f"{base}/ answered {status}"
    services = listing.get("services", [])
    for svc in services:
        try:
            st, _ = _get_json(base + svc["path"], context=context)
        except OSError as e:
            return False, services, f"{svc['name']} does not answer ({getattr(e, 'reason', e)})"
        svc["up"] = st < 500
        if st >= 500:
            return False, services, f"{svc['name']} answered {st}"
    return True, services, ""


def _port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
            if e.errno == errno.EADDRNOTAVAIL:
                fail(f"cannot listen on {host}: no such address on this machine")
            raise
    return False


def _check_state_dir(conf: Config) -> None:
    d = conf.state_dir
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = d / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        fail(f"state directory {d} is not writable ({e.strerror}); set state.dir or ONESTACK_STATE_DIR")


# -- up / down / status ----------------------------------------------------------


def _setup_logging(conf: Config) -> None:
    level = getattr(logging, str(conf.log.level).upper(), None)
    if not isinstance(level, int):
        fail(f"config key 'log.level' has unknown level {conf.log.level!r} (use DEBUG, INFO, WARNING or ERROR)")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _write_client_files(conf: Config, creds: dict) -> None:
    for user in ("admin", "demo"):
        if user in creds:
            path = conf.state_dir / f"openrc-{user}"
            path.write_text(_openrc_text(conf, user, creds[user]))
            path.chmod(0o600)
    path = conf.state_dir / "clouds.yaml"
    path.write_text(_clouds_yaml(conf, creds, ["admin", "demo"]))
    path.chmod(0o600)


def _serve(conf: Config, quiet: bool = False) -> None:
    """Run the cloud in this process until SIGTERM/SIGINT."""
    import uvicorn

    from onestack.app import create_app
    from onestack.common import http

    # Everything the cloud writes (database, keys, image and object data) is the
    # owner's alone: guests' QEMU processes may traverse parts of the state dir.
    os.umask(0o077)
    _setup_logging(conf)
    roles = _roles(conf)
    files = _tls_files(conf)
    tls.record(conf, files)
    if files is not None:
        tls.trust(conf, files)  # the cloud's own clients (made during set-up) verify with its CA
        # the API workers (fresh interpreters) serve the same files
        os.environ.update(ONESTACK_TLS_ENABLED="true", ONESTACK_TLS_CERT=str(files.cert),
                          ONESTACK_TLS_KEY=str(files.key), ONESTACK_TLS_CA=str(files.ca or ""))
    try:
        asgi = create_app(conf, roles)
    except Exception as e:  # set-up errors are fatal and must say why in one line
        logging.getLogger("onestack").exception("start-up failed")
        fail(f"start-up failed: {e}")
    from onestack.identity import bootstrap

    _write_client_files(conf, bootstrap.load_credentials(conf))
    conf.pid_file.write_text(str(os.getpid()))
    if not quiet:
        _summary(conf, foreground=True)  # say where it listens
    try:
        if conf.server.workers > 1:  # API worker processes serve; this one runs the rest
            from onestack import workers

            workers.serve(conf)
        else:
            uvicorn.run(asgi, host=conf.server.host, port=conf.server.port, **http.SERVER_OPTIONS,
                        **(tls.serve_options(files) if files else {}))
    finally:
        try:
            if conf.pid_file.read_text().strip() == str(os.getpid()):
                conf.pid_file.unlink()
        except OSError:
            pass


def _tls_files(conf: Config) -> tls.Files | None:
    """The certificate, key and CA `up` serves with (made if need be); None: plain http."""
    if not tls.enabled(conf):
        return None
    try:
        return tls.ensure(conf)
    except (tls.TlsError, OSError, ValueError) as e:
        fail(f"TLS: {e}")


def _simulated_compute(conf: Config) -> str:
    """What of compute is simulated (by configuration: it is never a silent fallback)."""
    parts = []
    if conf.compute.driver == "fake":
        parts.append('compute.driver = "fake"')
    if conf.compute.fake_hosts:
        parts.append(f"compute.fake_hosts = {conf.compute.fake_hosts}")
    if not parts:
        return ""
    return f"simulated compute ({', '.join(parts)}): servers there are not real guests"


def _warn_simulated(conf: Config) -> None:
    if note := _simulated_compute(conf):
        console.print(f"[bold red]WARNING[/] {note}")


def _summary(conf: Config, foreground: bool = False) -> None:
    from onestack.identity import bootstrap

    creds = bootstrap.load_credentials(conf)
    url = conf.public_url
    console.print(f"[bold green]onestack is up[/] at {url}  (identity: {url}/identity/v3)")
    for user in ("admin", "demo"):
        if user in creds:
            console.print(f"  {user:5} password: {creds[user]['password']}  project: {creds[user]['project']}")
    console.print("Use it:")
    console.print(f"  source {conf.state_dir / 'openrc-admin'}   # or openrc-demo; then e.g. openstack project list")
    console.print(f"  export OS_CLIENT_CONFIG_FILE={conf.state_dir / 'clouds.yaml'}; openstack --os-cloud onestack-admin token issue")
    console.print(f"  or in a browser: {url}/dashboard/  (domain Default, user demo or admin)")
    _warn_simulated(conf)
    if foreground:
        console.print("  logs follow here; stop with Ctrl-C")
    else:
        console.print(f"  log: {conf.log_file}   stop: onestack down")


def _start_managed(conf: Config) -> bool:
    """Start the RabbitMQ and PostgreSQL the config asks onestack to run (or find them
    running), and point the config at them. False if it asks for none."""
    if not (conf.bus.managed or conf.database.managed):
        return False
    from onestack import infra

    try:
        with console.status("starting the managed servers"):
            infra.start_managed(conf)
    except (infra.InfraError, FileNotFoundError) as e:
        fail(str(e))
    for s in infra.status(conf):
        console.print(f"{s.name} running at {s.address} (managed)")
    return True


def _stop_managed(conf: Config) -> None:
    from onestack import infra

    try:
        for name in infra.stop_managed(conf):
            console.print(f"{name} stopped.")
    except infra.InfraError as e:
        fail(str(e))


def _managed_status(conf: Config) -> None:
    from onestack import infra

    for s in infra.status(conf):
        state = "[green]running[/]" if s.running else "[red]stopped[/]"
        console.print(f"{s.name} (managed): {state} at {s.address}")


@app.command()
def up(
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background (pid and log file)."),
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port of the single API endpoint."),
    config: Path | None = ConfigOpt,
    timeout: float = typer.Option(60, help="With --detach: seconds to wait for every API."),
    role: str | None = typer.Option(None, "--role", help="all (default: the all-in-one cloud) or controller "
                                    "(+ compute, network, storage: agents beside it); nodes use `onestack join`."),
    workers: int | None = typer.Option(None, "--workers", help="API worker processes (server.workers; "
                                       "above 1 needs the amqp bus and PostgreSQL)."),
    use_tls: bool = typer.Option(False, "--tls", help="Serve every API over HTTPS (tls.enabled): a certificate "
                                 "of onestack's own CA under <state>/tls unless --tls-cert is given."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Server certificate (PEM) to serve (tls.cert)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="Its private key (PEM) (tls.key)."),
    tls_ca: Path | None = typer.Option(None, "--tls-ca", help="The CA that signed it, for clients (tls.ca)."),
    is_child: bool = typer.Option(False, "--child", hidden=True),  # the process --detach starts
):
    """Start the all-in-one cloud, or a multi-node cloud's controller (bootstraps it on first start)."""
    conf = _conf(config, host, port, role, adopt_tls=False)
    if workers is not None:
        conf.server.workers = workers
    tls_args = ["--tls"] if use_tls else []
    for flag, value, key in (("--tls-cert", tls_cert, "cert"), ("--tls-key", tls_key, "key"),
                             ("--tls-ca", tls_ca, "ca")):
        if value is not None:
            setattr(conf.tls, key, str(value.resolve()))
            tls_args += [flag, str(value.resolve())]
    if use_tls:
        conf.tls.enabled = True
    if conf.server.workers != 1:
        from onestack import workers as api_workers

        if why := api_workers.refusal(conf):
            fail(why)
    if "controller" not in _roles(conf):
        fail("`onestack up` runs a controller (or the all-in-one cloud): a node without the controller "
             "role joins one with `onestack join CONTROLLER_URL --token ... --role ...`")
    pid = _running_pid(conf)
    if pid and pid != os.getpid():  # (a detached child finds its own pid, written by its parent)
        tls.adopt(conf)  # (it answers as it was started)
        ok, _, _ = _services_answering(conf)
        if ok:
            console.print(f"onestack is already running (pid {pid}) at {conf.public_url}; nothing changed.")
            _summary(conf) if detach else None
            return
        fail(f"onestack process {pid} is running but not answering on {_local_url(conf)}; see {conf.log_file} or run onestack down")
    _check_state_dir(conf)
    if _port_in_use(conf.server.host, conf.server.port):
        fail(f"port {conf.server.port} on {conf.server.host} is already in use; stop what uses it or set --port")
    _tls_files(conf)  # a bad certificate fails here, in the foreground, before anything starts
    managed = _start_managed(conf)
    if not detach:
        managed = managed and not is_child  # a foreground cloud takes its managed servers with it
        if managed:  # (uvicorn raises SIGTERM again when it has stopped: let it end in Python)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            _serve(conf, quiet=is_child)
        finally:
            if managed:
                _stop_managed(conf)
        return
    conf.log_file.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "onestack.cli", "up", "--child",
            "--host", conf.server.host, "--port", str(conf.server.port)]
    if config:
        args += ["--config", str(config)]
    if role:
        args += ["--role", role]
    if workers is not None:
        args += ["--workers", str(workers)]
    args += tls_args
    start = time.monotonic()
    with open(conf.log_file, "ab") as log:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
    # Written at once, so `onestack down` can stop a cloud that is still starting.
    conf.pid_file.write_text(str(child.pid))
    while True:
        if child.poll() is not None:
            tail = conf.log_file.read_text(errors="replace").splitlines()[-15:]
            reason = next((ln for ln in reversed(tail) if "onestack:" in ln), tail[-1] if tail else "")
            _stop_managed(conf)
            fail(f"onestack exited during start-up: {reason.strip()} (log: {conf.log_file})")
        ok, _, reason = _services_answering(conf)
        if ok:
            break
        if time.monotonic() - start > timeout:
            child.terminate()
            _stop_managed(conf)
            fail(f"onestack did not answer within {timeout:.0f}s: {reason} (log: {conf.log_file})")
        time.sleep(0.05)
    console.print(f"started in {time.monotonic() - start:.2f}s (pid {child.pid})")
    _summary(conf)


@app.command()
def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete the state directory."),
    config: Path | None = ConfigOpt,
):
    """Stop the cloud."""
    conf = _conf(config)
    pid = _running_pid(conf)
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            if _running_pid(conf) is None:
                break
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
        conf.pid_file.unlink(missing_ok=True)
        console.print(f"onestack stopped (pid {pid}).")
    else:
        console.print("onestack is not running.")
    _stop_managed(conf)  # after the cloud: it uses them to the end
    if purge and conf.state_dir.exists():
        # Only remove a directory that is recognisably ours.
        marks = ("onestack.db", "fernet-keys", "credentials.toml", "onestack.log")
        if not any((conf.state_dir / mk).exists() for mk in marks):
            fail(f"{conf.state_dir} does not look like an onestack state directory; not deleting it")
        if os.geteuid() == 0:  # the cloud's guests go with it (their taps are on its bridges)
            from onestack.compute.virt.driver import purge_guests

            gone = purge_guests(conf.state_dir)
            if gone:
                console.print(f"guests removed: {len(gone)}")
        _purge_network(conf)
        from onestack.volume import exports

        stopped = exports.purge(exports.exports_dir(conf))  # this cloud's NBD export daemons (its ledger only)
        if stopped:
            console.print(f"volume exports stopped: {stopped}")
        shutil.rmtree(conf.state_dir)
        console.print(f"state deleted: {conf.state_dir}")


def _purge_network(conf: Config) -> None:
    """The network agent's kernel objects (namespaces, bridges, VXLAN devices, taps on our
    bridges, nftables tables, dnsmasq): exactly those its ledger in the state dir names."""
    from onestack.network.agent import Ledger, ledger_path, purge

    ledger = Ledger(ledger_path(conf.state_dir))
    has_dhcp = (conf.state_dir / "dhcp").is_dir()
    if not any(ledger.names(k) for k in Ledger.KINDS) and not has_dhcp:
        return
    if os.geteuid() != 0:
        fail("the network's namespaces, bridges and dnsmasq processes need root to remove: "
             "run onestack down --purge as root (nothing was deleted)")
    try:
        done = purge(conf.state_dir)
    except Exception as e:  # noqa: BLE001 (say what failed; keep the state for another try)
        fail(f"removing the network's kernel objects failed: {e} (state kept; try again)")
    console.print("network data plane removed: " + ", ".join(f"{v} {k}" for k, v in done.items()))


def _admin_get(conf: Config, path: str):
    """GET an API path as the bootstrap admin (None if that is not possible)."""
    from onestack.identity import bootstrap

    creds = bootstrap.load_credentials(conf).get("admin")
    if not creds:
        return None
    base = _local_url(conf)
    body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": creds["password"]}}},
        "scope": {"project": {"name": creds["project"], "domain": {"id": "default"}}}}}).encode()
    req = urllib.request.Request(base + "/identity/v3/auth/tokens", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=_https(conf)) as resp:
            token = resp.headers["X-Subject-Token"]
        req = urllib.request.Request(base + path, headers={"X-Auth-Token": token, "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=_https(conf)) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def _agents_table(conf: Config) -> None:
    listing = _admin_get(conf, "/networking/v2.0/agents")
    if listing is None:
        console.print("network agents: could not be listed")
        return
    agents = listing.get("agents", [])
    if not agents:
        from onestack.network import agent

        why = agent.why_not(conf)
        console.print("network agents: none" + (f" ({why})" if why else " have reported"))
        return
    table = Table(title="network agents")
    for col in ("agent", "host", "state", "alive", "last heartbeat (UTC)"):
        table.add_column(col)
    for a in sorted(agents, key=lambda a: (a["host"], a["agent_type"])):
        table.add_row(a["agent_type"], a["host"], "UP" if a.get("admin_state_up") else "DOWN",
                      "[green]yes[/]" if a.get("alive") else "[red]no[/]", a.get("heartbeat_timestamp") or "")
    console.print(table)


@app.command()
def status(config: Path | None = ConfigOpt):
    """Each service and agent: up/down, version, port."""
    conf = _conf(config)
    _managed_status(conf)
    pid = _running_pid(conf)
    ok, services, reason = _services_answering(conf)
    if not services:
        console.print(f"onestack is [red]down[/] ({reason})" + (f"; pid {pid} exists" if pid else ""))
        raise typer.Exit(1)
    table = Table(title=f"onestack {__version__} at {conf.public_url} (pid {pid or '?'})")
    for col in ("service", "state", "version", "port", "path"):
        table.add_column(col)
    for svc in services:
        state = "[green]up[/]" if svc.get("up") else "[red]down[/]"
        table.add_row(svc["name"], state, svc.get("version", ""), str(conf.server.port), svc["path"])
    console.print(table)
    if any(svc["name"] == "compute" for svc in services):
        _warn_simulated(conf)
    if any(svc["name"] == "network" for svc in services):
        _agents_table(conf)
    if not ok:
        raise typer.Exit(1)


# -- credentials for clients ---------------------------------------------------


def _user_creds(conf: Config, name: str) -> dict:
    from onestack.identity import bootstrap

    creds = bootstrap.load_credentials(conf)
    if name not in creds:
        known = ", ".join(creds) or "none yet: run onestack up first"
        fail(f"no stored credentials for user {name!r} (known: {known})")
    return creds[name]


def _cacert(conf: Config) -> str:
    """The CA file clients verify the cloud's certificate with ('' for plain http or a
    publicly trusted certificate)."""
    ca = tls.ca_file(conf) if conf.scheme == "https" else None
    return str(ca) if ca else ""


def _openrc_text(conf: Config, user: str, c: dict) -> str:
    env = {
        "OS_AUTH_URL": f"{conf.public_url}/identity/v3",
        "OS_AUTH_TYPE": "password",
        "OS_USERNAME": user,
        "OS_PASSWORD": c["password"],
        "OS_PROJECT_NAME": c["project"],
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_REGION_NAME": conf.identity.region,
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": "public",
    }
    if cacert := _cacert(conf):  # the real clients verify the certificate with it
        env["OS_CACERT"] = cacert
    lines = ["# onestack credentials: source this file, then use the openstack command"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


def _clouds_yaml(conf: Config, creds: dict, users: list[str]) -> str:
    import yaml

    clouds = {}
    for user in users:
        if user not in creds:
            continue
        c = creds[user]
        clouds["onestack" if user == "demo" else f"onestack-{user}"] = {
            "auth": {
                "auth_url": f"{conf.public_url}/identity/v3",
                "username": user,
                "password": c["password"],
                "project_name": c["project"],
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": conf.identity.region,
            "interface": "public",
            "identity_api_version": 3,
        }
        if cacert := _cacert(conf):
            clouds["onestack" if user == "demo" else f"onestack-{user}"]["cacert"] = cacert
    return yaml.safe_dump({"clouds": clouds}, sort_keys=False)


@app.command()
def openrc(name: str = typer.Argument(..., help="User: admin or demo."), config: Path | None = ConfigOpt):
    """Print shell `export` lines for a user (eval or source them)."""
    conf = _conf(config)
    sys.stdout.write(_openrc_text(conf, name, _user_creds(conf, name)))


@app.command("clouds-yaml")
def clouds_yaml(
    names: list[str] | None = typer.Argument(None, help="Users to include (default: admin and demo)."),
    config: Path | None = ConfigOpt,
):
    """Print a clouds.yaml (clouds 'onestack' = demo, 'onestack-admin' = admin)."""
    conf = _conf(config)
    from onestack.identity import bootstrap

    users = names or ["admin", "demo"]
    for n in users:
        _user_creds(conf, n)
    sys.stdout.write(_clouds_yaml(conf, bootstrap.load_credentials(conf), users))


@identity_app.command("rotate-keys")
def rotate_keys(config: Path | None = ConfigOpt):
    """Rotate the Fernet token keys (staged key becomes primary)."""
    conf = _conf(config)
    from onestack.identity.tokens import KeyRepository

    repo = KeyRepository(conf.state_dir / "fernet-keys", conf.identity.max_active_keys)
    if not repo.path.exists():
        fail(f"no key repository at {repo.path}; run onestack up first")
    indexes = repo.rotate()
    console.print(f"rotated: keys now {indexes} (primary {max(indexes)}, staged 0)")


@app.command()
def version():
    """Print the onestack version."""
    console.print(__version__)


# == images: `onestack image build tiny` ==========================================
# The tiny guest image (guest/: builder, cache and stamp) driven from the CLI.
# `image_app` is the `onestack image` group; registering images comes later.

image_app = typer.Typer(no_args_is_help=True, help="Guest images.")
app.add_typer(image_app, name="image")
image_build_app = typer.Typer(no_args_is_help=True, help="Build a guest image.")
image_app.add_typer(image_build_app, name="build")


def _image_size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB"


@image_build_app.command("tiny")
def image_build_tiny(
    output: Path | None = typer.Option(None, "--output", "-o", help="Also copy the image here."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the cached one is current."),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Cache of the .debs and the image (default /var/cache/onestack/guest as root, "
        "else ~/.cache/onestack/guest; or ONESTACK_GUEST_CACHE).",
    ),
):
    """Build the tiny guest image (onestack-tiny-x86_64.qcow2), or reuse the cached one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        from guest import BuildError, prepare_tiny
    except ImportError as e:
        fail(f"the guest image builder is not installed with onestack ({e})")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=True) as bar:
            task = bar.add_task("checking the cached image", total=None)

            def progress(step: int, total: int, text: str) -> None:
                bar.update(task, total=total, completed=step - 1, description=text)

            result = prepare_tiny(cache, progress, force=force, say=lambda msg: None)
    except (BuildError, OSError) as e:
        fail(f"image build failed: {e}")
    name = result.path.name
    if result.built:
        console.print(
            f"built {name} in {result.seconds:.1f}s: {result.path} ({_image_size(result.path)})"
        )
    else:
        console.print(
            f"reused the cached {name} (same builder, guest files and packages; --force rebuilds): "
            f"{result.path} ({_image_size(result.path)})"
        )
    if output and output.resolve() != result.path.resolve():
        # a copy, not a link: booting the copy must never change the cached image
        part = output.with_name(output.name + ".part")
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(result.path, part)
            part.replace(output)
        except OSError as e:
            part.unlink(missing_ok=True)
            fail(f"cannot write {output}: {e.strerror}")
        console.print(f"copied to {output} ({_image_size(output)})")


@image_app.command("register")
def image_register(
    source: str = typer.Argument(..., help="'tiny' (the tiny guest image, built if needed) or an image file."),
    name: str | None = typer.Option(None, "--name", help="Image name (default: onestack-tiny-x86_64 "
                                                          "for tiny, else the file name)."),
    disk_format: str = typer.Option("qcow2", "--disk-format", help="Disk format of a file."),
    private: bool = typer.Option(False, "--private", help="Register as private to the admin project."),
    config: Path | None = ConfigOpt,
):
    """Register an image with the running cloud as the admin (public by default).

    Idempotent: an image of that name with the same data is left as it is; one
    with other data is renamed "(superseded <date>)" and hidden."""
    from onestack.image.register import RegisterError, register

    conf = _conf(config)
    ok, _, reason = _services_answering(conf)
    if not ok:
        fail(f"the cloud is not running ({reason}): start it with `onestack up --detach`")
    properties: dict[str, str] = {}
    if source == "tiny":
        from guest import TINY_NAME, BuildError, ensure_tiny

        try:
            path = ensure_tiny()
        except (BuildError, OSError) as e:
            fail(f"image build failed: {e}")
        name = name or TINY_NAME
        disk_format = "qcow2"
        properties = {"os_type": "linux", "architecture": "x86_64", "os_distro": "onestack-tiny",
                      "description": "onestack's tiny guest (busybox + dropbear on the Debian cloud "
                                     "kernel); login cirros, key from metadata or password gocubsgo"}
    else:
        path = Path(source)
        if not path.is_file():
            fail(f"{source}: no such file (give 'tiny' or the path of an image file)")
        name = name or path.name
    creds = _user_creds(conf, "admin")
    try:
        done = register(_local_url(conf), "admin", creds["password"], path, name, disk_format=disk_format,
                        visibility="private" if private else "public", properties=properties)
    except RegisterError as e:
        fail(f"image registration failed: {e}")
    if done.created:
        console.print(f"registered {name} ({done.id}), {'private' if private else 'public'}, from {path}")
    else:
        console.print(f"{name} ({done.id}) is already registered with the same data; nothing changed")


# == end of images ===================================================================


# == object storage ====================================================================
# The ring (`onestack object ring ...`) and one pass of a storage agent on demand
# (`onestack object replicate|audit|expire`), on the configured state dir's ring file.

object_app = typer.Typer(no_args_is_help=True, help="Object storage: the ring and its agents.")
app.add_typer(object_app, name="object")
object_ring_app = typer.Typer(no_args_is_help=True, help="Show and change the object ring.")
object_app.add_typer(object_ring_app, name="ring")
object_device_app = typer.Typer(no_args_is_help=True, help="Storage devices.")
object_app.add_typer(object_device_app, name="device")


def _object_ring(conf: Config):
    from onestack.object_store.ring import Ring, RingError, ring_path

    path = ring_path(conf)
    if not path.exists():
        fail(f"no object ring at {path}: `onestack up` creates the default one, "
             "or `onestack object ring create`")
    try:
        return Ring.load(path), path
    except RingError as e:
        fail(str(e))


def _object_ring_change(config: Path | None, change) -> None:
    """Load the ring, apply ``change`` (which prints what it did), save it."""
    from onestack.object_store.ring import RingError

    ring, path = _object_ring(_conf(config))
    try:
        change(ring)
        ring.save(path)
    except (RingError, OSError) as e:
        fail(str(e))


def _object_ring_table(ring) -> None:
    d = ring.describe()
    console.print(f"{d['partitions']} partitions (power {d['part_power']}), {d['replicas']} replicas, "
                  f"{d['zones']} zones, {len(d['devices'])} devices, balance {d['balance']}%, "
                  f"{d['crowded_partitions']} partitions with replicas sharing a zone"
                  + (f", {d['unassigned']} unassigned replicas (rebalance)" if d["unassigned"] else ""))
    table = Table("id", "name", "zone", "weight", "host", "path", "partitions", "wanted", "balance %")
    for dev in d["devices"]:
        table.add_row(str(dev["id"]), dev["name"] + (" (removing)" if dev["removing"] else ""),
                      str(dev["zone"]), f"{dev['weight']:g}", dev["host"], dev["path"],
                      str(dev["partitions"]), f"{dev['wanted']:g}", f"{dev['balance']:+.2f}")
    console.print(table)


@object_ring_app.command("show")
def object_ring_show(as_json: bool = typer.Option(False, "--json", help="Print JSON."),
                     config: Path | None = ConfigOpt):
    """Devices, zones, weights and the partitions each holds."""
    ring, _ = _object_ring(_conf(config))
    if as_json:
        console.print_json(json.dumps(ring.describe()))
    else:
        _object_ring_table(ring)


@object_ring_app.command("create")
def object_ring_create(
    part_power: int = typer.Option(..., "--part-power", help="2**N partitions (Swift advises ~100 "
                                   "per device at the cluster's largest size)."),
    replicas: int = typer.Option(3, "--replicas", help="Copies of everything."),
    force: bool = typer.Option(False, "--force", help="Replace an existing ring (keeps its hash "
                               "secret; a different part power makes stored data unreachable)."),
    config: Path | None = ConfigOpt,
):
    """Create an empty ring; then `ring add` devices and `ring rebalance`."""
    from onestack.object_store.ring import Ring, RingError, ring_path

    path = ring_path(_conf(config))
    secret = {}
    if path.exists():
        if not force:
            fail(f"a ring exists at {path} (--force replaces it)")
        old, _ = _object_ring(_conf(config))
        secret = {"hash_prefix": old.hash_prefix, "hash_suffix": old.hash_suffix}
    try:
        Ring(part_power, replicas, **secret).save(path)
    except (RingError, OSError) as e:
        fail(str(e))
    console.print(f"created {path}: {1 << part_power} partitions, {replicas} replicas, no devices")


@object_ring_app.command("add")
def object_ring_add(
    name: str = typer.Option(..., "--name", help="Device name, e.g. d4."),
    zone: int = typer.Option(..., "--zone", help="Failure zone (replicas go to distinct zones)."),
    weight: float = typer.Option(100.0, "--weight", help="Relative capacity."),
    path: str | None = typer.Option(None, "--path", help="The device's directory (its mount point); "
                                    "with --node-url its name under the node's devices dir (default: --name)."),
    node_url: str | None = typer.Option(None, "--node-url", help="The device is on a storage node: the "
                                        "URL of its node server (`onestack object server`), e.g. "
                                        "http://10.250.0.13:6200."),
    host: str = typer.Option("local", "--host", help="Host serving the device."),
    config: Path | None = ConfigOpt,
):
    """Add a device (it takes partitions at the next `ring rebalance`)."""
    if node_url:
        host, where = node_url, f"{node_url} as {path or name}"
        path = path or name
    elif path is None:
        fail("--path is needed (or --node-url for a device of a storage node)")
    else:
        path = str(Path(path).absolute())
        where = path

    def change(ring):
        from onestack.object_store.ring import check_node_url

        dev = ring.add_device(name, zone, weight, path, check_node_url(host) if node_url else host)
        console.print(f"added device {dev.id} {dev.name} (zone {zone}, weight {weight:g}) at {where}; "
                      "run `onestack object ring rebalance`")
        if host == "local" and not Path(path).is_dir():
            err.print(f"note: {path} does not exist: the device is unavailable until it does")

    _object_ring_change(config, change)


@object_ring_app.command("remove")
def object_ring_remove(device: str = typer.Argument(..., help="Device id or name."),
                       config: Path | None = ConfigOpt):
    """Remove a device (it keeps its partitions until the next `ring rebalance`)."""

    def change(ring):
        dev = ring.remove_device(device)
        console.print(f"device {dev.name} will leave the ring at the next rebalance")

    _object_ring_change(config, change)


@object_ring_app.command("set-weight")
def object_ring_set_weight(device: str = typer.Argument(..., help="Device id or name."),
                           weight: float = typer.Argument(..., help="New weight (0 drains it)."),
                           config: Path | None = ConfigOpt):
    """Change a device's weight (applied at the next `ring rebalance`)."""

    def change(ring):
        dev = ring.set_weight(device, weight)
        console.print(f"device {dev.name} now weighs {weight:g}; run `onestack object ring rebalance`")

    _object_ring_change(config, change)


@object_ring_app.command("rebalance")
def object_ring_rebalance(config: Path | None = ConfigOpt):
    """Reassign partitions to the weights (at most one replica of each moves)."""

    def change(ring):
        moved = ring.rebalance()
        console.print(f"moved {moved} partition replicas; the replicator moves their data "
                      "(a running onestack reads the new ring when restarted)")
        _object_ring_table(ring)

    _object_ring_change(config, change)


def _object_pass(kind: str, config: Path | None, as_json: bool) -> None:
    from onestack.object_store import agents, proxy
    from onestack.object_store.remote import Nodes

    conf = _conf(config)
    ring, _ = _object_ring(conf)
    nodes = Nodes.from_conf(conf)  # devices of storage nodes too
    cluster = proxy.Cluster(ring, nodes.node)

    def expire(account, container, obj, timestamp):  # every replica, and the listing
        proxy.object_delete(cluster, account, container, obj, timestamp)

    try:
        stats = agents.run_once(kind, ring, expire, stores=nodes.store)
    except OSError as e:
        fail(f"{kind} failed: {e}")
    if as_json:
        console.print_json(json.dumps(stats))
    else:
        console.print(f"{kind}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items()))


JsonOpt = typer.Option(False, "--json", help="Print the pass's figures as JSON.")


@object_app.command("replicate")
def object_replicate(as_json: bool = JsonOpt, config: Path | None = ConfigOpt):
    """One replicator pass: repair missing or stale replicas, move handoff data home."""
    _object_pass("replicate", config, as_json)


@object_app.command("audit")
def object_audit(as_json: bool = JsonOpt, config: Path | None = ConfigOpt):
    """One auditor pass: quarantine objects and databases that fail their checks."""
    _object_pass("audit", config, as_json)


@object_app.command("expire")
def object_expire(as_json: bool = JsonOpt, config: Path | None = ConfigOpt):
    """One expirer pass: delete objects past their X-Delete-At."""
    _object_pass("expire", config, as_json)


@object_app.command("server")
def object_server(
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default object_store.node_host)."),
    port: int | None = typer.Option(None, "--port", help="Port (default object_store.node_port, 6200)."),
    config: Path | None = ConfigOpt,
):
    """Serve this host's storage devices (object_store.devices_dir) to the proxy: the object
    node server of a storage node. Add its devices to the proxy's ring with `ring add --node-url`."""
    from onestack.object_store.server import serve_node

    conf = _conf(config)
    _setup_logging(conf)
    try:
        serve_node(conf, host, port)
    except ConfigError as e:
        fail(str(e))


@object_device_app.command("replace")
def object_device_replace(
    device: str = typer.Argument(..., help="Device id or name."),
    no_replicate: bool = typer.Option(False, "--no-replicate", help="Only prepare the directory."),
    config: Path | None = ConfigOpt,
):
    """Bring back a replaced (empty) disk: create its directory if needed, then refill it."""
    from onestack.object_store.ring import RingError

    conf = _conf(config)
    ring, _ = _object_ring(conf)
    try:
        dev = ring.device(device)
    except RingError as e:
        fail(str(e))
    path = Path(dev.path)
    if dev.node_url:
        fail(f"device {dev.name} is on the node {dev.node_url}: make the new disk's directory "
             f"{dev.path} in that node's devices dir, then `onestack object replicate` here")
    if dev.host != "local":
        fail(f"device {dev.name} is on host {dev.host}: replace it there")
    if path.is_dir() and any(path.iterdir()):
        fail(f"{path} holds data: a replacement device starts empty")
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        fail(f"cannot create {path}: {e.strerror} (mount the new disk there first)")
    console.print(f"device {dev.name} is ready at {path}")
    if not no_replicate:
        _object_pass("replicate", config, False)


# == end of object storage =============================================================


# == TLS ====================================================================================

tls_app = typer.Typer(no_args_is_help=True, help="The APIs' HTTPS certificate (onestack up --tls).")
app.add_typer(tls_app, name="tls")


@tls_app.command("rotate")
def tls_rotate(
    timeout: float = typer.Option(10, help="Seconds to wait for the running server to present the new one."),
    config: Path | None = ConfigOpt,
):
    """A new server certificate from the same CA (or, for a certificate given with --tls-cert,
    the replaced files); the running server takes it for new connections, without a restart."""
    conf = _conf(config)
    files = tls.serving(conf)
    if files is None:
        fail("this cloud does not serve HTTPS (start it with onestack up --tls)")
    try:
        serial = tls.issue(conf) if files.generated else tls.serial_of(files.cert.read_bytes())
    except (OSError, ValueError) as e:
        fail(f"TLS: {e}")
    console.print(f"certificate {files.cert}: serial {serial:x}")
    pid = _running_pid(conf)
    if not pid:
        console.print("onestack is not running: the next onestack up serves it")
        return
    os.kill(pid, signal.SIGHUP)  # the server loads the pair again (its workers too)
    host = urllib.parse.urlsplit(_local_url(conf)).hostname or "127.0.0.1"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if tls.served_serial(host, conf.server.port) == serial:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            fail(f"the server (pid {pid}) still presents another certificate after {timeout:.0f}s; see {conf.log_file}")
        time.sleep(0.1)
    console.print(f"the server (pid {pid}) presents it to new connections")


# == network namespaces ===================================================================
# `onestack netns list` and `onestack netns exec NAME -- CMD`: the namespaces the network
# agent made (routers, DHCP, the external network's), found through its ledger.

netns_app = typer.Typer(no_args_is_help=True, help="Namespaces of the network data plane.")
app.add_typer(netns_app, name="netns")


def _netns_addresses(ns: str) -> str:
    try:
        out = subprocess.run(["ip", "-n", ns, "-j", "addr", "show"], capture_output=True, text=True,
                             timeout=10).stdout
        records = json.loads(out or "[]")
    except (OSError, ValueError, subprocess.SubprocessError):
        return ""
    addrs = [f"{r['ifname']} {a['local']}/{a['prefixlen']}" for r in records for a in r.get("addr_info", [])
             if r.get("ifname") != "lo" and a.get("scope") != "link"]
    return ", ".join(addrs)


@netns_app.command("list")
def netns_list(config: Path | None = ConfigOpt):
    """The router, DHCP and external-network namespaces of this cloud on this host."""
    from onestack.network import agent

    conf = _conf(config)
    items = agent.namespaces(conf.state_dir)
    if not items:
        why = agent.why_not(conf)
        console.print("no network namespaces" + (f" (the network agent cannot run here: {why})" if why else ""))
        return
    table = Table("namespace", "kind", "id", "addresses")
    for x in items:
        table.add_row(x["name"], x["kind"], x["id"], _netns_addresses(x["name"]))
    console.print(table)
    console.print("run a command inside one: onestack netns exec NAME -- CMD  (NAME: e.g. public)")


@netns_app.command("exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def netns_exec(
    name: str = typer.Argument(..., help="public (the external network), or a qrouter-/qdhcp- namespace."),
    command: list[str] = typer.Argument(..., help="The command and its arguments (after --)."),
    api: bool = typer.Option(False, "--api", help="Also reach the API inside at the catalog's URL "
                             "(http://127.0.0.1:<port>), forwarded while the command runs."),
    config: Path | None = ConfigOpt,
):
    """Run a command inside a network namespace, e.g. `onestack netns exec public -- ping 172.24.4.10`."""
    from onestack.network import agent

    conf = _conf(config)
    if os.geteuid() != 0:
        fail("entering a network namespace needs root")
    from onestack.cluster import local

    found = local.find_namespace(conf, name)  # a multi-node cloud's: on the node that has it
    if found is not None:
        if api:
            fail("--api is for the all-in-one cloud: the cluster's API is on its management network")
        prefix, ns = found
        argv = [*prefix, *(["ip", "netns", "exec", ns] if ns else []), *command]
        os.execvp(argv[0], argv)
    ns = agent.resolve_namespace(conf.state_dir, name)
    if ns is None:
        known = ", ".join(x["name"] for x in agent.namespaces(conf.state_dir)) or "none"
        fail(f"no network namespace {name!r} of this cloud (known: {known})")
    if os.geteuid() != 0:
        fail("entering a network namespace needs root")
    argv = ["ip", "netns", "exec", ns, *command]
    if api:
        raise typer.Exit(_exec_with_api(conf, ns, argv))
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        fail(f"cannot run {' '.join(argv)}: {e.strerror}")


def _exec_with_api(conf: Config, ns: str, argv: list[str]) -> int:
    """Run argv (already under `ip netns exec`) while the catalog's API address, a
    loopback one, answers inside the namespace too; its exit status."""
    from onestack.network.linux import forward

    url = urllib.parse.urlsplit(conf.public_url)
    host = "127.0.0.1" if url.hostname == "localhost" else url.hostname or ""
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        fail(f"--api forwards a loopback IPv4 API address; the catalog's URL is {conf.public_url}")
    address = (host, url.port or (443 if url.scheme == "https" else 80))
    try:
        listener = forward.listen_in(ns, address)
    except OSError as e:
        fail(str(e))
    try:
        return forward.run_forwarding(argv, listener, address)
    except OSError as e:
        fail(f"cannot run {' '.join(argv)}: {e.strerror}")


# == end of network namespaces =============================================================


# == nodes: joining a controller =================================================================

node_app = typer.Typer(no_args_is_help=True, help="The nodes of a multi-node cloud (run on the controller, "
                       "except `node run`).")
app.add_typer(node_app, name="node")


def _controller_bus_url(conf: Config) -> str:
    """The RabbitMQ URL nodes use: bus.url, or the broker onestack runs itself."""
    from onestack import infra

    return conf.bus.url or infra.bus_url(conf)


@node_app.command("add")
def node_add(
    name: str = typer.Argument(..., help="The node's name (also its compute/volume host name)."),
    role: str = typer.Option("compute,network", "--role", help="Roles the node will run (for its description)."),
    config: Path | None = ConfigOpt,
):
    """Make a node's user and print its join token (a secret: pass it to `onestack join`)."""
    from onestack import services
    from onestack.cluster import nodes

    conf = _conf(config)
    try:
        roles = sorted(services.parse_roles(role) - {"controller"})
        token = nodes.add(conf, name, roles, _controller_bus_url(conf))
    except (ValueError, nodes.JoinError) as e:
        fail(str(e))
    except Exception as e:  # noqa: BLE001 (the API's refusal, in one line)
        fail(f"node {name} not added: {getattr(e, 'message', e)}")
    console.print(token, soft_wrap=True, highlight=False)


@node_app.command("list")
def node_list(as_json: bool = typer.Option(False, "--json", help="Print JSON."), config: Path | None = ConfigOpt):
    """The nodes this controller made users for."""
    from onestack.cluster import nodes

    conf = _conf(config)
    try:
        found = nodes.listing(conf)
    except nodes.JoinError as e:
        fail(str(e))
    if as_json:
        console.print_json(data=found)
        return
    table = Table("name", "user id", "description")
    for n in found:
        table.add_row(n["name"], n["user_id"], n["description"])
    console.print(table)


@node_app.command("remove")
def node_remove(name: str = typer.Argument(..., help="The node's name."), config: Path | None = ConfigOpt):
    """Delete a node's user: its agents can no longer reach the APIs."""
    from onestack.cluster import nodes

    conf = _conf(config)
    try:
        gone = nodes.remove(conf, name)
    except nodes.JoinError as e:
        fail(str(e))
    if not gone:
        fail(f"no node {name}")
    console.print(f"node {name} removed (its user is deleted)")


def _run_node(conf: Config, detach: bool, config_path: Path, timeout: float = 60) -> None:
    """Run a joined node's agents here, or as a background child (pid and log file)."""
    from onestack import services
    from onestack.cluster import node

    roles = _roles(conf)
    pid = _running_pid(conf)
    if pid and pid != os.getpid():
        fail(f"this node already runs (pid {pid}); stop it with onestack down --config {config_path}")
    if not detach:
        os.umask(0o077)
        _setup_logging(conf)
        conf.pid_file.write_text(str(os.getpid()))
        try:
            node.run(conf, roles)
        except node.JoinError as e:
            fail(str(e))
        finally:
            conf.pid_file.unlink(missing_ok=True)
        return
    conf.log_file.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "onestack.cli", "node", "run", "--config", str(config_path)]
    mark = conf.log_file.stat().st_size if conf.log_file.exists() else 0
    with open(conf.log_file, "ab") as log:
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
    conf.pid_file.write_text(str(child.pid))
    start = time.monotonic()
    while True:
        text = conf.log_file.read_bytes()[mark:].decode(errors="replace")
        if child.poll() is not None:
            tail = text.splitlines()[-10:]
            fail(f"the node exited during start-up: {tail[-1] if tail else '?'} (log: {conf.log_file})")
        if "agents of" in text and "running" in text:
            break
        if time.monotonic() - start > timeout:
            child.terminate()
            fail(f"the node did not start within {timeout:.0f}s (log: {conf.log_file})")
        time.sleep(0.1)
    console.print(f"node {conf.node.name or conf.compute.host} running (pid {child.pid}, roles "
                  f"{', '.join(sorted(roles & set(services.ROLES)))}), controller {conf.node.controller_url}")
    console.print(f"  log: {conf.log_file}   stop: onestack down --config {config_path}")


@node_app.command("run")
def node_run(
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background."),
    config: Path = typer.Option(..., "--config", "-c", help="The node's configuration (<state>/node.toml)."),
):
    """Run a joined node's agents again (after a stop or a reboot), without a new token."""
    conf = _conf(config)
    if not conf.node.controller_url:
        fail(f"{config} is not a joined node's configuration (onestack join writes one)")
    _run_node(conf, detach, config)


@app.command()
def join(
    controller_url: str = typer.Argument(..., help="The controller's URL, e.g. http://10.0.0.10:8800"),
    token: str = typer.Option(..., "--token", envvar="ONESTACK_JOIN_TOKEN",
                              help="The node's join token (`onestack node add NAME` on the controller)."),
    role: str = typer.Option("compute,network", "--role", help="compute, network, storage (comma-separated)."),
    state_dir: Path | None = typer.Option(None, "--state-dir", help="The node's state directory."),
    local_ip: str = typer.Option("", "--local-ip", help="This node's address on the management network "
                                 "(VXLAN, NBD exports); default: the one towards the controller."),
    host: str = typer.Option("", "--host", help="Compute/volume host name (default: the node's name)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background (pid and log file)."),
    config: Path | None = ConfigOpt,
):
    """Join this machine to a controller as a node and run its agents."""
    from onestack import services
    from onestack.cluster import node, nodes

    try:
        roles = services.parse_roles(role)
    except ValueError as e:
        fail(str(e))
    base = _conf(config)
    where = state_dir or base.state_dir
    try:
        path = node.prepare(controller_url, token, roles, Path(where), base=config, local_ip=local_ip, host=host)
    except nodes.JoinError as e:
        fail(str(e))
    console.print(f"joined {controller_url.rstrip('/')}: configuration {path}")
    _run_node(_conf(path), detach, path)


# == a multi-node cloud on this machine ============================================================

cluster_app = typer.Typer(no_args_is_help=True, help="A multi-node cloud on this machine (nodes in namespaces).")
app.add_typer(cluster_app, name="cluster")


@cluster_app.command("up")
def cluster_up(
    compute_nodes: int = typer.Option(2, "--compute-nodes", help="Compute+network nodes."),
    storage_nodes: int = typer.Option(1, "--storage-nodes", help="Storage nodes."),
    mgmt_cidr: str = typer.Option("10.250.0.0/24", "--mgmt-cidr", help="The management network."),
    config: Path | None = ConfigOpt,
):
    """Start a controller, compute+network nodes and a storage node, each in its own namespaces."""
    from onestack.cluster import fabric, local

    if os.geteuid() != 0:
        fail("a cluster's nodes are namespaces: run as root")
    conf = _conf(config)
    if not 1 <= compute_nodes <= 8 or not 0 <= storage_nodes <= 4:
        fail("--compute-nodes: 1 to 8; --storage-nodes: 0 to 4")
    if _running_pid(conf):
        fail(f"a cloud already runs from {conf.state_dir}: onestack down first")
    start = time.monotonic()
    try:
        local.up(conf, config, compute_nodes=compute_nodes, storage_nodes=storage_nodes, mgmt_cidr=mgmt_cidr,
                 say=lambda text: console.print(text, highlight=False))
    except (local.ClusterError, fabric.FabricError, ValueError) as e:
        fail(f"cluster not started: {e} (onestack cluster down removes what was made)")
    console.print(f"cluster up in {time.monotonic() - start:.0f}s")
    _summary(_conf(None if config is None else conf.state_dir / CLUSTER_CONTROLLER))


@cluster_app.command("down")
def cluster_down(
    purge: bool = typer.Option(False, "--purge", help="Also delete the controller's and nodes' state."),
    config: Path | None = ConfigOpt,
):
    """Stop the cluster's nodes and controller and remove their namespaces and bridges."""
    from onestack.cluster import local

    conf = load_plain(config)
    try:
        local.down(conf, purge=purge, say=lambda text: console.print(text, highlight=False))
    except local.ClusterError as e:
        fail(str(e))


@cluster_app.command("status")
def cluster_status(as_json: bool = typer.Option(False, "--json", help="Print JSON."), config: Path | None = ConfigOpt):
    """The cluster's nodes: roles, addresses, processes."""
    from onestack.cluster import local

    found = local.status(load_plain(config))
    if found is None:
        fail("no cluster runs from this state directory")
    if as_json:
        console.print_json(data=found)
        return
    table = Table("node", "roles", "address", "processes")
    for n in found["nodes"]:
        table.add_row(n["name"], ", ".join(n["roles"]), n["address"],
                      "-" if n["processes"] is None else str(n["processes"]))
    console.print(table)


def load_plain(config: Path | None) -> Config:
    """The configuration as given (not the cluster's controller's)."""
    try:
        return load(config)
    except ConfigError as e:
        fail(str(e))


def main():
    app()


if __name__ == "__main__":
    main()
