//! What a TLS port says to a client that speaks plaintext to it. A gRPC
//! client gets `FAILED_PRECONDITION` (reason `TLS_REQUIRED`) and an HTTP client a 400, each saying that the
//! port needs TLS and how to connect (as Go's TLS servers answer plain
//! HTTP), rather than a connection reset it has to guess about.

use std::collections::HashMap;
use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use stele_ledger::Reason;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::errors;

/// The explanation every plaintext caller gets.
pub const REQUIRES_TLS: &str = "this stele port requires TLS: connect with an https:// or \
     HOST:PORT endpoint and --tls-ca, --tls-cert and --tls-key (or STELE_TLS_*), not with \
     http:// and --insecure-plaintext";

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Whether a connection's first byte starts a TLS handshake.
pub fn starts_tls(first: u8) -> bool {
    first == TLS_HANDSHAKE_RECORD
}

/// Answers every request on a plaintext connection with [`REQUIRES_TLS`]
/// until `deadline` (the connection's handshake deadline), then closes it.
pub async fn explain(stream: TcpStream, deadline: Instant) {
    let connection = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
        .into_owned();
    let _ = tokio::time::timeout_at(deadline, connection).await;
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let grpc = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        let status = errors::with_reason(Reason::TlsRequired, REQUIRES_TLS.into(), HashMap::new());
        return Ok(status.into_http());
    }
    let response = Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::from(format!("{REQUIRES_TLS}\n"))));
    Ok(response.expect("static headers are valid"))
}
