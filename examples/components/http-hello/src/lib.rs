//! A `wasi:http/proxy` component, the shape `wasmtime serve`, Spin and
//! `cargo component new --proxy` use: it exports `wasi:http/incoming-handler`.
//!
//! - `GET /` — `hello from airssys-wasm`
//! - `/echo` — streams the request body back as it arrives (content type kept)
//! - `/consume` — reads the whole request body, then answers its length
//! - `/headers` — the request's headers, one `name: value` a line
//! - `/status/N` — answers status N
//! - `/sleep/MS` — waits MS milliseconds in the host (a monotonic-clock pollable), then answers
//! - `/fetch/HOST:PORT/PATH` — an outbound GET (needs a network grant); answers its status,
//!   or 502 with the error code when the host refused
//! - `/big/N` — N bytes of `x`, streamed in 64 KiB chunks
//!
//! And the hostile ones the server's tests use:
//! - `/trap` — panics before answering
//! - `/spin` — loops forever before answering (fuel or the timeout stops it)
//! - `/head-then-spin` — sends the head and a first chunk, then loops forever
//! - `/drop` — returns without answering
//! - `/header-flood` — appends 1 KiB headers until the host refuses (it traps
//!   the guest past its field limit), then would answer how many it got
use std::io::Write;

use wasip2::io::streams::StreamError;

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

struct Hello;

fn respond(out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[("content-type".to_string(), content_type.into())])
        .expect("valid header");
    let resp = OutgoingResponse::new(headers);
    resp.set_status_code(status).expect("valid status");
    let out_body = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    let mut stream = out_body.write().expect("stream taken once");
    // Any failure here is the client going away: nothing left to tell.
    let _ = stream.write_all(body).map(|_| stream.blocking_flush());
    drop(stream);
    let _ = OutgoingBody::finish(out_body, None);
}

fn text(out: ResponseOutparam, status: u16, body: &str) {
    respond(out, status, "text/plain; charset=utf-8", body.as_bytes());
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn echo(request: IncomingRequest, out: ResponseOutparam) {
    let content_type = request
        .headers()
        .get("content-type")
        .into_iter()
        .next()
        .unwrap_or_else(|| b"application/octet-stream".to_vec());
    let headers = Fields::from_list(&[("content-type".to_string(), content_type)])
        .expect("valid header");
    let resp = OutgoingResponse::new(headers);
    let out_body = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    let mut writer = out_body.write().expect("stream taken once");
    let in_body = request.consume().expect("body taken once");
    let reader = in_body.stream().expect("stream taken once");
    loop {
        match reader.blocking_read(64 << 10) {
            Ok(chunk) => {
                if writer.write_all(&chunk).is_err() {
                    return;
                }
                let _ = writer.blocking_flush();
            }
            Err(StreamError::Closed) => break,
            // The body broke (too large, or the client left): end the response unfinished.
            Err(StreamError::LastOperationFailed(_)) => return,
        }
    }
    drop(reader);
    drop(writer);
    let _ = OutgoingBody::finish(out_body, None);
}

fn fetch(target: &str, out: ResponseOutparam) {
    let (authority, path) = match target.find('/') {
        Some(i) => (&target[..i], &target[i..]),
        None => (target, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let _ = req.set_method(&Method::Get);
    let _ = req.set_scheme(Some(&Scheme::Http));
    if req.set_authority(Some(authority)).is_err() || req.set_path_with_query(Some(path)).is_err()
    {
        return text(out, 400, "bad target\n");
    }
    let future = match outgoing_handler::handle(req, None) {
        Ok(f) => f,
        Err(code) => return text(out, 502, &format!("{code:?}\n")),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(resp))) => text(out, 200, &format!("{}\n", resp.status())),
        Some(Ok(Err(code))) => text(out, 502, &format!("{code:?}\n")),
        _ => text(out, 500, "response taken twice\n"),
    }
}

fn big(n: usize, out: ResponseOutparam) {
    let headers =
        Fields::from_list(&[("content-type".to_string(), b"text/plain".to_vec())]).expect("ok");
    let resp = OutgoingResponse::new(headers);
    let out_body = resp.body().expect("body taken once");
    ResponseOutparam::set(out, Ok(resp));
    let mut writer = out_body.write().expect("stream taken once");
    let chunk = vec![b'x'; 64 << 10];
    let mut left = n;
    while left > 0 {
        let k = left.min(chunk.len());
        if writer.write_all(&chunk[..k]).is_err() {
            return;
        }
        left -= k;
    }
    let _ = writer.blocking_flush();
    drop(writer);
    let _ = OutgoingBody::finish(out_body, None);
}

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let path = path.split('?').next().unwrap_or("/").to_string();
        match path.as_str() {
            "/" => text(out, 200, "hello from airssys-wasm\n"),
            "/echo" => echo(request, out),
            "/consume" => {
                let body = request.consume().expect("body taken once");
                let stream = body.stream().expect("stream taken once");
                let mut n = 0usize;
                loop {
                    match stream.blocking_read(64 << 10) {
                        Ok(chunk) => n += chunk.len(),
                        Err(StreamError::Closed) => break,
                        // Too large, or the client left: give up without answering.
                        Err(StreamError::LastOperationFailed(_)) => return,
                    }
                }
                text(out, 200, &format!("{n} bytes\n"))
            }
            "/headers" => {
                let mut lines = String::new();
                for (name, value) in request.headers().entries() {
                    lines.push_str(&format!("{name}: {}\n", String::from_utf8_lossy(&value)));
                }
                text(out, 200, &lines)
            }
            "/trap" => panic!("trap requested by {path}"),
            "/spin" => spin(),
            "/drop" => drop(out),
            "/header-flood" => {
                let fields = Fields::new();
                let value = vec![b'v'; 1024];
                let mut n = 0u32;
                while n < 1_000_000 && fields.append(&format!("x-flood-{n}"), &value).is_ok() {
                    n += 1;
                }
                let resp = OutgoingResponse::new(fields);
                let body = resp.body().expect("body taken once");
                ResponseOutparam::set(out, Ok(resp));
                let mut w = body.write().expect("stream taken once");
                let _ = w.write_all(format!("{n} headers\n").as_bytes());
                let _ = w.blocking_flush();
                drop(w);
                let _ = OutgoingBody::finish(body, None);
            }
            "/head-then-spin" => {
                let resp = OutgoingResponse::new(Fields::new());
                let out_body = resp.body().expect("body taken once");
                ResponseOutparam::set(out, Ok(resp));
                let mut writer = out_body.write().expect("stream taken once");
                let _ = writer.write_all(b"first chunk\n");
                let _ = writer.blocking_flush();
                spin()
            }
            p => {
                if let Some(code) = p.strip_prefix("/status/") {
                    match code.parse::<u16>() {
                        Ok(c) => text(out, c, &format!("status {c}\n")),
                        Err(_) => text(out, 400, "bad status\n"),
                    }
                } else if let Some(ms) = p.strip_prefix("/sleep/") {
                    let ms: u64 = ms.parse().unwrap_or(0);
                    wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                    text(out, 200, &format!("slept {ms} ms\n"))
                } else if let Some(target) = p.strip_prefix("/fetch/") {
                    fetch(target, out)
                } else if let Some(n) = p.strip_prefix("/big/") {
                    big(n.parse().unwrap_or(0), out)
                } else {
                    text(out, 404, &format!("no route {p}\n"))
                }
            }
        }
    }
}

wasip2::http::proxy::export!(Hello);
