//! Outbound HTTP through `wasi:http/outgoing-handler`, as any wasi:http guest
//! does it. Messages:
//!
//! - `get URL` — a GET; replies `STATUS BODY`, or `error: CODE` when the host
//!   (or the network) refused, e.g. `error: HttpRequestDenied`;
//! - `get-n N URL` — N GETs in a row (for benchmarks); replies the last status.
use airssys_wasm_sdk::{component, Component, Error, Message};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, OutgoingRequest, Scheme};

struct HttpProbe;

fn get(url: &str) -> Result<Result<(u16, Vec<u8>), ErrorCode>, Error> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", r)) => (Scheme::Http, r),
        Some(("https", r)) => (Scheme::Https, r),
        _ => return Err(Error::InvalidInput(format!("not an http(s) URL: {url}"))),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let req = OutgoingRequest::new(Fields::new());
    let bad = |what: &str| Error::InvalidInput(format!("invalid {what} in {url}"));
    req.set_scheme(Some(&scheme)).map_err(|_| bad("scheme"))?;
    req.set_authority(Some(authority))
        .map_err(|_| bad("authority"))?;
    req.set_path_with_query(Some(path))
        .map_err(|_| bad("path"))?;
    let future = match outgoing_handler::handle(req, None) {
        Ok(f) => f,
        Err(code) => return Ok(Err(code)),
    };
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(code))) => return Ok(Err(code)),
        Some(Err(())) | None => return Err(Error::Internal("response taken twice".into())),
    };
    let status = response.status();
    let body = response
        .consume()
        .map_err(|_| Error::Internal("body taken twice".into()))?;
    let stream = body
        .stream()
        .map_err(|_| Error::Internal("stream taken twice".into()))?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(wasip2::io::streams::StreamError::Closed) => break,
            Err(wasip2::io::streams::StreamError::LastOperationFailed(e)) => {
                let code = wasip2::http::types::http_error_code(&e);
                // The first line: the cause, without a host backtrace.
                let text = e.to_debug_string();
                let first = text.lines().next().unwrap_or_default().to_string();
                return Ok(Err(code.unwrap_or(ErrorCode::InternalError(Some(first)))));
            }
        }
    }
    Ok(Ok((status, bytes)))
}

impl Component for HttpProbe {
    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        let mut words = text.split_whitespace();
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("get"), Some(url), None) => match get(url)? {
                Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
                Err(code) => format!("error: {code:?}"),
            },
            (Some("get-n"), Some(n), Some(url)) => {
                let n: u32 = n.parse().map_err(|_| Error::InvalidInput(n.into()))?;
                let mut last = String::new();
                for _ in 0..n {
                    last = match get(url)? {
                        Ok((status, _)) => status.to_string(),
                        Err(code) => format!("error: {code:?}"),
                    };
                }
                last
            }
            _ => return Err(Error::InvalidInput(format!("unknown command {text:?}"))),
        };
        Ok(Some(reply.into_bytes()))
    }
}

component!(HttpProbe);
