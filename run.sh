#!/usr/bin/env bash
# AER's main job (the tests are ./test.sh):
#   ./run.sh demo   build the host and the built-in plugins, run the excessive-downloads
#                   detector over the bundled Slack audit log sample (its findings), then the
#                   whole local pipeline over it (findings -> decisions -> recorded responses),
#                   then the detection pack over two generated weeks of a 100-person organisation
#                   (precision and recall against the labelled attacks), then the daemon with a
#                   mock Slack API: detection -> decision -> session reset
#   ./run.sh bench  build a release `aer` and the plugins it measures, then `aer bench` (extra
#                   arguments go to it)
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
            -p excessive-downloads -p rapid-account-creation -p suspicious-file-sharing \
            -p message-volume -p new-network-origin -p session-fingerprint \
            -p privilege-escalation -p slack-anomaly -p risky-app -p slack-session-reset \
            -p slack-app-restrict -p notify
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
        echo "== aer gen + aer replay --labels: the detection pack on two weeks of a generated organisation =="
        gen_dir=target/demo-gen
        target/debug/aer gen --out "$gen_dir" --users 100 --days 14
        pack=()
        for p in excessive_downloads rapid_account_creation suspicious_file_sharing message_volume \
                 new_network_origin session_fingerprint privilege_escalation slack_anomaly; do
            pack+=(--detector "$plugins/$p.wasm")
        done
        target/debug/aer replay --events "$gen_dir/events.ndjson" "${pack[@]}" \
            --responder "$plugins/slack_session_reset.wasm" \
            --policy "$gen_dir/policy.json" \
            --config "new-network-origin=@$gen_dir/new-network-origin.json" \
            --labels "$gen_dir/labels.ndjson"
        echo
        echo "== aer demo: the daemon, a mock Slack API, the sample streamed in over HTTP =="
        target/debug/aer demo --plugins "$plugins"
        ;;
    bench)
        ensure_wasm_target
        shift
        cargo build --release -p aer-host --features bench
        cargo build --target wasm32-wasip2 --profile plugin --target-dir target/wasm-plugins \
            -p excessive-downloads -p message-volume -p new-network-origin \
            -p session-fingerprint -p slack-session-reset -p minimal-detector -p noop-detector
        exec target/release/aer bench --plugins "$plugins" "$@"
        ;;
    test)
        exec ./test.sh
        ;;
    *)
        echo "usage: ./run.sh demo | ./run.sh bench [aer bench options] (tests: ./test.sh)" >&2
        exit 2
        ;;
esac
