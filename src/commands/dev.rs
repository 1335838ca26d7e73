//! `stele dev`: a local three-node cluster in separate processes, with demo
//! approver keys (2 of 3) and the zero-trust example as genesis. A second run
//! resumes from the same directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stele_client::Client;
use stele_ledger::{Approver, Hash, Member, MemberSet, Proposal, Role, SecretKey, TrustSet};
use stele_proto::v1::{BootstrapRequest, StatusRequest};

use super::certs;
use super::keygen::{public_path, write_key_pair};
use super::ledger::{genesis_header, signed};
use super::node::shutdown_signal;
use crate::cli::{About, DevArgs, IssueArgs};
use crate::example_bundle::zero_trust;
use crate::failure::{Code, Failure, Result};
use crate::files::load_secret_key;
use crate::output::Output;
use crate::remote::{block_on, connect_with};

const NODES: u64 = 3;
/// Node i serves HTTP at --base-port + this + i.
const HTTP_PORT_OFFSET: u64 = 100;
/// Node i's peer (Raft) port is --base-port + this + i.
const PEER_PORT_OFFSET: u64 = 200;
/// The client certificates `stele dev` issues: the operator's, with every
/// role, and one for each role alone.
const CLIENTS: [(&str, &[stele_tls::Role]); 3] = [
    ("operator", &stele_tls::Role::ALL),
    ("reader", &[stele_tls::Role::Reader]),
    ("decide", &[stele_tls::Role::Decide]),
];
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The node processes; stopped (SIGTERM, then SIGKILL) when dropped.
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // SAFETY: kill(2) on a child's pid has no memory effects.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn run(out: Output, args: DevArgs) -> Result<()> {
    let last_port = u64::from(args.base_port) + PEER_PORT_OFFSET + NODES - 1;
    if last_port > u64::from(u16::MAX) {
        return Err(Failure::usage(format!(
            "--base-port {}: the {NODES} nodes need ports up to {last_port}, past 65535",
            args.base_port,
        )));
    }
    fs::create_dir_all(&args.dir).map_err(|e| Failure::io(&args.dir, e))?;
    let dir = fs::canonicalize(&args.dir).map_err(|e| Failure::io(&args.dir, e))?;
    let tls = tls_dir(&dir)?;
    let keys = approver_keys(&dir)?;
    write_example(&dir.join("bundle"))?;
    write_requests(&dir.join("requests.jsonl"))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(Code::Io, format!("cannot find the stele binary: {e}")))?;
    let addrs: Vec<String> = (0..NODES)
        .map(|i| format!("127.0.0.1:{}", args.base_port as u64 + i))
        .collect();
    let http_addrs: Vec<String> = (0..NODES)
        .map(|i| format!("127.0.0.1:{}", args.base_port as u64 + HTTP_PORT_OFFSET + i))
        .collect();
    let peer_addrs: Vec<String> = (0..NODES)
        .map(|i| format!("127.0.0.1:{}", args.base_port as u64 + PEER_PORT_OFFSET + i))
        .collect();
    let genesis = genesis(&dir, &tls, &keys, &addrs, &peer_addrs)?;
    let genesis_hash = genesis.version.hash();
    let mut nodes = Nodes(Vec::new());
    for i in 0..NODES as usize {
        let ports = Ports {
            addr: &addrs[i],
            peer: &peer_addrs[i],
            http: &http_addrs[i],
        };
        let node = spawn_node(
            &exe,
            &dir,
            i as u64 + 1,
            &ports,
            &genesis_hash,
            DecisionLogFlags {
                off: args.no_decision_log,
                requests: args.decision_log_requests,
            },
        )?;
        nodes.0.push(node);
    }
    let transport = operator_transport(&tls)?;
    let clients: Vec<Client> = addrs
        .iter()
        .map(|addr| connect_with(addr, &transport, Duration::from_secs(5)))
        .collect::<Result<_>>()?;
    let head = block_on(async {
        for (i, client) in clients.iter().enumerate() {
            wait_until_up(client, &mut nodes, i, &dir).await?;
        }
        bootstrap(&clients[0], &genesis).await?;
        ensure_genesis(&clients[0], &genesis).await?;
        wait_all_serving(&clients).await
    })?;
    let env_file = write_env(&dir, &tls, &addrs[0])?;
    print_next_steps(out, &dir, &env_file, &addrs, &http_addrs, &keys, head);
    block_on(async {
        shutdown_signal().await;
        Ok(())
    })?;
    eprintln!(
        "stopping the cluster; `stele dev --dir {}` resumes it",
        args.dir.display()
    );
    drop(nodes);
    Ok(())
}

/// DIR/tls: the CA, a certificate for each node (for 127.0.0.1 and
/// localhost), and the client certificates, made on the first run. A DIR
/// that holds nodes but no tls/ was made by a stele without TLS: refused.
fn tls_dir(dir: &Path) -> Result<PathBuf> {
    let tls = dir.join("tls");
    if !tls.exists() && dir.join("node1").exists() {
        return Err(Failure::usage(format!(
            "{} was made by an older stele, without TLS (it has nodes but no tls/): delete it (`rm -rf {}`) or give another --dir",
            dir.display(),
            dir.display()
        )));
    }
    let issue = IssueArgs {
        valid_for: stele_tls::issue::LEAF_VALIDITY,
        reuse_key: false,
    };
    if !tls.join(certs::CA_CERT).exists() {
        certs::init(&tls, "stele dev CA")?;
    }
    let hosts = ["127.0.0.1".to_string(), "localhost".to_string()];
    for id in 1..=NODES {
        if !tls.join(format!("node-{id}.pem")).exists() {
            certs::node(&tls, id, &hosts, &issue)?;
        }
    }
    for (name, roles) in CLIENTS {
        if !tls.join(format!("{name}.pem")).exists() {
            certs::client(&tls, name, roles, &issue)?;
        }
    }
    Ok(tls)
}

/// The files of the client certificate `name` under `tls`.
fn client_files(tls: &Path, name: &str) -> stele_tls::TlsFiles {
    stele_tls::TlsFiles {
        ca: tls.join(certs::CA_CERT),
        cert: tls.join(format!("{name}.pem")),
        key: tls.join(format!("{name}.key")),
    }
}

/// How `stele dev` itself calls the nodes: as the operator.
fn operator_transport(tls: &Path) -> Result<stele_client::Transport> {
    let loaded = client_files(tls, "operator")
        .load()
        .map_err(|e| Failure::new(Code::Io, e.to_string()))?;
    let config = loaded
        .client_config()
        .map_err(|e| Failure::new(Code::Io, e.to_string()))?;
    Ok(stele_client::Transport::Tls(config))
}

/// DIR/stele.env: `source` it and every `stele` command reaches the
/// cluster as the operator.
fn write_env(dir: &Path, tls: &Path, endpoint: &str) -> Result<PathBuf> {
    let files = client_files(tls, "operator");
    let quote = |path: &Path| format!("'{}'", path.display().to_string().replace('\'', "'\\''"));
    let text = format!(
        "# Written by `stele dev`: `source` this file to talk to its cluster as the operator.\n\
         export STELE_ENDPOINT={endpoint}\n\
         export STELE_TLS_CA={}\n\
         export STELE_TLS_CERT={}\n\
         export STELE_TLS_KEY={}\n",
        quote(&files.ca),
        quote(&files.cert),
        quote(&files.key),
    );
    let path = dir.join("stele.env");
    crate::files::replace(&path, text.as_bytes(), 0o644)?;
    Ok(path)
}

/// Secret keys approver1..3 under DIR/keys, created on the first run.
fn approver_keys(dir: &Path) -> Result<Vec<PathBuf>> {
    let keys_dir = dir.join("keys");
    fs::create_dir_all(&keys_dir).map_err(|e| Failure::io(&keys_dir, e))?;
    (1..=NODES)
        .map(|n| {
            let path = keys_dir.join(format!("approver{n}"));
            if !path.exists() {
                write_key_pair(&path)?;
            }
            Ok(path)
        })
        .collect()
}

/// A copy of the example bundle to edit and propose.
fn write_example(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    for (path, content) in zero_trust().files() {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| Failure::io(parent, e))?;
        }
        fs::write(&target, content).map_err(|e| Failure::io(&target, e))?;
    }
    Ok(())
}

/// The example's scenario requests, one per line (the format of `stele
/// check --requests` and `stele proposal impact --requests`).
fn write_requests(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut lines = String::new();
    for (file, text) in zero_trust().files() {
        if !file.starts_with("tests/") {
            continue;
        }
        let scenarios: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| Failure::new(Code::Internal, format!("{file}: {e}")))?;
        for scenario in scenarios["queries"].as_array().into_iter().flatten() {
            let mut request = serde_json::Map::new();
            for key in ["principal", "action", "resource", "context"] {
                if let Some(value) = scenario.get(key) {
                    request.insert(key.into(), value.clone());
                }
            }
            lines.push_str(&serde_json::Value::Object(request).to_string());
            lines.push('\n');
        }
    }
    fs::write(path, lines).map_err(|e| Failure::io(path, e))
}

/// How `stele dev` runs its nodes' decision logs.
#[derive(Clone, Copy)]
struct DecisionLogFlags {
    off: bool,
    requests: bool,
}

/// A node's three addresses.
struct Ports<'a> {
    addr: &'a str,
    peer: &'a str,
    http: &'a str,
}

fn spawn_node(
    exe: &Path,
    dir: &Path,
    id: u64,
    ports: &Ports,
    genesis: &Hash,
    decision_log: DecisionLogFlags,
) -> Result<Child> {
    let tls = dir.join("tls");
    let log_path = dir.join(format!("node{id}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Failure::io(&log_path, e))?;
    let log_err = log.try_clone().map_err(|e| Failure::io(&log_path, e))?;
    Command::new(exe)
        .args([
            "node",
            "--id",
            &id.to_string(),
            "--listen",
            ports.addr,
            "--peer-listen",
            ports.peer,
            "--http",
            ports.http,
        ])
        .arg("--tls-ca")
        .arg(tls.join(certs::CA_CERT))
        .arg("--tls-cert")
        .arg(tls.join(format!("node-{id}.pem")))
        .arg("--tls-key")
        .arg(tls.join(format!("node-{id}.key")))
        .args(["--genesis", &genesis.to_hex()])
        .args(decision_log.off.then_some("--no-decision-log"))
        .args(decision_log.requests.then_some("--decision-log-requests"))
        .arg("--data")
        .arg(dir.join(format!("node{id}")))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| Failure::new(Code::Io, format!("cannot start node {id}: {e}")))
}

/// Polls `attempt` every 100 ms until it gives a value, for up to a minute.
async fn poll_until<T>(
    what: &str,
    mut attempt: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if let Some(value) = attempt().await? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(Failure::new(
                Code::Timeout,
                format!(
                    "{what} within {}",
                    humantime::format_duration(STARTUP_TIMEOUT)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until_up(client: &Client, nodes: &mut Nodes, index: usize, dir: &Path) -> Result<()> {
    let what = format!("node {} did not come up", index + 1);
    poll_until(&what, async || {
        if let Ok(Some(status)) = nodes.0[index].try_wait() {
            let log = dir.join(format!("node{}.log", index + 1));
            let tail = fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            return Err(Failure::new(
                Code::NodeExited,
                format!(
                    "node {} exited ({status}); the end of {}:\n{}",
                    index + 1,
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ),
            ));
        }
        let ask = client.status(StatusRequest { local_only: true }).await;
        Ok(ask.is_ok().then_some(()))
    })
    .await
}

/// Starts Raft from the genesis (a cluster that already started answers
/// `initialized: false`, which is fine) and waits for a leader.
async fn bootstrap(client: &Client, genesis: &Proposal) -> Result<()> {
    client
        .bootstrap(BootstrapRequest {
            genesis: genesis.encode().into_bytes(),
            ledger: Vec::new(),
        })
        .await?;
    poll_until(
        "no leader was elected (if DIR was created with another --base-port, use that one or a new --dir)",
        async || {
            let status = client.status(StatusRequest { local_only: true }).await;
            Ok(status.is_ok_and(|s| s.leader.is_some()).then_some(()))
        },
    )
    .await
}

/// DIR/genesis.json, made on the first run: the zero-trust example,
/// approvers 1–3 (2 of 3), signed by 1 and 2, and the three nodes as its
/// voters with their certificates' keys. Every node accepts only this
/// genesis (`--genesis`).
fn genesis(
    dir: &Path,
    tls: &Path,
    keys: &[PathBuf],
    addrs: &[String],
    peer_addrs: &[String],
) -> Result<Proposal> {
    let path = dir.join("genesis.json");
    if path.exists() {
        return crate::ledger_files::load_proposal(&path);
    }
    if dir.join("node1").exists() {
        return Err(Failure::usage(format!(
            "{} was made by an older stele, whose genesis named no members (it has nodes but no genesis.json): delete it (`rm -rf {}`) or give another --dir",
            dir.display(),
            dir.display()
        )));
    }
    let secrets: Vec<SecretKey> = keys
        .iter()
        .map(|k| load_secret_key(k))
        .collect::<Result<_>>()?;
    // Each approver is named after its key file: approver1, approver2, …
    let named = keys.iter().zip(&secrets).map(|(path, secret)| {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        (
            secret.public_key(),
            Approver::named(name.unwrap_or_default()),
        )
    });
    let trust = TrustSet::named(named.collect(), 2).expect("three distinct, named keys");
    let certificates: Vec<PathBuf> = (1..=NODES)
        .map(|id| tls.join(format!("node-{id}.pem")))
        .collect();
    let keys_of = super::membership::read_certificates(&certificates)?;
    let mut members = Vec::new();
    for (i, (addr, peer)) in addrs.iter().zip(peer_addrs).enumerate() {
        let id = i as u64 + 1;
        members.push(Member {
            id,
            role: Role::Voter,
            client: addr.clone(),
            peer: peer.clone(),
            region: String::new(),
            spki_sha256: *keys_of.get(&id).ok_or_else(|| {
                Failure::usage(format!(
                    "{}/node-{id}.pem names another node: delete {} and run again",
                    tls.display(),
                    tls.display()
                ))
            })?,
        });
    }
    let members = MemberSet::new(members).map_err(|e| Failure::usage(e.to_string()))?;
    let bundle = zero_trust();
    let about = About {
        message: "genesis: the zero-trust example".into(),
        author: None,
        // Written to a file this run commits, or the next one resumes.
        expires_in: None,
    };
    let version = signed(
        genesis_header(&bundle, trust, Some(members), &about, &secrets[..2])?,
        &secrets[..2],
    );
    let proposal = Proposal { version, bundle };
    crate::files::create_new(&path, proposal.encode().as_bytes(), 0o644)?;
    Ok(proposal)
}

/// Commits the genesis unless the cluster has it already.
async fn ensure_genesis(client: &Client, genesis: &Proposal) -> Result<()> {
    // Right after startup, leadership may still move between nodes (they
    // are busy loading a large ledger): wait out "no leader" answers.
    let head = poll_until(
        "no leader stayed long enough to read the ledger",
        async || match client.cluster_head().await {
            Ok(head) => Ok(Some(head)),
            Err(error) if error.code() == Some(tonic::Code::Unavailable) => Ok(None),
            Err(error) => Err(error.into()),
        },
    )
    .await?;
    if head.is_some() {
        return Ok(());
    }
    client.submit(genesis, true).await?;
    Ok(())
}

/// Waits until every node serves the same head; returns it.
async fn wait_all_serving(clients: &[Client]) -> Result<(u64, String)> {
    poll_until("the nodes did not all serve the genesis", async || {
        let mut served = Vec::new();
        for client in clients {
            served.push(client.served().await.ok().flatten());
        }
        Ok(match served.first() {
            Some(Some(first))
                if served
                    .iter()
                    .all(|s| s.as_ref().is_some_and(|s| s.seq == first.seq)) =>
            {
                Some((first.seq, first.hash.to_hex()))
            }
            _ => None,
        })
    })
    .await
}

fn print_next_steps(
    out: Output,
    dir: &Path,
    env_file: &Path,
    addrs: &[String],
    http_addrs: &[String],
    keys: &[PathBuf],
    head: (u64, String),
) {
    let stele = std::env::args().next().unwrap_or_else(|| "stele".into());
    let value = json!({
        "dir": dir,
        "env_file": env_file,
        "tls_dir": dir.join("tls"),
        "endpoints": addrs,
        "http_endpoints": http_addrs,
        "approver_keys": keys,
        "approver_public_keys": keys.iter().map(|k| public_path(k)).collect::<Vec<_>>(),
        "threshold": 2,
        "head": { "seq": head.0, "hash": head.1 },
    });
    out.result(&value, || {
        let mut text = format!("stele dev: a 3-node cluster is up, serving seq {} ({})\n\n", head.0, &head.1[..12]);
        for (i, (addr, http)) in addrs.iter().zip(http_addrs).enumerate() {
            text.push_str(&format!("  node {}  gRPC {addr}  HTTP {http}   log: {}\n", i + 1, dir.join(format!("node{}.log", i + 1)).display()));
        }
        text.push_str(&format!("\n  approver keys (any 2 of 3 sign): {}/keys/approver{{1,2,3}}\n", dir.display()));
        text.push_str(&format!("  an editable copy of the genesis bundle: {}/bundle\n", dir.display()));
        text.push_str(&format!("  TLS: the CA, node and client certificates (operator: every role; reader; decide) in {}/tls\n\n", dir.display()));
        let d = dir.display();
        let t = format!("{d}/tls");
        let a2 = &addrs[1];
        let a3 = &addrs[2];
        text.push_str(&format!(
            "Try, in another terminal:\n\
             \n  source {env}\n\
             \n  {stele} cluster status\
             \n  {stele} check --endpoint {a2} --principal 'User::\"erin\"' --action 'Action::\"ssh\"' \\\
             \n      --resource 'Server::\"prod-web-1\"' \\\
             \n      --context '{{\"network_zone\":\"vpn\",\"device\":{{\"managed\":true,\"disk_encrypted\":true,\"os_patch_age_days\":3}},\"mfa_age_seconds\":60}}'\
             \n  cp -r {d}/bundle my-bundle && $EDITOR my-bundle/guardrails.cedar\
             \n  {stele} bundle test my-bundle\
             \n  {stele} propose --bundle my-bundle -m 'what changed and why' --key {d}/keys/approver1\
             \n  {stele} approve PROPOSAL_ID --endpoint {a3} --key {d}/keys/approver2\
             \n  {stele} log\
             \n  {stele} diff 1 2\
             \n  {stele} export --out ledger.l && {stele} ledger verify ledger.l\
             \n  curl -s --cacert {t}/ca.pem --cert {t}/decide.pem --key {t}/decide.key https://{h1}/access/v1/evaluation -d '{{\"subject\":{{\"type\":\"User\",\"id\":\"erin\"}},\"action\":{{\"name\":\"ssh\"}},\
             \"resource\":{{\"type\":\"Server\",\"id\":\"prod-web-1\"}},\
             \"context\":{{\"network_zone\":\"vpn\",\"device\":{{\"managed\":true,\"disk_encrypted\":true,\"os_patch_age_days\":3}},\"mfa_age_seconds\":60}}}}'\
             \n  curl -s --cacert {t}/ca.pem --cert {t}/reader.pem --key {t}/reader.key https://{h1}/metrics\n\
             \nCtrl-C stops the cluster; `{stele} dev --dir {d}` resumes it.",
            env = env_file.display(),
            h1 = http_addrs[0],
        ));
        text
    });
}
