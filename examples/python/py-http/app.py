"""A wasi:http handler in Python, built by componentize-py against the
`wasi:http/proxy` world (examples/wit-proxy) and served by `airssys-wasm serve`
unchanged, as `wasmtime serve` would.

Routes: `/` says hello, `/echo` streams the request body back with its content
type, `/status/N` answers N, `/fail` raises (the host answers 500).
"""

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    Fields,
    IncomingBody,
    IncomingRequest,
    OutgoingBody,
    OutgoingResponse,
    ResponseOutparam,
)

# wasi:io lets one blocking write carry at most 4096 bytes.
WRITE_MAX = 4096


def read_body(request: IncomingRequest) -> bytes:
    body = request.consume()
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(64 * 1024))
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise
    # The stream is dropped first (a child of the body), then the body ends.
    with IncomingBody.finish(body):
        pass
    return b"".join(chunks)


def respond(out: ResponseOutparam, status: int, content_type: bytes, data: bytes) -> None:
    response = OutgoingResponse(Fields.from_list([("content-type", content_type)]))
    response.set_status_code(status)
    body = response.body()
    ResponseOutparam.set(out, Ok(response))
    with body.write() as stream:
        for i in range(0, len(data), WRITE_MAX):
            stream.blocking_write_and_flush(data[i : i + WRITE_MAX])
    OutgoingBody.finish(body, None)


class IncomingHandler(exports.IncomingHandler):
    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        path = request.path_with_query() or "/"
        if path.startswith("/echo"):
            content_type = b"application/octet-stream"
            with request.headers() as headers:
                for name, value in headers.entries():
                    if name.lower() == "content-type":
                        content_type = value
            data = read_body(request)
            respond(response_out, 200, content_type, data)
        elif path.startswith("/status/"):
            respond(response_out, int(path[len("/status/") :]), b"text/plain", b"status\n")
        elif path.startswith("/fail"):
            raise RuntimeError("py-http was asked to fail")
        else:
            respond(response_out, 200, b"text/plain; charset=utf-8", b"hello from python\n")
