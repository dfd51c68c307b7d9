#!/usr/bin/env bash
# The main job on a fresh machine: builds soar, the six connectors and the
# loopback vendor simulator, then runs `soar demo`: an EDR malware alert goes
# through enrichment, a case, an approval gate (handoff and dry-run plan) and
# a host containment, ending with the run's timeline from its journal.
#   scripts/demo.sh --yes   approve at once
#   scripts/demo.sh         wait for `soar approve` from a second terminal
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build -p soar-runner -p soar-e2e --bins
target="${CARGO_TARGET_DIR:-target}"
exec "$target/debug/soar" demo --repo . --dir .soar-demo "$@"
