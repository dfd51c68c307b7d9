#!/usr/bin/env bash
# Benchmarks (numbers go to BENCHMARKS.md). Uses the dev profile, whose
# dependencies (wasmtime above all) are optimised: see the workspace Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-plugins.sh
cargo build -p soar-runner --bin soar
cargo bench -p soar-runner --profile dev --bench plugin_invoke
cargo bench -p soar-runner --profile dev --bench engine
cargo bench -p soar-runner --profile dev --bench state
cargo bench -p soar-e2e --profile dev --bench serve
cargo bench -p soar-e2e --profile dev --bench intake
