"""The chunked backup store on a directory target: what is stored, what an
incremental backup shares with its parent, restores to raw and qcow2 files."""

from __future__ import annotations

import subprocess

import pytest

from onestack.volume.backends.file import BackendError
from onestack.volume.backups import ChunkedStore, DirectoryTarget

MiB = 1024 * 1024


def poke(path, offset, byte, length=MiB):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(byte * length)


def peek(path, offset, length=MiB):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.fixture
def store(tmp_path):
    return ChunkedStore(DirectoryTarget(tmp_path / "backups"), chunk_size=MiB, work_dir=tmp_path)


def test_full_then_incremental(store, tmp_path):
    vol = tmp_path / "vol"
    with open(vol, "wb") as f:
        f.truncate(64 * MiB)
    poke(vol, 0, b"a")
    poke(vol, 40 * MiB, b"b")
    full = store.write("b1", "v1", vol, "raw", None)
    assert full["object_count"] == 3 and full["container"] == "volumebackups"
    files = sorted(p.name for p in (tmp_path / "backups" / "volumebackups" / "volume_v1" / "b1").iterdir())
    assert files == ["chunk-00000000", "chunk-00000040", "manifest"]

    poke(vol, 0, b"c")
    poke(vol, 40 * MiB, b"\0")  # data removed since the full backup
    poke(vol, 63 * MiB, b"d")
    inc = store.write("b2", "v1", vol, "raw", None, parent={"id": "b1", "container": "volumebackups"})
    assert inc["object_count"] == 3  # chunks 0 and 63, and the manifest

    out = tmp_path / "out"
    with open(out, "wb") as f:
        f.truncate(64 * MiB)
    poke(out, 10 * MiB, b"x")  # restoring replaces everything
    store.read("b2", "v1", None, out, "raw")
    assert peek(out, 0)[:1] == b"c" and peek(out, 63 * MiB)[:1] == b"d"
    assert peek(out, 40 * MiB) == bytes(MiB) and peek(out, 10 * MiB) == bytes(MiB)
    store.read("b1", "v1", None, out, "raw")
    assert peek(out, 0)[:1] == b"a" and peek(out, 40 * MiB)[:1] == b"b" and peek(out, 63 * MiB) == bytes(MiB)

    # deleting the child removes only its own objects: the parent still restores
    store.delete("b2", "v1", None)
    assert not (tmp_path / "backups" / "volumebackups" / "volume_v1" / "b2").exists()
    store.read("b1", "v1", None, out, "raw")
    assert peek(out, 40 * MiB)[:1] == b"b"
    store.delete("b1", "v1", None)
    assert not (tmp_path / "backups" / "volumebackups" / "volume_v1").exists()


def test_qcow2_source_and_destination(store, tmp_path):
    src = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(src), "32M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 8M 1M", str(src)], check=True,
                   capture_output=True)
    assert store.write("q1", "v2", src, "qcow2", "mine")["object_count"] == 2
    dest = tmp_path / "dest.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(dest), "32M"], check=True)
    store.read("q1", "v2", "mine", dest, "qcow2")
    raw = tmp_path / "check.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(dest), str(raw)], check=True)
    assert peek(raw, 8 * MiB) == b"\x5a" * MiB and peek(raw, 0) == bytes(MiB)


def test_refusals(store, tmp_path):
    vol = tmp_path / "vol"
    with open(vol, "wb") as f:
        f.truncate(8 * MiB)
    poke(vol, 0, b"z")
    with pytest.raises(BackendError, match="invalid backup container"):
        store.write("b", "v", vol, "raw", "../escape")
    store.write("b", "v", vol, "raw", None)
    small = tmp_path / "small"
    with open(small, "wb") as f:
        f.truncate(4 * MiB)
    with pytest.raises(BackendError, match="smaller than the backup"):
        store.read("b", "v", None, small, "raw")
    chunk = tmp_path / "backups" / "volumebackups" / "volume_v" / "b" / "chunk-00000000"
    chunk.write_bytes(__import__("zlib").compress(b"y" * MiB))
    with pytest.raises(BackendError, match="corrupt"):
        store.read("b", "v", None, vol, "raw")
