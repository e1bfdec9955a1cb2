"""The engine in this process (the controller's part): served on the bus topic
``orchestration.engine``; the API casts actions to it.

Each stack action runs in a thread of its own until it ends; a stack has at most one
action running here (delete cancels a running one first). At start, a stack left
IN_PROGRESS by an engine that went down is marked FAILED.
"""

from __future__ import annotations

import logging
import threading

from onestack.common import bus, errors
from onestack.common.timeutils import utcnow
from onestack.orchestration import events
from onestack.orchestration.engine import actions, store
from onestack.orchestration.resources import base

log = logging.getLogger(__name__)

TOPIC = "orchestration.engine"


class Engine:
    def __init__(self):
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._signal_lock = threading.Lock()  # one signal handled at a time (a group's cooldown)

    # --------------------------------------------------------- bus methods
    def stack_action(self, stack_id: str, action: str, token: str | None = None) -> None:
        """Run CREATE, UPDATE, DELETE, SUSPEND, RESUME or CHECK of a stack (cast)."""
        self.spawn(stack_id, action, token)

    def signal(self, stack_id: str, resource_name: str, details: dict | None = None,
               token: str | None = None) -> None:
        """A resource's signal (call): its type handles it; its data is saved."""
        stack = store.load_stack(stack_id)
        rows = [r for r in store.resources(stack_id) if r["name"] == resource_name]
        if stack is None or not rows:
            raise errors.NotFound(f"The Resource ({resource_name}) could not be found.")
        row = rows[0]
        op = actions.Operation(self, stack_id, "SIGNAL", token)
        inst = op.instance(row)
        # the handler may act on its peers (a scaling policy resizes its group): they are
        # live, with their state, and those it changed are saved
        peers = {r["name"]: r for r in store.resources(stack_id) if r["name"] != resource_name}
        for name, r in peers.items():
            try:
                op.instances[name] = op.instance(r)
            except errors.ApiError:
                continue
            op.instances[name].state = (r["action"], r["status"])
        inst.state = (row["action"], row["status"])
        op.instances[resource_name] = inst
        quiet = False
        with self._signal_lock:
            try:
                result = inst.handle_signal(details)
            except base.NoActionRequired:
                result, quiet = None, True
        op.persist(row, inst)
        for name, peer in op.instances.items():
            r = peers.get(name)
            if r is not None and (peer.resource_id, peer.data, peer.metadata) != (
                    r["physical_id"], r["data"] or {}, r["metadata_"] or {}):
                op.persist(r, peer)
        if quiet:
            return
        if isinstance(result, str) and result:
            reason = "Signal: " + result
        elif isinstance(details, dict) and {"previous", "current", "reason"} <= set(details):
            # an alarm's webhook (Aodh's body), worded as Heat does
            reason = "alarm state changed from {previous} to {current} ({reason})".format(**details)
        else:
            reason = "Signal: " + (str(details.get("reason") or details.get("status") or "")
                                   if isinstance(details, dict) else "")
        events.record(stack_id, resource_name, row["type"], row["physical_id"], "SIGNAL", "COMPLETE",
                      reason.strip() or "Signal: signal received")

    # --------------------------------------------------------- threads
    def spawn(self, stack_id: str, action: str, token: str | None) -> None:
        t = threading.Thread(target=self._run, args=(stack_id, action, token), daemon=True,
                             name=f"heat-{action.lower()}-{stack_id[:8]}")
        t.start()

    def run_now(self, stack_id: str, action: str, token: str | None) -> None:
        """Run an action in this thread (a nested stack's, within its parent's)."""
        self._run(stack_id, action, token)

    def _run(self, stack_id: str, action: str, token: str | None) -> None:
        with self._lock:
            before = self._threads.get(stack_id)
            self._threads[stack_id] = threading.current_thread()
        if before is not None and before is not threading.current_thread() and before.is_alive():
            if action == "DELETE":  # stop what runs, then delete
                store.update_stack(stack_id, cancel_requested="no_rollback")
            before.join()
        store.update_stack(stack_id, cancel_requested=None)
        try:
            actions.Operation(self, stack_id, action, token).run()
        finally:
            with self._lock:
                if self._threads.get(stack_id) is threading.current_thread():
                    del self._threads[stack_id]


current: Engine | None = None


def recover() -> None:
    """Stacks an engine left IN_PROGRESS (it went down): FAILED, saying so."""
    for st in store.stacks_in_progress():
        reason = f"Engine went down during stack {st['action']}"
        store.update_stack(st["id"], status="FAILED", status_reason=reason, updated_at=utcnow())
        events.record(st["id"], st["name"], events.STACK_TYPE, st["id"], st["action"], "FAILED", reason)
        for r in store.resources(st["id"], current_only=False):
            if r["status"] == "IN_PROGRESS":
                store.save_resource(r["id"], status="FAILED", status_reason=reason)


def start(conf) -> Engine:
    global current
    recover()
    current = Engine()
    bus.get().serve(TOPIC, current)
    return current
