#!/usr/bin/env bash
# The peer benchmark: the same detector (per-user 10-minute download window, threshold
# 50) over the same generated organisation, as an AER plugin under `aer test`, as an
# Extism plugin under a small Extism host, and as native Rust; rounds interleaved; one
# table: events per second end to end (wall clock), CPU time (AER parses its input on
# every core; the other two use one), time per delivered event inside the plugin, peak
# resident memory, and whether all three made the same findings.
#   benches/peers/run.sh [ROUNDS] [USERS] [DAYS]      (defaults: 5 500 14)
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}; users=${2:-500}; days=${3:-14}
root=$(cd ../.. && pwd)
for t in wasm32-wasip2 wasm32-unknown-unknown; do
    rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
(cd "$root" && cargo build --release -p aer-host)
cargo build --release -p peers-native -p peers-extism-host
cargo build --release --target wasm32-unknown-unknown -p peers-extism-plugin
cargo build --release --target wasm32-wasip2 -p peers-aer-plugin
aer=$root/target/release/aer
gen=target/gen-$users-$days
[ -f "$gen/events.ndjson" ] || "$aer" gen --out "$gen" --users "$users" --days "$days"
events=$gen/events.ndjson
out=target/runs; rm -rf "$out"; mkdir -p "$out"
# Each run: stdout the findings, stderr the tool's own lines, then `/usr/bin/time`'s.
run() {
    local tool=$1 round=$2; shift 2
    /usr/bin/time -f "peers-time: %e s %M KB %U u %S s" "$@" > "$out/$tool-$round.out" 2> "$out/$tool-$round.err"
}
for round in $(seq "$rounds"); do
    # A warm compiled-code cache for AER, as Extism keeps its own.
    AER_CODE_CACHE=$PWD/target/aer-code-cache run aer "$round" \
        "$aer" test target/wasm32-wasip2/release/peers_aer_plugin.wasm --events "$events" --json
    run extism "$round" target/release/peers-extism-host \
        target/wasm32-unknown-unknown/release/peers_extism_plugin.wasm "$events"
    run native "$round" target/release/peers-native "$events"
    echo "round $round of $rounds done" >&2
done
python3 - "$out" "$rounds" "$events" <<'PY'
import json, re, sys, statistics, os
out, rounds, events_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows, findings = [], {}
for tool in ["aer", "extism", "native"]:
    eps, inside, rss, cpu = [], [], [], []
    for r in range(1, rounds + 1):
        err = open(f"{out}/{tool}-{r}.err").read()
        secs, kb, user, system = re.search(r"peers-time: ([\d.]+) s (\d+) KB ([\d.]+) u ([\d.]+) s", err).groups()
        if tool == "aer":
            m = re.search(r": (\d+) events \((\d+) delivered.*?(\d+) findings, ([\d.]+) us/event", err)
            events, us = int(m.group(1)), float(m.group(4))
        else:
            m = re.search(r"events (\d+) delivered (\d+) findings (\d+) plugin_us_per_event ([\d.]+)", err)
            events, us = int(m.group(1)), float(m.group(4))
        eps.append(events / float(secs)); inside.append(us); rss.append(int(kb) / 1024)
        cpu.append(float(user) + float(system))
        hits = set()
        for line in open(f"{out}/{tool}-{r}.out"):
            f = json.loads(line)
            ev = f["evidence"][0] if isinstance(f["evidence"], list) else f["evidence"]
            hits.add((f["subject"], ev))
        findings.setdefault(tool, hits)
        assert findings[tool] == hits, f"{tool}: findings differ between rounds"
    rows.append((tool, statistics.mean(eps), statistics.mean(inside), max(rss), events, statistics.mean(cpu)))
names = {"aer": "`aer test` (batch 256)", "extism": "Extism 1.30 host, JSON batches of 256", "native": "native Rust, no Wasm"}
print(f"\n{rows[0][4]:,} events from `aer gen` ({events_path}), {rounds} interleaved rounds, means (peak RSS: the largest)\n")
print("| tool | events/s end to end | CPU seconds (user + sys) | us/event inside the plugin | peak RSS |")
print("|---|---|---|---|---|")
for tool, e, i, m, _, c in rows:
    print(f"| {names[tool]} | {e:,.0f} | {c:.2f} | {i:.2f} | {m:,.0f} MiB |")
same = findings["aer"] == findings["extism"] == findings["native"]
print(f"\nfindings: {len(findings['aer'])} aer, {len(findings['extism'])} extism, {len(findings['native'])} native; the same in all three: {'yes' if same else 'NO'}")
print(f"AER / Extism events per second: {rows[0][1] / rows[1][1]:.2f}")
sys.exit(0 if same else 1)
PY
