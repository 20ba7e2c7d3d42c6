#!/usr/bin/env bash
# Writes deploy/licenses/THIRD-PARTY-LICENSES.txt, which the package installs
# as /usr/share/doc/custodyd/THIRD-PARTY-LICENSES.txt. Run it after changing
# a dependency; CI (deploy/licenses/check.sh) fails while it is stale.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v cargo-about >/dev/null 2>&1 || cargo install --locked --features cli cargo-about
cargo about generate --locked --no-default-features \
    -c deploy/licenses/about.toml deploy/licenses/about.hbs \
    -o deploy/licenses/THIRD-PARTY-LICENSES.txt
deploy/licenses/check.sh
