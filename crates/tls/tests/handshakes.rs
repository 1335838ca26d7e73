//! Real rustls handshakes, in memory, between certificates issued here: a
//! node dialling a peer accepts only the node id it expects; the peer port
//! takes only the CA's certificates; names and roles read back as issued.

use std::path::Path;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, ServerConnection};
use stele_tls::issue::{Authority, Issued, LEAF_VALIDITY, names, new_ca};
use stele_tls::{ClientAuth, Role, TlsFiles};

struct Ca {
    issued: Issued,
    authority: Authority,
}

fn ca(name: &str) -> Ca {
    let issued = new_ca(name).unwrap();
    let authority = Authority::from_pem(&issued.cert_pem, &issued.key_pem).unwrap();
    Ca { issued, authority }
}

fn write(dir: &Path, name: &str, ca: &Ca, issued: &Issued) -> TlsFiles {
    let files = TlsFiles {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&files.ca, &ca.issued.cert_pem).unwrap();
    std::fs::write(&files.cert, &issued.cert_pem).unwrap();
    std::fs::write(&files.key, &issued.key_pem).unwrap();
    files
}

/// Runs a handshake to its end; `Err` names the side that failed.
fn handshake(
    mut client: ClientConnection,
    mut server: ServerConnection,
) -> Result<ServerConnection, String> {
    for _ in 0..20 {
        let mut buffer = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buffer).unwrap();
        }
        let mut reader = &buffer[..];
        while !reader.is_empty() {
            server.read_tls(&mut reader).unwrap();
        }
        server
            .process_new_packets()
            .map_err(|e| format!("server: {e}"))?;
        let mut buffer = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buffer).unwrap();
        }
        let mut reader = &buffer[..];
        while !reader.is_empty() {
            client.read_tls(&mut reader).unwrap();
        }
        client
            .process_new_packets()
            .map_err(|e| format!("client: {e}"))?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(server);
        }
    }
    Err("the handshake did not finish".into())
}

fn connect(
    client: std::sync::Arc<rustls::ClientConfig>,
    server: std::sync::Arc<rustls::ServerConfig>,
) -> Result<ServerConnection, String> {
    let name = ServerName::try_from("127.0.0.1").unwrap();
    handshake(
        ClientConnection::new(client, name).unwrap(),
        ServerConnection::new(server).unwrap(),
    )
}

#[test]
fn a_node_dialling_a_peer_accepts_only_the_node_id_it_expects() {
    stele_tls::install_ring();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let node = |id| ca.authority.node(id, &hosts, LEAF_VALIDITY, None).unwrap();
    let one = write(dir.path(), "n1", &ca, &node(1)).load().unwrap();
    let two = write(dir.path(), "n2", &ca, &node(2)).load().unwrap();
    let server = two.server_config(ClientAuth::Required, &[b"h2"]).unwrap();
    let accepted = connect(one.peer_client_config(2).unwrap(), server.clone()).unwrap();
    let peer = accepted.peer_certificates().unwrap()[0].clone();
    assert_eq!(
        stele_tls::identity::read_certificate(&peer).unwrap().node,
        Some(1)
    );
    let refused = connect(one.peer_client_config(3).unwrap(), server).unwrap_err();
    assert!(refused.starts_with("client:"), "{refused}");
}

#[test]
fn the_peer_port_refuses_a_certificate_of_another_ca_and_none() {
    stele_tls::install_ring();
    let dir = tempfile::tempdir().unwrap();
    let ours = ca("ours");
    let theirs = ca("theirs");
    let hosts = vec!["127.0.0.1".to_string()];
    let server = write(
        dir.path(),
        "n1",
        &ours,
        &ours.authority.node(1, &hosts, LEAF_VALIDITY, None).unwrap(),
    )
    .load()
    .unwrap();
    // A node certificate of the other CA, trusting ours to get this far.
    let stranger = theirs
        .authority
        .node(2, &hosts, LEAF_VALIDITY, None)
        .unwrap();
    let mut stranger_files = write(dir.path(), "n2", &theirs, &stranger);
    stranger_files.ca = dir.path().join("n1-ca.pem");
    let stranger = stranger_files.load().unwrap();
    let required = server
        .server_config(ClientAuth::Required, &[b"h2"])
        .unwrap();
    let refused = connect(stranger.peer_client_config(1).unwrap(), required.clone());
    assert!(refused.unwrap_err().starts_with("server:"));
    // No certificate at all: refused where one is required, admitted where
    // it is optional.
    let anonymous = rustls::ClientConfig::builder()
        .with_root_certificates(server.roots.clone())
        .with_no_client_auth();
    let anonymous = std::sync::Arc::new(anonymous);
    assert!(connect(anonymous.clone(), required).is_err());
    let optional = server
        .server_config(ClientAuth::Optional, &[b"h2"])
        .unwrap();
    let admitted = connect(anonymous, optional).unwrap();
    assert!(admitted.peer_certificates().is_none());
}

#[test]
fn a_client_certificate_names_its_roles_and_keeps_its_fingerprint_when_renewed() {
    let ca = ca("test CA");
    let year = Duration::from_secs(365 * 24 * 3600);
    let issued = ca
        .authority
        .client("alice", &[Role::Operator, Role::Reader], year, None)
        .unwrap();
    let read = names(&issued.cert_pem).unwrap();
    assert_eq!(read.node, None);
    assert_eq!(read.roles, [Role::Operator, Role::Reader].into());
    assert_eq!(read.name, "alice");
    assert_eq!(read.spki_sha256, issued.spki_sha256);
    let renewed = ca
        .authority
        .client("alice", &[Role::Reader], year, Some(&issued.key_pem))
        .unwrap();
    assert_eq!(renewed.spki_sha256, issued.spki_sha256);
    assert_eq!(
        names(&renewed.cert_pem).unwrap().roles,
        [Role::Reader].into()
    );
    let fresh = ca
        .authority
        .client("alice", &[Role::Reader], year, None)
        .unwrap();
    assert_ne!(fresh.spki_sha256, issued.spki_sha256);
    assert!(ca.authority.client("nobody", &[], year, None).is_err());
    assert_eq!(
        names(&ca.authority.node(4, &[], year, None).unwrap().cert_pem)
            .unwrap()
            .node,
        Some(4)
    );
}
