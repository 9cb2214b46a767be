#!/usr/bin/env bash
# AER's main job (the tests are ./test.sh):
#   ./run.sh demo   build the host and the built-in plugins, run the excessive-downloads
#                   detector over the bundled Slack audit log sample (its findings), then the
#                   whole local pipeline over it (findings -> decisions -> recorded responses),
#                   then the daemon with a mock Slack API: detection -> decision -> session reset
#   ./run.sh test   the same as ./test.sh
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
            -p excessive-downloads -p slack-session-reset -p notify
        echo "== aer test: the detector alone over the sample =="
        target/debug/aer test "$plugins/excessive_downloads.wasm" \
            --events examples/data/sample-audit-log.json
        echo
        echo "== aer replay: detector -> decision engine (examples/data/policy.json) -> responders =="
        target/debug/aer replay --events examples/data/sample-audit-log.json \
            --detector "$plugins/excessive_downloads.wasm" \
            --responder "$plugins/slack_session_reset.wasm" \
            --responder "$plugins/notify.wasm" \
            --config 'slack-session-reset={"notify_channel": "security"}' \
            --policy examples/data/policy.json
        echo
        echo "== aer demo: the daemon, a mock Slack API, the sample streamed in over HTTP =="
        target/debug/aer demo --plugins "$plugins"
        ;;
    test)
        exec ./test.sh
        ;;
    *)
        echo "usage: ./run.sh demo (tests: ./test.sh)" >&2
        exit 2
        ;;
esac
