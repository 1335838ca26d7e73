//! Commit latency and propagation on three local stele nodes, against etcd's
//! put latency on a three-member local etcd cluster, in the same run.
//!
//!     apt-get install etcd-server        # the baseline; skipped if absent
//!     cargo bench --bench commit_latency
//!
//! stele: each round proposes a new version (the example bundle with a
//! unique comment, about 40 KB, signed by 2 of 3 approvers) through the leader,
//! and measures (a) commit latency: send → the leader's "committed" reply,
//! and (b) propagation: send → every node serving the new version (each
//! node's WatchHead stream), and the part of it after the reply. etcd: a
//! put of a value of the same size, and of a small value, through its gRPC
//! gateway (JSON over HTTP/1.1), with one persistent connection.
//! stele runs twice with mutual TLS (the default) and twice with
//! `--insecure-plaintext`, alternating, to show what TLS costs a commit.
//! STELE_BENCH_ROUNDS sets the number of rounds (default 200).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{Cluster, free_port};
use stele_client::Client;
use stele_ledger::{
    Authorship, BundleFiles, Head, Header, Kind, Proposal, SecretKey, TrustSet, Version,
};
use tokio_stream::StreamExt;

struct Processes(Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<52} n={:<4} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        samples.len(),
        ms(percentile(&samples, 0.5)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap())
    );
}

fn variant(base: &BundleFiles, n: usize) -> BundleFiles {
    let mut out = BundleFiles::default();
    for (path, content) in base.files() {
        let content = if path == "access.cedar" {
            format!("{content}\n// round {n}\n")
        } else {
            content.to_string()
        };
        out.insert(path.into(), content).unwrap();
    }
    out
}

fn signed(
    head: Option<Head>,
    bundle: &BundleFiles,
    keys: &[SecretKey],
    trust: &TrustSet,
) -> Version {
    let by = Authorship {
        message: "bench".into(),
        author: "bench".into(),
        created_at: 0,
    };
    let header = match head {
        None => Header::genesis(bundle.digest(), trust.clone(), by),
        Some(head) => Header::after(head, bundle.digest(), Kind::Update, by),
    };
    let mut version = Version::unsigned(header);
    version.sign(&keys[0]);
    version.sign(&keys[1]);
    version
}

async fn stele(rounds: usize, transport: &str) {
    let cluster = match transport {
        "plaintext" => Cluster::start_plaintext(3, &["--log", "warn"]),
        _ => Cluster::start(3, &["--log", "warn"]),
    };
    let leader = cluster.wait_for_leader();
    let clients: Vec<Client> = cluster
        .nodes
        .iter()
        .map(|n| cluster.client_as(n.id, "operator", Duration::from_secs(10)))
        .collect();
    let proposer = &clients[cluster.nodes.iter().position(|n| n.id == leader).unwrap()];
    let keys: Vec<SecretKey> = (1..=3).map(|n| SecretKey::from_seed([n; 32])).collect();
    let trust = TrustSet::new(keys.iter().map(SecretKey::public_key).collect(), 2).unwrap();
    let base = support::example();
    let mut watches = Vec::new();
    for client in &clients {
        watches.push(client.watch_head().await.unwrap());
    }
    let mut head: Option<Head> = None;
    let (mut commit, mut propagation, mut after_commit) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        let bundle = variant(&base, round);
        let version = signed(head, &bundle, &keys, &trust);
        let seq = version.seq();
        let hash = version.hash();
        let proposal = Proposal { version, bundle };
        let sent = Instant::now();
        let reply = proposer.submit(&proposal, true).await.unwrap();
        let acknowledged = sent.elapsed();
        assert_eq!(reply.seq, Some(seq));
        for watch in &mut watches {
            loop {
                let update = watch.next().await.unwrap().unwrap();
                if update.served.is_some_and(|s| s.seq >= seq) {
                    break;
                }
            }
        }
        let everywhere = sent.elapsed();
        head = Some(Head { seq, hash });
        // The genesis round warms up connections; it is not counted.
        if round > 0 {
            commit.push(acknowledged);
            propagation.push(everywhere);
            after_commit.push(everywhere.saturating_sub(acknowledged));
        }
    }
    let final_head = clients[2].served().await.unwrap();
    assert_eq!(final_head.unwrap().seq, rounds as u64 + 1);
    report(
        &format!("stele {transport} commit (propose -> committed)"),
        commit,
    );
    report(
        &format!("stele {transport} propagation (propose -> all 3 serve)"),
        propagation,
    );
    report(
        &format!("stele {transport} propagation (committed -> all 3)"),
        after_commit,
    );
}

/// A minimal HTTP/1.1 client on one kept-alive connection.
struct Http {
    stream: BufReader<TcpStream>,
}

impl Http {
    fn post(&mut self, path: &str, body: &str) -> String {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).unwrap();
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        String::from_utf8(body).unwrap()
    }
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn etcd(rounds: usize, value_bytes: usize) -> Option<Vec<Duration>> {
    if Command::new("etcd").arg("--version").output().is_err() {
        println!("etcd not found (apt-get install etcd-server): baseline skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
        .collect();
    let mut members = Processes(Vec::new());
    for (i, (client, peer)) in ports.iter().enumerate() {
        members.0.push(
            Command::new("etcd")
                .args(["--name", &format!("e{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("e{i}")))
                .args([
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args([
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new", "--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let client_port = ports[0].0;
    let connect = || TcpStream::connect(("127.0.0.1", client_port)).ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut http = loop {
        if let Some(stream) = connect() {
            let mut http = Http {
                stream: BufReader::new(stream),
            };
            if http
                .post(
                    "/v3/kv/put",
                    &format!("{{\"key\":\"{}\",\"value\":\"\"}}", base64(b"warm")),
                )
                .contains("header")
            {
                break http;
            }
        }
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    let value = base64(&vec![b'x'; value_bytes]);
    let mut samples = Vec::new();
    for round in 0..rounds {
        let body = format!(
            "{{\"key\":\"{}\",\"value\":\"{value}\"}}",
            base64(format!("k{round}").as_bytes())
        );
        let sent = Instant::now();
        let reply = http.post("/v3/kv/put", &body);
        samples.push(sent.elapsed());
        assert!(reply.contains("header"), "etcd put failed: {reply}");
    }
    Some(samples)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("STELE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bundle_bytes = support::example().total_bytes();
    println!(
        "3 local nodes on 127.0.0.1, {rounds} rounds; a version carries a {bundle_bytes}-byte bundle"
    );
    // Mutual TLS (the default) against plaintext, alternating, so that
    // the machine's drift hits both alike.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for transport in ["tls", "plaintext", "tls", "plaintext"] {
        runtime.block_on(stele(rounds, transport));
    }
    if let Some(samples) = etcd(rounds, bundle_bytes) {
        report(&format!("etcd put, {bundle_bytes}-byte value"), samples);
    }
    if let Some(samples) = etcd(rounds, 16) {
        report("etcd put, 16-byte value", samples);
    }
}
