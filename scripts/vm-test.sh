#!/usr/bin/env bash
# The virtual Pi: `scripts/vm-test.sh [--cuts N]` installs the amd64 .deb in a
# Debian 12 guest under QEMU (real systemd, udev, USB serial adapter and USB
# keyboard) and runs the scenarios of docs/vm-rig.md against a broker on this
# machine. One line per scenario, `PASS <name>` or `FAIL <name>: <why>`; exits
# 0 only if every scenario passed. --cuts N: power cuts in the power-cut
# scenario (default 2).
#
# Runs as root (debootstrap, and apt-get for whatever a fresh Debian machine
# lacks). The guest image is cached under target/vm/ (keyed on the files that
# make it); the .deb is built with the `rig` profile, not the release one,
# whose fat LTO alone takes longer than the whole rig.
set -euo pipefail
cd "$(dirname "$0")/.."

cuts=2
while [ $# -gt 0 ]; do
    case $1 in
        --cuts) cuts=${2:?--cuts needs a number}; shift 2 ;;
        --cuts=*) cuts=${1#--cuts=}; shift ;;
        -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "vm-test.sh: unknown argument $1 (usage: scripts/vm-test.sh [--cuts N])" >&2; exit 2 ;;
    esac
done
case $cuts in
    '' | *[!0-9]*) echo "vm-test.sh: --cuts takes a number, not '$cuts'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "vm-test.sh: run as root (debootstrap builds the guest; apt-get installs QEMU)" >&2
    exit 2
fi

log() { echo "vm-test.sh: $*" >&2; }

# What the rig runs on the host, by command and the Debian package with it.
missing=()
need() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || missing+=("$2"); }
need qemu-system-x86_64 qemu-system-x86
need debootstrap debootstrap
need socat socat
need mosquitto mosquitto
need mosquitto_sub mosquitto-clients
need mkfs.ext4 e2fsprogs
need python3 python3
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install cargo-deb --locked --quiet
fi

# The guest image, rebuilt only when what makes it changes.
key=$(cat scripts/vm/image.sh scripts/vm/agent.sh | sha256sum | cut -c1-16)
image=target/vm/image-$key
if [ ! -f "$image/disk.img" ]; then
    log "building the Debian 12 guest image (debootstrap, a few minutes)"
    for old in target/vm/image-*; do [ -e "$old" ] && rm -rf "$old"; done
    mkdir -p target/vm
    scripts/vm/image.sh "$image"
fi

log "building the .deb (cargo deb --profile rig)"
rm -f target/debian/custodyd_*.deb
cargo deb --profile rig --quiet >/dev/null
deb=$(ls target/debian/custodyd_*_amd64.deb)

exec python3 scripts/vm/rig.py --image "$image" --deb "$deb" --cuts "$cuts" --work target/vm/run
