#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs the wasm targets, builds
# the example components from source, runs every unit, integration, CLI and doc
# test, and runs each criterion benchmark once as a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-components.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
