"""Stack actions: create, update (in place or replace), delete, rollback, suspend,
resume and check, each a walk over the dependency graph.

A walk starts every resource whose requirements are done (``handle_*``), then polls
the ones in progress (``check_*_complete``), all from one thread per stack action: the
types never block. Every resource transition is a row update and an event. A failure
stops new starts, lets the running ones finish, and fails the stack (then, unless
``disable_rollback``, rolls back); ``timeout_mins`` and cancel_update stop a walk too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from onestack.common import errors
from onestack.common.timeutils import utcnow
from onestack.orchestration import events, settings
from onestack.orchestration import template as tpl
from onestack.orchestration.engine import credentials, properties, store
from onestack.orchestration.engine.context import EngineContext
from onestack.orchestration.engine.stack import StackRun, custom_checker, type_class
from onestack.orchestration.resources import base
from onestack.orchestration.resources.heat import NestedStack

log = logging.getLogger(__name__)

COMPLETE, FAILED, IN_PROGRESS = "COMPLETE", "FAILED", "IN_PROGRESS"
# how long a resource's start (its physical id) may wait to be written with the next ones:
# what a restart of the engine could lose track of, against a write per resource
WRITE_WITHIN = 0.5


class StopWalk(Exception):
    """Timed out or cancelled: the reason is the message."""


def _state(physical_id: str | None, data: dict, metadata: dict) -> str:
    """A resource's saved state, as a value to compare (its data may hold nested lists
    a type changes in place)."""
    return json.dumps([physical_id, data, metadata], sort_keys=True, default=str)


def reason_of(name: str, e: BaseException) -> str:
    kind = getattr(e, "heat_type", None) or type(e).__name__
    msg = e.message if isinstance(e, errors.ApiError) else str(e)
    return f"{kind}: resources.{name}: {msg}"


class Operation:
    """One action on one stack, run to its end by :meth:`run` (in the engine's thread)."""

    def __init__(self, engine, stack_id: str, action: str, token: str | None):
        self.engine = engine
        self.stack_id = stack_id
        self.action = action
        self.token = token
        self.stack = store.load_stack(stack_id)
        self.deadline: float | None = None
        self.cancel: str | None = None  # what stopped the walk, if asked to
        self.ctx = self.make_context(self.stack)
        self.rows: dict[str, dict] = {}  # current rows by name
        self.instances: dict[str, base.Resource] = {}
        self._saved: dict[str, str] = {}  # row id -> its physical id, data and metadata as last saved
        # transitions written together (store.apply) at the end of a walk's round, or within
        # WRITE_WITHIN, not a transaction each: the database has one writer, the services
        # share it, and the engine's process
        self._pending: list[tuple[str, dict | None, Any]] = []
        self._pending_since = 0.0
        self._env = None
        self.ctx.peers = self.instances
        self.ctx.files = self.stack.get("files") or {}

    def make_context(self, stack: dict) -> EngineContext:
        return EngineContext(stack_id=stack["id"], stack_name=stack["name"], project_id=stack["project_id"],
                             user_id=stack["user_id"], trust_id=stack["trust_id"], request_token=self.token,
                             secret=stack["secret"] or "", engine=self.engine)

    # ----------------------------------------------------------- plumbing
    def stack_event(self, action: str, status: str, reason: str, event_only: bool = False) -> None:
        """The stack's transition and its event; ``event_only``: the event alone (a failed
        update about to roll back stays IN_PROGRESS, so no waiting client stops at it)."""
        self.flush()
        event = events.new(self.stack_id, self.stack["name"], events.STACK_TYPE, self.stack_id,
                           action, status, reason)
        if event_only:
            store.update_stack(self.stack_id, event=event)
            return
        store.update_stack(self.stack_id, event=event, action=action, status=status, status_reason=reason,
                           **({"updated_at": utcnow()} if action != "CREATE" else {}))

    def resource_event(self, row: dict, action: str, status: str, reason: str = "state changed",
                       defer: bool = False, **fields) -> None:
        """A resource's transition (and any other ``fields`` of its row) and its event, in
        one transaction; ``defer``: with the others of this round of the walk."""
        row.update(action=action, status=status, status_reason=reason, **fields)
        change = (row["id"], {"action": action, "status": status, "status_reason": reason, **fields},
                  self.event_of(row, action, status, reason))
        self.defer(change)
        if not defer:
            self.flush()

    def defer(self, change: tuple[str, dict | None, Any]) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(change)

    def flush(self, within: float | None = None) -> None:
        """Write the deferred transitions (before any other write, so events keep their
        order); ``within``: only if the oldest has waited that long."""
        if within is not None and time.monotonic() - self._pending_since < within:
            return
        if self._pending:
            pending, self._pending = self._pending, []
            store.apply(pending)

    def event_of(self, row: dict, action: str, status: str, reason: str):
        return events.new(self.stack_id, row["name"], row["type"], row.get("physical_id"), action, status,
                          reason, row.get("properties"))

    def effective_type(self, row: dict) -> str:
        """A row's type after the stack's resource_registry (another type, or a template)."""
        if self._env is None:
            self._env = tpl.parse_environment(self.stack.get("environment") or {})
        return self._env.effective_type(row["name"], row["type"])

    def instance(self, row: dict) -> base.Resource:
        cls = type_class(self.effective_type(row), ["resources", row["name"]], self.stack.get("files"))
        inst = cls(row["name"], dict(row["properties"] or {}), self.ctx, resource_id=row["physical_id"],
                   data=row["data"], metadata=row["metadata_"])
        inst.row_id = row["id"]
        self._saved[row["id"]] = _state(row["physical_id"], inst.data, inst.metadata)
        return inst

    def changes(self, row: dict, inst: base.Resource) -> dict[str, Any]:
        """What of the resource's state (physical id, data, metadata) its row lacks: nothing
        when the step changed none of it (most polls), so no write."""
        state = _state(inst.resource_id, inst.data, inst.metadata)
        if self._saved.get(row["id"]) == state:
            return {}
        self._saved[row["id"]] = state
        fields = {"physical_id": inst.resource_id, "data": dict(inst.data), "metadata_": dict(inst.metadata)}
        row.update(fields)
        return fields

    def persist(self, row: dict, inst: base.Resource) -> None:
        fields = self.changes(row, inst)
        if fields:
            self.defer((row["id"], fields, None))
            self.flush()

    def refresh(self, skip: set[str]) -> None:
        """Take in what arrived from outside (signals, cleared hooks) for resources not in a step."""
        by_id = {row["id"]: name for name, row in self.rows.items() if name not in skip}
        if not by_id:
            return
        for r in store.states(self.stack_id):
            name = by_id.get(r["id"])
            if name is None:
                continue
            row = self.rows[name]
            row["data"], row["metadata_"] = r["data"], r["metadata_"]
            inst = self.instances.get(name)
            if inst is not None and getattr(inst, "row_id", None) == r["id"]:
                inst.data, inst.metadata = dict(r["data"]), dict(r["metadata_"])
                self._saved[r["id"]] = _state(r["physical_id"], inst.data, inst.metadata)

    def check_stop(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise StopWalk("Timed out")
        self.cancel = store.cancel_requested(self.stack_id)
        if self.cancel:
            raise StopWalk(f"Stack {self.action} cancelled")

    def walk(self, names: set[str], requires: Callable[[str], set[str]], start: Callable[[str], bool],
             check: Callable[[str], bool], label: str) -> str | None:
        """Run ``start`` then ``check`` on each of ``names`` in dependency order. ``start``
        returns False to be asked again (a hook). The first failure's reason, or None."""
        done: set[str] = set()
        started: set[str] = set()
        running: set[str] = set()
        error: str | None = None
        delay = settings.current.poll_min
        while True:
            try:
                self.check_stop()
            except StopWalk as stop:
                for n in running:
                    row = self.rows[n]
                    inst = self.instances.get(n)
                    if inst is not None:
                        try:
                            inst.handle_cancel()
                        except Exception:  # noqa: BLE001 (the walk stops anyway)
                            log.exception("orchestration: cancel of resource %s", n)
                    self.resource_event(row, row["action"], FAILED, f"{label} aborted ({stop})")
                self.flush()
                return str(stop)
            self.refresh(running)
            moved = False
            if error is None:
                for n in sorted(names - started):
                    if not (requires(n) & names) <= done:
                        continue
                    try:
                        if not start(n):
                            continue
                    except Exception as e:  # noqa: BLE001 (a type's failure is the resource's)
                        error = self.fail(n, e, label)
                        break
                    started.add(n)
                    running.add(n)
                    moved = True
                    self.flush(within=WRITE_WITHIN)
            self.flush()  # (what started is written before the polls)
            for n in sorted(running):
                try:
                    finished = check(n)
                except Exception as e:  # noqa: BLE001
                    running.discard(n)
                    err = self.fail(n, e, label)
                    error = error or err
                    continue
                if finished:
                    running.discard(n)
                    done.add(n)
                    moved = True
            self.flush()
            if done == names:
                return None
            if error is not None and not running:
                return error
            if moved:
                delay = settings.current.poll_min
            else:
                time.sleep(delay)
                delay = min(delay * 1.5, settings.current.poll_max)

    def fail(self, name: str, e: BaseException, label: str) -> str:
        if not isinstance(e, errors.ApiError | ValueError | KeyError):
            log.exception("orchestration: %s of resource %s in stack %s", label, name, self.stack_id)
        row = self.rows.get(name)
        reason = reason_of(row["name"] if row is not None else name, e)
        if row is not None:
            inst = self.instances.get(name)
            if inst is not None and getattr(inst, "row_id", None) == row["id"]:
                self.persist(row, inst)
            self.resource_event(row, label, FAILED, reason)
        return reason

    def set_deadline(self) -> None:
        mins = self.stack.get("timeout_mins") or settings.current.stack_action_timeout_mins
        self.deadline = time.monotonic() + mins * 60

    def load_run(self, template: dict, environment: dict, params: dict, files: dict) -> StackRun:
        return StackRun(self.stack, template, environment, params, files, region=settings.current.region)

    # ---------------------------------------------------------- hooks
    def hook_waits(self, run: StackRun, name: str, hook: str, verb: str) -> bool:
        """True while resource ``name`` is paused at ``hook`` (the first time: an event)."""
        return self.paused(self.rows[name], run.hooks(name), hook, verb)

    def paused(self, row: dict, hooks: list[str], hook: str, verb: str) -> bool:
        if hook not in hooks:
            return False
        self.flush()  # (its event after those of the resources before it)
        name = row["name"]
        data = row["data"] or {}
        if hook in data.get("hooks_cleared", []):
            data = {**data, "hooks_cleared": [h for h in data["hooks_cleared"] if h != hook],
                    "hook_paused": None}
            row["data"] = data
            store.save_resource(row["id"], data=data)
            return False
        if data.get("hook_paused") != hook:
            row["data"] = {**data, "hook_paused": hook}
            store.save_resource(row["id"], data=row["data"])
            events.record(self.stack_id, name, row["type"], row["physical_id"], row["action"], row["status"],
                          f"{verb} paused until Hook {hook} is cleared")
        return True

    # ---------------------------------------------------------- create
    def create_start(self, run: StackRun, name: str, label: str = "CREATE") -> bool:
        row = self.rows[name]
        if self.hook_waits(run, name, "pre-create", "CREATE"):
            return False
        fields = {"properties": run.properties_of(name), "type": run.defs[name].type,
                  "metadata_": run.metadata_of(name), "requires": sorted(run.graph.requires(name))}
        row.update(fields)
        try:
            inst = self.instance(row)
        except Exception:
            self.defer((row["id"], fields, None))
            self.flush()
            raise
        if run.defs[name].deletion_policy != "Delete":
            inst.data["deletion_policy"] = run.defs[name].deletion_policy
        self.instances[name] = run.instances[name] = inst
        if isinstance(inst, NestedStack):  # its child's events come after this one
            self.resource_event(row, "CREATE", IN_PROGRESS, **{**fields, **self.changes(row, inst)})
            fields = None
        try:
            inst.validate()
            inst.handle_create()
        finally:
            if fields is None:
                self.persist(row, inst)
            else:  # the transition and the physical id, written with the next ones (WRITE_WITHIN)
                self.begin(row, "CREATE", fields, inst)
        return True

    def begin(self, row: dict, action: str, fields: dict, inst: base.Resource) -> None:
        """``action`` IN_PROGRESS, with what the first step made (its event shows the
        resource as the step began)."""
        row.update(action=action, status=IN_PROGRESS, status_reason="state changed")
        event = self.event_of(row, action, IN_PROGRESS, "state changed")
        self.defer((row["id"], {"action": action, "status": IN_PROGRESS, "status_reason": "state changed",
                                **fields, **self.changes(row, inst)}, event))
        self.flush(within=WRITE_WITHIN)

    def create_check(self, run: StackRun, name: str) -> bool:
        row, inst = self.rows[name], self.instances[name]
        try:
            done = inst.check_create_complete()
        except BaseException:
            self.persist(row, inst)
            raise
        if not done:
            self.persist(row, inst)
            return False
        self.resource_event(row, "CREATE", COMPLETE, defer=True, **self.changes(row, inst))
        return True

    def create(self) -> None:
        st = self.stack
        self.set_deadline()
        self.stack_event("CREATE", IN_PROGRESS, "Stack CREATE started")
        try:
            run = self.load_run(st["template"], st["environment"], st["parameters"], st["files"])
        except errors.ApiError as e:
            self.stack_event("CREATE", FAILED, e.message)
            return
        rows = store.add_resources(self.stack_id, [(name, run.defs[name].type, sorted(run.graph.requires(name)))
                                                   for name in run.defs])
        self.rows = {row["name"]: row for row in rows}
        error = self.walk(set(run.defs), run.graph.requires, lambda n: self.create_start(run, n),
                          lambda n: self.create_check(run, n), "CREATE")
        if error is None:
            store.update_stack(self.stack_id, outputs={"items": run.outputs()})
            self.stack_event("CREATE", COMPLETE, "Stack CREATE completed successfully")
            return
        self.stack_event("CREATE", FAILED, f"Resource CREATE failed: {error}"
                         if not error.startswith(("Timed out", "Stack")) else error)
        if not st["disable_rollback"] and self.cancel != "no_rollback":
            self.stack_event("ROLLBACK", IN_PROGRESS, "Stack ROLLBACK started")
            self.deadline = None
            err = self.delete_resources("ROLLBACK")
            if err is None:
                self.stack_event("ROLLBACK", COMPLETE, "Stack ROLLBACK completed successfully")
            else:
                self.stack_event("ROLLBACK", FAILED, f"Resource DELETE failed: {err}")

    # ---------------------------------------------------------- delete
    def delete_resources(self, label: str, rows: list[dict] | None = None) -> str | None:
        """Delete ``rows`` (default: every resource of the stack), dependents first."""
        rows = store.resources(self.stack_id, current_only=False) if rows is None else rows
        by_id = {r["id"]: r for r in rows}
        names_of = {r["id"]: r["name"] for r in rows}
        self.rows = {rid: r for rid, r in by_id.items()}  # keyed by row id during a delete

        def requires(rid: str) -> set[str]:
            # a resource goes after those that required it (and a replacement before its old one)
            name = names_of[rid]
            return {o for o, r in by_id.items() if o != rid and (name in (r["requires"] or [])
                                                                  or (r["name"] == name and r["current"]
                                                                      and not by_id[rid]["current"]))}

        env = tpl.parse_environment(self.stack.get("environment") or {})

        def start(rid: str) -> bool:
            row = by_id[rid]
            if row["action"] == "INIT" and not row["physical_id"]:
                return True  # never made: nothing to delete
            if row["action"] == "DELETE" and row["status"] == COMPLETE:
                return True
            if label == "DELETE" and self.paused(row, list(env.hooks_for(row["name"]) or []), "pre-delete",
                                                 "DELETE"):
                return False
            inst = self.instance(row)
            self.instances[rid] = inst
            # (a delete interrupted before this is written is asked again: it can wait for
            # the round's write, but not a nested stack's, whose own events follow it)
            self.resource_event(row, "DELETE", IN_PROGRESS, defer=not isinstance(inst, NestedStack))
            if (row["data"] or {}).get("deletion_policy") == "Retain":
                return True
            self.ctx.lookups.forget(row["physical_id"])  # (what a lookup found of it is going)
            try:
                inst.handle_delete()
            except errors.NotFound:
                pass
            finally:
                self.persist(row, inst)
            return True

        def check(rid: str) -> bool:
            row = by_id[rid]
            inst = self.instances.get(rid)
            if inst is not None and (row["data"] or {}).get("deletion_policy") != "Retain":
                try:
                    if not inst.check_delete_complete():
                        return False
                except errors.NotFound:
                    pass
            event = None
            if inst is not None:
                row.update(action="DELETE", status=COMPLETE, status_reason="state changed")
                event = self.event_of(row, "DELETE", COMPLETE, "state changed")
            self.defer((rid, None, event))  # the row goes, its event stays
            return True

        return self.walk(set(by_id), requires, start, check, "DELETE")

    def delete(self) -> None:
        self.stack_event("DELETE", IN_PROGRESS, "Stack DELETE started")
        error = self.delete_resources("DELETE")
        if error is not None:
            self.stack_event("DELETE", FAILED, f"Resource DELETE failed: {error}")
            return
        self.stack_event("DELETE", COMPLETE, "Stack DELETE completed successfully")
        if not self.stack.get("parent_id"):  # a child stack shares its parent's trust
            credentials.delete_trust(self.stack.get("trust_id"))
        store.update_stack(self.stack_id, deleted_at=utcnow(), trust_id=None)

    # ---------------------------------------------------------- update
    def update(self, label: str = "UPDATE") -> str | None:
        """Bring the resources to the stack's (new) template; the failure reason or None."""
        st = self.stack
        self._env = None
        run = self.load_run(st["template"], st["environment"], st["parameters"], st["files"])
        existing = {r["name"]: r for r in store.resources(self.stack_id)}
        self.rows = dict(existing)
        for name, row in existing.items():
            if name in run.defs:
                inst = self.instance(row)
                self.instances[name] = run.instances[name] = inst
        kinds: dict[str, str] = {}
        replaced: list[dict] = []

        def start(name: str) -> bool:
            old = existing.get(name)
            if old is None:
                if name not in self.rows:
                    rid = store.add_resource(self.stack_id, name, run.defs[name].type,
                                             requires=sorted(run.graph.requires(name)))
                    self.rows[name] = store.resource(rid)
                kinds[name] = "create"
                return self.create_start(run, name)
            if self.hook_waits(run, name, "pre-update", "UPDATE"):
                return False
            new_type = run.effective_type(name)
            new_props = run.properties_of(name)
            inst = self.instances[name]
            made = old["physical_id"] is not None or (old["action"] == "CREATE" and old["status"] == COMPLETE)
            if self.effective_type(old) != new_type or not made or old["status"] == FAILED:
                return self.replace(run, name, old, replaced, kinds)
            changed = properties.changed(inst.PROPERTIES, old["properties"] or {}, new_props)
            requires = sorted(run.graph.requires(name))
            if requires != (old["requires"] or []):
                store.save_resource(old["id"], requires=requires)
            if not changed:
                kinds[name] = "none"
                return True
            immutable = sorted(k for k in changed if inst.PROPERTIES[k].immutable)
            if immutable:
                raise errors.BadRequest(f"Update to property {', '.join(immutable)} of {name} "
                                        f"({new_type}) is not supported (immutable).")
            wants_replace = getattr(inst, "needs_replace", lambda p, c: False)(new_props, changed)
            if wants_replace or any(not inst.PROPERTIES[k].update_allowed for k in changed):
                return self.replace(run, name, old, replaced, kinds)
            kinds[name] = "update"
            row = self.rows[name]
            self.resource_event(row, "UPDATE", IN_PROGRESS)
            row["_new"] = new_props
            try:
                inst.handle_update(new_props, changed)
            finally:
                self.persist(row, inst)
            return True

        def check(name: str) -> bool:
            kind = kinds.get(name)
            if kind == "none":
                return True
            if kind == "create":
                return self.create_check(run, name)
            row, inst = self.rows[name], self.instances[name]
            try:
                if not inst.check_update_complete():
                    return False
            finally:
                self.persist(row, inst)
            inst.properties = row.pop("_new")
            row["properties"] = inst.properties
            store.save_resource(row["id"], properties=inst.properties)
            self.resource_event(row, "UPDATE", COMPLETE)
            return True

        error = self.walk(set(run.defs), run.graph.requires, start, check, label)
        if error is not None:
            return error
        # what the new template no longer has, and what was replaced, goes last
        leftovers = [r for r in store.resources(self.stack_id, current_only=False)
                     if not r["current"] or r["name"] not in run.defs]
        if leftovers:
            error = self.delete_resources("DELETE", leftovers)
            if error is not None:
                return error
        store.update_stack(self.stack_id, outputs={"items": run.outputs()})
        return None

    def replace(self, run: StackRun, name: str, old: dict, replaced: list, kinds: dict) -> bool:
        """Replacement: the old row stays (not current) until the new one is made."""
        store.save_resource(old["id"], current=False)
        rid = store.add_resource(self.stack_id, name, run.defs[name].type,
                                 requires=sorted(run.graph.requires(name)))
        store.save_resource(old["id"], replaced_by=rid)
        replaced.append(old)
        self.rows[name] = store.resource(rid)
        kinds[name] = "create"
        return self.create_start(run, name)

    def run_update(self, label: str = "UPDATE") -> None:
        """UPDATE, or RESTORE (to a snapshot's definition: an update by another name)."""
        st = self.stack
        self.set_deadline()
        self.stack_event(label, IN_PROGRESS, f"Stack {label} started")
        try:
            error = self.update(label)
        except errors.ApiError as e:
            error = e.message
        if error is None:
            store.update_stack(self.stack_id, previous=None)
            self.stack_event(label, COMPLETE, f"Stack {label} completed successfully")
            return
        if label != "UPDATE":
            self.stack_event(label, FAILED, error if error.startswith(("Timed out", "Stack"))
                             else f"Resource {label} failed: {error}")
            return
        cancelled = error.startswith("Stack UPDATE cancelled")
        if cancelled and self.cancel == "no_rollback":
            return
        rollback = (not st["disable_rollback"] or cancelled) and bool(st.get("previous"))
        self.stack_event("UPDATE", FAILED, error if error.startswith(("Timed out", "Stack"))
                         else f"Resource UPDATE failed: {error}", event_only=rollback)
        if rollback:
            prev = st["previous"]
            store.update_stack(self.stack_id, template=prev["template"], environment=prev["environment"],
                               parameters=prev["parameters"], files=prev["files"], previous=None,
                               cancel_requested=None)
            self.stack = store.load_stack(self.stack_id)
            self.deadline = None
            self.stack_event("ROLLBACK", IN_PROGRESS, "Stack ROLLBACK started")
            try:
                err = self.update("ROLLBACK")
            except errors.ApiError as e:
                err = e.message
            if err is None:
                self.stack_event("ROLLBACK", COMPLETE, "Stack ROLLBACK completed successfully")
            else:
                self.stack_event("ROLLBACK", FAILED, f"Resource ROLLBACK failed: {err}")

    # ---------------------------------------------------------- adopt
    def adopt(self) -> None:
        """A stack of resources that exist already (their rows seeded from the adopt data):
        each is checked against the template and recorded, nothing is made."""
        st = self.stack
        self.set_deadline()
        self.stack_event("ADOPT", IN_PROGRESS, "Stack ADOPT started")
        try:
            run = self.load_run(st["template"], st["environment"], st["parameters"], st["files"])
        except errors.ApiError as e:
            self.stack_event("ADOPT", FAILED, e.message)
            return
        seeded = {r["name"]: r for r in store.resources(self.stack_id)}
        for r in seeded.values():
            if r["name"] not in run.defs:
                store.drop_resource(r["id"])
        for name in run.defs:
            if name in seeded:
                self.rows[name] = seeded[name]
            else:
                self.rows[name] = store.resource(store.add_resource(self.stack_id, name, run.defs[name].type))

        def start(name: str) -> bool:
            row = self.rows[name]
            props = run.properties_of(name)
            type_name = run.defs[name].type
            row.update(properties=props, type=type_name)
            store.save_resource(row["id"], properties=props, type=type_name,
                                requires=sorted(run.graph.requires(name)))
            self.resource_event(row, "ADOPT", IN_PROGRESS)
            if not row["physical_id"]:
                raise errors.BadRequest("Resource ID was not provided.")
            inst = self.instance(row)
            if isinstance(inst, NestedStack):
                raise errors.BadRequest("Adopting a nested stack's resource is not supported.")
            self.instances[name] = run.instances[name] = inst
            return True

        def check(name: str) -> bool:
            self.resource_event(self.rows[name], "ADOPT", COMPLETE)
            return True

        error = self.walk(set(run.defs), run.graph.requires, start, check, "ADOPT")
        if error is None:
            store.update_stack(self.stack_id, outputs={"items": run.outputs()})
            self.stack_event("ADOPT", COMPLETE, "Stack ADOPT completed successfully")
        else:
            self.stack_event("ADOPT", FAILED, f"Resource ADOPT failed: {error}")

    # ------------------------------------------------- suspend, resume, check
    def simple(self, action: str) -> None:
        """SUSPEND (dependents first), RESUME and CHECK (dependencies first) of every resource."""
        self.set_deadline()
        self.stack_event(action, IN_PROGRESS, f"Stack {action} started")
        rows = {r["name"]: r for r in store.resources(self.stack_id)}
        self.rows = rows
        for name, row in rows.items():
            self.instances[name] = self.instance(row)
        verb = action.lower()

        def requires(name: str) -> set[str]:
            if action == "SUSPEND":
                return {o for o, r in rows.items() if name in (r["requires"] or [])}
            return set(rows[name]["requires"] or [])

        def start(name: str) -> bool:
            self.resource_event(rows[name], action, IN_PROGRESS)
            getattr(self.instances[name], f"handle_{verb}")()
            self.persist(rows[name], self.instances[name])
            return True

        def check(name: str) -> bool:
            inst = self.instances[name]
            done = getattr(inst, f"check_{verb}_complete", lambda: True)()
            if done:
                self.persist(rows[name], inst)
                self.resource_event(rows[name], action, COMPLETE)
            return done

        error = self.walk(set(rows), requires, start, check, action)
        if error is None:
            self.stack_event(action, COMPLETE, f"Stack {action} completed successfully")
        else:
            self.stack_event(action, FAILED, f"Resource {action} failed: {error}")

    # ---------------------------------------------------------- entry
    def run(self) -> None:
        try:
            if self.action == "CREATE":
                self.create()
            elif self.action in ("UPDATE", "RESTORE"):
                self.run_update(self.action)
            elif self.action == "ADOPT":
                self.adopt()
            elif self.action == "DELETE":
                self.delete()
            else:
                self.simple(self.action)
        except Exception as e:  # noqa: BLE001 (the stack must not stay IN_PROGRESS)
            log.exception("orchestration: %s of stack %s", self.action, self.stack_id)
            msg = e.message if isinstance(e, errors.ApiError) else f"{type(e).__name__}: {e}"
            self.stack_event(self.action, FAILED, msg)


def preview(stack: dict, template: dict, environment: dict, params: dict, files: dict) -> list:
    """The resources a create would make, as preview shows them (nothing is made); a
    nested stack's resource is the list of its own resources."""
    run = StackRun(stack, template, environment, params, files, validating=True,
                   region=settings.current.region)
    out: list = []
    for name in run.graph.create_order():
        cls = run.class_of(name)
        props = run.properties_of(name)
        if issubclass(cls, NestedStack):
            child_tpl, child_params = cls(name, _placeholders(props), None).nested_template(_placeholders(props))
            child = {"id": None, "name": f"{stack['name']}-{name}", "project_id": stack["project_id"]}
            child_env = run.env.child(name, None, run.defs[name].type).to_dict()
            items = preview(child, child_tpl, child_env, child_params, files)
            out.append([{**i, "parent_resource": name} if isinstance(i, dict) else i for i in items])
            continue
        ident = {"stack_name": stack["name"], "stack_id": "None", "tenant": stack["project_id"]}
        out.append({"resource_name": name, "logical_resource_id": name, "resource_type": run.defs[name].type,
                    "properties": _known(props), "metadata": {}, "physical_resource_id": "",
                    "resource_action": "INIT", "resource_status": "COMPLETE", "resource_status_reason": "",
                    "required_by": sorted(run.graph.required_by(name)),
                    "attributes": {a: None for a in cls.ATTRIBUTES},
                    "resource_identity": {**ident, "path": f"/resources/{name}"},
                    "stack_identity": {**ident, "path": ""}, "stack_name": stack["name"],
                    "description": run.defs[name].description or "", "updated_time": None,
                    "creation_time": None})
    return out


def _placeholders(value: Any) -> Any:
    """A value for what preview cannot know yet (a reference to a resource not made)."""
    if value is properties.UNKNOWN:
        return "None"
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    return value


def live_run(stack_id: str, token: str | None) -> tuple[Operation, StackRun]:
    """A stack as it is now, for reading: its made resources live, for outputs and attributes."""
    op = Operation(None, stack_id, "SHOW", token)
    st = op.stack
    run = op.load_run(st["template"], st["environment"], st["parameters"], st["files"])
    for row in store.resources(stack_id):
        if row["name"] in run.defs and row["action"] != "INIT":
            inst = op.instance(row)
            op.instances[row["name"]] = run.instances[row["name"]] = inst
    return op, run


def live_outputs(stack_id: str, token: str | None) -> list[dict[str, Any]]:
    st = store.load_stack(stack_id)
    doc = (st or {}).get("template")
    if isinstance(doc, dict) and not (doc.get("outputs") or doc.get("Outputs")):
        return []  # (stack show polled during an action need not load the stack to say so)
    return live_run(stack_id, token)[1].outputs()


def live_instance(stack_id: str, row: dict, token: str | None) -> base.Resource:
    op = Operation(None, stack_id, "SHOW", token)
    return op.instance(row)


def _known(value: Any) -> Any:
    if value is properties.UNKNOWN:
        return None
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


def validate(stack: dict, template: dict, environment: dict, params: dict, files: dict,
             check_params: bool = True, token: str | None = None) -> StackRun:
    """Everything a create checks before any resource is made (raises StackValidationFailed);
    with the caller's ``token``, custom constraints too (asked of the services)."""
    ctx = None
    if token:
        ctx = EngineContext(stack_id=stack.get("id") or "", stack_name=stack["name"],
                            project_id=stack["project_id"], user_id="", trust_id=None, request_token=token,
                            secret="")
    run = StackRun(stack, template, environment, params, files, validating=True,
                   region=settings.current.region, check_params=check_params, custom=custom_checker(ctx))
    def has_attribute(name: str, attr: str) -> bool | None:
        try:
            cls = run.class_of(name)
        except errors.ApiError:
            return None
        return attr in cls.ATTRIBUTES or attr == "show" or getattr(cls, "ANY_ATTRIBUTE", False)

    tpl.validate_functions(run.template, resolver=run, has_attribute=has_attribute)
    run.graph.check()
    for name in run.defs:
        cls = run.class_of(name)
        props = run.properties_of(name)
        inst = cls(name, props, None)  # a type's validate() reads its properties only
        if not properties.contains_unknown(props):
            inst.validate()
    return run
