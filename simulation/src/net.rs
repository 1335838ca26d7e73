//! The node's gRPC transport over turmoil's simulated TCP: a listener
//! stream for the server, a connector for channels. Everything above the
//! socket (tonic, hyper, h2, the services, openraft's messages) is the
//! product's own code.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use stele_node::dial::Dial;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Uri};

/// Every node listens on this port of its simulated host.
pub const PORT: u16 = 7000;

/// The simulated host name of node `id`.
pub fn host(id: u64) -> String {
    format!("node{id}")
}

/// The address node `id` is reached at.
pub fn addr(id: u64) -> String {
    format!("node{id}:{PORT}")
}

/// A simulated TCP connection, as tonic's server wants it.
pub struct SimStream(turmoil::net::TcpStream);

impl tonic::transport::server::Connected for SimStream {
    type ConnectInfo = ();

    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Accepted connections on this host's [`PORT`].
pub async fn incoming() -> io::Result<impl Stream<Item = io::Result<SimStream>>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
        Some((accepted, listener))
    }))
}

/// A lazily connecting channel to `addr` over the simulated network. Must be
/// called inside a simulated host (the channel's worker runs there).
pub fn channel(addr: &str) -> Result<Channel, stele_node::dial::BadAddress> {
    let endpoint = stele_node::dial::endpoint(addr)?;
    Ok(
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(PORT);
            let stream = turmoil::net::TcpStream::connect(format!("{host}:{port}")).await?;
            Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
        })),
    )
}

/// How simulated nodes dial their peers.
pub fn dial() -> Dial {
    Arc::new(channel)
}
