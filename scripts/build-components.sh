#!/usr/bin/env bash
# Builds the example components from source:
#   target/guests/wasm32-wasip2/release/*.wasm   (components)
#   target/guests/wasm32-wasip1/release/wasi-probe.wasm   (a WASI p1 core module)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
installed="$(rustup target list --installed 2>/dev/null || true)"
for t in wasm32-wasip2 wasm32-wasip1; do
  grep -qx "$t" <<<"$installed" || rustup target add "$t" >&2
done
manifest="$root/examples/components/Cargo.toml"
target_dir="$root/target/guests"
cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$manifest" --target-dir "$target_dir"
cargo build --quiet --release --target wasm32-wasip1 --manifest-path "$manifest" --target-dir "$target_dir" -p wasi-probe
cp "$target_dir/wasm32-wasip2/release/kv_counter.wasm" "$target_dir/wasm32-wasip2/release/kv-counter.wasm"
