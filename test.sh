#!/usr/bin/env bash
# AER's test command: installs the wasm32-wasip2 target if it is missing, then runs every
# test (unit, SDK, plugin and integration tests; the integration tests build every plugin
# crate to a real component first).
set -euo pipefail
cd "$(dirname "$0")"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi
cargo test --workspace
