//! Accepting connections on a node's ports: TCP, then (unless plaintext) a
//! TLS handshake in a task of its own under a deadline, so that a
//! half-finished handshake holds nothing but its own task; a cap on open
//! connections. Each connection carries who is calling ([`Caller`]), read
//! once from its certificate.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use stele_tls::Caller;
use stele_tls::identity::read_certificate;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::not_tls;

/// Longest a TLS handshake may take before its connection is closed.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Most connections open at once on one port; more are closed at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// Connections handshaken and waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// One accepted connection, handshaken, with its caller.
pub struct Conn {
    io: Io,
    caller: Caller,
    _open: OwnedSemaphorePermit,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Caller;

    fn connect_info(&self) -> Caller {
        self.caller.clone()
    }
}

/// Accepts on `listener` until the returned stream is dropped. `tls`:
/// the port's TLS configuration, or `None` for `--insecure-plaintext`.
/// `port` names the port in logs.
pub fn accept(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    port: &'static str,
) -> ReceiverStream<io::Result<Conn>> {
    let (accepted, incoming) = mpsc::channel(ACCEPTED_QUEUE);
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(port, "accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if accepted.is_closed() {
                return;
            }
            let Ok(permit) = open.clone().try_acquire_owned() else {
                tracing::warn!(port, %remote, "{MAX_CONNECTIONS} connections are open: closed a new one");
                continue;
            };
            // Without TCP_NODELAY, a reply's frames wait on the client's
            // delayed ACK: about 40 ms per call.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY: {error}");
            }
            let accepted = accepted.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let conn = match acceptor {
                    None => Conn {
                        io: Io::Plain(stream),
                        caller: Caller::Insecure,
                        _open: permit,
                    },
                    Some(acceptor) => {
                        // One deadline for the first byte and the handshake.
                        let deadline = tokio::time::Instant::now() + HANDSHAKE_DEADLINE;
                        match first_byte(&stream, deadline).await {
                            Some(first) if not_tls::starts_tls(first) => {}
                            Some(_) => {
                                tracing::info!(port, %remote, "a plaintext client at a TLS port: told it so");
                                not_tls::explain(stream, deadline).await;
                                return;
                            }
                            None => {
                                tracing::info!(port, %remote, "nothing sent within {HANDSHAKE_DEADLINE:?}: closed");
                                return;
                            }
                        }
                        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => match caller_of(&tls) {
                                Ok(caller) => Conn {
                                    io: Io::Tls(Box::new(tls)),
                                    caller,
                                    _open: permit,
                                },
                                Err(why) => {
                                    tracing::warn!(port, %remote, "refused a connection: {why}");
                                    return;
                                }
                            },
                            Ok(Err(error)) => {
                                tracing::info!(port, %remote, "TLS handshake failed: {error}");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(port, %remote, "TLS handshake unfinished after {HANDSHAKE_DEADLINE:?}: closed");
                                return;
                            }
                        }
                    }
                };
                let _ = accepted.send(Ok(conn)).await;
            });
        }
    });
    ReceiverStream::new(incoming)
}

/// The connection's first byte, once it has arrived (`None` if the
/// client closes or sends nothing by `deadline`).
async fn first_byte(stream: &TcpStream, deadline: tokio::time::Instant) -> Option<u8> {
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        _ => None,
    }
}

/// Who presented what in a finished handshake: the certificate's names,
/// or no certificate. The handshake already checked it is the CA's.
fn caller_of(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
) -> Result<Caller, stele_tls::CertError> {
    let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Ok(Caller::Anonymous);
    };
    Ok(Caller::Certified(Arc::new(read_certificate(leaf)?)))
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(stream) => stream.is_write_vectored(),
            Io::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
