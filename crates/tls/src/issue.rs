//! Issuing the cluster's certificates: a CA, node certificates naming a
//! node id and the hosts it is reached at, client certificates naming
//! roles. Keys are ECDSA P-256, made by ring.

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use thiserror::Error;
use time::OffsetDateTime;

use crate::identity::{NODE_URI, Role, read_certificate};

/// How long a CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a node or client certificate is valid, unless told otherwise.
pub const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Debug, Error)]
pub enum IssueError {
    #[error("{0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{0:?} is not a host name or IP address")]
    BadHost(String),
    #[error("a node id starts at 1")]
    BadNodeId,
    #[error("a client certificate needs at least one role")]
    NoRole,
    #[error("the CA's certificate or key does not parse: {0}")]
    BadCa(String),
}

/// A certificate and its key, in PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of its public key (SubjectPublicKeyInfo), hex.
    pub spki_sha256: String,
    pub not_after: OffsetDateTime,
}

/// The CA that signs, from its PEM files.
pub struct Authority {
    params: CertificateParams,
    key: KeyPair,
}

/// The parameters that name the CA as an issuer: its subject, read from
/// its certificate, and that it is a CA.
fn ca_params(subject_cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, subject_cn);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl Authority {
    /// The CA of `stele certs init`: its certificate must be one this crate
    /// issued (its subject is a common name only), and the key its own.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, IssueError> {
        use rustls::pki_types::pem::PemObject;
        let bad = |why: String| IssueError::BadCa(why);
        let key = KeyPair::from_pem(key_pem).map_err(|e| bad(e.to_string()))?;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| bad(e.to_string()))?;
        let fields = crate::der::read(&der).ok_or_else(|| bad("not a certificate".into()))?;
        if fields.spki != key.subject_public_key_info() {
            return Err(bad("the key is not the CA certificate's".into()));
        }
        let name = fields
            .common_name
            .ok_or_else(|| bad("the CA certificate has no common name".into()))?;
        Ok(Authority {
            params: ca_params(name),
            key,
        })
    }
}

fn key_or_new(key_pem: Option<&str>) -> Result<KeyPair, IssueError> {
    Ok(match key_pem {
        Some(pem) => KeyPair::from_pem(pem)?,
        None => KeyPair::generate()?,
    })
}

fn dated(params: &mut CertificateParams, validity: Duration) {
    let now = OffsetDateTime::now_utc();
    // An hour's slack for clocks that run behind the issuer's.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + validity;
}

fn finish(cert_pem: String, key: &KeyPair, not_after: OffsetDateTime) -> Issued {
    Issued {
        cert_pem,
        key_pem: key.serialize_pem(),
        spki_sha256: sha2_hex(&key.subject_public_key_info()),
        not_after,
    }
}

fn sha2_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A new CA, self-signed, valid for [`CA_VALIDITY`].
pub fn new_ca(name: &str) -> Result<Issued, IssueError> {
    let key = KeyPair::generate()?;
    let mut params = ca_params(name);
    dated(&mut params, CA_VALIDITY);
    let not_after = params.not_after;
    let cert = params.self_signed(&key)?;
    Ok(finish(cert.pem(), &key, not_after))
}

fn host_name(host: &str) -> Result<SanType, IssueError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let name = host
        .try_into()
        .map_err(|_| IssueError::BadHost(host.to_string()))?;
    Ok(SanType::DnsName(name))
}

fn uri(text: &str) -> Result<SanType, IssueError> {
    Ok(SanType::URI(text.try_into()?))
}

impl Authority {
    fn sign(&self, params: CertificateParams, key: &KeyPair) -> Result<String, IssueError> {
        let issuer = Issuer::from_params(&self.params, &self.key);
        Ok(params.signed_by(key, &issuer)?.pem())
    }

    /// Node `id`'s certificate, for the hosts (names or IPs) it is reached
    /// at; it serves and dials (server and client auth). `key_pem` renews
    /// a certificate on its existing key.
    pub fn node(
        &self,
        id: u64,
        hosts: &[String],
        validity: Duration,
        key_pem: Option<&str>,
    ) -> Result<Issued, IssueError> {
        if id == 0 {
            return Err(IssueError::BadNodeId);
        }
        let key = key_or_new(key_pem)?;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, format!("stele node {id}"));
        params.distinguished_name = subject;
        params
            .subject_alt_names
            .push(uri(&format!("{NODE_URI}{id}"))?);
        for host in hosts {
            params.subject_alt_names.push(host_name(host)?);
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        dated(&mut params, validity);
        let not_after = params.not_after;
        Ok(finish(self.sign(params, &key)?, &key, not_after))
    }

    /// A client's certificate granting `roles`, named `name`.
    pub fn client(
        &self,
        name: &str,
        roles: &[Role],
        validity: Duration,
        key_pem: Option<&str>,
    ) -> Result<Issued, IssueError> {
        if roles.is_empty() {
            return Err(IssueError::NoRole);
        }
        let key = key_or_new(key_pem)?;
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        for role in roles {
            params.subject_alt_names.push(uri(&role.uri())?);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        dated(&mut params, validity);
        let not_after = params.not_after;
        Ok(finish(self.sign(params, &key)?, &key, not_after))
    }
}

/// Reads back what an issued certificate names (for tests and `--json`).
pub fn names(cert_pem: &str) -> Result<crate::Certified, crate::CertError> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| crate::CertError::Parse(e.to_string()))?;
    read_certificate(der.as_ref())
}
