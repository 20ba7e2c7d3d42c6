#!/usr/bin/env bash
# Runs every test: `scripts/test.sh [cargo test args...]`.
#
# The integration tests (tests/it/) start a real mosquitto broker, and
# tests/it/custody_log.rs captures with `mosquitto_sub`, so this installs
# Debian's `mosquitto` and `mosquitto-clients` packages first if missing. CI runs this
# same script (from .ci/run), so a newcomer's run and CI's cannot drift.
set -euo pipefail
cd "$(dirname "$0")/.."

have_mosquitto() {
    { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } &&
        command -v mosquitto_sub >/dev/null 2>&1
}

# Runs a command quietly; shows its output only if it fails.
quietly() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        echo "scripts/test.sh: failed: $*" >&2
        return 1
    fi
}

if ! have_mosquitto; then
    echo "scripts/test.sh: installing mosquitto (the integration tests run a real broker)" >&2
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    quietly "${as_root[@]}" apt-get update -q
    quietly "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends mosquitto mosquitto-clients
    # The package may have started a system broker on port 1883. The tests
    # use their own brokers on free ports, so it is only in the way; stop it
    # (without systemd, or without a service at all, there is nothing to do).
    if [ -d /run/systemd/system ]; then
        "${as_root[@]}" systemctl disable --now mosquitto >/dev/null 2>&1 || true
    else
        "${as_root[@]}" service mosquitto stop >/dev/null 2>&1 || true
    fi
fi

exec cargo test "$@"
