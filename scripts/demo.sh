#!/usr/bin/env bash
# The main job on a fresh machine: builds soar and the connectors, starts the
# loopback vendor simulators (VirusTotal, CrowdStrike Falcon) and walks an
# alert's enrichment and a host containment through the sandboxed connectors.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build -p soar-runner -p soar-e2e --bins
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
soar="$target/debug/soar"

work="$(mktemp -d)"
sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$target/debug/vendor-sim" >"$work/sim.url" &
sim_pid=$!
for _ in $(seq 50); do [ -s "$work/sim.url" ] && break; sleep 0.1; done
url="$(head -1 "$work/sim.url")"

cat >"$work/soar.yaml" <<YAML
plugins_dir: $target/wasm32-wasip2/plugin
plugins:
  threatintel:
    allowed_hosts: ["$url"]
    secrets:
      api_key: { env: VT_API_KEY, hosts: ["$url"] }
    config: { base_url: "$url" }
  edr:
    allowed_hosts: ["$url"]
    secrets:
      client_id: { env: FALCON_CLIENT_ID, hosts: ["$url"] }
      client_secret: { env: FALCON_CLIENT_SECRET, hosts: ["$url"] }
    config: { base_url: "$url" }
    dry_run_allow: ["POST /oauth2/token"]
YAML
export VT_API_KEY=demo-virustotal-key
export FALCON_CLIENT_ID=demo-falcon-client FALCON_CLIENT_SECRET=demo-falcon-secret
export SOAR_DATA_DIR="$work/data"
repo="$PWD"
cd "$work"
host=0a1b2c3d4e5f4a5b8c7d6e5f4a3b2c1d
run() { printf '\n\033[1m$ soar %s\033[0m\n' "$*"; "$soar" "$@"; }

echo "vendor simulators listening on $url"
run plugins list
run plugins inspect edr
run plugins call threatintel lookup_hash --input '{"hash":"275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"}'
run plugins call edr get_host --input "{\"host_id\":\"$host\"}"
run plugins call edr isolate_host --dry-run --input "{\"host_id\":\"$host\"}"
printf '\n(without --allow-destructive soar refuses; exit code 2:)'
run plugins call edr isolate_host --input "{\"host_id\":\"$host\"}" || true
run plugins call edr isolate_host --allow-destructive --input "{\"host_id\":\"$host\"}"
printf '\n(idempotent: a second isolation sees the host contained and sends nothing)'
run plugins call edr isolate_host --allow-destructive --input "{\"host_id\":\"$host\"}"
run plugins call edr get_host --input "{\"host_id\":\"$host\"}"
printf '\n--- a playbook: enrich the alert in parallel, journaled ---'
run validate "$repo/playbooks/malware-enrichment.yaml"
run run "$repo/playbooks/malware-enrichment.yaml" --input "$repo/examples/alerts/edr-malware.json"
run_id="$("$soar" runs --json | sed -n 's/.*"run_id":"\([^"]*\)".*/\1/p' | head -1)"
printf '\n(the same alert again is deduplicated: same run, nothing sent)'
run run "$repo/playbooks/malware-enrichment.yaml" --input "$repo/examples/alerts/edr-malware.json"
run journal "$run_id"
run journal verify --all
run replay "$run_id"
printf '\ndemo finished: the secrets above were filled in by the host, never seen by the connectors.\n'
