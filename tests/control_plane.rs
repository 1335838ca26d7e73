//! The control plane's own attack table (docs/THREAT_MODEL.md): real node
//! processes on loopback with mutual TLS, certificates made by the test.
//! Each attack is judged by its effect: did membership change, does the
//! cluster still commit, does every honest node serve the new version and
//! tell the truth on /readyz.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, serial, wait_until};

/// An evaluation the zero-trust example allows (the README's).
fn allowed() -> Value {
    json!({
        "subject": {"type": "User", "id": "erin"},
        "action": {"name": "ssh"},
        "resource": {"type": "Server", "id": "prod-web-1"},
        "context": {"network_zone": "vpn", "device": {"managed": true, "disk_encrypted": true, "os_patch_age_days": 3}, "mfa_age_seconds": 60}
    })
}
use common::http::{get, post};
use common::stele;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{CommittedLeaderId, EntryPayload, LogId, Vote};
use serde_json::{Value, json};
use stele_proto::v1::raft_client::RaftClient;
use stele_proto::v1::{RaftRequest, SnapshotChunk};
use stele_store::{Entry, SnapshotMeta, TypeConfig};
use tonic::transport::Channel;

/// A 3-node cluster serving genesis.
fn cluster() -> Cluster {
    let cluster = Cluster::start(3, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    cluster
}

/// Node ids and their voter flag, as node `at` sees the membership.
fn members(cluster: &Cluster, at: u64) -> Vec<(u64, bool)> {
    let status = cluster.status_of(at).expect("the node answers");
    status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_u64().unwrap(), m["voter"].as_bool().unwrap()))
        .collect()
}

/// Proposes a new version signed by two approvers and waits until every
/// running node serves it: the cluster still commits and replicates.
fn still_commits(cluster: &Cluster, name: &str) {
    cluster.variant(name);
    // An attack under a member's own id may start an election (Raft's
    // trust in its members): wait it out.
    cluster.wait_for_leader();
    let mut reply = Value::Null;
    wait_until("a new version commits", Duration::from_secs(30), || {
        let run = cluster.run(&[
            "--json", "propose", "--bundle", name, "-m", name, "--key", "a", "--key", "b",
        ]);
        reply = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
        run.code == 0
    });
    assert!(
        matches!(
            reply["status"].as_str(),
            Some("committed" | "already_committed")
        ),
        "{reply}"
    );
    let seq = reply["seq"].as_u64().unwrap();
    cluster.wait_all_serve(seq);
    for node in &cluster.nodes {
        wait_until(
            &format!("node {} ready", node.id),
            Duration::from_secs(15),
            || get(&node.http, "/readyz").status == 200,
        );
    }
}

/// A rustls client configuration trusting `ca`, presenting no certificate.
fn anonymous(ca: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A client certificate with every role from another CA, in `other/`.
fn stranger(cluster: &Cluster) -> stele_tls::TlsFiles {
    stele(cluster.path(), &["certs", "init", "other"]).ok();
    stele(
        cluster.path(),
        &[
            "certs", "client", "other", "--name", "mallory", "--role", "operator", "--role",
            "reader", "--role", "decide",
        ],
    )
    .ok();
    stele_tls::TlsFiles {
        ca: cluster.path().join("tls/ca.pem"),
        cert: cluster.path().join("other/mallory.pem"),
        key: cluster.path().join("other/mallory.key"),
    }
}

/// The operator's bootstrap call, with the cluster's own genesis: what
/// someone who wants to start or restart Raft on members of their own
/// would call first. Only the operator role reaches it.
fn bootstrap(cluster: &Cluster, client: &stele_client::Client) -> Result<(), stele_client::Error> {
    let ledger = std::fs::read(cluster.path().join("genesis.l")).unwrap();
    let ledger = stele_ledger::export::read(
        &ledger,
        stele_ledger::Ledger::new(),
        &stele_ledger::structural_only,
    )
    .unwrap();
    let (version, bundle) = ledger.entries().next().unwrap();
    let genesis = stele_ledger::Proposal {
        version: version.clone(),
        bundle: bundle.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        client
            .bootstrap(stele_proto::v1::BootstrapRequest {
                genesis: genesis.encode().into_bytes(),
                ledger: Vec::new(),
            })
            .await
            .map(|_| ())
    })
}

#[test]
fn callers_without_the_clusters_certificate_or_role_change_nothing() {
    let _one_at_a_time = serial();
    let cluster = cluster();
    let before = members(&cluster, 1);
    let ca = cluster.path().join("tls/ca.pem");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    stele_tls::install_ring();

    // No certificate: the TLS handshake succeeds (probes present none), and
    // every call but health is refused.
    let nobody = stele_client::Client::connect(
        &cluster.node(1).addr,
        &stele_client::Transport::Tls(anonymous(&ca)),
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = bootstrap(&cluster, &nobody).unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(stele_client::Reason::PermissionDenied),
        "{refused}"
    );
    let status =
        runtime.block_on(nobody.status(stele_proto::v1::StatusRequest { local_only: true }));
    assert_eq!(
        status.unwrap_err().reason(),
        Some(stele_client::Reason::PermissionDenied)
    );

    // A certificate of another CA: no connection at all.
    let config = stranger(&cluster).load().unwrap().client_config().unwrap();
    let mallory = stele_client::Client::connect(
        &cluster.node(1).addr,
        &stele_client::Transport::Tls(config),
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = bootstrap(&cluster, &mallory).unwrap_err();
    assert_eq!(
        refused.reason(),
        None,
        "refused at the handshake: {refused}"
    );

    // A node certificate of the cluster's own CA, for a node that is no
    // member (one removed, or issued and never added), forwards for nobody:
    // its word that an operator sent the call counts for nothing.
    stele(
        cluster.path(),
        &["certs", "node", "tls", "--id", "7", "--host", "127.0.0.1"],
    )
    .ok();
    let outsider_files = stele_tls::TlsFiles {
        ca: ca.clone(),
        cert: cluster.tls().join("node-7.pem"),
        key: cluster.tls().join("node-7.key"),
    };
    let outsider = stele_client::Client::connect(
        &cluster.node(cluster.wait_for_leader()).addr,
        &stele_client::Transport::Tls(outsider_files.load().unwrap().client_config().unwrap()),
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = bootstrap(
        &cluster,
        &outsider.forwarding(Duration::from_secs(5), "operator".into()),
    )
    .unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(stele_client::Reason::PermissionDenied),
        "{refused}"
    );
    // Nor does it keep what a member's certificate may do by itself: read.
    let status =
        runtime.block_on(outsider.status(stele_proto::v1::StatusRequest { local_only: true }));
    assert_eq!(
        status.unwrap_err().reason(),
        Some(stele_client::Reason::PermissionDenied)
    );
    let outsider_http = common::http::Http::tls(&cluster.node(1).http.addr, &outsider_files);
    assert_eq!(get(&outsider_http, "/metrics").status, 403);
    assert_eq!(
        post(&outsider_http, "/access/v1/evaluation", &allowed()).status,
        403
    );

    // The decide role cannot administer: refused, with the role named.
    let decide = cluster.client_as(1, "decide", Duration::from_secs(5));
    let refused = bootstrap(&cluster, &decide).unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(stele_client::Reason::PermissionDenied)
    );
    assert!(refused.to_string().contains("operator role"), "{refused}");
    let run = cluster.run_as(
        "decide",
        &cluster.node(1).addr,
        &["cluster", "init", "--genesis-file", "genesis.l"],
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("operator role"), "{}", run.stderr);
    // The decide role sees membership in status, not the logs' keys.
    let seen = cluster
        .run_as(
            "decide",
            &cluster.node(1).addr,
            &["--json", "cluster", "status"],
        )
        .ok()
        .json();
    assert_eq!(seen["members"].as_array().unwrap().len(), 3, "{seen}");
    assert!(seen["members"][0]["log_key"].is_null(), "{seen}");
    // A reader can read but not write.
    let run = cluster.run_as("reader", &cluster.node(2).addr, &["log"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Nor may anyone but an operator send a whole ledger to restore, not
    // even the cluster's own: refused before it is read, nothing changes.
    let ledger = cluster.export(1);
    let reader = cluster.client_as(1, "reader", Duration::from_secs(5));
    let forged = outsider.forwarding(Duration::from_secs(5), "operator".into());
    for caller in [&nobody, &reader, &decide, &forged] {
        let refused = runtime
            .block_on(caller.restore(ledger.clone()))
            .unwrap_err();
        assert_eq!(
            refused.reason(),
            Some(stele_client::Reason::PermissionDenied),
            "{refused}"
        );
    }
    assert_eq!(cluster.export(1), ledger);

    // The client port serves no Raft; the peer port takes node certificates
    // only (an operator's is not one).
    let operator = cluster.tls_files("operator").load().unwrap();
    for (addr, expect) in [
        (&cluster.node(1).addr, tonic::Code::Unimplemented),
        (&cluster.node(1).peer_addr, tonic::Code::PermissionDenied),
    ] {
        let channel = stele_client::Client::connect(
            addr,
            &stele_client::Transport::Tls(operator.client_config().unwrap()),
            Duration::from_secs(5),
        );
        drop(channel);
        let raft = raw_channel(addr, operator.client_config().unwrap());
        let reply = runtime.block_on(append(raft, &heartbeat(Vote::new_committed(1, 1)), None));
        assert_eq!(reply.unwrap_err().code(), expect, "{addr}");
    }
    // Without a certificate, the peer port does not even finish the handshake.
    let raft = raw_channel(&cluster.node(1).peer_addr, anonymous(&ca));
    let reply = runtime.block_on(append(raft, &heartbeat(Vote::new_committed(1, 1)), None));
    // How tonic reports the refused handshake varies with timing
    // (Unavailable, Unknown, or Cancelled under load); never an answer.
    let code = reply.unwrap_err().code();
    assert!(
        matches!(
            code,
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        "a transport failure, not an answer: {code:?}"
    );

    // HTTP: the probes answer anyone; every other route needs its role.
    let http = cluster.node(1).http.without_certificate(&ca);
    assert_eq!(get(&http, "/healthz").status, 200);
    assert_eq!(get(&http, "/readyz").status, 200);
    for path in ["/metrics", "/.well-known/authzen-configuration"] {
        assert_eq!(get(&http, path).status, 403, "{path}");
    }
    let evaluation = allowed();
    let reply = post(&http, "/access/v1/evaluation", &evaluation);
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("decide role"), "{}", reply.body);
    assert_eq!(
        post(
            &cluster.http_as(1, "reader"),
            "/access/v1/evaluation",
            &evaluation
        )
        .status,
        403
    );
    assert_eq!(get(&cluster.http_as(1, "decide"), "/metrics").status, 403);
    assert_eq!(get(&cluster.http_as(1, "reader"), "/metrics").status, 200);
    assert_eq!(
        post(
            &cluster.http_as(1, "decide"),
            "/access/v1/evaluation",
            &evaluation
        )
        .status,
        200
    );

    // A plaintext client at a TLS port is told so, on every port, and
    // changes nothing: gRPC gets TLS_REQUIRED, HTTP a 400.
    let plain = stele_client::Client::connect(
        &format!("http://{}", cluster.node(1).addr),
        &stele_client::Transport::InsecurePlaintext,
        Duration::from_secs(5),
    )
    .unwrap();
    let refused = bootstrap(&cluster, &plain).unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(stele_client::Reason::TlsRequired),
        "{refused}"
    );
    let endpoint = format!("http://{}", cluster.node(2).addr);
    let run = stele(
        cluster.path(),
        &[
            "--insecure-plaintext",
            "--json",
            "log",
            "--endpoint",
            &endpoint,
        ],
    );
    assert_ne!(run.code, 0);
    assert_eq!(run.json()["error"], "tls_required", "{}", run.stdout);
    let raft = RaftClient::new(
        Channel::from_shared(format!("http://{}", cluster.node(1).peer_addr))
            .unwrap()
            .connect_lazy(),
    );
    let reply = runtime.block_on(append(raft, &heartbeat(Vote::new_committed(1, 1)), None));
    assert_eq!(reply.unwrap_err().code(), tonic::Code::FailedPrecondition);
    let mut http1 = std::net::TcpStream::connect(&cluster.node(1).http.addr).unwrap();
    http1
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: stele\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    http1.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("requires TLS"), "{answer}");

    // Nothing changed: membership is what it was, and the cluster commits.
    assert_eq!(members(&cluster, 1), before);
    still_commits(&cluster, "after-strangers");
    assert_eq!(members(&cluster, 2), before);
}

/// A gRPC channel to `addr` over TLS with `config`, checking nothing of
/// the server but its CA (the attacker's side needs no more).
fn raw_channel(addr: &str, config: Arc<rustls::ClientConfig>) -> RaftClient<Channel> {
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let target = addr.to_string();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_with_connector_lazy(tower::service_fn(move |_| {
            let connector = connector.clone();
            let target = target.clone();
            async move {
                let stream = tokio::net::TcpStream::connect(&target).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let tls = connector.connect(name, stream).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }));
    RaftClient::new(channel)
}

/// Node `as_node`'s Raft client to node `target`, with `as_node`'s
/// certificate: what a member whose key was stolen sends.
fn as_member(cluster: &Cluster, as_node: u64, target: u64) -> RaftClient<Channel> {
    let files = stele_tls::TlsFiles {
        ca: cluster.path().join("tls/ca.pem"),
        cert: cluster.path().join(format!("tls/node-{as_node}.pem")),
        key: cluster.path().join(format!("tls/node-{as_node}.key")),
    };
    let dial = stele_node::dial::tcp(Some(Arc::new(files.load().unwrap())));
    RaftClient::new(dial(&cluster.node(target).peer_addr, target).unwrap())
}

fn heartbeat(vote: Vote<u64>) -> AppendEntriesRequest<TypeConfig> {
    AppendEntriesRequest {
        vote,
        prev_log_id: None,
        leader_commit: None,
        entries: Vec::new(),
    }
}

async fn append(
    mut raft: RaftClient<Channel>,
    rpc: &AppendEntriesRequest<TypeConfig>,
    age_ms: Option<u64>,
) -> Result<stele_proto::v1::RaftReply, tonic::Status> {
    let request = RaftRequest {
        json: serde_json::to_vec(rpc).unwrap(),
        quorum_ack_age_ms: age_ms,
        ..Default::default()
    };
    raft.append_entries(request).await.map(|r| r.into_inner())
}

fn term(cluster: &Cluster) -> u64 {
    cluster.status_of(1).unwrap()["term"].as_u64().unwrap()
}

fn metric(cluster: &Cluster, id: u64, name: &str) -> f64 {
    get(&cluster.node(id).http, "/metrics")
        .body
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn a_members_stolen_certificate_cannot_stop_or_freeze_a_node() {
    let _one_at_a_time = serial();
    let cluster = cluster();
    let leader = cluster.wait_for_leader();
    let thief = (1..=3).find(|id| *id != leader).unwrap();
    let victim = (1..=3).find(|id| *id != leader && *id != thief).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let t = term(&cluster);
    let next = |index| LogId::new(CommittedLeaderId::new(t, leader), index);

    // Another node's id: the thief speaks for the leader, with the next
    // log position, to freeze the victim on old policy.
    let forged = AppendEntriesRequest {
        vote: Vote::new_committed(t, leader),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![Entry {
            log_id: next(0),
            payload: EntryPayload::Blank,
        }],
    };
    let refused = runtime.block_on(append(as_member(&cluster, thief, victim), &forged, Some(0)));
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);

    // A LogId under another node's vote: the thief's own vote at the
    // leader's term, carrying an entry named for the leader.
    let mut under_own = forged.clone();
    under_own.vote = Vote::new_committed(t, thief);
    let refused = runtime.block_on(append(as_member(&cluster, thief, victim), &under_own, None));
    assert_eq!(refused.unwrap_err().code(), tonic::Code::InvalidArgument);

    // Terms over the bound, in AppendEntries and RequestVote: before the
    // bound, every node's Raft panicked on its next election, for good.
    for term in [u64::MAX, 1 << 62, t + (1 << 20) + 1] {
        let rpc = heartbeat(Vote::new_committed(term, thief));
        let refused = runtime.block_on(append(as_member(&cluster, thief, victim), &rpc, None));
        assert_eq!(
            refused.unwrap_err().code(),
            tonic::Code::InvalidArgument,
            "term {term}"
        );
        let vote = VoteRequest::new(Vote::new(term, thief), None);
        let mut raft = as_member(&cluster, thief, victim);
        let request = RaftRequest {
            json: serde_json::to_vec(&vote).unwrap(),
            quorum_ack_age_ms: None,
            ..Default::default()
        };
        let refused = runtime.block_on(raft.vote(request));
        assert_eq!(
            refused.unwrap_err().code(),
            tonic::Code::InvalidArgument,
            "term {term}"
        );
    }

    // An age near 2^64 under the thief's own (higher) vote: accepted as
    // Raft, but no evidence; before, the victim was STALE for an hour.
    let claim = Vote::new_committed(t + 1, thief);
    let aged = heartbeat(claim);
    let reply = runtime.block_on(append(
        as_member(&cluster, thief, victim),
        &aged,
        Some(u64::MAX - 3_600_000),
    ));
    assert!(reply.is_ok(), "{reply:?}");

    // Snapshot metadata that contradicts its data, and a position past
    // anything committed: a genuine export, claimed to end at 2^62.
    let export = cluster.export(leader);
    let ledger =
        stele_ledger::export::read(&export, Default::default(), &stele_ledger::structural_only)
            .unwrap();
    let data = stele_store::snapshot::encode(
        ledger.versions(),
        |digest| Ok(ledger.bundle(digest).unwrap().clone()),
        &[],
        0,
        &Default::default(),
    )
    .unwrap();
    for index in [1u64 << 62, 0] {
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(t + 1, thief), index)),
            last_membership: Default::default(),
            snapshot_id: "forged".into(),
        };
        let chunk = SnapshotChunk {
            header_json: serde_json::to_vec(&(claim, meta)).unwrap(),
            data: data.clone(),
        };
        let mut raft = as_member(&cluster, thief, victim);
        let reply = runtime.block_on(raft.install_snapshot(futures::stream::iter([chunk])));
        let refused = match reply {
            Err(status) => status.code() != tonic::Code::Ok,
            Ok(reply) => !reply.into_inner().error.is_empty(),
        };
        assert!(refused, "snapshot to index {index} was passed to Raft");
    }
    assert!(metric(&cluster, victim, "stele_raft_refused_total") >= 8.0);

    // The effect: every node still up, the cluster commits, every node
    // serves the new version and says so on /readyz.
    for node in &cluster.nodes {
        assert!(
            cluster.status_of(node.id).is_some(),
            "node {} answers",
            node.id
        );
    }
    still_commits(&cluster, "after-thief");
    let ready = get(&cluster.node(victim).http, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
}

#[test]
fn half_sent_requests_and_half_finished_handshakes_are_closed_while_real_ones_are_answered() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.genesis();
    cluster.wait_all_serve(1);
    let http = cluster.node(1).http.clone();
    // 300 TLS handshakes started and never finished.
    let mut handshakes: Vec<std::net::TcpStream> = (0..300)
        .map(|_| {
            let mut socket = std::net::TcpStream::connect(&http.addr).unwrap();
            // The first bytes of a ClientHello record, then nothing.
            socket
                .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .unwrap();
            socket
        })
        .collect();
    // 300 requests over finished handshakes, sent up to a header and no further.
    let mut requests: Vec<_> = (0..300)
        .map(|_| {
            let mut stream = http.connect();
            stream
                .write_all(b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream.flush().unwrap();
            stream
        })
        .collect();
    // A real request is answered meanwhile.
    let evaluation = allowed();
    let answered = post(&http, "/access/v1/evaluation", &evaluation);
    assert_eq!(answered.status, 200);
    // Every one of them is closed by the node within its deadlines (10 s
    // each, with room for a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(40);
    let closed = |read: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>| loop {
        let mut buffer = [0u8; 512];
        match read(&mut buffer) {
            Ok(0) | Err(_) => return true,
            Ok(_) if Instant::now() < deadline => continue,
            Ok(_) => return false,
        }
    };
    for socket in &mut handshakes {
        socket
            .set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        assert!(
            closed(&mut |b| socket.read(b)),
            "a half-finished handshake stayed open"
        );
    }
    for stream in &mut requests {
        stream
            .sock
            .set_read_timeout(Some(Duration::from_secs(40)))
            .unwrap();
        assert!(
            closed(&mut |b| stream.read(b)),
            "a half-sent request stayed open"
        );
    }
    assert!(Instant::now() < deadline);
    let value: Value = post(&http, "/access/v1/evaluation", &evaluation).json();
    assert_eq!(value["decision"], true);
}

/// A finished TLS handshake without a client certificate, then silence:
/// `None` when the node closes the connection at once.
fn held_anonymously(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> Option<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    let socket = std::net::TcpStream::connect(addr).ok()?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls =
        rustls::StreamOwned::new(rustls::ClientConnection::new(config, name).unwrap(), socket);
    tls.conn.complete_io(&mut tls.sock).ok()?;
    Some(tls)
}

#[test]
fn callers_without_a_certificate_cannot_take_every_connection() {
    let _one_at_a_time = serial();
    // Caps small enough for a test to fill: 64 connections a port, of which
    // at most 16 anonymous ones.
    let cluster = Cluster::start(
        1,
        &[
            "--max-connections",
            "64",
            "--max-handshakes",
            "16",
            "--max-anonymous-connections",
            "16",
        ],
    );
    cluster.genesis();
    cluster.wait_all_serve(1);
    let node = cluster.node(1);
    let config = anonymous(&cluster.tls().join("ca.pem"));
    // Twice each port's cap, every one handshaken and kept open, on the
    // client and the HTTP ports.
    let mut held = Vec::new();
    for addr in [&node.addr, &node.http.addr] {
        for _ in 0..128 {
            held.extend(held_anonymously(addr, config.clone()));
        }
    }
    // Meanwhile a new connection every 5 ms that never sends a byte: each
    // would hold a handshake slot for 10 s, so without the oldest giving
    // way every slot stays taken and no new handshake could start.
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let silent = {
        let flooding = flooding.clone();
        let addr = node.addr.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                held.extend(std::net::TcpStream::connect(&addr).ok());
                std::thread::sleep(Duration::from_millis(5));
            }
            held.len()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    // A certified caller gets in at its first try, every time.
    for _ in 0..3 {
        let run = cluster.run_at(&node.addr, &["--json", "log"]);
        assert_eq!(
            run.code, 0,
            "a certified caller was shut out: {}",
            run.stderr
        );
    }
    // Certified callers are still let in: a new version commits through the
    // client port, and the HTTP port answers a decision.
    still_commits(&cluster, "during-the-flood");
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    assert!(
        silent.join().unwrap() > 16,
        "the flood outnumbered the handshake slots"
    );
    let value: Value = post(&node.http, "/access/v1/evaluation", &allowed()).json();
    assert_eq!(value["decision"], true, "{value}");
    // The node holds at most its cap of them: the rest were closed.
    let mut open = 0;
    for tls in &mut held {
        tls.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buffer = [0u8; 256];
        let still_open = loop {
            match tls.read(&mut buffer) {
                Ok(0) => break false,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break true;
                }
                Err(_) => break false,
            }
        };
        open += usize::from(still_open);
    }
    assert!(open <= 2 * 16, "{open} anonymous connections held open");
    drop(held);
}

/// A Raft client to node `target` under node `as_node`'s id, with a
/// certificate the cluster's CA issued for a fresh key (in `forged/`): what
/// an attacker who stole the CA's key, but no member's, presents.
fn as_new_key(cluster: &Cluster, as_node: u64, target: u64) -> RaftClient<Channel> {
    let forged = new_key_certificate(cluster, as_node)
        .parent()
        .unwrap()
        .to_path_buf();
    let files = stele_tls::TlsFiles {
        ca: cluster.tls().join("ca.pem"),
        cert: forged.join(format!("node-{as_node}.pem")),
        key: forged.join(format!("node-{as_node}.key")),
    };
    let dial = stele_node::dial::tcp(Some(Arc::new(files.load().unwrap())));
    RaftClient::new(dial(&cluster.node(target).peer_addr, target).unwrap())
}

/// A certificate the cluster's CA issued for node `id` on a fresh key,
/// `forged/node-ID.pem`.
fn new_key_certificate(cluster: &Cluster, id: u64) -> std::path::PathBuf {
    let forged = cluster.path().join("forged");
    if !forged.exists() {
        std::fs::create_dir(&forged).unwrap();
        for file in ["ca.pem", "ca.key"] {
            std::fs::copy(cluster.tls().join(file), forged.join(file)).unwrap();
        }
    }
    let cert = forged.join(format!("node-{id}.pem"));
    if !cert.exists() {
        let id = id.to_string();
        stele(
            cluster.path(),
            &[
                "certs",
                "node",
                "forged",
                "--id",
                &id,
                "--host",
                "127.0.0.1",
            ],
        )
        .ok();
    }
    cert
}

#[test]
fn once_the_ledger_lists_each_members_key_a_ca_certificate_alone_makes_no_member() {
    let _one_at_a_time = serial();
    let cluster = cluster();
    let leader = cluster.wait_for_leader();
    let thief = (1..=3).find(|id| *id != leader).unwrap();
    let victim = (1..=3).find(|id| *id != leader && *id != thief).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    // (Before the ledger lists keys, a certificate of the cluster's CA is
    // what a member is; the stolen-certificate test shows what one can do.)
    let heartbeat_at = |term| heartbeat(Vote::new_committed(term, thief));

    // The genesis lists every node with its key. A membership version
    // listing the wrong keys for two of the three voters, signed by M
    // approvers (a mistake, or a stolen CA key with M approvers fooled),
    // cannot commit: once committed, no node would follow any leader.
    let cert = |id: u64| cluster.node_cert(id);
    let key_of = |path: &str| -> stele_ledger::Hash {
        let pem = std::fs::read_to_string(path).unwrap();
        stele_tls::issue::names(&pem)
            .unwrap()
            .spki_sha256
            .parse()
            .unwrap()
    };
    let forged = |id: u64| new_key_certificate(&cluster, id).display().to_string();
    let client = cluster.client_as(leader, "operator", Duration::from_secs(10));
    let wrong = runtime.block_on(async {
        let head = client.cluster_head().await.unwrap().unwrap();
        let (genesis, bundle) = client.version(1).await.unwrap();
        let mut members = genesis.header.members.unwrap().members().to_vec();
        for member in &mut members {
            if member.id == thief || member.id == victim {
                member.spki_sha256 = key_of(&forged(member.id));
            }
        }
        let header = stele_ledger::Header {
            seq: head.seq + 1,
            parent_hash: head.hash,
            bundle_digest: bundle.digest(),
            kind: stele_ledger::Kind::Membership,
            message: "re-key two voters".into(),
            author: "a".into(),
            created_at: stele_node::system_clock()() / 1000,
            trust: None,
            expires_at: None,
            members: Some(stele_ledger::MemberSet::new(members).unwrap()),
        };
        let mut version = stele_ledger::Version::unsigned(header);
        for name in ["a", "b"] {
            let text = std::fs::read_to_string(cluster.path().join(name)).unwrap();
            version.sign(&stele_ledger::SecretKey::from_key_file(&text).unwrap());
        }
        version.signatures.sort_by_key(|approval| approval.key);
        client
            .submit(&stele_ledger::Proposal { version, bundle }, false)
            .await
    });
    let wrong = wrong.unwrap_err();
    assert_eq!(
        wrong.reason(),
        Some(stele_client::Reason::MembershipUnsafe),
        "{wrong}"
    );
    assert_eq!(
        cluster.served_seq(leader),
        Some(1),
        "the wrong set committed"
    );

    // Now the same certificate is refused before Raft sees the message:
    // the victim keeps its term and its leader.
    cluster.wait_for_leader();
    let t = term(&cluster);
    for rpc in [heartbeat_at(t + 1), heartbeat_at(t + 5)] {
        let refused = runtime.block_on(append(as_new_key(&cluster, thief, victim), &rpc, None));
        assert_eq!(
            refused.unwrap_err().code(),
            tonic::Code::PermissionDenied,
            "a CA certificate with another key led node {victim}"
        );
    }
    let vote = VoteRequest::new(Vote::new(t + 9, thief), None);
    let request = RaftRequest {
        json: serde_json::to_vec(&vote).unwrap(),
        ..Default::default()
    };
    let refused = runtime.block_on(as_new_key(&cluster, thief, victim).vote(request));
    assert_eq!(refused.unwrap_err().code(), tonic::Code::PermissionDenied);
    let victim_status = cluster.status_of(victim).unwrap();
    assert!(
        victim_status["term"].as_u64().unwrap() < t + 5,
        "the forged messages moved node {victim}'s term: {victim_status}"
    );
    assert!(
        metric(
            &cluster,
            victim,
            "stele_raft_refused_total{check=\"not_the_listed_key\"}"
        ) >= 3.0
    );
    // Dialling a member, the listed key is checked too: a peer that holds
    // another key is not taken for the member (what a node's dialler does,
    // with the keys of the member set it applied).
    let dial_listing = |key: stele_ledger::Hash| {
        let keys = Arc::new(stele_node::dial::ListedKeys::default());
        let listed = stele_ledger::Member {
            id: victim,
            role: stele_ledger::Role::Voter,
            client: "127.0.0.1:1".into(),
            peer: "127.0.0.1:2".into(),
            region: String::new(),
            spki_sha256: key,
        };
        keys.set(Some(&stele_ledger::MemberSet::new(vec![listed]).unwrap()));
        let files = stele_tls::TlsFiles {
            ca: cluster.tls().join("ca.pem"),
            cert: cluster.tls().join(format!("node-{thief}.pem")),
            key: cluster.tls().join(format!("node-{thief}.key")),
        };
        let dial = stele_node::dial::tcp_pinned(Some(Arc::new(files.load().unwrap())), keys);
        RaftClient::new(dial(&cluster.node(victim).peer_addr, victim).unwrap())
    };
    let victims_key = key_of(&cert(victim));
    // A vote at term 0: answered (and not granted) by a reachable member.
    let harmless = || RaftRequest {
        json: serde_json::to_vec(&VoteRequest::new(Vote::new(0, thief), None)).unwrap(),
        ..Default::default()
    };
    let answered = runtime.block_on(dial_listing(victims_key).vote(harmless()));
    assert!(answered.is_ok(), "{answered:?}");
    let other = stele_ledger::Hash::of_bytes(b"a key node {victim} does not hold");
    let not_dialled = runtime.block_on(dial_listing(other).vote(harmless()));
    assert!(
        not_dialled.is_err(),
        "a peer holding another key than the listed one was taken for node {victim}"
    );
    // The real member, with its real key, still counts: the cluster commits.
    still_commits(&cluster, "after-forged-key");
}

/// `stele node` with node `id`'s certificate on fresh ports, run to its
/// exit (it is expected to refuse to start); one still running after 20 s
/// is killed, and counts as started.
fn node_refusing_to_start(cluster: &Cluster, id: u64, data: &str, extra: &[&str]) -> common::Run {
    let port = || format!("127.0.0.1:{}", common::cluster::free_port());
    let stderr = cluster.path().join(format!("refusing-{id}.log"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stele"))
        .args(["node", "--id", &id.to_string(), "--listen", &port()])
        .args(["--peer-listen", &port(), "--http", &port()])
        .args(cluster.node_tls_args(id))
        .args(["--data", data])
        .args(extra)
        .env_remove("STELE_TLS_CA")
        .env_remove("STELE_TLS_CERT")
        .env_remove("STELE_TLS_KEY")
        .current_dir(cluster.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    common::Run {
        code,
        stdout: String::new(),
        stderr: std::fs::read_to_string(&stderr).unwrap(),
    }
}

/// `stele --json cluster init --genesis-file FILE` at the first node.
fn init(cluster: &Cluster, file: &str) -> common::Run {
    cluster.run(&["--json", "cluster", "init", "--genesis-file", file])
}

/// A genesis of the attacker's choosing: one approver (c), one signature.
const RIVAL_GENESIS: &[&str] = &[
    "ledger",
    "new",
    "rival.l",
    "--bundle",
    "bundle",
    "--approver",
    "c.pub",
    "--threshold",
    "1",
    "--key",
    "c",
];

#[test]
fn a_cluster_starts_only_from_the_genesis_its_nodes_were_started_with() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(3, &[]);
    // A rival genesis naming the same nodes, with a trust set of the
    // attacker's choosing (one key, one signature): what whoever reaches
    // the port first would like the cluster to start from.
    let mut rival = vec!["--json"];
    rival.extend(RIVAL_GENESIS);
    let members: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("{}={},{}", n.id, n.addr, n.peer_addr))
        .collect();
    let certs: Vec<String> = (1..=3).map(|id| format!("tls/node-{id}.pem")).collect();
    for (member, cert) in members.iter().zip(&certs) {
        rival.extend(["--member", member, "--cert", cert]);
    }
    let rival_hash = stele(cluster.path(), &rival).ok().json()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    // Before the cluster starts: refused, and Raft does not start (no
    // leader is elected).
    let refused = init(&cluster, "rival.l").fails().json();
    assert_eq!(refused["error"], "genesis_mismatch", "{refused}");
    std::thread::sleep(Duration::from_secs(2));
    for id in 1..=3 {
        let status = cluster.status_of(id).unwrap();
        assert!(status["leader"].is_null(), "Raft started: {status}");
    }
    // The right genesis starts it; again, it answers already_committed.
    let started = cluster.genesis();
    assert_eq!(
        (started["status"].as_str(), started["initialized"].as_bool()),
        (Some("committed"), Some(true)),
        "{started}"
    );
    let again = init(&cluster, "genesis.l").ok().json();
    assert_eq!(
        (again["status"].as_str(), again["initialized"].as_bool()),
        (Some("already_committed"), Some(false)),
        "{again}"
    );
    // At an initialised node the rival is refused too, and nothing moves.
    let refused = init(&cluster, "rival.l").fails().json();
    assert_eq!(refused["error"], "genesis_mismatch", "{refused}");
    let head = cluster.run(&["--json", "log"]).ok().json_lines();
    assert_eq!(head.len(), 1);
    assert_eq!(head[0]["hash"], cluster.genesis_hash.as_str());

    // A node with an empty data directory and no --genesis does not start.
    cluster.plan(7);
    let unpinned = node_refusing_to_start(&cluster, 7, "empty", &[]);
    assert_ne!(unpinned.code, 0);
    assert!(unpinned.stderr.contains("--genesis"), "{}", unpinned.stderr);
    // A node's store keeps its genesis: restarted with another, it refuses.
    cluster.stop(3);
    let moved = node_refusing_to_start(&cluster, 3, "node3", &["--genesis", &rival_hash]);
    assert_ne!(moved.code, 0);
    assert!(
        moved.stderr.contains("never changes chains"),
        "{}",
        moved.stderr
    );
    cluster.launch(3, &[]);
    still_commits(&cluster, "after-rival-genesis");
}

#[test]
fn a_raft_started_by_someone_else_before_the_genesis_is_refused_by_cluster_init() {
    let _one_at_a_time = serial();
    let cluster = Cluster::start(3, &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    // Before `cluster init`, node 2's certificate (a stolen one, or any
    // node certificate of the CA) tells node 1 that Raft runs with node 2
    // alone, at addresses of its choosing.
    let alone = openraft::Membership::new(
        vec![std::collections::BTreeSet::from([2])],
        std::collections::BTreeMap::from([(
            2,
            stele_store::MemberAddrs {
                addr: "127.0.0.1:1".into(),
                peer_addr: "127.0.0.1:2".into(),
            },
        )]),
    );
    let rpc = AppendEntriesRequest {
        vote: Vote::new_committed(1, 2),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 2), 0),
            payload: EntryPayload::Membership(alone),
        }],
    };
    runtime
        .block_on(append(as_member(&cluster, 2, 1), &rpc, None))
        .unwrap();
    // `cluster init` at node 1 does not take that Raft for the genesis's:
    // it says so, and what to do.
    let refused = cluster
        .run_at(
            &cluster.node(1).addr,
            &["--json", "cluster", "init", "--genesis-file", "genesis.l"],
        )
        .fails()
        .json();
    assert_eq!(refused["error"], "membership_unsafe", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("empty --data"),
        "{refused}"
    );
    assert!(cluster.served_seq(1).is_none(), "a genesis was served");
}

/// Node `id`'s served head hash, as `stele log` at it says.
fn log_hashes(cluster: &Cluster, id: u64) -> Vec<String> {
    cluster
        .run_at(&cluster.node(id).addr, &["--json", "log"])
        .ok()
        .json_lines()
        .iter()
        .map(|v| v["hash"].as_str().unwrap().to_string())
        .collect()
}

/// The genesis of ledger `file`, fully signed, proposed at node `id` of a
/// cluster Raft started for a restore: refused as the cluster's first
/// version (a rollback to seq 1, or a chain with no member set).
fn the_chains_own_genesis_does_not_commit_first(
    cluster: &Cluster,
    runtime: &tokio::runtime::Runtime,
    client: &stele_client::Client,
    id: u64,
    file: &str,
) {
    let bytes = std::fs::read(cluster.path().join(file)).unwrap();
    let entries = stele_ledger::export::decode(&bytes).unwrap();
    let genesis = stele_ledger::Proposal {
        version: entries.versions[0].clone(),
        bundle: entries.bundles[&entries.versions[0].header.bundle_digest].clone(),
    };
    let early = runtime
        .block_on(async {
            let mut tried = 0;
            loop {
                match client.submit(&genesis, true).await {
                    Err(e) if e.is_retryable() && tried < 20 => tried += 1,
                    other => break other,
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .unwrap_err();
    assert_eq!(
        early.reason(),
        Some(stele_ledger::Reason::MembershipUnsafe),
        "{early}"
    );
    assert!(
        cluster.served_seq(id).is_none(),
        "the old genesis was served"
    );
}

/// `proposal` signed by `keys`, then appended to a copy of ledger `from`,
/// written to `to`.
fn sign_onto_copy(cluster: &Cluster, proposal: &str, keys: &[&str], from: &str, to: &str) {
    let mut sign = vec!["proposal", "sign", proposal, "--ledger", from];
    for key in keys {
        sign.extend(["--key", key]);
    }
    stele(cluster.path(), &sign).ok();
    std::fs::copy(cluster.path().join(from), cluster.path().join(to)).unwrap();
    stele(
        cluster.path(),
        &["ledger", "append", to, "--proposal", proposal],
    )
    .ok();
}

/// `path` with `version` (and its bundle, the head's) appended, written
/// here without the CLI's checks: what a hostile operator could send.
fn with_head(cluster: &Cluster, from: &str, version: stele_ledger::Version, to: &str) {
    let bytes = std::fs::read(cluster.path().join(from)).unwrap();
    let mut entries = stele_ledger::export::decode(&bytes).unwrap();
    let bundle = entries.bundles[&version.header.bundle_digest].clone();
    entries.push(version, bundle);
    let bundles = entries.bundles.clone();
    let text = stele_ledger::export::encode_with(&entries.versions, |digest| {
        Ok::<_, std::convert::Infallible>(bundles[digest].clone())
    })
    .unwrap();
    std::fs::write(cluster.path().join(to), text).unwrap();
}

#[test]
fn a_chain_continues_in_a_new_cluster_only_whole_and_with_its_members_signed() {
    let _one_at_a_time = serial();
    let mut cluster = cluster();
    // A version whose own expiry passes before the restore: history is
    // vouched for by the restore's signers, not judged again.
    cluster.variant("short");
    let short = cluster
        .run(&[
            "--json",
            "propose",
            "--bundle",
            "short",
            "-m",
            "short",
            "--key",
            "a",
            "--key",
            "b",
            "--expires-in",
            "2s",
        ])
        .ok()
        .json();
    assert_eq!(short["status"], "committed", "{short}");
    cluster.wait_all_serve(2);
    std::fs::write(cluster.path().join("old.l"), cluster.export(1)).unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // An export alone names no new members: refused before any node is
    // called.
    let plain = cluster
        .run_at(
            "127.0.0.1:1",
            &["--json", "cluster", "init", "--ledger", "old.l"],
        )
        .fails()
        .json();
    assert_eq!(plain["error"], "malformed", "{plain}");

    // The new cluster: nodes 4, 5 and 6, listed by a membership version
    // that two approvers sign onto the export.
    let mut new_members = vec![
        "--json",
        "proposal",
        "new",
        "--kind",
        "membership",
        "--ledger",
        "old.l",
        "-m",
        "continue in the new cluster",
        "--author",
        "a",
        "--out",
        "restore.p",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for id in 4..=6 {
        let (addr, peer) = cluster.plan(id);
        new_members.extend([
            "--member".into(),
            format!("{id}={addr},{peer}"),
            "--cert".into(),
            format!("tls/node-{id}.pem"),
        ]);
    }
    let args: Vec<&str> = new_members.iter().map(String::as_str).collect();
    stele(cluster.path(), &args).ok();
    // The same, signed by both, but expiring in two seconds.
    let mut expiring = args.clone();
    *expiring
        .iter_mut()
        .find(|arg| **arg == "restore.p")
        .unwrap() = "expired.p";
    expiring.extend(["--expires-in", "2s"]);
    stele(cluster.path(), &expiring).ok();
    let expiry_starts = Instant::now();
    sign_onto_copy(&cluster, "expired.p", &["a", "b"], "old.l", "expired.l");
    stele(
        cluster.path(),
        &[
            "proposal",
            "sign",
            "restore.p",
            "--ledger",
            "old.l",
            "--key",
            "a",
        ],
    )
    .ok();
    // Signed by one approver of two needed, sent straight to a node.
    let one_signature =
        stele_ledger::Proposal::decode(&std::fs::read(cluster.path().join("restore.p")).unwrap())
            .unwrap();
    with_head(&cluster, "old.l", one_signature.version, "under.l");
    sign_onto_copy(&cluster, "restore.p", &["b"], "old.l", "restore.l");
    for id in 4..=6 {
        cluster.launch(id, &[]);
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let node4 = cluster.client_as(4, "operator", Duration::from_secs(10));
    let bootstrap = |file: &str| {
        let ledger = std::fs::read(cluster.path().join(file)).unwrap();
        runtime.block_on(node4.bootstrap(stele_proto::v1::BootstrapRequest {
            genesis: Vec::new(),
            ledger,
        }))
    };
    // Another chain, of one approver's making, naming the same new nodes:
    // the nodes accept only the chain whose genesis they were started with.
    let node_list: Vec<String> = new_members
        .iter()
        .skip_while(|arg| *arg != "--member")
        .cloned()
        .collect();
    stele(cluster.path(), RIVAL_GENESIS).ok();
    let mut rival = vec![
        "proposal",
        "new",
        "--kind",
        "membership",
        "--ledger",
        "rival.l",
        "-m",
        "mine",
        "--author",
        "c",
        "--out",
        "rival.p",
    ];
    rival.extend(node_list.iter().map(String::as_str));
    stele(cluster.path(), &rival).ok();
    stele(
        cluster.path(),
        &[
            "proposal", "sign", "rival.p", "--ledger", "rival.l", "--key", "c",
        ],
    )
    .ok();
    stele(
        cluster.path(),
        &["ledger", "append", "rival.l", "--proposal", "rival.p"],
    )
    .ok();
    let rival = bootstrap("rival.l").unwrap_err();
    assert_eq!(
        rival.reason(),
        Some(stele_ledger::Reason::GenesisMismatch),
        "{rival}"
    );
    // Expired by the node's clock: it could never commit.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(expiry_starts.elapsed()));
    let expired = bootstrap("expired.l").unwrap_err();
    assert_eq!(
        expired.reason(),
        Some(stele_ledger::Reason::ProposalExpired),
        "{expired}"
    );
    let under = bootstrap("under.l").unwrap_err();
    assert_eq!(
        under.reason(),
        Some(stele_ledger::Reason::BelowThreshold),
        "{under}"
    );
    // A history edited under the signed head (seq 2's message): its
    // signatures no longer verify.
    let mut edited = std::fs::read_to_string(cluster.path().join("restore.l")).unwrap();
    edited = edited.replacen("\"short\"", "\"shorT\"", 1);
    std::fs::write(cluster.path().join("edited.l"), edited).unwrap();
    let edited = bootstrap("edited.l").unwrap_err();
    assert_eq!(
        edited.reason(),
        Some(stele_ledger::Reason::BadSignature),
        "{edited}"
    );
    std::thread::sleep(Duration::from_secs(2));
    for id in 4..=6 {
        let status = cluster.status_of(id).unwrap();
        assert!(status["leader"].is_null(), "Raft started: {status}");
    }
    // Nor does the old cluster take it: its nodes are not listed.
    let old = cluster
        .run(&["--json", "cluster", "init", "--ledger", "restore.l"])
        .fails()
        .json();
    assert_eq!(old["error"], "membership_unsafe", "{old}");
    assert_eq!(members(&cluster, 1), vec![(1, true), (2, true), (3, true)]);

    // Raft started for the restore: the export's own genesis, fully
    // signed, does not commit first (a rollback to seq 1).
    bootstrap("restore.l").unwrap();
    wait_until(
        "the new cluster elects a leader",
        Duration::from_secs(30),
        || cluster.status_of(4).is_some_and(|s| !s["leader"].is_null()),
    );
    the_chains_own_genesis_does_not_commit_first(&cluster, &runtime, &node4, 4, "old.l");

    // The signed restore starts the new cluster, on the whole chain at once.
    let node4_addr = cluster.node(4).addr.clone();
    let init = ["--json", "cluster", "init", "--ledger", "restore.l"];
    let restored = cluster.run_at(&node4_addr, &init).ok().json();
    // (already_committed when the write was sent again, after an election
    // that followed its commit.)
    assert!(
        matches!(
            restored["status"].as_str(),
            Some("committed" | "already_committed")
        ),
        "{restored}"
    );
    assert_eq!(restored["seq"].as_u64(), Some(3), "{restored}");
    assert_eq!(restored["voters"], json!([4, 5, 6]), "{restored}");
    for id in 4..=6 {
        wait_until(
            &format!("node {id} serves the restore"),
            Duration::from_secs(30),
            || cluster.served_seq(id) == Some(3),
        );
    }
    let exported = cluster.export(5);
    assert_eq!(
        exported,
        std::fs::read(cluster.path().join("restore.l")).unwrap(),
        "the new cluster holds exactly the chain it was given"
    );
    assert_eq!(members(&cluster, 4), vec![(4, true), (5, true), (6, true)]);
    let log_length = || -> f64 {
        (4..=6)
            .map(|id| metric(&cluster, id, "stele_raft_last_log_index"))
            .sum()
    };
    let before = log_length();
    let again = cluster.run_at(&node4_addr, &init).ok().json();
    assert_eq!(
        (again["status"].as_str(), again["initialized"].as_bool()),
        (Some("already_committed"), Some(false)),
        "{again}"
    );
    // Answered from the state, not by logging the whole ledger again.
    assert_eq!(
        log_length(),
        before,
        "the restore was written to the log again"
    );
    // It commits new versions; the old cluster goes on as it was.
    cluster.variant("after-restore");
    let next = cluster
        .run_at(
            &node4_addr,
            &[
                "--json",
                "propose",
                "--bundle",
                "after-restore",
                "-m",
                "after",
                "--key",
                "a",
                "--key",
                "b",
            ],
        )
        .ok()
        .json();
    assert_eq!(
        (next["status"].as_str(), next["seq"].as_u64()),
        (Some("committed"), Some(4)),
        "{next}"
    );
    assert_eq!(log_hashes(&cluster, 1).len(), 2);
    assert_eq!(log_hashes(&cluster, 6)[..3], log_hashes(&cluster, 4)[..3]);
}

#[test]
fn a_chain_from_before_member_sets_continues_in_a_new_cluster_and_its_old_genesis_never_commits_first()
 {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(1, &[]);
    // A chain whose genesis names no members: what a layout-2 store, whose
    // membership unsigned calls set, exports.
    let mut old = vec![
        "--json",
        "ledger",
        "new",
        "old.l",
        "-m",
        "before member sets",
    ];
    old.extend(common::GENESIS_ARGS);
    let old_genesis = stele(cluster.path(), &old).ok().json()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let (addr, peer) = cluster.plan(7);
    let member = format!("7={addr},{peer}");
    stele(
        cluster.path(),
        &[
            "proposal",
            "new",
            "--kind",
            "membership",
            "--ledger",
            "old.l",
            "--member",
            &member,
            "--cert",
            "tls/node-7.pem",
            "-m",
            "the first signed member set",
            "--author",
            "a",
            "--out",
            "first.p",
        ],
    )
    .ok();
    sign_onto_copy(&cluster, "first.p", &["a", "b"], "old.l", "restore.l");
    cluster.genesis_hash = old_genesis;
    cluster.launch(7, &[]);

    // Raft starts with node 7; the old genesis, fully signed, names no
    // members, and is refused as the cluster's first version.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let node7 = cluster.client_as(7, "operator", Duration::from_secs(10));
    let ledger = std::fs::read(cluster.path().join("restore.l")).unwrap();
    runtime
        .block_on(node7.bootstrap(stele_proto::v1::BootstrapRequest {
            genesis: Vec::new(),
            ledger: ledger.clone(),
        }))
        .unwrap();
    wait_until("node 7 leads", Duration::from_secs(30), || {
        cluster.status_of(7).is_some_and(|s| s["leader"] == 7)
    });
    the_chains_own_genesis_does_not_commit_first(&cluster, &runtime, &node7, 7, "restore.l");

    // The restore commits the chain with its first signed member set.
    let restored = cluster
        .run_at(
            &cluster.node(7).addr,
            &["--json", "cluster", "init", "--ledger", "restore.l"],
        )
        .ok()
        .json();
    assert_eq!(restored["seq"].as_u64(), Some(2), "{restored}");
    wait_until("node 7 serves seq 2", Duration::from_secs(30), || {
        cluster.served_seq(7) == Some(2)
    });
    assert_eq!(members(&cluster, 7), vec![(7, true)]);
}

#[test]
fn a_node_refuses_to_start_raft_from_an_expired_genesis() {
    let _one_at_a_time = serial();
    let mut cluster = Cluster::start(1, &[]);
    // A genesis for node 7 that expires in two seconds, signed by two.
    let (addr, peer) = cluster.plan(7);
    let member = format!("7={addr},{peer}");
    let mut new = vec![
        "--json",
        "proposal",
        "new",
        "--kind",
        "genesis",
        "--member",
        &member,
        "--cert",
        "tls/node-7.pem",
        "-m",
        "short-lived",
        "--author",
        "a",
        "--expires-in",
        "2s",
        "--out",
        "short.p",
    ];
    // The harness's genesis, less its signing keys (it is signed below).
    new.extend(
        common::GENESIS_ARGS
            .iter()
            .take_while(|arg| **arg != "--key"),
    );
    let hash = stele(cluster.path(), &new).ok().json()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let made = Instant::now();
    stele(
        cluster.path(),
        &["proposal", "sign", "short.p", "--key", "a", "--key", "b"],
    )
    .ok();
    cluster.genesis_hash = hash;
    cluster.launch(7, &[]);
    // Past its expiry, sent straight to the node (the CLI refuses it
    // first): refused, and Raft does not start.
    std::thread::sleep(Duration::from_millis(3500).saturating_sub(made.elapsed()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _inside = runtime.enter();
    let node7 = cluster.client_as(7, "operator", Duration::from_secs(10));
    let refused = runtime
        .block_on(node7.bootstrap(stele_proto::v1::BootstrapRequest {
            genesis: std::fs::read(cluster.path().join("short.p")).unwrap(),
            ledger: Vec::new(),
        }))
        .unwrap_err();
    assert_eq!(
        refused.reason(),
        Some(stele_ledger::Reason::ProposalExpired),
        "{refused}"
    );
    std::thread::sleep(Duration::from_secs(2));
    let status = cluster.status_of(7).unwrap();
    assert!(status["leader"].is_null(), "Raft started: {status}");
}
