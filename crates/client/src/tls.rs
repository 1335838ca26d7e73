//! The client's TLS connector: TCP, then rustls, with an error that says
//! what went wrong when the two ends do not speak the same protocol.

use std::io;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use tonic::transport::Uri;

/// Connects to `address` and shakes hands as `name`.
/// The handshake gets `deadline`: a node that accepts a connection and
/// never answers (a frozen process) times out like a call.
pub fn connector(
    address: String,
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
    deadline: std::time::Duration,
) -> impl tower::Service<
    Uri,
    Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    Error = io::Error,
    Future = impl Future + Send,
> + Clone
+ Send {
    let connector = tokio_rustls::TlsConnector::from(config);
    tower::service_fn(move |_: Uri| {
        let connector = connector.clone();
        let address = address.clone();
        let name = name.clone();
        async move {
            let stream = tokio::net::TcpStream::connect(&address).await?;
            stream.set_nodelay(true)?;
            let tls = tokio::time::timeout(deadline, connector.connect(name, stream))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("TLS handshake with {address}: no answer within {deadline:?}"),
                    )
                })?
                .map_err(|error| explained(&address, error))?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        }
    })
}

/// A failed handshake, with what to do about it.
fn explained(address: &str, error: io::Error) -> io::Error {
    let hint = match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidMessage(_)) => {
            " (the node did not answer in TLS: if it runs with --insecure-plaintext, talk to it with --insecure-plaintext too)"
        }
        Some(rustls::Error::InvalidCertificate(_)) => {
            " (the node's certificate is not one the cluster CA (--tls-ca) issued for this host name, or it expired)"
        }
        Some(rustls::Error::AlertReceived(_)) => {
            " (the node refused this client's certificate: is --tls-cert issued by the node's CA and still valid?)"
        }
        _ => "",
    };
    io::Error::new(
        error.kind(),
        format!("TLS handshake with {address} failed: {error}{hint}"),
    )
}
