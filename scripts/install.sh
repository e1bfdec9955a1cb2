#!/usr/bin/env bash
# Idempotent set-up of a Debian 12 machine for onestack: apt packages and the
# virtualenv at .venv. `install.sh test` also installs what the test suite needs.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=${1:-}

# The tiny guest image's build tools (guest/README.md): `make up` builds the image.
apt_pkgs=(python3-venv python3-dev syslinux syslinux-common mtools dosfstools fdisk qemu-utils)
# Compute's data plane: libvirt + QEMU run the guests (the sysv flavour of the daemon
# package, so apt does not pull systemd in); libvirt-dev, pkg-config and gcc build
# the libvirt-python binding in the venv. xorriso makes iso9660 config drives;
# setfacl (acl) lets the QEMU user through the private state directory to its disks.
apt_pkgs+=(libvirt-daemon-system libvirt-daemon-system-sysv libvirt-clients
  qemu-system-x86 libvirt-dev pkg-config gcc xorriso acl)
# The noVNC web client (/usr/share/novnc), served by onestack at /novnc; onestack is
# its websocket proxy itself (onestack/compute/consoles.py).
apt_pkgs+=(novnc)
# Networking's data plane (onestack/network/linux): ip/bridge, nft, dnsmasq (the
# binary only: dnsmasq-base has no system service), dhcp_release (dnsmasq-utils:
# drops a deleted port's lease), sysctl (procps), ping.
apt_pkgs+=(iproute2 nftables dnsmasq-base dnsmasq-utils procps iputils-ping)
if [ "$want_test" = test ]; then
  # PostgreSQL for the database tests; busybox's udhcpc is the DHCP client of the
  # network e2e tests (busybox-static, which the guest image uses too, provides it);
  # iperf3 measures TCP through the network data plane (bench/network.py);
  # rabbitmq-server for the AMQP bus tests (they start their own broker: tests/cloud.py).
  # The two servers are also what `bus.managed` and `database.managed` run (onestack/infra).
  apt_pkgs+=(postgresql busybox-static iperf3 rabbitmq-server)
  # The dashboard's browser tests: Debian's chromium, driven by Playwright for Python
  # (its own browser download is not used).
  apt_pkgs+=(chromium)
fi

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "onestack: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No daemon starts from a package's postinst (libvirtd would autostart its
  # `default` NAT network): scripts/libvirt-up.sh starts libvirt below, as onestack
  # wants it. A policy-rc.d that is already there is left as it is.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a default PostgreSQL cluster on install; the tests run their own.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
fi

extras=client
[ "$want_test" = test ] && extras=client,test
# One stamp per installed extra, for this pyproject.toml: `make test` then
# `make up` reinstalls nothing.
hash=$(sha1sum < pyproject.toml | cut -c1-12)
needed=0
for extra in ${extras//,/ }; do
  [ -f ".venv/.onestack-installed-$hash-$extra" ] || needed=1
done
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv .venv
fi
if [ "$needed" = 1 ]; then
  echo "installing Python dependencies into .venv ($extras)"
  # (the filter only hides this machine's notices about absent local mirrors)
  .venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]" 2>&1 \
    | { grep -v "^WARNING: Location" || true; }
  .venv/bin/python -c "import onestack.cli" # fail here, not later, if the install broke
  find .venv -maxdepth 1 -name ".onestack-installed-*" ! -name "*-$hash-*" -delete
  for extra in ${extras//,/ }; do touch ".venv/.onestack-installed-$hash-$extra"; done
fi

# Tempest and its plugins (the interop tests), in a venv of their own: once, and again
# only when tests/interop/requirements.txt changes.
if [ "$want_test" = test ]; then
  /usr/bin/python3 tests/interop/run.py --install
fi

# libvirtd and virtlogd, started by hand where there is no systemd (needs root).
if [ "$(id -u)" = 0 ]; then
  scripts/libvirt-up.sh
else
  echo "onestack: not root, libvirt not started (scripts/libvirt-up.sh as root)" >&2
fi
