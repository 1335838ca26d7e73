//! The rustls configurations: a node's servers, a node dialling a peer,
//! a client dialling a node. All from three PEM files: the cluster's CA,
//! and a certificate with its key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;

use crate::verify::NodeVerifier;

/// Where a node's or a client's TLS material is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate: the only issuer trusted.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// TLS material that cannot be used.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("the CA certificate {path} is not usable: {error}")]
    BadCa { path: PathBuf, error: String },
    #[error("the certificate {cert} and key {key} do not make a TLS identity: {error}")]
    BadIdentity {
        cert: PathBuf,
        key: PathBuf,
        error: String,
    },
}

/// The files, read and parsed.
#[derive(Debug)]
pub struct Loaded {
    pub files: TlsFiles,
    pub roots: Arc<RootCertStore>,
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        error: e.to_string(),
    })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            path: path.to_path_buf(),
            error: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

impl TlsFiles {
    pub fn load(&self) -> Result<Loaded, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in certificates(&self.ca)? {
            roots.add(ca).map_err(|e| TlsError::BadCa {
                path: self.ca.clone(),
                error: e.to_string(),
            })?;
        }
        let chain = certificates(&self.cert)?;
        let key =
            PrivateKeyDer::from_pem_slice(&read(&self.key)?).map_err(|_| TlsError::NoKey {
                path: self.key.clone(),
            })?;
        Ok(Loaded {
            files: self.clone(),
            roots: Arc::new(roots),
            chain,
            key,
        })
    }
}

/// Whether a server asks its callers for a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// The peer port: no certificate, no connection.
    Required,
    /// The client ports: a certificate when the caller has one (each call
    /// then checks the role it needs); probes and, when allowed, decisions
    /// come without one.
    Optional,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Loaded {
    fn bad_identity(&self, error: impl std::fmt::Display) -> TlsError {
        TlsError::BadIdentity {
            cert: self.files.cert.clone(),
            key: self.files.key.clone(),
            error: error.to_string(),
        }
    }

    /// A node's server: its own certificate; callers' certificates checked
    /// against the CA. `alpn`: the protocols served (`h2` for gRPC).
    pub fn server_config(
        &self,
        auth: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider());
        let verifier = match auth {
            ClientAuth::Required => verifier,
            ClientAuth::Optional => verifier.allow_unauthenticated(),
        }
        .build()
        .map_err(|e| self.bad_identity(e))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.bad_identity(e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.bad_identity(e))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// A node dialling peer `node`: the peer must present node `node`'s
    /// certificate from the CA, whatever host name it is reached at; this
    /// node presents its own.
    pub fn peer_client_config(&self, node: u64) -> Result<Arc<ClientConfig>, TlsError> {
        let verifier = Arc::new(NodeVerifier {
            roots: self.roots.clone(),
            expected: node,
            provider: provider(),
        });
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.bad_identity(e))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.bad_identity(e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A client dialling a node by host name: the node's certificate must
    /// be the CA's and name that host; the client presents its own.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider())
            .build()
            .map_err(|e| self.bad_identity(e))?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| self.bad_identity(e))?
            .with_webpki_verifier(verifier)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| self.bad_identity(e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}
