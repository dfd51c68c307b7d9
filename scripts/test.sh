#!/usr/bin/env bash
# Runs every test on a fresh machine: wasm target, plugins (built once per
# run), the soar binary, then the whole workspace's unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build -p soar-runner --bin soar
cargo test --workspace "$@"
