#!/usr/bin/env bash
# The crates the package is built from, one "name version" a line, sorted:
# normal and build dependencies of the production build (no embedded broker) on the
# targets the package is made for.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo tree --locked -e normal,build --no-default-features --prefix none \
    --target x86_64-unknown-linux-gnu \
    --target aarch64-unknown-linux-gnu \
    --target armv7-unknown-linux-gnueabihf |
    sed -e 's/ (\*)$//' -e 's/ (proc-macro)$//' -e 's/ (.*)$//' |
    awk 'NF >= 2 && $1 != "custodyd" { sub(/^v/, "", $2); print $1, $2 }' | sort -u
