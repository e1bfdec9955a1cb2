"""The real `openstack` CLI (python-openstackclient), run in the test process.

Each call runs the CLI's own entry point, `openstackclient.shell.main(argv)`, with the
given OS_* environment, an empty stdin and captured stdout/stderr: the same argument
parsing, client code, HTTP and output formatting as `openstack ARGS` in a shell. What
it saves is the interpreter start and the imports of a new process, 1.3 s of CPU per
call on this machine, against about 0.1 s: the API tier makes thousands of calls.

``ONESTACK_TEST_CLI=subprocess`` runs every call as a child process instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

BIN = Path(sys.executable).parent
_lock = threading.Lock()  # the environment and standard streams are process-wide


def in_subprocess() -> bool:
    return os.environ.get("ONESTACK_TEST_CLI", "") == "subprocess"


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """`openstack ARGS` with exactly ``env`` as its environment."""
    if in_subprocess():
        # stdin is empty, never the terminal: `image create` without --file uploads it
        return subprocess.run([str(BIN / "openstack"), *args], env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    from openstackclient import shell  # imported once, on first use

    _cache_command_lists()
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(b""))
    with _lock, _environment(env), _logging_restored(), warnings.catch_warnings():
        old_stdin, sys.stdin = sys.stdin, stdin
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = shell.main(list(args))
                except SystemExit as e:  # argparse's --help/usage errors exit
                    code = e.code if isinstance(e.code, int) else 2
        finally:
            sys.stdin = old_stdin
            _forget_clients()
    return subprocess.CompletedProcess(["openstack", *args], code or 0, out.getvalue(), err.getvalue())


_commands: dict[tuple, list] = {}  # (namespace, how names are read) -> [(command name, entry point)]


def _cache_command_lists() -> None:
    """Every CLI run lists its ~1000 commands' entry points anew (stevedore imports each
    one's module and class: ~0.08 s a call). The installed packages do not change during
    a test run: list each namespace once and give every later run the same list."""
    from cliff import commandmanager

    manager = commandmanager.CommandManager
    if getattr(manager.load_commands, "_cached", False):
        return
    original = manager.load_commands

    def load_commands(self, namespace: str) -> None:
        key = (namespace, self.convert_underscores, tuple(self.ignored_modules))
        if key not in _commands:
            scratch = manager.__new__(manager)
            scratch.__dict__.update(self.__dict__, commands={}, group_list=[])
            original(scratch, namespace)
            _commands[key] = list(scratch.commands.items())
        if any(name in self.commands for name, _ in _commands[key]):
            return original(self, namespace)  # a duplicate command: cliff loads it and says so itself
        self.group_list.append(namespace)
        self.commands.update(_commands[key])

    load_commands._cached = True
    manager.load_commands = load_commands


def _forget_clients() -> None:
    """OSC caches each service's client (made with one call's token) in a descriptor on
    the ClientManager class; a new process starts without them, so must the next call."""
    from openstackclient.common import clientmanager

    for cls in clientmanager.ClientManager.__mro__:
        for value in vars(cls).values():
            if hasattr(value, "_handle") and hasattr(value, "factory"):
                value._handle = None


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _logging_restored():
    """The CLI configures the root logger on every run: undo it, so handlers that point
    at one call's captured stderr do not pile up."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
