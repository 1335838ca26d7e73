//! Accepting connections on a node's ports: TCP, then (unless plaintext) a
//! TLS handshake in a task of its own under a deadline, so that a
//! half-finished handshake holds nothing but its own task. Caps on open
//! connections ([`ConnectionLimits`]): callers who proved nothing, while
//! they handshake and after, can never take the slots of certified ones.
//! Handshakes and anonymous connections each have slots of their own where
//! a newcomer evicts the oldest ([`Slots`]), so that filling them shuts
//! nobody else out, and an anonymous connection is closed after
//! [`ANONYMOUS_CONNECTION_LIFETIME`] whatever it is doing. Each connection
//! carries who is calling ([`Caller`]), read once from its certificate.

use std::future::Future;
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

use crate::limits::{ANONYMOUS_CONNECTION_LIFETIME, ConnectionLimits};
use crate::not_tls;
use crate::slots::{Slot, Slots};

/// Longest a TLS handshake may take before its connection is closed.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// Connections handshaken and waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// One accepted connection, handshaken, with its caller.
pub struct Conn {
    io: Io,
    caller: Caller,
    /// When an anonymous connection ends, whatever it is doing.
    ends: Option<Pin<Box<tokio::time::Sleep>>>,
    _open: OwnedSemaphorePermit,
    /// An anonymous connection's slot: a newcomer may evict it.
    anonymous: Option<Slot>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Conn {
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Whether the connection's lifetime is over; if not, `cx` is woken
    /// when it is.
    fn ended(&mut self, cx: &mut Context<'_>) -> bool {
        let lived = self
            .ends
            .as_mut()
            .is_some_and(|ends| ends.as_mut().poll(cx).is_ready());
        let evicted = self
            .anonymous
            .as_mut()
            .is_some_and(|slot| slot.poll_evicted(cx).is_ready());
        lived || evicted
    }
}

fn lifetime_over() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "an anonymous connection's lifetime is over, or a newer one took its slot",
    )
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
    limits: ConnectionLimits,
) -> ReceiverStream<io::Result<Conn>> {
    let (accepted, incoming) = mpsc::channel(ACCEPTED_QUEUE);
    let open = Arc::new(Semaphore::new(limits.total));
    let handshaking = Slots::new(limits.handshaking);
    let anonymous = Slots::new(limits.anonymous);
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
                tracing::warn!(port, %remote, "{} connections are open (--max-connections): closed a new one", limits.total);
                continue;
            };
            // Taken only under TLS: a plaintext port is loopback only.
            let handshake = acceptor.as_ref().map(|_| {
                let (slot, evicted) = handshaking.take();
                if evicted {
                    tracing::warn!(port, "{} connections are in their handshake (--max-handshakes): closed the oldest", limits.handshaking);
                }
                slot
            });
            // Without TCP_NODELAY, a reply's frames wait on the client's
            // delayed ACK: about 40 ms per call.
            if let Err(error) = stream.set_nodelay(true) {
                tracing::warn!("cannot set TCP_NODELAY: {error}");
            }
            let accepted = accepted.clone();
            let acceptor = acceptor.clone();
            let anonymous = anonymous.clone();
            tokio::spawn(async move {
                let conn = match acceptor {
                    None => Conn {
                        io: Io::Plain(stream),
                        caller: Caller::Insecure,
                        ends: None,
                        _open: permit,
                        anonymous: None,
                    },
                    Some(acceptor) => {
                        let mut handshake = handshake.expect("a slot under TLS");
                        let handshaken = tokio::select! {
                            biased;
                            () = handshake.evicted() => {
                                tracing::info!(port, %remote, "closed a connection still in its handshake: a newer one took its slot (--max-handshakes)");
                                return;
                            }
                            done = handshake_tls(stream, &acceptor, port, remote) => done,
                        };
                        drop(handshake);
                        let Some(tls) = handshaken else {
                            return;
                        };
                        match caller_of(&tls) {
                            Ok(Caller::Anonymous) => {
                                let (slot, evicted) = anonymous.take();
                                if evicted {
                                    tracing::warn!(
                                        port,
                                        "{} connections without a certificate are open (--max-anonymous-connections): closed the oldest",
                                        limits.anonymous
                                    );
                                }
                                Conn {
                                    io: Io::Tls(Box::new(tls)),
                                    caller: Caller::Anonymous,
                                    ends: Some(Box::pin(tokio::time::sleep(
                                        ANONYMOUS_CONNECTION_LIFETIME,
                                    ))),
                                    _open: permit,
                                    anonymous: Some(slot),
                                }
                            }
                            Ok(caller) => Conn {
                                io: Io::Tls(Box::new(tls)),
                                caller,
                                ends: None,
                                _open: permit,
                                anonymous: None,
                            },
                            Err(why) => {
                                tracing::warn!(port, %remote, "refused a connection: {why}");
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

/// The first byte, then the TLS handshake, under one deadline: the
/// finished stream, or `None` (logged) for a plaintext client (told so), a
/// silent one, or a failed handshake.
async fn handshake_tls(
    stream: TcpStream,
    acceptor: &tokio_rustls::TlsAcceptor,
    port: &'static str,
    remote: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_DEADLINE;
    match first_byte(&stream, deadline).await {
        Some(first) if not_tls::starts_tls(first) => {}
        Some(_) => {
            tracing::info!(port, %remote, "a plaintext client at a TLS port: told it so");
            not_tls::explain(stream, deadline).await;
            return None;
        }
        None => {
            tracing::info!(port, %remote, "nothing sent within {HANDSHAKE_DEADLINE:?}: closed");
            return None;
        }
    }
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::info!(port, %remote, "TLS handshake failed: {error}");
            None
        }
        Err(_) => {
            tracing::info!(port, %remote, "TLS handshake unfinished after {HANDSHAKE_DEADLINE:?}: closed");
            None
        }
    }
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
        if self.ended(cx) {
            // Nothing more arrives: the server closes the connection.
            return Poll::Ready(Ok(()));
        }
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
        if self.ended(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
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
        if self.ended(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
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
        // A client that stops reading would hold a flush, and so its slot,
        // for ever.
        if self.ended(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.ended(cx) {
            return Poll::Ready(Err(lifetime_over()));
        }
        match &mut self.io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn a_connection_with_a_lifetime_ends_when_it_is_over_whatever_the_peer_does() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let mut conn = Conn {
            io: Io::Plain(accepted),
            caller: Caller::Anonymous,
            ends: Some(Box::pin(tokio::time::sleep(Duration::from_millis(200)))),
            _open: Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
            anonymous: None,
        };
        // Within its lifetime it reads what the peer sends.
        peer.write_all(b"x").await.unwrap();
        let mut buffer = [0u8; 8];
        assert_eq!(conn.read(&mut buffer).await.unwrap(), 1);
        // Then, with the peer still there and silent, the read ends (EOF)
        // instead of waiting, and writes fail.
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buffer)).await;
        assert_eq!(read.expect("the lifetime ended the read").unwrap(), 0);
        assert!(conn.write_all(b"y").await.is_err());
        assert!(conn.flush().await.is_err());
        assert!(conn.shutdown().await.is_err());
        drop(peer);
    }

    #[tokio::test]
    async fn an_anonymous_connection_ends_when_a_newer_one_takes_its_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _peer = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        let slots = Slots::new(1);
        let mut conn = Conn {
            io: Io::Plain(accepted),
            caller: Caller::Anonymous,
            ends: Some(Box::pin(tokio::time::sleep(ANONYMOUS_CONNECTION_LIFETIME))),
            _open: Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
            anonymous: Some(slots.take().0),
        };
        let (_newer, evicted) = slots.take();
        assert!(evicted);
        let mut buffer = [0u8; 8];
        let read = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buffer)).await;
        assert_eq!(read.expect("the eviction ended the read").unwrap(), 0);
        // Asked again, as a server closing the connection asks.
        assert_eq!(conn.read(&mut buffer).await.unwrap(), 0);
        assert!(conn.flush().await.is_err());
        assert!(conn.shutdown().await.is_err());
    }
}
