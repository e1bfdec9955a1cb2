"""The compute settings every module reads (set once from the config at start)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Settings:
    public_url: str = "http://127.0.0.1:8800"
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 512
    weigher: str = "spread"
    max_placement_results: int = 1000
    heartbeat_interval: int = 10
    service_down_time: int = 60
    availability_zone: str = "nova"
    force_config_drive: bool = False
    allow_resize_to_same_host: bool = True
    migration_address: str = "127.0.0.1"
    build_timeout: int = 600
    quotas: dict[str, int] = field(default_factory=dict)


current = Settings()


def configure(conf) -> Settings:
    c = conf.compute
    current.public_url = conf.public_url
    for key in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio",
                "reserved_host_memory_mb", "weigher", "max_placement_results", "heartbeat_interval", "service_down_time",
                "availability_zone", "force_config_drive", "allow_resize_to_same_host", "migration_address", "build_timeout"):
        setattr(current, key, getattr(c, key))
    current.quotas = {"instances": c.quota_instances, "cores": c.quota_cores, "ram": c.quota_ram,
                      "key_pairs": c.quota_key_pairs, "metadata_items": c.quota_metadata_items,
                      "server_groups": c.quota_server_groups,
                      "server_group_members": c.quota_server_group_members,
                      # Nova still reports these (2.57 dropped the injected-file ones from the API)
                      "injected_files": 5, "injected_file_content_bytes": 10240,
                      "injected_file_path_bytes": 255}
    return current
