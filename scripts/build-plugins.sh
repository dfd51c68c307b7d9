#!/usr/bin/env bash
# Builds every connector and test fixture for wasm32-wasip2, once, into
# $CARGO_TARGET_DIR (default ./target)/wasm32-wasip2/plugin/NAME.wasm.
# Installs the wasm target first if it is missing (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
cargo build --profile plugin --target wasm32-wasip2 \
    -p soar-plugin-threatintel \
    -p soar-plugin-edr \
    -p soar-plugin-identity \
    -p soar-plugin-blocklist \
    -p soar-plugin-cases \
    -p soar-plugin-chatops \
    -p soar-fixture-hostile \
    -p soar-fixture-fs-snoop \
    -p soar-fixture-bad-manifest
