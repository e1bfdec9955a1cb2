"""Which libvirt domain type this host can run: "kvm" where KVM really works, else "qemu".

/dev/kvm existing proves little: on some hosts (nested virtualisation without
unrestricted-guest support) KVM opens, creates a VM, and then fails the first
time the guest switches modes ("KVM internal error. Suberror: 1", the guest
stops). So KVM is tried: QEMU boots a 512-byte boot sector under accel=kvm that
writes "R" to the serial port in real mode, switches to protected mode, writes
"P", takes an interrupt through an IDT ("I") and writes "K" after the IRET --
the steps a bootloader takes. KVM counts as working only if all four letters
arrive within the time limit. The answer is cached for the process.

The boot sector's source (GNU as, `as --32`, linked at 0x7c00, binary):

    .code16
        cli; xorw %ax,%ax; movw %ax,%ds; movw %ax,%ss; movw $0x7c00,%sp
        movw $0x3f8,%dx; movb $'R',%al; outb %al,%dx
        lgdt gdtr; movl %cr0,%eax; orb $1,%al; movl %eax,%cr0; ljmp $0x08,$pm
    .code32
    pm: movw $0x10,%ax; movw %ax,%ds; movw %ax,%es; movw %ax,%ss; movl $0x7000,%esp
        lidt idtr; movb $'P',%al; outb %al,%dx
        int $3
        movb $'K',%al; outb %al,%dx; movb $'\\n',%al; outb %al,%dx
    1:  hlt; jmp 1b
    handler: pusha; movb $'I',%al; outb %al,%dx; popa; iret
    gdt:  null, flat 4 GiB code (0x08), flat 4 GiB data (0x10)
    idt:  vector 3 -> 0x08:handler, 32-bit interrupt gate
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

QEMU = "qemu-system-x86_64"
KVM_DEVICE = "/dev/kvm"
PROBE_TIMEOUT = 5.0  # seconds; a working KVM finishes at once (making the VM can take ~2 s)
EXPECTED = b"RPIK"

_CODE = bytes.fromhex(
    "fa31c08ed88ed0bc007cbaf803b052ee0f0116687c0f20c00c010f22c0ea227c"
    "080066b810008ed88ec08ed0bc007000000f011d8e7c0000b050eeccb04beeb0"
    "0aeef4ebfd60b049ee61cf8d742600900000000000000000ffff0000009acf00"
    "ffff00000092cf001700507c0000000000000000000000000000000000000000"
    "000000000000457c0800008e00001f006e7c"
)
PROBE_SECTOR = _CODE.ljust(510, b"\0") + b"\x55\xaa"


class Accel(NamedTuple):
    """The libvirt domain type to use and why."""

    virt_type: str  # "kvm" or "qemu"
    reason: str


_lock = threading.Lock()
_cached: Accel | None = None


def judge(serial: bytes, stderr: str, returncode: int | None) -> bool | None:
    """True: the probe finished under KVM; False: KVM failed; None: no answer yet."""
    if EXPECTED in serial:
        return True
    if "KVM internal error" in stderr or "failed to initialize kvm" in stderr.lower():
        return False
    if returncode is not None:  # QEMU ended without the guest finishing
        return False
    return None


def failure_reason(serial: bytes, stderr: str, returncode: int | None) -> str:
    """A one-line reason from what a failed probe left."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "warning:" not in ln]
    if "KVM internal error" in stderr:
        got = serial.decode(errors="replace") or "nothing"
        return f"KVM stopped the probe guest (KVM internal error; serial got {got!r})"
    if lines:
        return f"QEMU with accel=kvm failed: {lines[-1]}"
    if returncode is not None:
        return f"QEMU with accel=kvm exited with status {returncode}"
    got = serial.decode(errors="replace") or "nothing"
    return f"the probe guest did not finish under KVM in time (serial got {got!r})"


def probe_kvm(qemu: str = QEMU, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """Try KVM once: (works, reason)."""
    if not os.path.exists(KVM_DEVICE):
        return False, f"no {KVM_DEVICE}"
    try:
        os.close(os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return False, f"cannot open {KVM_DEVICE}: {e.strerror}"
    binary = shutil.which(qemu)
    if binary is None:
        return False, f"{qemu} not found"
    with tempfile.TemporaryDirectory(prefix="onestack-kvm-probe-") as tmp:
        disk = Path(tmp, "probe.img")
        disk.write_bytes(PROBE_SECTOR)
        serial, errlog = Path(tmp, "serial"), Path(tmp, "stderr")
        with open(errlog, "wb") as err:
            proc = subprocess.Popen(
                [
                    binary,
                    "-machine",
                    "pc,accel=kvm",
                    "-nodefaults",
                    "-no-user-config",
                    "-display",
                    "none",
                    "-m",
                    "16",
                    "-no-reboot",
                    "-serial",
                    f"file:{serial}",
                    "-drive",
                    f"file={disk},format=raw,if=ide",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            deadline = time.monotonic() + timeout
            while True:
                out = serial.read_bytes() if serial.exists() else b""
                text = errlog.read_text(errors="replace")
                verdict = judge(out, text, proc.poll())
                if verdict is True:
                    return True, "KVM ran the probe guest"
                if verdict is False or time.monotonic() > deadline:
                    return False, failure_reason(out, text, proc.poll())
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def detect(*, refresh: bool = False) -> Accel:
    """The domain type: kvm if KVM works here (tried once per process), else qemu (TCG)."""
    global _cached
    with _lock:
        if _cached is None or refresh:
            works, reason = probe_kvm()
            _cached = Accel("kvm" if works else "qemu", reason)
        return _cached
