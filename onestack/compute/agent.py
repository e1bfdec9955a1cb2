"""The compute agent of one host: builds, runs and changes its guests (book ch. 4, steps 8-13).

It is served on bus topic ``compute.<host>``. It never opens the database:
what it needs of an instance it asks the conductor, and it reports every
task-state step back the same way. Images come from the image service and
ports from the network service, over their REST APIs; the guest itself is the
virt driver's (libvirt, or the fake driver for simulated hosts).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import traceback
from pathlib import Path

from onestack.common import bus, errors
from onestack.common.timeutils import iso, utcnow
from onestack.compute import bfv, clients, network, settings, states
from onestack.compute.virt import configdrive
from onestack.compute.virt import driver as virt
from onestack.compute.virt.domain import Interface
from onestack.compute.virt.errors import DeviceNotFound, InstanceNotFound, VirtError
from onestack.network.linux import ip

log = logging.getLogger(__name__)

_POWER = {virt.PowerState.RUNNING: 1, virt.PowerState.PAUSED: 3, virt.PowerState.SHUTDOWN: 4,
          virt.PowerState.CRASHED: 6, virt.PowerState.SUSPENDED: 7, virt.PowerState.NOSTATE: 0}
# the task states of a build once its host's agent has begun it
_BUILD_STEPS = (states.NETWORKING, states.BLOCK_DEVICE_MAPPING, states.SPAWNING)


def volume_source(data: dict) -> Path | virt.NbdSource:
    """What a volume's connection data points the guest at: its file (``file``: same node) or
    the volume node's NBD export (``nbd``: host, port and the export name, served raw)."""
    if data.get("path"):
        return Path(data["path"])
    if data.get("host") and data.get("port") and data.get("name"):
        return virt.NbdSource(str(data["host"]), int(data["port"]), str(data["name"]), bool(data.get("tls")))
    raise VirtError(f"the connection info of volume {data.get('volume_id')} names neither a file nor an NBD export")


def _fault(e: Exception) -> dict:
    """The instance fault of an action that failed with ``e`` (called in its except block)."""
    message = e.message if isinstance(e, errors.ApiError) else str(e)
    return {"code": 500, "message": message[:255] or type(e).__name__,
            "details": traceback.format_exc()[-2000:], "created": iso(utcnow())}


def _mapping_of(inst: dict | None, volume_id: str) -> dict | None:
    """The server's block device mapping of this volume, if any."""
    return next((b for b in (inst or {}).get("block_device_mapping") or [] if b.get("volume_id") == volume_id),
                None)


class Conductor:
    """The agent's view of the conductor: bus calls only."""

    def __getattr__(self, method):
        def call(**kwargs):
            return bus.get().call_sync("compute.conductor", method, **kwargs)
        return call


class ComputeAgent:
    def __init__(self, host: str, driver: virt.VirtDriver, zone: str = "nova", plug: bool = True):
        self.host = host
        self.driver = driver
        self.zone = zone
        self.plug_vifs = plug  # make bridges for NICs (real hosts); simulated hosts have no kernel objects
        self.conductor = Conductor()
        self.node_uuid: str | None = None
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._aborts: set[str] = set()  # live migrations asked to stop
        self._received: set[str] | None = set()  # builds asked of this run, until recover_builds ran

    def serve(self) -> None:
        bus.get().serve(f"compute.{self.host}", self)

    # -- plumbing

    def _lock(self, uuid: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(uuid, threading.Lock())

    def _update(self, uuid: str, **changes) -> dict | None:
        return self.conductor.instance_update(instance_uuid=uuid, **changes)

    def _event(self, uuid: str, request_id: str | None, event: str, phase: str, **kw) -> None:
        if request_id:
            self.conductor.action_event(instance_uuid=uuid, request_id=request_id, event=event, phase=phase,
                                        host=self.host, **kw)

    def _power(self, uuid: str) -> int:
        try:
            return _POWER.get(self.driver.get_info(uuid).state, 0)
        except (InstanceNotFound, VirtError):
            return 0

    def _run(self, uuid: str, request_id: str | None, event: str, fn, *, error_state: str | None = None,
             done: dict | None = None, local: bool = True, on_error=None) -> bool:
        """Run one action under the instance's lock, recording its event; on failure the
        task state is cleared (and the vm_state set to ``error_state`` if given) with a fault,
        and ``on_error(inst)`` called. ``local``: the guest is this host's afterwards (its power
        state is read here)."""
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            if inst is None or inst["deleted"]:
                return False
            self._event(uuid, request_id, event, "start")
            try:
                changes = fn(inst) or {}
            except Exception as e:
                log.exception("%s of %s failed", event, uuid)
                message = e.message if isinstance(e, errors.ApiError) else str(e)
                update = {"task_state": None, "fault": _fault(e)}
                if local:
                    update["power_state"] = self._power(uuid)
                if error_state:
                    update["vm_state"] = error_state
                if on_error is not None:
                    try:
                        on_error(inst)
                    except Exception:
                        log.exception("cleaning up after the failed %s of %s failed", event, uuid)
                self._update(uuid, **update)
                self._event(uuid, request_id, event, "finish", result="Error", details=message,
                            traceback=traceback.format_exc()[-2000:])
                return False
            power = {"power_state": self._power(uuid)} if local else {}
            self._update(uuid, **{"task_state": None, **power, **(done or {}), **changes})
            self._event(uuid, request_id, event, "finish", result="Success")
            return True

    # -- images

    def _image_source(self, image_id: str):
        def download(dest: Path) -> None:
            with clients.get().image.stream(f"/v2/images/{image_id}/file") as r:
                if r.status_code != 200:
                    raise VirtError(f"image {image_id} could not be downloaded ({r.status_code})")
                with open(dest, "wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
        return download

    def _image_ref(self, inst: dict, image_id: str | None = None) -> virt.ImageRef:
        image_id = image_id or inst["image_ref"]
        meta = (inst.get("system_metadata") or {}).get("image") or {}
        fmt = meta.get("disk_format") if meta.get("id") == image_id else None
        if fmt is None:
            fmt = clients.get().image.get(f"/v2/images/{image_id}")["disk_format"]
        return virt.ImageRef(image_id, self._image_source(image_id), fmt or "qcow2")

    # -- specs

    def _interfaces(self, vifs: list[dict]) -> list[Interface]:
        out = []
        for vif in vifs:
            if self.plug_vifs:
                ip.ensure_bridge(vif["bridge"], mtu=vif.get("mtu"))  # os-vif's linux bridge plug
            out.append(Interface(bridge=vif["bridge"], mac=vif["mac"], target=vif["tap"], mtu=vif.get("mtu")))
        return out

    def _config_drive(self, inst: dict) -> virt.ConfigDrive | None:
        if not (inst.get("config_drive") or settings.current.force_config_drive):
            return None
        # the same documents the metadata service serves (keys, network_data, EC2)
        return virt.ConfigDrive(**configdrive.instance_content(inst), format="iso9660")

    def _spec(self, inst: dict, vifs: list[dict], image: virt.ImageRef, flavor: dict | None = None) -> virt.InstanceSpec:
        f = flavor or inst["flavor"]
        return virt.InstanceSpec(
            uuid=inst["uuid"], memory_mib=f["memory_mb"], vcpus=f["vcpus"], image=image,
            root_gb=f.get("root_gb", 0), config_drive=self._config_drive(inst),
            interfaces=self._interfaces(vifs), display_name=inst["name"], flavor=f.get("name", ""),
            project_id=inst["project_id"], user_id=inst["user_id"])

    # -- build and delete

    def build_and_run_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        uuid = instance_uuid
        event = "compute__do_build_and_run_instance"
        received = self._received
        if received is not None:
            received.add(uuid)
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            if inst is None or inst["deleted"]:
                return
            if inst["task_state"] == states.DELETING:  # deleted before the build began
                self.conductor.instance_destroyed(instance_uuid=uuid)
                return
            # only a build still waiting for its host begins (a restarted conductor may have
            # failed it meanwhile: see Conductor.recover_builds)
            begun = self.conductor.instance_update(instance_uuid=uuid, expected_task_state=states.SCHEDULING,
                                                   check=True, task_state=states.NETWORKING)
            if begun is None or begun["task_state"] != states.NETWORKING:
                return
            self._event(uuid, request_id, event, "start")
            vifs: list[dict] = []
            try:
                vifs = network.allocate(inst, self.host)
                self._update(uuid, network_info=vifs, task_state=states.BLOCK_DEVICE_MAPPING)
                connected = self._connect_volumes(inst)
                self._update(uuid, task_state=states.SPAWNING)
                inst["network_info"] = vifs
                root = next((c for c in connected if c[0].get("boot_index") == 0), None)
                if root is not None:
                    spec = self._spec(inst, vifs, virt.ImageRef(None, Path("/nonexistent"), "raw"))
                    spec.root_volume, spec.root_volume_format = volume_source(root[1]), root[1].get("format", "raw")
                    spec.root_volume_serial = root[0]["volume_id"]
                else:
                    spec = self._spec(inst, vifs, self._image_ref(inst))
                info = self.driver.spawn(spec)
                for bdm, data in connected:
                    if root is None or bdm is not root[0]:  # the other volumes are hot-plugged
                        self.driver.attach_volume(uuid, volume_source(data), device=bdm["device"].removeprefix("/dev/"),
                                                  serial=bdm["volume_id"], disk_format=data.get("format", "raw"))
                for bdm, _data in connected:
                    clients.get().volume.post(f"/attachments/{bdm['attachment_id']}/action",
                                              json={"os-complete": None})
            except Exception as e:
                log.exception("build of %s failed", uuid)
                try:
                    self.driver.destroy(uuid)
                except Exception:
                    pass
                self._disconnect_volumes(uuid)
                try:
                    network.deallocate(uuid, vifs)
                except Exception:
                    log.exception("ports of %s could not be released", uuid)
                clients.release_allocations(uuid)
                message = e.message if isinstance(e, errors.ApiError) else str(e)
                self._update(uuid, vm_state=states.ERROR, task_state=None, power_state=0,
                             fault={"code": 500, "message": f"Build of instance {uuid} aborted: {message}"[:255],
                                    "details": traceback.format_exc()[-2000:], "created": iso(utcnow())})
                self._event(uuid, request_id, event, "finish", result="Error", details=message)
                return
            after = self.conductor.instance_update(
                instance_uuid=uuid, expected_task_state=states.SPAWNING, check=True,
                vm_state=states.ACTIVE, task_state=None, power_state=_POWER.get(info.state, 1),
                launched_at=iso(utcnow()))
            self._event(uuid, request_id, event, "finish", result="Success")
        if after is not None and after.get("task_state") == states.DELETING:
            self.terminate_instance(uuid, request_id)  # deleted while it was being built

    def terminate_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        uuid = instance_uuid
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            if inst is None or inst["deleted"]:
                return
            if inst["vm_state"] == states.BUILDING and inst["task_state"] != states.DELETING:
                return
            self._event(uuid, request_id, "compute_terminate_instance", "start")
            if inst["vm_state"] == states.RESIZED:
                self._drop_resize_source(inst)
            try:
                self.driver.destroy(uuid)
            except InstanceNotFound:
                pass
            except Exception as e:
                log.exception("destroy of %s failed", uuid)
                self._update(uuid, vm_state=states.ERROR, task_state=None,
                             fault={"code": 500, "message": f"Delete failed: {e}"[:255], "created": iso(utcnow())})
                self._event(uuid, request_id, "compute_terminate_instance", "finish", result="Error",
                            details=str(e))
                return
            try:
                network.deallocate(uuid, inst.get("network_info") or [])
            except Exception:
                log.exception("ports of %s could not be released", uuid)
            for bdm in inst.get("block_device_mapping") or []:
                if bdm.get("destination_type") == "volume" and bdm.get("volume_id"):
                    self._release_volume(bdm, delete=bool(bdm.get("delete_on_termination")))
            self._event(uuid, request_id, "compute_terminate_instance", "finish", result="Success")
            self.conductor.instance_destroyed(instance_uuid=uuid)
        with self._locks_lock:
            self._locks.pop(uuid, None)

    # -- volumes (Cinder v3 attachments over the volume API; the nova service token)

    def _connector(self, device: str) -> dict:
        return {"host": self.host, "mountpoint": device, "mode": "rw", "platform": "x86_64", "os_type": "linux",
                "multipath": False, "initiator": None, "ip": None}

    def _wait_volume(self, volume_id: str, timeout: float = 600) -> dict:
        """The volume once it is available (a volume being made from an image takes a while)."""
        vc = clients.get().volume
        deadline = time.monotonic() + timeout
        while True:
            vol = vc.get(f"/volumes/{volume_id}")["volume"]
            if vol["status"] in ("available", "reserved", "attaching"):
                return vol
            if vol["status"].startswith("error") or vol["status"] in ("deleting",):
                raise VirtError(f"volume {volume_id} is {vol['status']}")
            if time.monotonic() > deadline:
                raise VirtError(f"volume {volume_id} was not available within {timeout:.0f} s "
                                f"(it is {vol['status']})")
            time.sleep(0.5)

    def _connect_volumes(self, inst: dict) -> list[tuple[dict, dict]]:
        """Boot-time volume mappings: each volume waited for, its attachment made (or the API's
        reservation updated) with this host's connector; [(bdm, connection data)], recorded."""
        vc = clients.get().volume
        bdms = [dict(b) for b in inst.get("block_device_mapping") or []]
        out = []
        for b in bdms:
            if b.get("destination_type") != "volume" or not b.get("volume_id"):
                continue
            self._wait_volume(b["volume_id"])
            connector = self._connector(b.get("device") or "/dev/vdb")
            if b.get("attachment_id"):
                att = vc.put(f"/attachments/{b['attachment_id']}",
                             json={"attachment": {"connector": connector}})["attachment"]
            else:
                att = vc.post("/attachments", json={"attachment": {
                    "volume_uuid": b["volume_id"], "instance_uuid": inst["uuid"],
                    "connector": connector}})["attachment"]
                b["attachment_id"] = att["id"]
                # recorded on that one mapping at once (a failed build releases it)
                self.conductor.bdm_update(instance_uuid=inst["uuid"], volume_id=b["volume_id"],
                                          attachment_id=att["id"])
            out.append((b, (att.get("connection_info") or {}).get("data") or {}))
        return out

    def _disconnect_volumes(self, uuid: str) -> None:
        """A failed build lets go of its volumes (deleted with the server if so marked)."""
        inst = self.conductor.instance_get(instance_uuid=uuid) or {}
        for b in inst.get("block_device_mapping") or []:
            if b.get("destination_type") == "volume" and b.get("attachment_id"):
                self._release_volume(b, delete=False)

    def attach_volume(self, instance_uuid: str, volume_id: str, request_id: str | None = None) -> None:
        uuid = instance_uuid
        vc = clients.get().volume
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            bdm = _mapping_of(inst, volume_id)
            if inst is None or inst["deleted"] or bdm is None:
                return
            self._event(uuid, request_id, "compute_attach_volume", "start")
            try:
                att = vc.put(f"/attachments/{bdm['attachment_id']}",
                             json={"attachment": {"connector": self._connector(bdm["device"])}})["attachment"]
                data = (att.get("connection_info") or {}).get("data") or {}
                self.driver.attach_volume(uuid, volume_source(data), device=bdm["device"].removeprefix("/dev/"),
                                          serial=volume_id, disk_format=data.get("format", "raw"))
                vc.post(f"/attachments/{bdm['attachment_id']}/action", json={"os-complete": None})
            except Exception as e:
                log.exception("attaching volume %s to %s failed", volume_id, uuid)
                try:
                    vc.delete(f"/attachments/{bdm['attachment_id']}", ok=(200, 204, 404))
                except errors.ApiError:
                    pass
                self.conductor.bdm_delete(instance_uuid=uuid, volume_id=volume_id)
                message = e.message if isinstance(e, errors.ApiError) else str(e)
                self._event(uuid, request_id, "compute_attach_volume", "finish", result="Error", details=message)
                return
            self._event(uuid, request_id, "compute_attach_volume", "finish", result="Success")

    def detach_volume(self, instance_uuid: str, volume_id: str, request_id: str | None = None) -> None:
        uuid = instance_uuid
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            bdm = _mapping_of(inst, volume_id)
            if inst is None or inst["deleted"] or bdm is None:
                self._roll_detaching(volume_id)  # nothing to detach here: not left "detaching"
                return
            self._event(uuid, request_id, "compute_detach_volume", "start")
            try:
                self.driver.detach_volume(uuid, bdm["device"].removeprefix("/dev/"))
            except (InstanceNotFound, DeviceNotFound):
                pass  # no guest here, or the disk is gone already: the attachment goes below
            except Exception as e:
                # as Nova's: the guest keeps the disk, the volume goes back to in-use with its
                # attachment and mapping (a later detach can succeed), the fault is recorded
                log.warning("detaching volume %s from %s failed: %s", volume_id, uuid, e)
                self._roll_detaching(volume_id)
                fault = _fault(e)
                self._update(uuid, fault=fault)
                self._event(uuid, request_id, "compute_detach_volume", "finish", result="Error",
                            details=fault["message"], traceback=fault["details"])
                return
            self._release_volume(bdm, delete=False)
            self.conductor.bdm_delete(instance_uuid=uuid, volume_id=volume_id)
            self._event(uuid, request_id, "compute_detach_volume", "finish", result="Success")

    def _roll_detaching(self, volume_id: str) -> None:
        """A volume left "detaching" by the API's begin_detaching back to what its attachments
        say (in-use); nothing changes for a volume in any other state."""
        try:
            clients.get().volume.post(f"/volumes/{volume_id}/action", json={"os-roll_detaching": {}},
                                      ok=(202, 404))
        except errors.ApiError as e:
            log.warning("volume %s not rolled back from detaching: %s", volume_id, e.message)

    def _release_volume(self, bdm: dict, delete: bool) -> None:
        """The attachment deleted (the volume is available again), the volume too when asked."""
        vc = clients.get().volume
        try:
            if bdm.get("attachment_id"):
                vc.delete(f"/attachments/{bdm['attachment_id']}", ok=(200, 204, 404))
            if delete:
                vc.delete(f"/volumes/{bdm['volume_id']}", ok=(202, 204, 404))
        except errors.ApiError as e:
            log.warning("volume %s not released: %s", bdm.get("volume_id"), e.message)

    def extend_volume(self, instance_uuid: str, volume_id: str, request_id: str | None = None) -> None:
        """An attached volume grew (the volume-extended event): the guest's disk is resized to
        the volume's size as the volume API now tells it, so the guest sees the new size."""
        uuid, event = instance_uuid, "compute_extend_volume"
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            if inst is None or inst["deleted"]:
                return
            bdm = _mapping_of(inst, volume_id)
            self._event(uuid, request_id, event, "start")
            try:
                if bdm is None or not bdm.get("device"):
                    raise VirtError(f"volume {volume_id} is not attached to server {uuid}")
                size_gb = clients.get().volume.get(f"/volumes/{volume_id}")["volume"]["size"]
                self.driver.extend_volume(uuid, bdm["device"].removeprefix("/dev/"), size_gb * 1024**3)
            except Exception as e:
                log.warning("extending volume %s of %s failed: %s", volume_id, uuid, e)
                message = e.message if isinstance(e, errors.ApiError) else str(e)
                self._event(uuid, request_id, event, "finish", result="Error", details=message)
                return
            self._event(uuid, request_id, event, "finish", result="Success")

    # -- interfaces: hot-plug (onestack.compute.interfaces). The port is bound to this host as a
    # boot binds it (network.bind), its bridge made and the NIC plugged into the guest, live and
    # in its definition, on the tap the network agent wires; a detach is the reverse.

    def attach_interface(self, instance_uuid: str, port_id: str, preserve: bool = False, tag: str | None = None,
                         request_id: str | None = None) -> dict:
        """Bind and plug the port (a call: the API answers with it); its VIF, recorded in
        network_info. On failure the port is let go of and the error raised."""
        uuid, event = instance_uuid, "compute_attach_interface"
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            if inst is None or inst["deleted"]:
                raise errors.NotFound(f"Instance {uuid} could not be found.")
            self._event(uuid, request_id, event, "start")
            bound = False
            try:
                vif = network.bind(inst, port_id, self.host, preserve=preserve, tag=tag)
                bound = True
                self.driver.attach_interface(uuid, self._interfaces([vif])[0])
            except Exception as e:
                log.exception("attaching port %s to %s failed", port_id, uuid)
                if bound:
                    try:
                        network.release({"port_id": port_id, "preserve": preserve})
                    except errors.ApiError as undo:
                        log.warning("port %s not released: %s", port_id, undo.message)
                fault = _fault(e)
                self._event(uuid, request_id, event, "finish", result="Error", details=fault["message"],
                            traceback=fault["details"])
                if isinstance(e, errors.ApiError):
                    raise
                raise errors.ApiError(f"Failed to attach network adapter device to {uuid}: {e}") from None
            vifs = [v for v in inst.get("network_info") or [] if v["port_id"] != port_id]
            self._update(uuid, network_info=[*vifs, vif])
            self._event(uuid, request_id, event, "finish", result="Success")
            return vif

    def detach_interface(self, instance_uuid: str, port_id: str, request_id: str | None = None) -> None:
        """Unplug the port's NIC, then let go of the port; a guest that keeps the NIC keeps the port."""
        uuid, event = instance_uuid, "compute_detach_interface"
        with self._lock(uuid):
            inst = self.conductor.instance_get(instance_uuid=uuid)
            if inst is None or inst["deleted"]:
                return
            vifs = inst.get("network_info") or []
            vif = next((v for v in vifs if v["port_id"] == port_id), None)
            self._event(uuid, request_id, event, "start")
            try:
                if vif is None:
                    raise VirtError(f"Port {port_id} is not attached")
                try:
                    self.driver.detach_interface(uuid, vif["mac"])
                except (InstanceNotFound, DeviceNotFound):
                    pass  # no guest here, or the NIC is gone already: the port goes below
                network.release(vif)
            except Exception as e:
                log.warning("detaching port %s from %s failed: %s", port_id, uuid, e)
                fault = _fault(e)
                self._update(uuid, fault=fault)
                self._event(uuid, request_id, event, "finish", result="Error", details=fault["message"],
                            traceback=fault["details"])
                return
            self._update(uuid, network_info=[v for v in vifs if v["port_id"] != port_id])
            self._event(uuid, request_id, event, "finish", result="Success")

    # -- power actions

    def reboot_instance(self, instance_uuid: str, request_id: str | None = None, hard: bool = False) -> None:
        def go(inst):
            self.driver.reboot(inst["uuid"], hard=hard)
            return {"vm_state": states.ACTIVE}
        self._run(instance_uuid, request_id, "compute_reboot_instance", go)

    def stop_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        def go(inst):
            self.driver.power_off(inst["uuid"], timeout=10)
            return {"vm_state": states.STOPPED}
        self._run(instance_uuid, request_id, "compute_stop_instance", go)

    def start_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        def go(inst):
            self.driver.power_on(inst["uuid"])
            return {"vm_state": states.ACTIVE}
        self._run(instance_uuid, request_id, "compute_start_instance", go)

    def _simple(self, name: str, method: str, vm_state: str):
        def action(instance_uuid: str, request_id: str | None = None) -> None:
            def go(inst):
                getattr(self.driver, method)(inst["uuid"])
                return {"vm_state": vm_state}
            self._run(instance_uuid, request_id, name, go)
        return action

    def pause_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        self._simple("compute_pause_instance", "pause", states.PAUSED)(instance_uuid, request_id)

    def unpause_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        self._simple("compute_unpause_instance", "unpause", states.ACTIVE)(instance_uuid, request_id)

    def suspend_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        self._simple("compute_suspend_instance", "suspend", states.SUSPENDED)(instance_uuid, request_id)

    def resume_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        self._simple("compute_resume_instance", "resume", states.ACTIVE)(instance_uuid, request_id)

    # -- rescue

    def rescue_instance(self, instance_uuid: str, request_id: str | None = None,
                        image_ref: str | None = None) -> None:
        def go(inst):
            self.driver.rescue(inst["uuid"], self._image_ref(inst, image_ref or inst["image_ref"]))
            return {"vm_state": states.RESCUED}
        self._run(instance_uuid, request_id, "compute_rescue_instance", go)

    def unrescue_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        def go(inst):
            self.driver.unrescue(inst["uuid"])
            return {"vm_state": states.ACTIVE}
        self._run(instance_uuid, request_id, "compute_unrescue_instance", go)

    # -- rebuild and resize

    def rebuild_instance(self, instance_uuid: str, request_id: str | None = None, image_ref: str = "",
                         image: dict | None = None) -> None:
        def go(inst):
            was_stopped = inst["vm_state"] == states.STOPPED
            sysmeta = dict(inst.get("system_metadata") or {})
            if image:
                sysmeta["image"] = image
                inst["system_metadata"] = sysmeta
            inst["image_ref"] = image_ref or inst["image_ref"]
            self._update(inst["uuid"], task_state="rebuild_spawning", image_ref=inst["image_ref"],
                         system_metadata=sysmeta)
            root = bfv.root_bdm(inst.get("block_device_mapping"))
            if root is not None:  # the same root volume, its data kept (rebuild before 2.93)
                spec = self._root_volume_spec(inst, inst.get("network_info") or [], root,
                                              self._reconnect(root))
            else:
                spec = self._spec(inst, inst.get("network_info") or [], self._image_ref(inst))
            self.driver.rebuild(spec)
            if was_stopped:
                self.driver.power_off(inst["uuid"], timeout=0)
                return {"vm_state": states.STOPPED}
            return {"vm_state": states.ACTIVE, "launched_at": iso(utcnow())}
        self._run(instance_uuid, request_id, "compute_rebuild_instance", go, error_state=states.ERROR)

    # -- moves between hosts. Cold migration and resize: resize_instance on the source (in
    # place when the scheduler chose the same host), then finish_resize on the destination;
    # confirm_resize on the source, or revert_resize on the destination then
    # finish_revert_resize on the source. Live migration: live_migration on the source, which
    # calls the destination's pre_live_migration and post_live_migration_at_destination.
    # Evacuation: evacuate_instance on the destination; the source cleans up once it is back
    # (reconcile). The migration's status is reported at each step; Placement's claim is the
    # scheduler's (the migration holds the source's room), dropped or given back here.

    def _migration(self, migration_uuid: str) -> dict:
        mig = self.conductor.migration_get(migration_uuid=migration_uuid)
        if mig is None:
            raise VirtError(f"migration {migration_uuid} does not exist")
        return mig

    def _migration_status(self, migration_uuid: str, status: str) -> None:
        self.conductor.migration_update(migration_uuid=migration_uuid, status=status)

    def _to_host(self, host: str, method: str, **kwargs) -> None:
        bus.get().cast_sync(f"compute.{host}", method, **kwargs)

    def _call_host(self, host: str, method: str, timeout: float = 300, **kwargs):
        return bus.get().call_sync(f"compute.{host}", method, timeout=timeout, **kwargs)

    def _revert_claim(self, instance_uuid: str, migration_uuid: str) -> None:
        """The instance holds the source's room again (the migration held it)."""
        try:
            clients.get().placement.revert_move(instance_uuid, migration_uuid)
        except errors.ApiError as e:
            log.warning("allocations of %s not given back to it: %s", instance_uuid, e.message)

    def _move_failed(self, migration_uuid: str, status: str = "error"):
        """What a failed move undoes (``_run``'s on_error): the migration's status, the claim."""
        def undo(inst: dict) -> None:
            self._migration_status(migration_uuid, status)
            self._revert_claim(inst["uuid"], migration_uuid)
        return undo

    @staticmethod
    def _resize_sysmeta(inst: dict) -> dict:
        """What a revert goes back to, kept in the system metadata until confirm or revert."""
        return {**(inst.get("system_metadata") or {}), "old_flavor": dict(inst["flavor"]),
                "old_vm_state": inst["vm_state"]}

    def _image_ref_if_any(self, inst: dict) -> virt.ImageRef:
        """The server's image, or an empty reference when the image service cannot say (a
        moved disk does not need it; the driver copies the whole disk then)."""
        try:
            return self._image_ref(inst)
        except Exception as e:
            log.info("image of %s not available (%s)", inst["uuid"], e)
            return virt.ImageRef(None, Path("/nonexistent"), "raw")

    def _connected_volumes(self, inst: dict) -> list[tuple[dict, dict]]:
        """The server's volumes connected for this host: [(bdm, connection data)]."""
        return [(b, self._reconnect(b)) for b in inst.get("block_device_mapping") or []
                if b.get("destination_type") == "volume" and b.get("attachment_id")]

    def _moved_spec(self, inst: dict, vifs: list[dict], connected: list[tuple[dict, dict]],
                    image: virt.ImageRef) -> virt.InstanceSpec:
        root = next((c for c in connected if c[0].get("boot_index") == 0), None)
        if root is not None:
            return self._root_volume_spec(inst, vifs, *root)
        return self._spec(inst, vifs, image)

    def _attach_volumes(self, uuid: str, connected: list[tuple[dict, dict]]) -> None:
        """The volumes other than the root one, plugged into the guest made here."""
        try:
            for bdm, data in connected:
                if bdm.get("boot_index") != 0:
                    self.driver.attach_volume(uuid, volume_source(data), device=bdm["device"].removeprefix("/dev/"),
                                              serial=bdm["volume_id"], disk_format=data.get("format", "raw"))
        except BaseException:
            try:
                self.driver.destroy(uuid)
            except Exception:
                log.exception("guest of %s not removed after its volumes failed to attach", uuid)
            raise

    def resize_instance(self, instance_uuid: str, migration_uuid: str = "", request_id: str | None = None,
                        new_flavor: dict | None = None) -> None:
        """On the source: a resize in place, or the guest stopped and its disk offered to the
        destination, which is then told to finish."""
        uuid, handoff = instance_uuid, {}

        def go(inst):
            mig = self._migration(migration_uuid)
            self._update(uuid, task_state=states.RESIZE_MIGRATING)
            self._migration_status(migration_uuid, "migrating")
            if mig["dest_compute"] == self.host:
                return self._resize_here(inst, new_flavor, migration_uuid)
            disk = self.driver.migrate_disk_and_power_off(uuid, settings.current.migration_address, timeout=30)
            self._migration_status(migration_uuid, "post-migrating")
            handoff.update(dest=mig["dest_compute"], disk_info=disk)
            return {"task_state": states.RESIZE_MIGRATED}

        if not self._run(uuid, request_id, "compute_resize_instance", go, error_state=states.ERROR,
                         on_error=self._move_failed(migration_uuid)) or not handoff:
            return
        try:
            self._to_host(handoff["dest"], "finish_resize", instance_uuid=uuid, migration_uuid=migration_uuid,
                          new_flavor=new_flavor, disk_info=handoff["disk_info"], request_id=request_id)
        except errors.ApiError as e:  # nobody serves the destination: the move ends here
            self.driver.migration_transfer_done(uuid)
            self._move_failed(migration_uuid)({"uuid": uuid})
            self._update(uuid, vm_state=states.ERROR, task_state=None, fault=_fault(e))

    def _resize_here(self, inst: dict, new_flavor: dict, migration_uuid: str) -> dict:
        uuid = inst["uuid"]
        # a volume-backed server has no local root disk to grow (0: leave the disk alone)
        root_gb = 0 if bfv.root_bdm(inst.get("block_device_mapping")) else new_flavor["root_gb"]
        self.driver.resize(uuid, new_flavor["memory_mb"], new_flavor["vcpus"], root_gb)
        self._update(uuid, task_state=states.RESIZE_FINISH)
        if inst["vm_state"] == states.STOPPED:
            self.driver.power_off(uuid, timeout=0)
        self._migration_status(migration_uuid, "finished")
        return {"vm_state": states.RESIZED, "flavor": new_flavor, "system_metadata": self._resize_sysmeta(inst)}

    def finish_resize(self, instance_uuid: str, migration_uuid: str, new_flavor: dict, disk_info: dict,
                      request_id: str | None = None) -> None:
        """On the destination: the ports bound here, the disk copied from the source, the guest
        made and started (if it ran), the volumes plugged in: VERIFY_RESIZE."""
        uuid, moved = instance_uuid, {}

        def go(inst):
            mig = self._migration(migration_uuid)
            moved["source"] = mig["source_compute"]
            self._update(uuid, task_state=states.RESIZE_FINISH)
            sysmeta, was = self._resize_sysmeta(inst), inst["vm_state"]
            inst = {**inst, "flavor": new_flavor}
            try:
                vifs = network.rebind(inst.get("network_info") or [], self.host)
                moved["ports"] = True
                connected = self._connected_volumes(inst)
                spec = self._moved_spec(inst, vifs, connected, self._image_ref_if_any(inst))
                self.driver.finish_migration(spec, disk_info, power_on=was != states.STOPPED)
                self._attach_volumes(uuid, connected)
            finally:
                self._to_host(mig["source_compute"], "migration_transfer_done", instance_uuid=uuid)
            self._migration_status(migration_uuid, "finished")
            return {"vm_state": states.RESIZED, "flavor": new_flavor, "system_metadata": sysmeta,
                    "host": self.host, "node": self.host, "network_info": vifs}

        def undo(inst):
            if moved.get("ports"):  # back to the host the server still is on
                network.rebind(inst.get("network_info") or [], moved["source"])
            self._move_failed(migration_uuid)(inst)

        self._run(uuid, request_id, "compute_finish_resize", go, error_state=states.ERROR, on_error=undo)

    def migration_transfer_done(self, instance_uuid: str) -> None:
        """On the source: the destination has the disk (or gave up): the export ends."""
        self.driver.migration_transfer_done(instance_uuid)

    def confirm_resize(self, instance_uuid: str, migration_uuid: str = "", request_id: str | None = None) -> None:
        """On the source: its copy of the guest goes (or a resize in place forgets its backup),
        and with it the room the migration held here."""
        uuid = instance_uuid
        mig = self.conductor.migration_get(migration_uuid=migration_uuid) or {}
        here = mig.get("dest_compute", self.host) == self.host

        def go(inst):
            if here:
                self.driver.confirm_resize(uuid)
            else:
                self.driver.confirm_migration(uuid)
            clients.release_allocations(migration_uuid)
            self._migration_status(migration_uuid, "confirmed")
            sysmeta = dict(inst.get("system_metadata") or {})
            sysmeta.pop("old_flavor", None)
            return {"vm_state": sysmeta.pop("old_vm_state", states.ACTIVE), "system_metadata": sysmeta}

        self._run(uuid, request_id, "compute_confirm_resize", go, error_state=states.ERROR, local=here)

    def revert_resize(self, instance_uuid: str, migration_uuid: str = "", request_id: str | None = None) -> None:
        """On the destination: its guest goes and the source finishes the revert (or, in
        place, the guest goes back to its old size here)."""
        uuid = instance_uuid
        mig = self.conductor.migration_get(migration_uuid=migration_uuid) or {}
        source = mig.get("source_compute") or self.host
        if source == self.host:
            def back(inst):
                sysmeta = dict(inst.get("system_metadata") or {})
                old, was = sysmeta.pop("old_flavor", inst["flavor"]), sysmeta.pop("old_vm_state", states.ACTIVE)
                self.driver.revert_resize(uuid)
                if was == states.STOPPED:
                    self.driver.power_off(uuid, timeout=0)
                self._revert_claim(uuid, migration_uuid)
                self._migration_status(migration_uuid, "reverted")
                return {"vm_state": was, "flavor": old, "system_metadata": sysmeta}
            self._run(uuid, request_id, "compute_revert_resize", back, error_state=states.ERROR)
            return

        def go(inst):
            try:
                self.driver.destroy(uuid)
            except InstanceNotFound:
                pass
            return {"task_state": states.RESIZE_REVERTING}

        if self._run(uuid, request_id, "compute_revert_resize", go, error_state=states.ERROR, local=False):
            self._to_host(source, "finish_revert_resize", instance_uuid=uuid, migration_uuid=migration_uuid,
                          request_id=request_id)

    def finish_revert_resize(self, instance_uuid: str, migration_uuid: str,
                             request_id: str | None = None) -> None:
        """On the source: the ports bound here again, the stopped guest started again (if it
        ran), the instance back to its old flavor and its old room."""
        def go(inst):
            sysmeta = dict(inst.get("system_metadata") or {})
            old, was = sysmeta.pop("old_flavor", inst["flavor"]), sysmeta.pop("old_vm_state", states.ACTIVE)
            vifs = network.rebind(inst.get("network_info") or [], self.host)
            self._connected_volumes(inst)  # the attachments name this host again
            self.driver.finish_revert_migration(inst["uuid"], power_on=was != states.STOPPED)
            self._revert_claim(inst["uuid"], migration_uuid)
            self._migration_status(migration_uuid, "reverted")
            return {"vm_state": was, "flavor": old, "system_metadata": sysmeta, "host": self.host,
                    "node": self.host, "network_info": vifs}
        self._run(instance_uuid, request_id, "compute_finish_revert_resize", go, error_state=states.ERROR)

    def drop_migration_source(self, instance_uuid: str) -> None:
        """On the source: the server was deleted while its move waited for confirmation."""
        with self._lock(instance_uuid):
            try:
                self.driver.confirm_migration(instance_uuid)
            except InstanceNotFound:
                pass

    def _drop_resize_source(self, inst: dict) -> None:
        """A server deleted in VERIFY_RESIZE: the source's copy and the room it held go too."""
        mig = self.conductor.unconfirmed_migration(instance_uuid=inst["uuid"])
        if mig is None:
            return
        if mig["source_compute"] != self.host:
            try:
                self._to_host(mig["source_compute"], "drop_migration_source", instance_uuid=inst["uuid"])
            except errors.ApiError as e:
                log.warning("the copy of %s on %s was not removed: %s", inst["uuid"], mig["source_compute"],
                            e.message)
        clients.release_allocations(mig["uuid"])
        self._migration_status(mig["uuid"], "confirmed")

    # live migration

    def live_migration(self, instance_uuid: str, migration_uuid: str = "", request_id: str | None = None,
                       block_migration: bool | None = None) -> None:
        """On the source: the destination prepares, the running guest moves (libvirt), the
        destination takes it over; the source's room is given back."""
        uuid, progress = instance_uuid, {}

        def go(inst):
            mig = self._migration(migration_uuid)
            dest = progress["dest"] = mig["dest_compute"]
            self._migration_status(migration_uuid, "preparing")
            info = self.driver.live_migration_info(uuid)
            prepared = self._call_host(dest, "pre_live_migration", timeout=1800, instance_uuid=uuid, info=info)
            if migration_uuid in self._aborts:
                raise VirtError(f"the live migration of {uuid} was cancelled")
            self._migration_status(migration_uuid, "running")
            self.driver.live_migrate(uuid, prepared, progress=lambda figures: self.conductor.migration_update(
                migration_uuid=migration_uuid, **figures))
            progress["moved"] = True
            self._migration_status(migration_uuid, "post-migrating")
            after = self._call_host(dest, "post_live_migration_at_destination", instance_uuid=uuid,
                                    running=inst["vm_state"] == states.ACTIVE)
            clients.release_allocations(migration_uuid)
            self._migration_status(migration_uuid, "completed")
            return {"host": dest, "node": dest, **after}

        def undo(inst):
            if progress.get("moved"):  # the guest runs there, only the bookkeeping failed
                self._update(uuid, host=progress["dest"], node=progress["dest"])
                self._migration_status(migration_uuid, "error")
                return
            if progress.get("dest"):
                try:
                    self._to_host(progress["dest"], "rollback_live_migration_at_destination", instance_uuid=uuid)
                except errors.ApiError:
                    pass
            self._move_failed(migration_uuid, "cancelled" if migration_uuid in self._aborts else "error")(inst)

        try:
            self._run(uuid, request_id, "compute_live_migration", go, local=False, on_error=undo)
        finally:
            self._aborts.discard(migration_uuid)

    def pre_live_migration(self, instance_uuid: str, info: dict) -> dict:
        """On the destination (called by the source): bridges plugged, disks ready."""
        inst = self.conductor.instance_get(instance_uuid=instance_uuid)
        if inst is None or inst["deleted"]:
            raise VirtError(f"instance {instance_uuid} is gone")
        vifs = inst.get("network_info") or []
        root = bfv.root_bdm(inst.get("block_device_mapping"))
        if root is not None:  # the guest keeps its volume's connection (served over the network)
            att = clients.get().volume.get(f"/attachments/{root['attachment_id']}")["attachment"]
            spec = self._root_volume_spec(inst, vifs, root, (att.get("connection_info") or {}).get("data") or {})
        else:
            spec = self._spec(inst, vifs, self._image_ref_if_any(inst))
        prepared = self.driver.prepare_incoming(spec, info)
        return {**prepared, "address": settings.current.migration_address, "local": bool(info.get("local"))}

    def post_live_migration_at_destination(self, instance_uuid: str, running: bool = True) -> dict:
        """On the destination (called by the source): the guest and its ports are this host's."""
        inst = self.conductor.instance_get(instance_uuid=instance_uuid) or {}
        vifs = network.rebind(inst.get("network_info") or [], self.host)
        info = self.driver.finish_incoming(instance_uuid, running=running)
        return {"network_info": vifs, "power_state": _POWER.get(info.state, 0)}

    def rollback_live_migration_at_destination(self, instance_uuid: str) -> None:
        self.driver.rollback_incoming(instance_uuid)

    def live_migration_abort(self, instance_uuid: str, migration_uuid: str) -> None:
        """Cancel a live migration: before it runs, it never starts; while it runs, libvirt's job
        is aborted (the guest stays here)."""
        self._aborts.add(migration_uuid)
        mig = self.conductor.migration_get(migration_uuid=migration_uuid) or {}
        if mig.get("status") == "running":
            try:
                self.driver.live_migration_abort(instance_uuid)
            except VirtError as e:
                log.warning("live migration of %s not aborted: %s", instance_uuid, e)

    def live_migration_force_complete(self, instance_uuid: str, migration_uuid: str) -> None:
        try:
            self.driver.live_migration_force_complete(instance_uuid)
        except VirtError as e:
            log.warning("live migration of %s not forced to complete: %s", instance_uuid, e)

    # evacuation

    def evacuate_instance(self, instance_uuid: str, migration_uuid: str = "", request_id: str | None = None) -> None:
        """On the destination: the server rebuilt here from its image (its disk was on the dead
        host) or around its root volume, ports and volumes connected here."""
        uuid = instance_uuid

        def go(inst):
            self._migration_status(migration_uuid, "pre-migrating")
            self._update(uuid, task_state=states.REBUILD_SPAWNING)
            vifs = network.rebind(inst.get("network_info") or [], self.host)
            connected = self._connected_volumes(inst)
            image = None if bfv.root_bdm(inst.get("block_device_mapping")) else self._image_ref(inst)
            self.driver.spawn(self._moved_spec(inst, vifs, connected, image))
            self._attach_volumes(uuid, connected)
            done = {"vm_state": states.ACTIVE, "launched_at": iso(utcnow())}
            if inst["vm_state"] == states.STOPPED:  # (before compute 2.95 a stopped server stays stopped)
                self.driver.power_off(uuid, timeout=0)
                done = {"vm_state": states.STOPPED}
            self._migration_status(migration_uuid, "done")
            return {**done, "host": self.host, "node": self.host, "network_info": vifs}

        def undo(inst):
            try:
                self.driver.destroy(uuid)
            except Exception:
                log.exception("partial guest of %s not removed", uuid)
            self._migration_status(migration_uuid, "failed")
            if self.node_uuid:
                clients.get().placement.drop_provider(uuid, self.node_uuid)

        self._run(uuid, request_id, "compute_rebuild_instance", go, error_state=states.ERROR, on_error=undo)

    def _cleanup_evacuated(self) -> None:
        """Servers evacuated while this host was down: its stale copies go (their disks were not
        shared: the servers were rebuilt elsewhere), and the room they still held here."""
        for mig in self.conductor.evacuations_from(host=self.host):
            uuid = mig["instance_uuid"]
            try:
                with self._lock(uuid):
                    self.driver.destroy(uuid)
            except InstanceNotFound:
                pass
            except Exception:
                log.exception("the stale copy of evacuated server %s was not removed", uuid)
                continue
            if self.node_uuid:
                try:
                    clients.get().placement.drop_provider(uuid, self.node_uuid)
                except errors.ApiError as e:
                    log.warning("room of evacuated server %s on %s not given back: %s", uuid, self.host, e.message)
            self._migration_status(mig["uuid"], "completed")
            log.info("evacuated server %s removed from %s", uuid, self.host)

    # -- snapshots and shelving

    def snapshot_instance(self, instance_uuid: str, request_id: str | None = None, image_id: str = "") -> None:
        def go(inst):
            self._update(inst["uuid"], task_state=states.IMAGE_PENDING_UPLOAD)
            self._upload_snapshot(inst, image_id, clear_task=True)
            return {}
        if not self._run(instance_uuid, request_id, "compute_snapshot_instance", go):
            try:  # a failed snapshot leaves no half image behind
                clients.get().image.delete(f"/v2/images/{image_id}", ok=(204, 404))
            except errors.ApiError:
                pass

    def _upload_snapshot(self, inst: dict, image_id: str, clear_task: bool = False) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="snapshot-"))
        try:
            dest = tmp / "disk.qcow2"
            self.driver.snapshot(inst["uuid"], dest)
            # the guest is done with: the server takes other actions again while the data uploads
            self._update(inst["uuid"], task_state=states.IMAGE_UPLOADING)
            if clear_task:
                self._update(inst["uuid"], task_state=None)
            c = clients.get().image
            with open(dest, "rb") as f:
                r = c.http.put(f"{c.url}/v2/images/{image_id}/file", content=f,
                               headers={"X-Auth-Token": c.auth.token(),
                                        "Content-Type": "application/octet-stream"}, timeout=600)
            if r.status_code != 204:
                raise VirtError(f"snapshot upload to the image service failed ({r.status_code}): {r.text[:200]}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def shelve_instance(self, instance_uuid: str, request_id: str | None = None, image_id: str = "") -> None:
        def go(inst):
            self.driver.power_off(inst["uuid"], timeout=10)
            sysmeta = dict(inst.get("system_metadata") or {})
            if image_id:  # no image for a volume-backed server: its volumes stay attached
                self._update(inst["uuid"], task_state=states.SHELVING_IMAGE_UPLOADING)
                self._upload_snapshot(inst, image_id)
                sysmeta["shelved_image_id"] = image_id
            self._update(inst["uuid"], task_state=states.SHELVING_OFFLOADING)
            self.driver.destroy(inst["uuid"])
            clients.release_allocations(inst["uuid"])
            return {"vm_state": states.SHELVED_OFFLOADED, "system_metadata": sysmeta, "host": None, "node": None}
        self._run(instance_uuid, request_id, "compute_shelve_instance", go)

    def unshelve_instance(self, instance_uuid: str, request_id: str | None = None) -> None:
        def go(inst):
            sysmeta = dict(inst.get("system_metadata") or {})
            if bfv.root_bdm(inst.get("block_device_mapping")) is not None:
                self._unshelve_volume_backed(inst)
                return {"vm_state": states.ACTIVE, "system_metadata": sysmeta, "host": self.host,
                        "node": self.host}
            image_id = sysmeta.pop("shelved_image_id", None) or inst["image_ref"]
            self.driver.spawn(self._spec(inst, inst.get("network_info") or [], self._image_ref(inst, image_id)))
            try:
                clients.get().image.delete(f"/v2/images/{image_id}", ok=(204, 404))
            except errors.ApiError:
                pass
            return {"vm_state": states.ACTIVE, "system_metadata": sysmeta, "host": self.host, "node": self.host}
        self._run(instance_uuid, request_id, "compute_unshelve_instance", go, error_state=states.ERROR)

    # -- volume-backed servers (onestack.compute.bfv): the root disk vda is a volume

    def _reconnect(self, bdm: dict) -> dict:
        """The connection data of an attached volume for this host (the attachment updated)."""
        att = clients.get().volume.put(f"/attachments/{bdm['attachment_id']}", json={"attachment": {
            "connector": self._connector(bdm.get("device") or bfv.ROOT_DEVICE)}})["attachment"]
        return (att.get("connection_info") or {}).get("data") or {}

    def _root_volume_spec(self, inst: dict, vifs: list[dict], bdm: dict, data: dict) -> virt.InstanceSpec:
        spec = self._spec(inst, vifs, virt.ImageRef(None, Path("/nonexistent"), "raw"))
        spec.root_volume, spec.root_volume_format = volume_source(data), data.get("format", "raw")
        spec.root_volume_serial = bdm["volume_id"]
        return spec

    def _unshelve_volume_backed(self, inst: dict) -> None:
        """The guest defined again on this host around its volumes (kept attached while it
        was shelved): root volume as vda, the others hot-plugged, the attachments completed."""
        uuid = inst["uuid"]
        connected = [(b, self._reconnect(b)) for b in inst.get("block_device_mapping") or []
                     if b.get("destination_type") == "volume" and b.get("attachment_id")]
        root = next((c for c in connected if c[0].get("boot_index") == 0), None)
        if root is None:
            raise VirtError(f"the root volume of {uuid} could not be connected")
        self.driver.spawn(self._root_volume_spec(inst, inst.get("network_info") or [], *root))
        try:
            for bdm, data in connected:
                if bdm is not root[0]:
                    self.driver.attach_volume(uuid, volume_source(data), device=bdm["device"].removeprefix("/dev/"),
                                              serial=bdm["volume_id"], disk_format=data.get("format", "raw"))
            for bdm, _data in connected:
                clients.get().volume.post(f"/attachments/{bdm['attachment_id']}/action", json={"os-complete": None})
        except BaseException:
            try:
                self.driver.destroy(uuid)
            except Exception:
                log.exception("guest of %s not removed after a failed unshelve", uuid)
            raise

    # -- reads (bus calls)

    def get_console_output(self, instance_uuid: str, length: int | None = None) -> str:
        try:
            text = self.driver.get_console_output(instance_uuid)
        except InstanceNotFound:
            return ""
        if length is not None:
            lines = text.splitlines()
            text = "\n".join(lines[-length:]) if length > 0 else ""
        return text

    def get_diagnostics(self, instance_uuid: str) -> dict:
        return self.driver.diagnostics(instance_uuid)

    def vnc_address(self, instance_uuid: str):
        try:
            host, port = self.driver.vnc_address(instance_uuid)
        except VirtError as e:  # ConsoleUnavailable: the API shows the caller a 409
            raise errors.Conflict(f"Instance {instance_uuid} is not ready: {e}") from None
        if host in ("0.0.0.0", "::"):  # (a node's guests listen on every address: the proxy uses its own)
            host = settings.current.migration_address
        return host, port

    def serial_pty(self, instance_uuid: str):
        try:
            return self.driver.serial_pty(instance_uuid)
        except VirtError as e:
            raise errors.Conflict(f"Instance {instance_uuid} is not ready: {e}") from None

    def refresh_network_info(self, instance_uuid: str) -> None:
        with self._lock(instance_uuid):  # not between a hot-plug's read and write of network_info
            inst = self.conductor.instance_get(instance_uuid=instance_uuid)
            if inst is None or inst["deleted"]:
                return
            vifs = network.refresh(instance_uuid, inst.get("network_info") or [])
            self._update(instance_uuid, network_info=vifs)

    # -- heartbeat, resources and reconciliation

    def resources(self) -> dict:
        # the address other hosts reach this one at when servers move (the hypervisor's host_ip)
        return {**self.driver.host_resources(), "host_ip": settings.current.migration_address}

    def recover_builds(self) -> None:
        """Once, at start (Nova's _init_instance): what this host's previous run left half
        done. A build it had begun died with it (no request outlives its agent on the bus):
        the server goes to ERROR with a fault, and keeps its host, room and ports until it is
        deleted, as any build that failed on a host. A delete under way is finished."""
        received = self._received
        if received is None:
            return
        for inst in self.conductor.instances_on_host(host=self.host):
            uuid = inst["uuid"]
            if inst["task_state"] == states.DELETING:
                self.terminate_instance(uuid)
            elif inst["vm_state"] == states.BUILDING and inst["task_state"] in _BUILD_STEPS:
                with self._lock(uuid):
                    if uuid in received:
                        continue  # a build of this run
                    log.warning("build of %s was interrupted by a restart of %s: ERROR", uuid, self.host)
                    self.conductor.instance_update(
                        instance_uuid=uuid, expected_task_state=inst["task_state"], check=True,
                        vm_state=states.ERROR, task_state=None, power_state=self._power(uuid),
                        fault={"code": 500, "message": f"Build of instance {uuid} aborted: its compute host "
                                                       f"{self.host} restarted during the build.",
                               "created": iso(utcnow())})
        self._received = None

    def reconcile(self) -> None:
        """Compare libvirt with what the database says lives here (never kill unknown guests)."""
        try:
            self._cleanup_evacuated()
        except Exception:
            log.exception("cleaning up evacuated servers on %s failed", self.host)
        known = {i["uuid"]: i for i in self.conductor.instances_on_host(host=self.host)}
        present = set(self.driver.list_instances())
        for uuid in present - set(known):
            mig = self.conductor.unconfirmed_migration(instance_uuid=uuid)
            if mig is not None and mig["source_compute"] == self.host:
                continue  # the stopped source copy of a move waiting to be confirmed or reverted
            log.warning("guest %s runs on %s but no server of this cloud owns it: left alone", uuid, self.host)
        for uuid, inst in known.items():
            if inst["vm_state"] in (states.BUILDING, states.SHELVED_OFFLOADED) or inst["task_state"]:
                continue
            if uuid not in present:
                if inst["vm_state"] != states.ERROR:  # (a server in ERROR keeps the fault that put it there)
                    self._update(uuid, vm_state=states.ERROR, power_state=0,
                                 fault={"code": 500, "message": "The guest's domain vanished from the hypervisor.",
                                        "created": iso(utcnow())})
                elif inst["power_state"]:
                    self._update(uuid, power_state=0)
                continue
            power = self._power(uuid)
            if power != inst["power_state"]:
                changes = {"power_state": power}
                if power == 4 and inst["vm_state"] == states.ACTIVE:
                    changes["vm_state"] = states.STOPPED  # the guest shut itself down
                self._update(uuid, **changes)
