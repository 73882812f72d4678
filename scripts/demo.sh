#!/usr/bin/env bash
# The demo: builds the CLI and the example components, then shows what
# airssys-wasm does with them. Every command is printed before it runs.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "== Building the example components (Rust guests for wasm32-wasip2, a Python and a JavaScript guest)"
scripts/build-components.sh || exit 1
# One build for the CLI and the embedding example: built together, the
# library and wasmtime are compiled once with one set of features (built
# apart, the example's dev-dependencies would rebuild them).
echo "== Building the CLI and the embedding example (release; wasmtime takes several minutes on a fresh machine)"
cargo build --release -p airssys-wasm-cli -p airssys-wasm --bins --example actor_system || exit 1

bin=target/release/airssys-wasm
g2=target/guests/wasm32-wasip2/release
g1=target/guests/wasm32-wasip1/release
demo_dir=$(mktemp -d)
trap 'rm -rf "$demo_dir"' EXIT
echo "a file the host granted" > "$demo_dir/note.txt"

show() {
  printf '\n\033[1m$ %s\033[0m\n' "$*"
  "$@"
  local rc=$?
  [ $rc -ne 0 ] && printf '(exit code %d)\n' "$rc"
  return 0
}

echo "== A running system: examples/demo/system.toml, an order pipeline of actors"
echo "   ingest --publish orders.new--> enrich --request--> store, and audit; counter/KEY on demand"
$bin up examples/demo/system.toml --admin 127.0.0.1:0 --http 127.0.0.1:0 --data "$demo_dir/data" >"$demo_dir/up.out" 2>"$demo_dir/up.err" &
up_pid=$!
trap 'kill $up_pid 2>/dev/null; rm -rf "$demo_dir"' EXIT
for _ in $(seq 1 100); do grep -q '^http: ' "$demo_dir/up.out" && break; sleep 0.1; done
admin=$(sed -n 's/^admin: //p' "$demo_dir/up.out")
http=$(sed -n 's/^http: //p' "$demo_dir/up.out")
[ -n "$admin" ] || { cat "$demo_dir/up.err"; exit 1; }
printf '\033[1m$ %s\033[0m\n' "$bin up examples/demo/system.toml --admin 127.0.0.1:0 --http 127.0.0.1:0 --data \$DIR &   # admin API on $admin, HTTP routes on $http"
show $bin ps --admin "$admin"
show $bin send --admin "$admin" ingest "order 1" --reply
show $bin send --admin "$admin" ingest "order 2" --reply
sleep 0.2
show $bin send --admin "$admin" store list --reply
show $bin send --admin "$admin" audit list --reply
echo "-- ingest crashes on this order; its supervisor restarts it from the InstancePre"
show $bin send --admin "$admin" ingest crash --reply
sleep 0.2
show $bin ps --admin "$admin"
show $bin send --admin "$admin" ingest "order 3" --reply
show $bin send --admin "$admin" counter/alice 5 --reply
show $bin send --admin "$admin" counter/alice 2 --reply
echo "-- tally keeps its count in durable storage: a crash, a restart and a passivation lose nothing"
show $bin send --admin "$admin" tally incr --reply
show $bin send --admin "$admin" tally incr --reply
show $bin send --admin "$admin" tally crash --reply
sleep 0.2
show $bin send --admin "$admin" tally get --reply
sleep 1.5
show sh -c "$bin ps --admin $admin | grep -E '^(ID|tally)'"
show $bin send --admin "$admin" tally incr --reply
if command -v curl >/dev/null && [ -n "$http" ]; then
  echo "-- HTTP routes: POST /orders is a message to ingest (its reply the response); the rest a wasi:http component"
  show curl -s -i -X POST --data-binary "order 4" "$http/orders"
  show curl -s -i "$http/"
fi
if command -v curl >/dev/null; then
  show sh -c "curl -s $admin/metrics | grep -E '^airssys_(actor_restarts_total|dead_letters_total|messages_sent_total)'"
fi
printf '\033[1m$ %s\033[0m\n' "kill -INT $up_pid   # graceful: drain mailboxes, shutdown() every actor"
kill -INT $up_pid; wait $up_pid; echo "(up exited with $?)"
cat "$demo_dir/up.out"
echo "-- what the actors left in the data directory"
show $bin storage ls --data "$demo_dir/data"
show $bin storage export --data "$demo_dir/data" tally
show $bin storage verify --data "$demo_dir/data"

echo; echo "== The same from Rust: an actor system built in code (crates/airssys-wasm/examples/actor_system.rs)"
show target/release/examples/actor_system

echo; echo "== Serve HTTP with a wasi:http/proxy component: a fresh instance per request"
show sh -c "$bin inspect $g2/http_hello.wasm | grep 'http handler'"
$bin serve --addr 127.0.0.1:0 --timeout 2s --fuel 100000000 $g2/http_hello.wasm >"$demo_dir/serve.out" 2>"$demo_dir/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q '^serving ' "$demo_dir/serve.out" && break; sleep 0.1; done
url=$(sed -n 's/^serving .* on //p' "$demo_dir/serve.out")
printf '\033[1m$ %s\033[0m\n' "$bin serve --timeout 2s --fuel 100000000 $g2/http_hello.wasm &   # on $url"
if command -v curl >/dev/null && [ -n "$url" ]; then
  show curl -s -i "${url}"
  show curl -s -i --data-binary "streamed back as it arrives" "${url}echo"
  echo "-- a trap is a 500 (its reason goes to the server's log, not to the client); a loop hits the fuel limit"
  show curl -s -i "${url}trap"
  show curl -s -o /dev/null -w '%{http_code}\n' "${url}spin"
  echo "-- the guest waits past the 2 s timeout before answering: 504"
  show curl -s -o /dev/null -w '%{http_code}\n' "${url}sleep/5000"
fi
kill -TERM $serve_pid; wait $serve_pid; echo "(serve exited with $? after SIGTERM)"
cat "$demo_dir/serve.err"

echo; echo "== Inspect a lifecycle component"
show $bin inspect $g2/echo.wasm

echo; echo "== Call lifecycle components: initialize, one message, the reply"
show $bin call $g2/echo.wasm "hello, airssys"
show $bin call --stats --config start=41 $g2/counter.wasm 1
echo "-- with --data, the count is durable: each call is a new process"
show $bin call --data "$demo_dir/kv" $g2/kv-counter.wasm incr
show $bin call --data "$demo_dir/kv" $g2/kv-counter.wasm incr
show $bin call --data "$demo_dir/kv" $g2/kv-counter.wasm crash
show $bin call --data "$demo_dir/kv" $g2/kv-counter.wasm get
echo "-- a guest written only against wasi:keyvalue (no airssys SDK) runs unchanged"
show $bin run --data "$demo_dir/kv" $g2/kv-wasi.wasm incr visits

echo; echo "== Any export of any component, arguments and results in WAVE"
show $bin call --invoke 'add(40, 2)' $g2/invoke_probe.wasm
show $bin call --invoke 'example:invoke-probe/math#divide(1, 0)' $g2/invoke_probe.wasm
show $bin call --invoke 'add("x")' $g2/invoke_probe.wasm

echo; echo "== Guests from other toolchains, unchanged: Python (componentize-py) and JavaScript (componentize-js)"
show $bin call target/guests/python/py-echo.wasm "upper hello from python"
show $bin call --timeout 1s target/guests/python/py-echo.wasm spin
show $bin call target/guests/js/js-echo.wasm "hello from javascript"

echo; echo "== Run WASI commands (p2 component and p1 module), deny by default"
show $bin run $g2/wasi-probe.wasm args one two
show $bin run $g2/wasi-probe.wasm read /etc/hostname
show $bin run --dir "$demo_dir::/data" $g2/wasi-probe.wasm read /data/note.txt
show $bin run $g1/wasi-probe.wasm env HOME
show $bin run --env HOME $g1/wasi-probe.wasm env HOME
show $bin run $g1/wasi-probe.wasm exit 7

echo; echo "== Two hosts on NATS: location-transparent messages, one activation of each virtual actor"
if command -v nats-server >/dev/null; then
  nats_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$demo_dir/nats"
  nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$demo_dir/nats" >/dev/null 2>&1 &
  nats_pid=$!
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$nats_port") 2>/dev/null && break; sleep 0.05; done
  printf '\033[1m$ %s\033[0m\n' "nats-server -js -a 127.0.0.1 -p $nats_port &"
  start_host() {
    $bin up examples/cluster/host-$1.toml --admin 127.0.0.1:0 --cluster "nats://127.0.0.1:$nats_port" --host-id host-$1 \
      --data "$demo_dir/host-$1" >"$demo_dir/host-$1.out" 2>"$demo_dir/host-$1.err" &
    echo $! >"$demo_dir/host-$1.pid"
    for _ in $(seq 200); do grep -q '^up: ' "$demo_dir/host-$1.out" && break; sleep 0.05; done
    printf '\033[1m$ %s\033[0m\n' "$bin up examples/cluster/host-$1.toml --admin 127.0.0.1:0 --cluster nats://127.0.0.1:$nats_port --host-id host-$1 &"
  }
  start_host a; start_host b
  host_a=$(sed -n 's/^admin: //p' "$demo_dir/host-a.out"); host_b=$(sed -n 's/^admin: //p' "$demo_dir/host-b.out")
  sleep 1
  show $bin ps --admin "$host_a"
  show $bin send --admin "$host_a" back whoami --reply
  show $bin send --admin "$host_b" front whoami --reply
  show $bin send --admin "$host_a" kv_counter/alice incr --reply
  show $bin send --admin "$host_b" kv_counter/alice incr --reply
  show $bin send --admin "$host_a" kv_counter/alice get --reply
  printf '\033[1m$ %s\033[0m\n' "kill -KILL \$host_b   # no goodbye: host-a sees it dead within dead-after (2 s)"
  { kill -KILL "$(cat "$demo_dir/host-b.pid")"; wait "$(cat "$demo_dir/host-b.pid")"; } 2>/dev/null; sleep 2.5
  show $bin ps --admin "$host_a"
  show $bin send --admin "$host_a" back whoami --reply
  kill -INT "$(cat "$demo_dir/host-a.pid")"; wait "$(cat "$demo_dir/host-a.pid")" 2>/dev/null
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null
else
  echo "(skipped: nats-server is not installed; apt-get install nats-server, then run this demo again)"
fi

echo; echo "== Hostile components hit their limits; the host reports and carries on"
show $bin call --fuel 50000000 $g2/looper.wasm spin
show $bin call --timeout 500ms $g2/looper.wasm spin
show $bin call --max-memory 32MiB $g2/memhog.wasm ""
show $bin call $g2/crasher.wasm overflow
show $bin call $g2/crasher.wasm panic

echo; echo "== Capabilities: a manifest, a host policy, an audit log"
mkdir -p "$demo_dir/data"
echo "granted by the manifest" > "$demo_dir/data/readme.txt"
cat > "$demo_dir/Component.toml" <<TOML
[component]
name = "probe"
version = "1.0.0"
[capabilities]
filesystem = [{ host = "data", guest = "/data", access = "read" }]
environment = ["GREETING=hello from the manifest"]
network = { outbound = ["127.0.0.1:22"] }
TOML
echo 'forbidden-ports = [22]' > "$demo_dir/policy.toml"
sec=(--manifest "$demo_dir/Component.toml" --policy "$demo_dir/policy.toml" --audit-log "$demo_dir/audit.jsonl")
show $bin run "${sec[@]}" $g2/wasi-probe.wasm read /data/readme.txt
show $bin run "${sec[@]}" $g2/wasi-probe.wasm write /data/new.txt nope
show $bin run "${sec[@]}" $g2/wasi-probe.wasm env GREETING
show $bin run "${sec[@]}" $g2/wasi-probe.wasm connect 127.0.0.1:22
show cat "$demo_dir/audit.jsonl"
show $bin inspect --manifest "$demo_dir/Component.toml" $g2/counter.wasm

echo; echo "== Signatures: refused before compiling when unsigned or tampered"
cp $g2/echo.wasm "$demo_dir/echo.wasm"
show $bin keygen --out "$demo_dir/key"
show $bin call --require-signature "$demo_dir/key.pub" "$demo_dir/echo.wasm" unsigned
show $bin sign "$demo_dir/echo.wasm" --key "$demo_dir/key"
show $bin call --require-signature "$demo_dir/key.pub" "$demo_dir/echo.wasm" "signed and verified"
printf 'x' >> "$demo_dir/echo.wasm"
show $bin call --require-signature "$demo_dir/key.pub" "$demo_dir/echo.wasm" tampered

echo; echo "== Precompile, then run the compiled code"
show $bin compile $g2/wasi-probe.wasm -o "$demo_dir/probe.cwasm"
show $bin run --allow-precompiled "$demo_dir/probe.cwasm" args precompiled
