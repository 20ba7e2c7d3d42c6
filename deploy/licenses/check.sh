#!/usr/bin/env bash
# Fails when THIRD-PARTY-LICENSES.txt does not cover exactly the crates the
# package is built from (deploy/licenses/crates.sh); cheap enough for CI,
# which need not install cargo-about.
set -euo pipefail
cd "$(dirname "$0")"
listed=$(sed -n 's/^Used by://p' THIRD-PARTY-LICENSES.txt | tr ' ' '\n' | sed '/^$/d' |
    paste -d' ' - - | awk '$1 != "custodyd"' | sort -u)
if ! diff <(./crates.sh) <(printf '%s\n' "$listed") >/tmp/custodyd-licences.diff; then
    echo "deploy/licenses/THIRD-PARTY-LICENSES.txt is stale (< built from, > listed):" >&2
    cat /tmp/custodyd-licences.diff >&2
    echo "run deploy/licenses/generate.sh" >&2
    exit 1
fi
echo "third-party licences cover the $(printf '%s\n' "$listed" | wc -l) crates of the package"
