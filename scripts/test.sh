#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the wasm targets, builds
# the example components from source, runs every unit, integration, CLI and doc
# test, and runs each criterion benchmark once as a smoke test. First it checks
# that the library's modules import each other one way (no cycle).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/check-deps.py
# The cluster tests start their own nats-server (JetStream) on loopback ports.
if ! command -v nats-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get install -y nats-server || { $SUDO apt-get update && $SUDO apt-get install -y nats-server; }
fi
scripts/build-components.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
