#!/usr/bin/env bash
# Fails when a crate in Cargo.lock needs a newer Rust than Cargo.toml's
# `rust-version` claims: only one toolchain can be installed here, so the claim
# is checked against what the locked dependencies declare instead.
set -euo pipefail
cd "$(dirname "$0")/.."

ours=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
needed=$(cargo metadata --format-version 1 --locked |
    grep -o '"rust_version":"[0-9.]*"' | cut -d'"' -f4 | sort -V | tail -n 1)
if [ "$(printf '%s\n%s\n' "$ours" "$needed" | sort -V | tail -n 1)" != "$ours" ]; then
    echo "rust-version is $ours, but a locked dependency needs Rust $needed" >&2
    exit 1
fi
echo "rust-version $ours covers every locked dependency (newest need: $needed)"
