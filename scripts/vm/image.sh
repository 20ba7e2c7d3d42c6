#!/usr/bin/env bash
# Builds the rig's Debian 12 guest into OUT_DIR (disk.img, vmlinuz,
# initrd.img) from Debian's packages: `scripts/vm/image.sh OUT_DIR`.
# scripts/vm-test.sh calls it when its cache (keyed on this file and the
# agent) has no image yet. Needs root (debootstrap, file ownership).
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")" && pwd)

# The machine's own Debian mirror, as apt uses it.
mirror=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $2 ~ /^http/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$out.tmp
rm -rf "$work"
mkdir -p "$work"
root=$work/rootfs
# What the package needs from a Debian system (adduser for postinst; the
# guest has no network to fetch it), what the scenarios use, and nothing else.
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,udev,linux-image-amd64,kmod,iproute2,mosquitto-clients,adduser,procps \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

echo custodyd-vm >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 custodyd-vm\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
in_root passwd -d root >/dev/null
# Persistent journal: the power-cut scenario reads earlier boots.
mkdir -p "$root/var/log/journal"

# The only network: user-mode networking with restrict=on, where the host
# broker appears as 10.0.2.100 (a guestfwd). No gateway, no DNS.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/10-rig.network" <<'NET'
[Match]
Name=en*
[Network]
Address=10.0.2.15/24
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1

install -m 0755 "$here/agent.sh" "$root/usr/local/sbin/rig-agent"
cat >"$root/etc/systemd/system/rig-agent.service" <<'UNIT'
[Unit]
Description=vm-test rig agent on ttyS1
After=systemd-udevd.service
[Service]
ExecStart=/usr/local/sbin/rig-agent
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
UNIT
in_root systemctl enable rig-agent.service serial-getty@ttyS0.service >/dev/null 2>&1
in_root apt-get clean

cp "$root"/boot/vmlinuz-* "$work/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/initrd.img"
mkfs.ext4 -q -L rig -d "$root" "$work/disk.img" 3G
rm -rf "$root"
rm -rf "$out"
mv "$work" "$out"
