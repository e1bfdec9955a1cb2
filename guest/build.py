#!/usr/bin/env python3
"""Build onestack's tiny guest image (our CirrOS) from Debian packages only.

    python guest/build.py OUTPUT.qcow2 [--cache DIR] [--size-mib N]
    (or `onestack image build tiny`, which caches the result: guest/tiny.py)

The result is a standard bootable disk: an MBR (syslinux's mbr.bin), one FAT
partition holding syslinux, the Debian cloud kernel and an initramfs that is the
whole root filesystem (busybox-static, dropbear, the virtio modules).  Nothing
is mounted and no loop device is used: the FAT filesystem is written into a
file with mkfs.vfat + mcopy, made bootable with `syslinux --install` (which
works on a file through mtools), and spliced into the disk file at the
partition's offset.  Packages come from the configured apt mirrors through
`apt-get download`; they are extracted with `dpkg-deb -x`, never installed.

Host tools (Debian packages): see guest/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import lzma
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

KERNEL_META = "linux-image-cloud-amd64"
# dropbear is dynamically linked: these bring the shared libraries it needs.
USER_PACKAGES = [
    "busybox-static",
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libgmp10",
    "libtomcrypt1",
    "libtommath1",
    "zlib1g",
]
# From libc6 only the loader and libc itself are needed (nss_files is inside libc).
LIBC_FILES = ["ld-linux-x86-64.so.2", "libc.so.6"]
# Loaded in this order; their own dependencies are found from the .ko files and
# loaded first.  ext4 is built into the cloud kernel; vfat/isofs (+ the two
# character sets a vfat mount asks for: codepage 437 and iocharset ascii, the
# kernel's defaults) are for a config drive, sr_mod + ata_piix for one that is a
# CD-ROM on IDE (Nova's default for x86) or virtio-scsi, virtio_scsi/virtio_rng
# for guests given those devices.  (rcS loads ata_piix in the background: probing
# the IDE ports takes ~0.4 s under TCG.)
MODULES = [
    "ata_piix",  # first: it probes in the background while the rest load
    "virtio_ring",
    "virtio",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_scsi",
    "virtio_rng",
    "virtio_balloon",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "isofs",
    "sr_mod",
]

USER = "cirros"  # the login Tempest and most docs expect of a test image
PASSWORD = "gocubsgo"  # console password, as CirrOS documents it
HOSTNAME = "onestack-tiny"
MBR_BIN = Path("/usr/lib/syslinux/mbr/mbr.bin")
SECTOR = 512
PART_START = 2048  # first partition at 1 MiB, as fdisk would place it


# Host tools the build runs, and the Debian package of each.
HOST_TOOLS = {
    "apt-get": "apt",
    "dpkg-deb": "dpkg",
    "mkfs.vfat": "dosfstools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "sfdisk": "fdisk",
    "qemu-img": "qemu-utils",
}


class BuildError(RuntimeError):
    """A build step failed; the message is one line that says which and why."""


def log(msg: str) -> None:
    print(f"[guest] {msg}", file=sys.stderr, flush=True)


def check_host_tools() -> None:
    """Fail before any download if a host tool is missing, naming the packages."""
    missing = {tool: pkg for tool, pkg in HOST_TOOLS.items() if not shutil.which(tool)}
    if not MBR_BIN.exists():
        missing[str(MBR_BIN)] = "syslinux-common"
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise BuildError(
            f"missing host tools for the guest image: {', '.join(missing)} "
            f"(apt-get install --no-install-recommends {pkgs})"
        )


def run(*cmd: str | Path, **kw) -> subprocess.CompletedProcess:
    argv = [str(c) for c in cmd]
    try:
        return subprocess.run(argv, check=True, **kw)
    except FileNotFoundError as e:
        pkg = HOST_TOOLS.get(argv[0], "see guest/README.md")
        raise BuildError(f"{argv[0]} not found (Debian package: {pkg})") from e
    except subprocess.CalledProcessError as e:
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        last = (err or "").strip().splitlines()[-1:]  # the tool's own last word, if captured
        detail = f": {last[0].strip()}" if last else ""
        raise BuildError(f"{' '.join(argv)} failed (exit status {e.returncode}){detail}") from e


# --- packages -----------------------------------------------------------------


def default_cache() -> Path:
    if env := os.environ.get("ONESTACK_GUEST_CACHE"):
        return Path(env)
    system = Path("/var/cache/onestack/guest")
    if os.geteuid() == 0:
        return system
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "onestack" / "guest"


def fetch_deb(name: str, cache: Path) -> Path:
    """Return the cached .deb of `name`, downloading it with apt-get if absent."""
    found = sorted(cache.glob(f"{name}_*.deb"))
    if not found:
        log(f"apt-get download {name}")
        # root's apt drops to the _apt user, who cannot write our cache dir;
        # stderr is kept so a failure ("E: Unable to locate package") is one line
        run(
            "apt-get",
            "-q",
            "-o",
            "APT::Sandbox::User=root",
            "download",
            name,
            cwd=cache,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        found = sorted(cache.glob(f"{name}_*.deb"))
    if not found:
        raise BuildError(f"apt-get download {name} produced no .deb in {cache}")
    return found[-1]


def kernel_package(cache: Path) -> str:
    """The versioned kernel package the cloud metapackage points at."""
    meta = fetch_deb(KERNEL_META, cache)
    depends = run("dpkg-deb", "-f", meta, "Depends", capture_output=True, text=True).stdout
    return depends.split(",")[0].split()[0]


def extract(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    run("dpkg-deb", "-x", deb, dest)
    return dest


# --- kernel modules -----------------------------------------------------------


def modinfo_depends(ko: Path) -> list[str]:
    """Read `depends=` from the module's .modinfo strings (no kmod/depmod needed)."""
    data = ko.read_bytes()
    if ko.suffix == ".xz":
        data = lzma.decompress(data)
    at = data.find(b"\0depends=")
    if at < 0:
        return []
    value = data[at + 9 : data.index(b"\0", at + 9)].decode()
    return [d for d in value.split(",") if d]


def module_index(moddir: Path) -> dict[str, Path]:
    """Map module name (with '-' as '_') to its file."""
    index = {}
    for ko in moddir.rglob("*.ko*"):
        name = ko.name.split(".ko")[0].replace("-", "_")
        index[name] = ko
    return index


def module_load_order(wanted: Iterable[str], index: dict[str, Path]) -> list[str]:
    """Depth-first: every module after the modules it depends on."""
    order: list[str] = []

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in order:
            return
        if name not in index:
            raise BuildError(f"kernel module {name} not in the kernel package")
        for dep in modinfo_depends(index[name]):
            visit(dep)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


def install_modules(kroot: Path, root: Path) -> list[str]:
    moddir = next((kroot / "lib/modules").iterdir())
    index = module_index(moddir)
    order = module_load_order(MODULES, index)
    dest = root / "lib/modules"
    dest.mkdir(parents=True)
    for name in order:
        src = index[name]
        data = src.read_bytes()
        if src.name.endswith(".xz"):  # busybox insmod wants a plain .ko
            data = lzma.decompress(data)
        elif src.name.endswith(".zst"):
            data = run("zstd", "-dc", src, capture_output=True).stdout
        (dest / f"{name}.ko").write_bytes(data)
    write(root, "etc/modules", "\n".join(order) + "\n")
    return order


# --- root filesystem ------------------------------------------------------------


def install_busybox(bbroot: Path, root: Path) -> None:
    busybox = root / "bin/busybox"
    busybox.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(bbroot / "bin/busybox", busybox)
    # setuid so `su`, `passwd` and `ping` work for the login user; busybox drops
    # the privilege itself for every other applet.
    busybox.chmod(0o4755)
    # One symlink per applet; the static binary runs on the build host too.
    applets = run(busybox, "--list-full", capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = root / applet
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to("/bin/busybox")


def install_dropbear(extracted: dict[str, Path], root: Path) -> None:
    db = extracted["dropbear-bin"]
    for rel in ["usr/sbin/dropbear", "usr/bin/dropbearkey", "usr/bin/dbclient"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(db / rel, root / rel)
    libdir = root / "lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True, exist_ok=True)
    for name in LIBC_FILES:
        shutil.copy2(extracted["libc6"] / "lib/x86_64-linux-gnu" / name, libdir / name)
    (root / "lib64").mkdir(exist_ok=True)
    (root / "lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    for pkg in ["libcrypt1", "libgmp10", "libtomcrypt1", "libtommath1", "zlib1g"]:
        for so in extracted[pkg].rglob("*.so*"):
            target = libdir / so.name
            if so.is_symlink():
                target.symlink_to(os.readlink(so))
            else:
                shutil.copy2(so, target)


def write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def password_hash(busybox: Path) -> str:
    return run(
        busybox, "mkpasswd", "-m", "sha512", PASSWORD, capture_output=True, text=True
    ).stdout.strip()


GUEST_DIR = Path(__file__).resolve().parent / "rootfs"


def install_config(root: Path) -> None:
    """The guest's own scripts live as plain files in guest/rootfs/."""
    for src in GUEST_DIR.rglob("*"):
        if src.is_file():
            rel = src.relative_to(GUEST_DIR)
            text = src.read_text()
            write(root, str(rel), text, 0o755 if text.startswith("#!") else 0o644)
    uid = 1000
    write(
        root,
        "etc/passwd",
        f"root:x:0:0:root:/root:/bin/sh\n{USER}:x:{uid}:{uid}:{USER}:/home/{USER}:/bin/sh\n",
    )
    write(root, "etc/group", f"root:x:0:\ntty:x:5:\ndisk:x:6:\n{USER}:x:{uid}:\n")
    # one documented console password, for root too (su), as the banner says
    hashed = password_hash(root / "bin/busybox")
    write(root, "etc/shadow", f"root:{hashed}:1::::::\n{USER}:{hashed}:1::::::\n", 0o600)
    write(root, "etc/hostname", HOSTNAME + "\n")
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "root",
        "var/log",
        "etc/dropbear",
        f"home/{USER}/.ssh",
    ]:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)


def build_rootfs(extracted: dict[str, Path], kroot: Path, root: Path) -> list[str]:
    install_busybox(extracted["busybox-static"], root)
    install_dropbear(extracted, root)
    order = install_modules(kroot, root)
    install_config(root)
    return order


# --- initramfs (newc cpio written here, so files are root-owned and the build is
# reproducible without needing root or the cpio tool) -------------------------------


def _cpio_entry(
    name: str,
    mode: int,
    data: bytes,
    uid: int = 0,
    gid: int = 0,
    rdev: tuple[int, int] = (0, 0),
    ino: int = 0,
) -> bytes:
    namez = name.encode() + b"\0"
    fields = [ino, mode, uid, gid, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(namez), 0]
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    pad = lambda n: b"\0" * (-n % 4)  # noqa: E731
    return header + namez + pad(110 + len(namez)) + data + pad(len(data))


def make_initramfs(root: Path, out: Path) -> None:
    ino = 1
    owner = {f"home/{USER}": 1000, f"home/{USER}/.ssh": 1000}
    with gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as z:
        # the kernel needs /dev/console before /init can mount devtmpfs
        z.write(_cpio_entry("dev", 0o40755, b"", ino=ino))
        z.write(_cpio_entry("dev/console", 0o20600, b"", rdev=(5, 1), ino=ino + 1))
        ino += 2
        for path in sorted(root.rglob("*")):
            rel = str(path.relative_to(root))
            if rel in ("dev", "dev/console"):
                continue
            st = path.lstat()
            if path.is_symlink():
                data = os.readlink(path).encode()
            elif path.is_file():
                data = path.read_bytes()
            else:
                data = b""
            uid = owner.get(rel, 0)
            z.write(_cpio_entry(rel, st.st_mode, data, uid=uid, gid=uid, ino=ino))
            ino += 1
        z.write(_cpio_entry("TRAILER!!!", 0, b""))


# --- disk -------------------------------------------------------------------------

# `quiet`: printing the whole kernel log on the emulated serial port costs ~0.4 s
# under TCG; it stays readable with `dmesg` in the guest.  panic=5: reboot, not hang.
SYSLINUX_CFG = """\
SERIAL 0 115200
DEFAULT tiny
PROMPT 0
TIMEOUT 1
LABEL tiny
  KERNEL /vmlinuz
  INITRD /initrd.gz
  APPEND console=tty0 console=ttyS0,115200n8 quiet panic=5
"""


def make_fat(part: Path, size_mib: int, files: dict[str, Path], cfg: str) -> None:
    run("mkfs.vfat", "-n", "ONESTACK", "-C", part, str(size_mib * 1024), stdout=subprocess.DEVNULL)
    cfg_file = part.with_name("syslinux.cfg")
    cfg_file.write_text(cfg)
    for name, src in {**files, "syslinux.cfg": cfg_file}.items():
        run("mcopy", "-i", part, src, f"::{name}")
    # syslinux works on an unmounted file via mtools; it writes ldlinux.sys/.c32
    run("syslinux", "--install", part)


def make_disk(disk: Path, part: Path, size_mib: int) -> None:
    with open(disk, "wb") as f:
        f.truncate(size_mib * 1024 * 1024)
    # one bootable FAT32(LBA) partition filling the disk
    run(
        "sfdisk",
        "--quiet",
        "--no-reread",
        "--no-tell-kernel",
        disk,
        input=f"label: dos\nstart={PART_START}, type=c, bootable\n",
        text=True,
    )
    with open(disk, "r+b") as f:
        f.write(MBR_BIN.read_bytes()[:440])  # boot code only; keep the partition table
        f.seek(PART_START * SECTOR)
        with open(part, "rb") as p:
            shutil.copyfileobj(p, f)


def to_qcow2(raw: Path, out: Path) -> None:
    run("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw, out)


# --- main -------------------------------------------------------------------------


STEPS = 6  # progress(step, STEPS, text) is called once before each of them


def build(
    output: Path,
    cache: Path | None = None,
    size_mib: int = 64,
    progress: Callable[[int, int, str], None] | None = None,
    say: Callable[[str], None] = log,
) -> Path:
    """Build the image at `output`; `progress` lets a CLI draw a progress bar.

    `say` gets the few informative lines (modules, result); errors raise BuildError.
    """
    start = time.monotonic()
    step = progress or (lambda n, total, text: say(f"[{n}/{total}] {text}"))
    check_host_tools()
    cache = cache or default_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="onestack-guest-") as tmp:
        work = Path(tmp)
        step(1, STEPS, f"fetching Debian packages into {cache}")
        kpkg = kernel_package(cache)
        extracted = {p: extract(fetch_deb(p, cache), work / "pkg" / p) for p in USER_PACKAGES}
        kroot = extract(fetch_deb(kpkg, cache), work / "pkg" / kpkg)

        step(2, STEPS, f"root filesystem (busybox, dropbear, modules of {kpkg})")
        root = work / "root"
        order = build_rootfs(extracted, kroot, root)
        say("modules: " + " ".join(order))

        step(3, STEPS, "initramfs")
        initrd = work / "initrd.gz"
        make_initramfs(root, initrd)

        step(4, STEPS, "FAT boot partition with syslinux")
        vmlinuz = next((kroot / "boot").glob("vmlinuz-*"))
        part = work / "part.img"
        make_fat(part, size_mib - 1, {"vmlinuz": vmlinuz, "initrd.gz": initrd}, SYSLINUX_CFG)

        step(5, STEPS, "disk with MBR and partition table")
        raw = work / "disk.raw"
        make_disk(raw, part, size_mib)

        step(6, STEPS, "compressed qcow2")
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp_out = output.with_name(output.name + ".part")
        try:
            to_qcow2(raw, tmp_out)
            tmp_out.replace(output)  # never leave a half-written image under the real name
        finally:
            tmp_out.unlink(missing_ok=True)
    say(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - start:.1f}s")
    return output


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output", type=Path)
    ap.add_argument("--cache", type=Path, default=None, help="where .debs are kept")
    ap.add_argument("--size-mib", type=int, default=64, help="virtual disk size")
    args = ap.parse_args(argv)
    try:
        build(args.output, args.cache, args.size_mib)
    except (BuildError, OSError) as e:
        log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
