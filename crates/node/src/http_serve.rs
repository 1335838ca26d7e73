//! Serving the HTTP API on accepted connections: HTTP/1.1 through hyper's
//! own connection builder, with a deadline on reading a request's headers
//! (a client that sends half a request is cut off, not waited on) and one
//! on each whole request; the caller each connection proved rides along
//! as a request extension for the routes to check.

use std::io;

use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::limits::HTTP_HEADER_READ_DEADLINE;
use crate::listener::Conn;

/// Serves `router` on each connection of `connections` until `stopping`
/// turns true, then lets open requests finish.
pub async fn serve(
    mut connections: impl futures::Stream<Item = io::Result<Conn>> + Unpin,
    router: axum::Router,
    mut stopping: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HTTP_HEADER_READ_DEADLINE)
        .keep_alive(true);
    loop {
        let conn = tokio::select! {
            conn = connections.next() => conn,
            _ = stopping.wait_for(|stop| *stop) => break,
        };
        let Some(Ok(conn)) = conn else {
            break;
        };
        let caller = conn.caller().clone();
        let service =
            router
                .clone()
                .map_request(move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(caller.clone());
                    request
                });
        let connection =
            builder.serve_connection(TokioIo::new(conn), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("HTTP connection ended: {error}");
            }
        });
    }
    graceful.shutdown().await;
}
