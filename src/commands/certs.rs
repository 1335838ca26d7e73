//! `stele certs`: the cluster's CA, node certificates and client
//! certificates with roles, with rcgen (through stele-tls). Secret keys
//! are written mode 0600 and never overwritten; `--reuse-key` renews a
//! certificate on its existing key.

use std::path::{Path, PathBuf};

use serde_json::json;
use stele_tls::Role;
use stele_tls::issue::{Authority, Issued, new_ca};

use crate::cli::{CertsCommand, IssueArgs};
use crate::failure::{Code, Failure, Result};
use crate::files::{create_new, refuse_existing, replace};
use crate::output::Output;

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";

pub fn run(out: Output, command: CertsCommand) -> Result<()> {
    match command {
        CertsCommand::Init { dir, name } => {
            let written = init(&dir, &name)?;
            print(out, &written, "the cluster CA");
            Ok(())
        }
        CertsCommand::Node {
            dir,
            id,
            hosts,
            issue,
        } => {
            let written = node(&dir, id, &hosts, &issue)?;
            print(out, &written, &format!("node {id}'s certificate"));
            Ok(())
        }
        CertsCommand::Client {
            dir,
            roles,
            name,
            issue,
        } => {
            let roles = roles
                .iter()
                .map(|r| r.parse::<Role>().map_err(|e| Failure::usage(e.to_string())))
                .collect::<Result<Vec<_>>>()?;
            let written = client(&dir, &name, &roles, &issue)?;
            print(out, &written, &format!("{name}'s client certificate"));
            Ok(())
        }
    }
}

/// What was written where.
pub struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub issued: Issued,
}

fn print(out: Output, written: &Written, what: &str) {
    let expires = written
        .issued
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    out.result(
        &json!({
            "cert": written.cert,
            "key": written.key,
            "spki_sha256": written.issued.spki_sha256,
            "expires": expires,
        }),
        || {
            format!(
                "{what}: {} (key {}, mode 0600)\n  expires {expires}\n  public key sha256 {}",
                written.cert.display(),
                written.key.display(),
                written.issued.spki_sha256
            )
        },
    );
}

fn issue_error(e: stele_tls::issue::IssueError) -> Failure {
    Failure::usage(e.to_string())
}

/// Writes a new key and its certificate, both or neither: a key whose
/// certificate could not be written is removed again, so that a retry does
/// not find half a pair in its way.
fn create_pair(key: &Path, cert: &Path, issued: &Issued) -> Result<()> {
    create_new(key, issued.key_pem.as_bytes(), 0o600)?;
    create_new(cert, issued.cert_pem.as_bytes(), 0o644).inspect_err(|_| {
        let _ = std::fs::remove_file(key);
    })
}

/// A new CA in `dir`; refuses if one is there.
pub fn init(dir: &Path, name: &str) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir, e))?;
    let (cert, key) = (dir.join(CA_CERT), dir.join(CA_KEY));
    refuse_existing(&cert)?;
    refuse_existing(&key)?;
    let issued = new_ca(name).map_err(issue_error)?;
    create_pair(&key, &cert, &issued)?;
    Ok(Written { cert, key, issued })
}

fn authority(dir: &Path) -> Result<Authority> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| {
            Failure::new(
                Code::Io,
                format!(
                    "{}: {e} (create the CA first: `stele certs init {}`)",
                    path.display(),
                    dir.display()
                ),
            )
        })
    };
    Authority::from_pem(&read(CA_CERT)?, &read(CA_KEY)?).map_err(issue_error)
}

/// Writes a certificate and its key under `dir` as `name`.pem/.key: new
/// files, or with `reuse_key` the existing key and a replaced certificate.
fn write(
    dir: &Path,
    name: &str,
    issue: &IssueArgs,
    make: impl FnOnce(Option<&str>) -> Result<Issued>,
) -> Result<Written> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    if issue.reuse_key {
        let key_pem = std::fs::read_to_string(&key).map_err(|e| Failure::io(&key, e))?;
        let issued = make(Some(&key_pem))?;
        replace(&cert, issued.cert_pem.as_bytes(), 0o644)?;
        return Ok(Written { cert, key, issued });
    }
    refuse_existing(&cert)?;
    refuse_existing(&key)?;
    let issued = make(None)?;
    create_pair(&key, &cert, &issued)?;
    Ok(Written { cert, key, issued })
}

pub fn node(dir: &Path, id: u64, hosts: &[String], issue: &IssueArgs) -> Result<Written> {
    let ca = authority(dir)?;
    write(dir, &format!("node-{id}"), issue, |key| {
        ca.node(id, hosts, issue.valid_for, key)
            .map_err(issue_error)
    })
}

pub fn client(dir: &Path, name: &str, roles: &[Role], issue: &IssueArgs) -> Result<Written> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(Failure::usage(format!(
            "--name {name:?}: a name is also a file name: no slashes, not starting with a dot"
        )));
    }
    let ca = authority(dir)?;
    write(dir, name, issue, |key| {
        ca.client(name, roles, issue.valid_for, key)
            .map_err(issue_error)
    })
}
