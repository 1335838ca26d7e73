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
use stele_tls::{Caller, Certified, Role};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::{Channel, Uri};

/// Every node serves clients on this port of its simulated host.
pub const PORT: u16 = 7000;
/// And the Raft transport on this one.
pub const PEER_PORT: u16 = 7400;

/// The simulated host name of node `id`.
pub fn host(id: u64) -> String {
    format!("node{id}")
}

/// The address node `id`'s clients reach it at.
pub fn addr(id: u64) -> String {
    format!("node{id}:{PORT}")
}

/// The address node `id`'s peers reach its Raft transport at.
pub fn peer_addr(id: u64) -> String {
    format!("node{id}:{PEER_PORT}")
}

/// A simulated TCP connection, as tonic's server wants it, with who is
/// calling as mutual TLS would prove it (the simulation has no TLS; the
/// checks above it are the product's): a node host holds its node's
/// certificate, any other host a client's with every role.
pub struct SimStream {
    stream: turmoil::net::TcpStream,
    caller: Caller,
}

impl tonic::transport::server::Connected for SimStream {
    type ConnectInfo = Caller;

    fn connect_info(&self) -> Caller {
        self.caller.clone()
    }
}

fn caller_of(stream: &turmoil::net::TcpStream) -> Caller {
    let host = stream
        .peer_addr()
        .ok()
        .and_then(|addr| turmoil::reverse_lookup(addr.ip()))
        .unwrap_or_default();
    let node = host.strip_prefix("node").and_then(|id| id.parse().ok());
    Caller::Certified(std::sync::Arc::new(Certified {
        node,
        roles: if node.is_some() {
            Default::default()
        } else {
            Role::ALL.into()
        },
        name: host,
        spki_sha256: node
            .map(|id| crate::fixtures::node_key(id).to_hex())
            .unwrap_or_default(),
    }))
}

impl AsyncRead for SimStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepted connections on this host's `port`.
pub async fn incoming(port: u16) -> io::Result<impl Stream<Item = io::Result<SimStream>>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    Ok(futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| SimStream {
            caller: caller_of(&stream),
            stream,
        });
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
    Arc::new(|addr: &str, _node: u64| channel(addr))
}
