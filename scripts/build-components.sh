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
# upgrade-probe in its versions (upgrade_probe_VARIANT.wasm): 1.0.0, 2.0.0, a
# 3.0.0 whose initialize fails, a 4.0.0 that traps on every message.
out="$target_dir/wasm32-wasip2/release"
for variant in v1:1.0.0: v2:2.0.0: bad_init:3.0.0:init trap:4.0.0:trap; do
  IFS=: read -r name version fault <<<"$variant"
  UPGRADE_PROBE_VERSION="$version" UPGRADE_PROBE_FAULT="$fault" \
    cargo build --quiet --release --target wasm32-wasip2 --manifest-path "$manifest" --target-dir "$target_dir" -p upgrade-probe
  cp "$out/upgrade_probe.wasm" "$out/upgrade_probe_$name.wasm"
done

# componentize-py (pinned) in a virtualenv under target/.
venv="$root/target/pyenv"
pyenv() {
  command -v python3 >/dev/null || { echo "build-components: python3 is needed for examples/python" >&2; exit 1; }
  if [ ! -x "$venv/bin/componentize-py" ] || ! "$venv/bin/componentize-py" --version | grep -q '0.25.1'; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1
  fi
}
# componentize-js (pinned) under target/.
jsenv="$root/target/jsenv"
jsenv() {
  command -v npm >/dev/null || { echo "build-components: node and npm are needed for examples/js" >&2; exit 1; }
  if [ ! -x "$jsenv/node_modules/.bin/componentize-js" ]; then
    mkdir -p "$jsenv"
    (cd "$jsenv" && npm install --silent --no-audit --no-fund --prefix "$jsenv" @bytecodealliance/componentize-js@0.23.0 >/dev/null)
  fi
}

# The Python example (examples/python/py-echo), built with componentize-py
# (pinned) from a virtualenv under target/, against the same wit/.
py_out="$target_dir/python/py-echo.wasm"
py_src="$root/examples/python/py-echo"
if [ ! -f "$py_out" ] || [ -n "$(find "$py_src" "$root/wit" -newer "$py_out" -type f | head -1)" ]; then
  pyenv
  mkdir -p "$target_dir/python"
  (cd "$py_src" && "$venv/bin/componentize-py" -d "$root/wit" -w component componentize app -o "$py_out" >/dev/null)
fi

# The Python wasi:http handler (examples/python/py-http), against the proxy
# world in examples/wit-proxy (WASI 0.2.12), for `serve`.
pyh_out="$target_dir/python/py-http.wasm"
pyh_src="$root/examples/python/py-http"
if [ ! -f "$pyh_out" ] || [ -n "$(find "$pyh_src" "$root/examples/wit-proxy" -newer "$pyh_out" -type f | head -1)" ]; then
  pyenv
  mkdir -p "$target_dir/python"
  (cd "$pyh_src" && "$venv/bin/componentize-py" -d "$root/examples/wit-proxy" -w proxy componentize app -o "$pyh_out" >/dev/null)
fi

# The JavaScript example (examples/js/js-echo), built with componentize-js
# (pinned, installed under target/) with its defaults: it imports wasi:http.
js_out="$target_dir/js/js-echo.wasm"
js_src="$root/examples/js/js-echo"
if [ ! -f "$js_out" ] || [ -n "$(find "$js_src" "$root/wit" -newer "$js_out" -type f | head -1)" ]; then
  jsenv
  mkdir -p "$target_dir/js"
  "$jsenv/node_modules/.bin/componentize-js" --wit "$root/wit" --world-name component -o "$js_out" "$js_src/app.js" >/dev/null
fi

# The JavaScript wasi:http handler (examples/js/js-http): StarlingMonkey's
# `fetch` event. componentize-js 0.23 attaches it only to the wasi:http 0.2.10
# export its engine implements, so its world is examples/wit-proxy renamed to
# 0.2.10 (0.2.x patch releases only add; the one 0.2.12 addition, cli's
# exit-with-code, loses its gate). The renamed copy lives under target/.
jsh_out="$target_dir/js/js-http.wasm"
jsh_src="$root/examples/js/js-http"
if [ ! -f "$jsh_out" ] || [ -n "$(find "$jsh_src" "$root/examples/wit-proxy" -newer "$jsh_out" -type f | head -1)" ]; then
  jsenv
  wit10="$target_dir/js/wit-proxy-0.2.10"
  rm -rf "$wit10" && mkdir -p "$wit10/deps"
  for f in "$root/examples/wit-proxy/world.wit" "$root/examples/wit-proxy"/deps/*.wit; do
    rel="${f#"$root/examples/wit-proxy/"}"
    sed -e 's/@0\.2\.12/@0.2.10/g' -e '/@since(version = 0\.2\.12)/d' "$f" > "$wit10/$rel"
  done
  "$root/target/jsenv/node_modules/.bin/componentize-js" --wit "$wit10" --world-name proxy -o "$jsh_out" "$jsh_src/app.js" >/dev/null
fi
