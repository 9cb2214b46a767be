#!/usr/bin/env bash
# AER's two set-up commands:
#   ./run.sh demo   build the host and the example detector, then run it over the bundled
#                   Slack audit log sample and show its findings
#   ./run.sh test   run every test (unit, SDK, plugin and integration tests)
set -euo pipefail
cd "$(dirname "$0")"

ensure_wasm_target() {
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        echo "installing the wasm32-wasip2 Rust target" >&2
        rustup target add wasm32-wasip2
    fi
}

plugins=target/wasm-plugins/wasm32-wasip2/plugin

case "${1:-demo}" in
    demo)
        ensure_wasm_target
        cargo build -p aer-host
        # The same target dir and profile the tests use, so the builds are shared.
        cargo build --target wasm32-wasip2 --profile plugin --target-dir target/wasm-plugins \
            -p excessive-downloads -p minimal-detector
        target/debug/aer validate "$plugins/excessive_downloads.wasm"
        echo
        target/debug/aer test "$plugins/excessive_downloads.wasm" \
            --events examples/data/sample-audit-log.json
        ;;
    test)
        ensure_wasm_target
        cargo test --workspace
        ;;
    *)
        echo "usage: ./run.sh demo|test" >&2
        exit 2
        ;;
esac
