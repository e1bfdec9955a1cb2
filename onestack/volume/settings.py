"""The volume settings every module reads (set once from the config at start)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from onestack.config import ConfigError


@dataclass
class Settings:
    public_url: str = "http://127.0.0.1:8800"
    backend: str = "file"
    backend_name: str = "filedriver-1"
    host: str = ""
    volumes_dir: Path = Path("/var/lib/onestack/volumes")
    volume_format: str = "raw"
    capacity_gb: int = 0
    max_over_subscription_ratio: float = 20.0
    availability_zone: str = "nova"
    default_volume_type: str = "filedriver-1"
    report_interval: int = 10
    service_down_time: int = 60
    attach_protocol: str = "auto"  # auto | file | nbd (see onestack.volume.exports)
    export_address: str = "127.0.0.1"
    export_tls_dir: str = ""
    backup_driver: str = "object"
    backup_chunk_mb: int = 4
    backup_dir: Path = Path("/var/lib/onestack/backups")
    backup_container: str = "volumebackups"
    quotas: dict[str, int] = field(default_factory=dict)

    @property
    def service_host(self) -> str:
        """cinder-volume's host: ``host@backend``."""
        return f"{self.host}@{self.backend_name}"


current = Settings()


def configure(conf) -> Settings:
    v = conf.volume
    current.public_url = conf.public_url
    for key in ("backend", "backend_name", "volume_format", "capacity_gb", "max_over_subscription_ratio",
                "availability_zone", "report_interval", "service_down_time", "backup_driver", "backup_container", "backup_chunk_mb"):
        setattr(current, key, getattr(v, key))
    if v.attach_protocol not in ("auto", "file", "nbd"):
        raise ConfigError(f"config key 'volume.attach_protocol' must be auto, file or nbd; got {v.attach_protocol!r}")
    current.attach_protocol, current.export_address = v.attach_protocol, v.export_address
    current.export_tls_dir = v.export_tls_dir
    current.host = v.host or conf.compute.host or socket.gethostname()
    current.volumes_dir = Path(v.volumes_dir) if v.volumes_dir else conf.state_dir / "volumes"
    current.backup_dir = Path(v.backup_dir) if v.backup_dir else conf.state_dir / "backups"
    current.default_volume_type = v.default_volume_type or v.backend_name
    current.quotas = {"volumes": v.quota_volumes, "gigabytes": v.quota_gigabytes, "snapshots": v.quota_snapshots,
                      "backups": v.quota_backups, "backup_gigabytes": v.quota_backup_gigabytes,
                      "per_volume_gigabytes": v.quota_per_volume_gigabytes, "groups": v.quota_groups}
    return current
