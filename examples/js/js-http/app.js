// A wasi:http handler in JavaScript, built by componentize-js against the
// `wasi:http/proxy` world (examples/wit-proxy): StarlingMonkey's `fetch` event,
// served by `airssys-wasm serve` unchanged, as `wasmtime serve` would.
//
// Routes: `/` says hello, `/echo` sends the request body back with its content
// type, `/status/N` answers N, `/fail` throws (the host answers 500).
addEventListener("fetch", (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  if (url.pathname.startsWith("/echo")) {
    const body = await request.arrayBuffer();
    const type = request.headers.get("content-type") ?? "application/octet-stream";
    return new Response(body, { headers: { "content-type": type } });
  }
  if (url.pathname.startsWith("/status/")) {
    const status = Number(url.pathname.slice("/status/".length));
    return new Response("status\n", { status, headers: { "content-type": "text/plain" } });
  }
  if (url.pathname.startsWith("/fail")) {
    throw new Error("js-http was asked to fail");
  }
  return new Response("hello from javascript\n", {
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
