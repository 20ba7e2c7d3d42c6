#!/usr/bin/env bash
# Cross-builds custodyd for the Raspberry Pi and shows that the binaries run.
#
#   deploy/cross-build.sh          build both targets, run them under qemu
#   deploy/cross-build.sh --deb    the same, then the arm64 and armhf .debs (cargo deb)
#
# Targets: aarch64-unknown-linux-gnu (Pi 3/4/5 with 64-bit Raspberry Pi OS or
# Debian arm64) and armv7-unknown-linux-gnueabihf (32-bit Raspberry Pi OS).
# On a Debian/Ubuntu build machine it installs Debian's cross compilers and
# qemu-user with apt-get (as root, or through sudo), adds the targets' std
# with `rustup target add` (this downloads from the Rust project's server, so
# needs that server reachable; it was from the project's build machine), and
# builds with the linkers named in .cargo/config.toml. The C part of the
# dependency tree (ring, rustls's crypto for TLS to the broker) is compiled by
# the `cc` crate with the same cross gcc; nothing needs cmake, a target
# libudev or OpenSSL. Each binary is then run under qemu-user with the
# target's libc from the cross packages: `custodyd --version` and
# `custodyd check-config deploy/custodyd.toml`.
#
# Not part of .ci/run: two release builds with LTO take far longer than CI's
# budget on two cores. Binaries land in ${CARGO_TARGET_DIR:-target}/<target>/release/.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=false
case "${1:-}" in
    --deb) deb=true ;;
    "") ;;
    *) echo "usage: $0 [--deb]" >&2; exit 2 ;;
esac

# target triple, Debian's gcc triple, qemu binary
targets=(
    "aarch64-unknown-linux-gnu aarch64-linux-gnu qemu-aarch64"
    "armv7-unknown-linux-gnueabihf arm-linux-gnueabihf qemu-arm"
)
packages=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross
          gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user)

step() { printf '\n== %s\n' "$*" >&2; }

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    as_root=()
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step "rustup target add"
command -v rustup >/dev/null || {
    echo "$0: rustup is needed to add the targets' standard library" >&2
    exit 1
}
for t in "${targets[@]}"; do
    rustup target add "${t%% *}"
done

out=${CARGO_TARGET_DIR:-target}
for t in "${targets[@]}"; do
    read -r triple gnu qemu <<<"$t"
    step "cargo build --release --target $triple"
    cargo build --release --locked --no-default-features --bin custodyd --target "$triple"
    bin=$out/$triple/release/custodyd
    "$gnu-readelf" -h "$bin" | grep -E 'Class|Machine'
    step "$qemu: custodyd --version; custodyd check-config deploy/custodyd.toml"
    "$qemu" -L "/usr/$gnu" "$bin" --version
    "$qemu" -L "/usr/$gnu" "$bin" check-config deploy/custodyd.toml
done

if $deb; then
    command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
    for t in "${targets[@]}"; do
        step "cargo deb --target ${t%% *}"
        cargo deb --locked --no-build --target "${t%% *}"
    done
fi
