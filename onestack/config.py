"""One TOML file -> typed settings.

Every key has a default and a line of documentation here; docs/configuration.md
lists the same keys (a unit test keeps the two in step). Environment variables
override the file: ``ONESTACK_<SECTION>_<KEY>``, e.g. ``ONESTACK_SERVER_PORT=9000``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onestack.common.booleans import to_bool


class ConfigError(Exception):
    """A problem with the configuration, phrased for a one-line CLI error."""


@dataclass(frozen=True)
class Key:
    type: type
    default: Any
    doc: str


# section -> key -> Key. The single source of truth for configuration.
SCHEMA: dict[str, dict[str, Key]] = {
    "server": {
        "host": Key(str, "127.0.0.1", "Address the API listens on (use 0.0.0.0 to expose)."),
        "port": Key(int, 8800, "TCP port of the single HTTP endpoint serving every API."),
        "public_url": Key(
            str, "", "Base URL written into the catalog; empty means http://<host>:<port>."
        ),
        "workers": Key(
            int, 1, "API worker processes (`onestack up --workers N`): above 1, N processes serve the "
            "APIs on the port and the main one runs conductors, schedulers and agents; needs the "
            "amqp bus and PostgreSQL."
        ),
    },
    "tls": {
        "enabled": Key(bool, False, "Serve every API over HTTPS (`onestack up --tls`): with a certificate of "
                       "onestack's own local CA under <state>/tls, unless tls.cert is set; the catalog's URLs "
                       "become https://."),
        "cert": Key(str, "", "Server certificate (PEM, chain after it) to serve instead of onestack's own "
                    "(`--tls-cert`); setting it turns TLS on."),
        "key": Key(str, "", "Private key (PEM) of tls.cert (`--tls-key`)."),
        "ca": Key(str, "", "CA certificate (PEM) that signed tls.cert, given to clients (openrc OS_CACERT, "
                  "clouds.yaml cacert) and trusted by the cloud's own calls (`--tls-ca`); empty: a publicly "
                  "trusted certificate."),
        "hsts_max_age": Key(int, 31536000, "max-age (seconds) of the Strict-Transport-Security header on "
                            "HTTPS responses; 0 sends none."),
    },
    "state": {
        "dir": Key(
            str,
            "",
            "State directory (database, keys, stores, logs); empty means /var/lib/onestack "
            "as root, else ~/.local/share/onestack.",
        ),
    },
    "database": {
        "url": Key(
            str,
            "",
            "SQLAlchemy URL; empty means SQLite (WAL) at <state>/onestack.db. "
            "PostgreSQL: postgresql+psycopg2://user:pass@host:port/db.",
        ),
        "managed": Key(bool, False, "Run PostgreSQL for the cloud (Debian's server, data in <state>/postgres, "
                       "listening on server.host:database.port, generated password) and use it; "
                       "database.url stays empty."),
        "port": Key(int, 5432, "TCP port of the PostgreSQL that database.managed runs."),
        "busy_timeout": Key(float, 30.0, "Seconds a write waits for SQLite's lock while another connection holds "
                            "it; then the request answers 503 with Retry-After (SQLite only)."),
    },
    "log": {
        "level": Key(str, "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."),
        "file": Key(str, "", "Log file for `up --detach`; empty means <state>/onestack.log."),
    },
    "node": {
        "roles": Key(str, "all", "What this machine runs: all (the all-in-one cloud), or a list of controller, "
                     "compute, network, storage (`onestack up --role`, `onestack join --role`)."),
        "controller_url": Key(str, "", "A joined node's controller (written by `onestack join`)."),
        "name": Key(str, "", "A joined node's name (its join token's; written by `onestack join`)."),
    },
    "bus": {
        "backend": Key(str, "inprocess", "Message bus backend: inprocess (threads, the all-in-one "
                       "default) or amqp (RabbitMQ at bus.url)."),
        "url": Key(str, "", "Broker URL of the amqp backend: amqp://user:password@host:5672/vhost."),
        "managed": Key(bool, False, "With backend amqp: run RabbitMQ for the cloud (Debian's server, data in "
                       "<state>/rabbitmq, listening on server.host:bus.port, user onestack with a "
                       "generated password) and use it; bus.url stays empty."),
        "port": Key(int, 5672, "AMQP port of the RabbitMQ that bus.managed runs."),
    },
    "policy": {
        "dir": Key(
            str,
            "",
            "Directory of policy override files <service>.yaml; empty means /etc/onestack/policy.",
        ),
    },
    "auth": {
        "token_cache_seconds": Key(
            int, 5, "How long the API middleware caches a validated token (any identity change, "
            "a revocation, drops it at once in every process)."
        ),
    },
    "identity": {
        "region": Key(str, "RegionOne", "Region created at bootstrap and used in the catalog."),
        "token_expiration": Key(int, 3600, "Token lifetime in seconds."),
        "bcrypt_rounds": Key(int, 12, "bcrypt cost factor for password hashes (4-31)."),
        "max_active_keys": Key(int, 3, "Fernet keys kept by rotate-keys (staged+primary+old)."),
        "admin_password": Key(str, "", "Password of user admin; empty means generated once."),
        "demo_password": Key(str, "", "Password of user demo; empty means generated once."),
        "lockout_failure_attempts": Key(
            int, 0, "Lock a user after this many failed authentications in a row (0: never)."
        ),
        "lockout_duration": Key(int, 1800, "Seconds a locked-out user stays locked."),
        # Keystone's [security_compliance] options, all off by default as there.
        "password_expires_days": Key(
            int, 0, "Days a newly set password stays valid before it must be changed (0: never "
            "expires; passwords set earlier keep their expiry)."
        ),
        "unique_last_password_count": Key(
            int, 0, "A password changed through POST /v3/users/{id}/password must differ from "
            "this many most recent ones, the current one included (0: no history kept)."
        ),
        "minimum_password_age": Key(
            int, 0, "Days a self-set password must be used before its user may change it again "
            "(0: at once; an administrator's reset is never refused)."
        ),
        "password_regex": Key(
            str, "", "Regular expression every new password must match (empty: any password)."
        ),
        "password_regex_description": Key(
            str, "", "What password_regex asks for, in words: the 400 error of a refused password "
            "shows it."
        ),
        "change_password_upon_first_use": Key(
            bool, False, "A password set by an administrator (on create or reset) is expired at "
            "once, so its user must change it before using the cloud."
        ),
        "disable_user_account_days_inactive": Key(
            int, 0, "Days without authenticating after which a user counts as disabled "
            "(0: never; last_active_at is recorded per day)."
        ),
        "max_name_length": Key(
            int, 255, "Longest accepted name of a user, group, role... (projects and domains: 64)."
        ),
        "list_limit": Key(int, 0, "Largest page of any identity list; 0 means no limit."),
    },
    "image": {
        "store_dir": Key(str, "", "Where the file store keeps image data; empty means <state dir>/images."),
        "quota_images": Key(int, 100, "Images a project may own (-1: unlimited)."),
        "quota_bytes": Key(
            int, -1, "Total bytes of image data a project may store, staged included (-1: unlimited)."
        ),
        "size_cap": Key(int, 1099511627776, "Largest accepted image upload in bytes (default 1 TiB)."),
        "max_properties": Key(int, 128, "Most extra properties one image may have."),
        "max_tags": Key(int, 128, "Most tags one image may have."),
        "max_members": Key(int, 128, "Most projects one image may be shared with."),
        "list_limit": Key(int, 25, "Default page size of the image list."),
        "max_list_limit": Key(int, 1000, "Largest page of the image list a client may ask for."),
        "hash_algorithm": Key(
            str, "sha512", "os_hash_algo of new image data (Glance's hashing_algorithm): sha512, sha256, ..."
        ),
    },
    "network": {
        "default_mtu": Key(int, 1450, "MTU of self-service (VXLAN) networks: 1500 less the VXLAN overhead."),
        "public_cidr": Key(str, "172.24.4.0/24", "CIDR of the external network 'public' made at first start ('': none)."),
        "quota_network": Key(int, 100, "Networks a project may own (-1: unlimited)."),
        "quota_subnet": Key(int, 100, "Subnets a project may own (-1: unlimited)."),
        "quota_subnetpool": Key(int, -1, "Subnet pools a project may own (-1: unlimited)."),
        "quota_port": Key(int, 500, "Ports a project may own (-1: unlimited)."),
        "quota_router": Key(int, 10, "Routers a project may own (-1: unlimited)."),
        "quota_floatingip": Key(int, 50, "Floating IPs a project may own (-1: unlimited)."),
        "quota_security_group": Key(int, 10, "Security groups a project may own (-1: unlimited)."),
        "quota_security_group_rule": Key(int, 100, "Security group rules a project may own (-1: unlimited)."),
        "quota_rbac_policy": Key(int, 10, "RBAC policies (network sharing) a project may own (-1: unlimited)."),
        "agent": Key(bool, True, "Run the network agent (bridges, DHCP, routers, security groups, metadata) in "
                     "this process; it needs root and ip/bridge/nft/dnsmasq, else it is skipped with a log line."),
        "local_ip": Key(str, "127.0.0.1", "This host's VXLAN tunnel address (the other hosts' agents send to it)."),
        "availability_zone": Key(str, "nova", "Availability zone of this host's DHCP and L3 agents."),
        "physical_interface_mappings": Key(str, "", "physnet:interface,... (Neutron's): external networks of "
                                           "these physical networks are bridged to this host's interface (a "
                                           "multi-node cloud's provider network); unmapped ones live in an "
                                           "onestack-<physnet> namespace (the all-in-one cloud)."),
        "demo_topology": Key(bool, True, "At first start, make DevStack's network 'private', subnet "
                             "'private-subnet' and router 'router1' (gateway on 'public') for project demo."),
        "private_cidr": Key(str, "10.0.0.0/26", "CIDR of 'private-subnet' of the demo topology."),
        "metadata_secret": Key(str, "", "Secret signing the instance id the metadata proxies send to compute "
                               "(X-Instance-ID-Signature); empty means generated once in <state>/network."),
        "metadata_url": Key(str, "", "Where the metadata proxies forward to (http or https); empty means "
                            "http(s)://<server.host>:<server.port>/metadata of this process."),
        "agent_report_interval": Key(int, 10, "Seconds between the network agent's heartbeats."),
        "agent_down_time": Key(int, 75, "Seconds without a heartbeat after which an agent is not alive."),
        "resync_interval": Key(int, 30, "Seconds between the network agent's full resyncs (changes resync at once)."),
    },
    "compute": {
        "driver": Key(str, "auto", "Virt driver: libvirt, fake, or auto (libvirt; start-up fails with the reason when libvirt is not usable). "
                      "fake simulates servers (no real guests): only when set explicitly."),
        "host": Key(str, "", "Name of this compute host; empty means the machine's hostname."),
        "instances_dir": Key(str, "", "Where instance disks and console logs live; empty means <state dir>/instances."),
        "build_timeout": Key(int, 600, "Seconds a server may build without progress before it goes to ERROR with a "
                             "fault (Nova's instance_build_timeout): a build request or answer lost while the message "
                             "bus was away. 0: never."),
        "vnc_listen": Key(str, "127.0.0.1", "Address the guests' VNC servers listen on (Nova's [vnc] server_listen): "
                          "the console proxy on the controller connects there. A joined node listens on every "
                          "address (0.0.0.0), reached at compute.migration_address, so guests can live-migrate."),
        "libvirt_uri": Key(str, "qemu:///system", "libvirt connection URI of the libvirt driver (Nova's [libvirt] connection_uri)."),
        "fake_hosts": Key(int, 0, "Extra simulated compute hosts (fake driver) started in this process, for scale tests."),
        "fake_host_vcpus": Key(int, 8, "VCPUs each simulated host reports."),
        "fake_host_memory_mb": Key(int, 16384, "Memory (MiB) each simulated host reports."),
        "fake_host_disk_gb": Key(int, 200, "Disk (GiB) each simulated host reports."),
        "fake_spawn_seconds": Key(float, 0.0, "Seconds the fake driver takes to spawn a server (a simulated boot "
                                  "time, for fault and scale tests)."),
        "availability_zone": Key(str, "nova", "Availability zone of this compute host (Nova's default_availability_zone)."),
        "cpu_allocation_ratio": Key(float, 16.0, "VCPUs the scheduler may place per physical CPU."),
        "ram_allocation_ratio": Key(float, 1.5, "Memory the scheduler may place per MiB of host memory."),
        "disk_allocation_ratio": Key(float, 1.0, "Disk the scheduler may place per GiB of host disk."),
        "reserved_host_memory_mb": Key(int, 512, "Memory kept for the host itself, never given to guests."),
        "weigher": Key(str, "spread", "How the scheduler ranks hosts that pass the filters: spread (most free RAM and CPU) or pack."),
        "max_placement_results": Key(int, 1000, "The most allocation candidates the scheduler asks Placement for (Nova's [scheduler] max_placement_results): at most this many hosts are weighed for a request."),
        "heartbeat_interval": Key(int, 10, "Seconds between a compute agent's heartbeats and resource reports."),
        "service_down_time": Key(int, 60, "Seconds without a heartbeat after which a compute service is down."),
        "force_config_drive": Key(bool, False, "Give every server a config drive, asked for or not."),
        "allow_resize_to_same_host": Key(bool, True, "A resize may stay on the server's host (DevStack's default; "
                                         "a cold migration always leaves it)."),
        "migration_address": Key(str, "127.0.0.1", "Address (IP or name) other compute hosts reach this host at when "
                                 "servers move: its libvirtd for live migration (qemu+tcp://<address>/system) and the "
                                 "disk exports of cold migrations; shown as the hypervisor's host_ip."),
        "device_detach_attempts": Key(int, 8, "Times the libvirt driver asks a running guest to release a volume or "
                                      "interface being detached (a guest still booting ignores the request) before "
                                      "the detach fails (Nova's [libvirt] device_detach_attempts; at least 1)."),
        "device_detach_timeout": Key(int, 20, "Seconds the libvirt driver waits for the guest to release a device "
                                     "before asking again (Nova's [libvirt] device_detach_timeout)."),
        "quota_instances": Key(int, 10, "Servers a project may have (-1: unlimited)."),
        "quota_cores": Key(int, 20, "VCPUs a project's servers may use (-1: unlimited)."),
        "quota_ram": Key(int, 51200, "Memory (MiB) a project's servers may use (-1: unlimited)."),
        "quota_key_pairs": Key(int, 100, "Keypairs a user may own (-1: unlimited)."),
        "quota_metadata_items": Key(int, 128, "Metadata items one server may have (-1: unlimited)."),
        "quota_server_groups": Key(int, 10, "Server groups a project may own (-1: unlimited)."),
        "quota_server_group_members": Key(int, 10, "Servers one server group may hold (-1: unlimited)."),
    },
    "volume": {
        "backend": Key(str, "file", "Volume backend driver: file (raw or qcow2 sparse files made with qemu-img)."),
        "backend_name": Key(str, "filedriver-1", "Name of this host's backend (volume_backend_name); the default volume "
                            "type is named after it, as DevStack's lvmdriver-1."),
        "host": Key(str, "", "Name of this volume host; empty means the machine's hostname (services are host@backend)."),
        "volumes_dir": Key(str, "", "Where the file backend keeps volume and snapshot files; empty means <state dir>/volumes."),
        "volume_format": Key(str, "raw", "Format of new volume files: raw or qcow2."),
        "capacity_gb": Key(int, 0, "Capacity the backend reports (GiB); 0 means the size of the volumes_dir file system."),
        "max_over_subscription_ratio": Key(float, 20.0, "Sparse files: GiB of volumes the scheduler may place per GiB of capacity."),
        "availability_zone": Key(str, "nova", "Availability zone of this volume host (Cinder's storage_availability_zone)."),
        "default_volume_type": Key(str, "", "Type of volumes created without one; empty means the type named backend_name."),
        "report_interval": Key(int, 10, "Seconds between the volume agent's heartbeats and capacity reports."),
        "service_down_time": Key(int, 60, "Seconds without a heartbeat after which a volume service is down."),
        "attach_protocol": Key(str, "auto", "How guests reach volumes: auto (the file when the guest runs on this "
                               "volume host, else an NBD export), file, or nbd (always an NBD export)."),
        "export_address": Key(str, "127.0.0.1", "Address the NBD export daemons (qemu-storage-daemon) listen on and "
                              "give to compute nodes; one only compute nodes reach (NBD has no authentication)."),
        "export_tls_dir": Key(str, "", "Directory of x509 server credentials (ca-cert.pem, server-cert.pem, "
                              "server-key.pem) for NBD exports that require TLS with client certificates; empty: "
                              "no TLS."),
        "backup_driver": Key(str, "object", "Where backups go: object (the object store, in the service project's "
                             "account) or directory (backup_dir)."),
        "backup_chunk_mb": Key(int, 4, "Backups cut volumes into chunks of this many MiB; an incremental backup "
                               "stores the chunks that changed."),
        "backup_dir": Key(str, "", "Directory of the directory backup store; empty means <state dir>/backups."),
        "backup_container": Key(str, "volumebackups", "Default container of backups (an object store container, "
                                "or a folder of backup_dir)."),
        "quota_volumes": Key(int, 10, "Volumes a project may have (-1: unlimited)."),
        "quota_gigabytes": Key(int, 1000, "GiB of volumes and snapshots a project may have (-1: unlimited)."),
        "quota_snapshots": Key(int, 10, "Snapshots a project may have (-1: unlimited)."),
        "quota_backups": Key(int, 10, "Backups a project may have (-1: unlimited)."),
        "quota_backup_gigabytes": Key(int, 1000, "GiB of backups a project may have (-1: unlimited)."),
        "quota_per_volume_gigabytes": Key(int, -1, "Largest single volume in GiB (-1: unlimited)."),
        "quota_groups": Key(int, 10, "Volume groups a project may have (-1: unlimited)."),
    },
    "object_store": {
        "devices_dir": Key(
            str, "", "Where the all-in-one storage devices d1, d2, ... live; empty means <state dir>/object/devices."
        ),
        "devices": Key(int, 3, "Devices (one per zone) of the ring created on first start."),
        "part_power": Key(int, 10, "Partition power of the ring created on first start (2**N partitions)."),
        "replicas": Key(int, 3, "Replicas of every account, container and object."),
        "replicator_interval": Key(int, 30, "Seconds between replicator passes (0: never; `onestack object replicate`)."),
        "auditor_interval": Key(int, 600, "Seconds between auditor passes (0: never; `onestack object audit`)."),
        "expirer_interval": Key(int, 60, "Seconds between expirer passes (0: never; `onestack object expire`)."),
        "max_file_size": Key(int, 5368709122, "Largest single object in bytes (Swift's 5 GiB + 2)."),
        "container_listing_limit": Key(int, 10000, "Largest page of a container or account listing."),
        "max_meta_count": Key(int, 90, "Most metadata items on one account, container or object."),
        "max_meta_overall_size": Key(int, 4096, "Most bytes of metadata names and values on one resource."),
        "tempurl_methods": Key(str, "GET HEAD PUT POST DELETE", "Methods a temporary URL may be signed for."),
        "cors_allow_origin": Key(str, "", "Origins allowed on every container (space-separated; '*' for any)."),
        "node_secret": Key(str, "", "Secret the proxy and the object node servers share: every request between "
                           "them is signed with it (needed on both when the ring has devices on nodes)."),
        "node_host": Key(str, "127.0.0.1", "Address the object node server (`onestack object server`) listens on."),
        "node_port": Key(int, 6200, "Port of the object node server."),
        "node_timeout": Key(float, 10.0, "Seconds the proxy waits for a node server's answer or data."),
        "node_connect_timeout": Key(float, 1.0, "Seconds the proxy waits to connect to a node server "
                                    "(one that does not answer is a failed replica)."),
    },
    "telemetry": {
        "enabled": Key(bool, True, "Collect telemetry: each compute host polls its guests' libvirt statistics "
                       "(cpu, memory, disk and network counters) and the controller polls object storage "
                       "accounts and floating IPs; the measures go to the metric service over the bus."),
        "interval": Key(int, 30, "Seconds between two polls of the telemetry collectors (Ceilometer's polling "
                        "interval); at least 5."),
    },
    "orchestration": {
        "max_template_size": Key(int, 524288, "Largest template in bytes (Heat's max_template_size)."),
        "max_resources_per_stack": Key(int, 1000, "Most resources one template may define, a ResourceGroup's "
                                       "members included (Heat's max_resources_per_stack)."),
        "max_nested_stack_depth": Key(int, 5, "Deepest nesting of template resources and groups "
                                      "(Heat's max_nested_stack_depth)."),
        "max_stacks_per_tenant": Key(int, 100, "Top-level stacks a project may have (Heat's max_stacks_per_tenant)."),
        "stack_action_timeout_mins": Key(int, 60, "Minutes a stack action may take when the stack sets no "
                                         "timeout_mins (Heat's stack_action_timeout, in minutes)."),
        "poll_min": Key(float, 0.05, "Seconds between the engine's first checks of a resource in progress; "
                        "the wait grows by half each time nothing moved."),
        "poll_max": Key(float, 1.0, "Longest wait in seconds between two checks of resources in progress."),
        "hidden_stack_tags": Key(str, "hidden", "Stacks carrying any of these tags (comma-separated) are left "
                                 "out of stack lists unless show_hidden=true (Heat's hidden_stack_tags; DevStack "
                                 "and heat-tempest-plugin use 'hidden'). Empty: none hidden."),
        "web_image_fetch": Key(bool, True, "OS::Glance::WebImage: the engine itself reads the location URL and "
                               "uploads the data when the image service offers no web-download import; false: "
                               "such a WebImage is refused."),
        "web_image_hosts": Key(str, "", "Hosts (comma-separated names or addresses) an OS::Glance::WebImage "
                               "location, and any redirect it follows, may name; empty: any host."),
    },
    "dashboard": {
        "session_timeout": Key(int, 1800, "Seconds a dashboard session may stay idle before its user must "
                               "log in again (it never outlives its token)."),
    },
    "alarming": {
        "evaluation_interval": Key(int, 60, "Seconds between two evaluations of the threshold and composite "
                                   "alarms (Aodh's [evaluator] evaluation_interval; at least 1)."),
        "metric_url": Key(str, "", "Where the evaluator reaches the metric API (Gnocchi v1); empty means "
                          "<public URL>/metric of this cloud."),
        "additional_ingestion_lag": Key(int, 0, "Seconds added to each evaluation window, for measures "
                                        "that arrive late (Aodh's additional_ingestion_lag)."),
        "notifier_timeout": Key(float, 10.0, "Seconds a webhook action may take to answer."),
        "notifier_max_retries": Key(int, 3, "Times a failed webhook (no answer, or a 5xx) is tried again "
                                    "(Aodh's rest_notifier_max_retries)."),
        "notifier_retry_backoff": Key(float, 1.0, "Seconds before the first retry of a webhook; each "
                                      "further retry waits twice as long."),
        "project_alarm_quota": Key(int, -1, "Alarms a project may have when no quota is set for it "
                                   "(-1: unlimited)."),
        "user_alarm_quota": Key(int, -1, "Alarms a user may have (-1: unlimited)."),
        "alarm_max_actions": Key(int, -1, "Most actions of each state of one alarm (-1: unlimited)."),
    },
    "metric": {
        "storage": Key(str, "file", "Where the metric service keeps its aggregated time series: 'file' (under "
                       "<state dir>/metric, embedded) or 'swift' (objects in the object store, through its API "
                       "as the gnocchi service user); the index is in the database either way."),
        "storage_dir": Key(str, "", "Directory of the 'file' storage; empty means <state dir>/metric."),
        "swift_container": Key(str, "gnocchi", "Container of the 'swift' storage (in the service project's "
                               "account), one object per metric, granularity and split."),
        "default_archive_policy": Key(str, "medium", "Archive policy of the default rule (metric pattern '*'), "
                                      "given to metrics created without one (the bus ingest's metrics too)."),
    },
}


def _coerce(section: str, key: str, value: Any, source: str) -> Any:
    want = SCHEMA[section][key].type
    if want is bool and isinstance(value, str):
        try:
            return to_bool(value, strict=True)
        except ValueError:
            pass
    elif want is int and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    elif want is float and isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    elif isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    raise ConfigError(
        f"config key '{section}.{key}' in {source} must be {want.__name__}, got {value!r}"
    )


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Section:
    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)


class Config:
    """Typed settings; attribute access by section: ``conf.server.port``."""

    def __init__(self, values: dict[str, dict[str, Any]], path: Path | None):
        self.path = path
        self._values = values
        for section, keys in values.items():
            setattr(self, section, Section(keys))

    # Derived paths, so nobody recomputes them.
    @property
    def state_dir(self) -> Path:
        if self.state.dir:
            return Path(self.state.dir)
        if os.geteuid() == 0:
            return Path("/var/lib/onestack")
        return Path.home() / ".local/share/onestack"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'onestack.db'}"

    @property
    def log_file(self) -> Path:
        return Path(self.log.file) if self.log.file else self.state_dir / "onestack.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "onestack.pid"

    @property
    def policy_dir(self) -> Path:
        return Path(self.policy.dir or "/etc/onestack/policy")

    @property
    def public_url(self) -> str:
        if self.server.public_url:
            url = self.server.public_url.rstrip("/")
            # with TLS the port speaks only https (an https URL without it: a proxy in front)
            return "https" + url[4:] if self.scheme == "https" and url.startswith("http:") else url
        host = self.server.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.server.port}"

    @property
    def scheme(self) -> str:
        """https when the APIs are served over TLS (tls.enabled or a tls.cert)."""
        return "https" if self.tls.enabled or self.tls.cert else "http"

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {s: dict(k) for s, k in self._values.items()}


DEFAULT_PATH = Path("/etc/onestack/onestack.toml")


def load(path: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Read the TOML file (if any), check every key, then apply env overrides."""
    env = os.environ if env is None else env
    if path is None and env.get("ONESTACK_CONFIG"):
        path = env["ONESTACK_CONFIG"]
    explicit = path is not None
    path = Path(path) if path is not None else DEFAULT_PATH
    values = {s: {k: key.default for k, key in keys.items()} for s, keys in SCHEMA.items()}

    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
        except OSError as e:
            raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    elif explicit:
        raise ConfigError(f"config file {path} does not exist")

    for section, keys in data.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"config section '{section}' in {path} is unknown{_suggest(section, SCHEMA)}"
            )
        if not isinstance(keys, dict):
            raise ConfigError(f"config '{section}' in {path} must be a [section]")
        for key, value in keys.items():
            if key not in SCHEMA[section]:
                raise ConfigError(
                    f"config key '{section}.{key}' in {path} is unknown"
                    f"{_suggest(key, SCHEMA[section])}"
                )
            values[section][key] = _coerce(section, key, value, str(path))

    for name, value in env.items():
        if not name.startswith("ONESTACK_") or name == "ONESTACK_CONFIG":
            continue
        rest = name[len("ONESTACK_") :].lower()
        # Section names may contain "_" themselves: take the longest that fits.
        section = max((s for s in SCHEMA if rest.startswith(s + "_")), key=len, default="")
        key = rest[len(section) + 1 :]
        if section not in SCHEMA or key not in SCHEMA[section]:
            known = [f"ONESTACK_{s}_{k}".upper() for s, ks in SCHEMA.items() for k in ks]
            raise ConfigError(
                f"environment variable {name} names no config key{_suggest(name, known)}"
            )
        values[section][key] = _coerce(section, key, value, f"environment variable {name}")

    return Config(values, path if path.exists() else None)
