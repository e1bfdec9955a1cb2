#!/usr/bin/env bash
# Start libvirt by hand on a machine without systemd (idempotent): the libvirt-qemu
# user/group, the run and log directories, virtlogd (it writes the guests' serial
# logs) and libvirtd. The `default` NAT network (virbr0 + dnsmasq + iptables rules
# on the host) is never autostarted: onestack's guests get onestack's networks only.
set -euo pipefail
uri=qemu:///system

if [ "$(id -u)" != 0 ]; then
  echo "onestack: libvirt-up.sh needs root" >&2
  exit 1
fi
for tool in libvirtd virtlogd virsh; do
  command -v "$tool" >/dev/null || { echo "onestack: $tool not installed (libvirt-daemon-system, libvirt-clients)" >&2; exit 1; }
done

# The account QEMU runs as (qemu.conf's user/group on Debian); the package makes it,
# unless its postinst could not run.
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent group kvm >/dev/null || groupadd --system kvm
if ! getent passwd libvirt-qemu >/dev/null; then
  useradd --system --gid libvirt-qemu --groups kvm --home-dir /var/lib/libvirt \
    --no-create-home --shell /usr/sbin/nologin libvirt-qemu
fi
getent group libvirt >/dev/null || groupadd --system libvirt

mkdir -p /var/log/libvirt/qemu /var/run/libvirt /var/lib/libvirt/qemu /var/cache/libvirt/qemu

# /dev/kvm as udev leaves it on Debian (root:kvm 0660). Without udev it stays 0600,
# and libvirtd then finds KVM "usable when probed, not usable now" at every call
# and probes QEMU's capabilities again (~4 s per API call). Whether KVM *works* is
# onestack's own question (onestack/compute/virt/accel.py tries it).
if [ -c /dev/kvm ] && [ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi

# No autostart for the package's `default` network (it would take 192.168.122.0/24,
# make virbr0 and add NAT rules on the host). The definition is left alone.
link=/etc/libvirt/qemu/networks/autostart/default.xml
if [ -L "$link" ] || [ -e "$link" ]; then
  echo "onestack: disabling autostart of libvirt's default network"
  rm -f "$link"
fi

# running NAME: a live (not zombie) process NAME, by its pid file or else by name
running() {
  local pid state
  for pid in $(cat "/var/run/$1.pid" 2>/dev/null) $(pgrep -x "$1"); do
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && [ "$state" != Z ] && return 0
  done
  return 1
}
answers() { timeout 10 virsh -c "$uri" version >/dev/null 2>&1; }

running virtlogd || virtlogd -d
if ! answers; then
  running libvirtd || libvirtd -d
  deadline=$((SECONDS + 60))  # the first start probes QEMU's capabilities (~10 s)
  until answers || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
  answers || { echo "onestack: libvirtd does not answer on $uri (see /var/log/libvirt)" >&2; exit 1; }
fi
# Should `default` be running already (started by someone else), it is left running
# but no longer autostarts.
if virsh -c "$uri" net-info default 2>/dev/null | grep -q "^Autostart: *yes"; then
  virsh -c "$uri" net-autostart default --disable >/dev/null 2>&1 || true
fi
echo "libvirt: $(virsh -c "$uri" version 2>/dev/null | grep -m1 'Running hypervisor' | sed 's/.*: *//') via $uri"
