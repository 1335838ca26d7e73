//! Real `stele node` processes on 127.0.0.1, for end-to-end tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::Http;
use super::{GENESIS_ARGS, Run, copy_dir, example_bundle, stele};

/// The client certificates every test cluster has (in DIR/tls): the
/// operator's with every role, and one for each role alone.
pub const CLIENTS: [(&str, &[&str]); 3] = [
    ("operator", &["operator", "reader", "decide"]),
    ("reader", &["reader"]),
    ("decide", &["decide"]),
];

/// Cluster tests start several processes each: one at a time, so that a
/// loaded machine does not turn timing into failures.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` until it holds, or fails the test after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct NodeProcess {
    pub id: u64,
    pub addr: String,
    /// Its Raft transport (the peer port).
    pub peer_addr: String,
    /// Its HTTP API (AuthZEN, health, metrics), called as the operator.
    pub http: Http,
    pub data: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    pub extra: Vec<String>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProcess>,
    /// Nodes and clients run with `--insecure-plaintext` (the benchmarks'
    /// baseline for what TLS costs); otherwise mutual TLS.
    pub plaintext: bool,
    /// The genesis every node is started with (`--genesis`), in
    /// DIR/genesis.l: the example bundle, approvers a, b, c (2 of 3), and
    /// the first nodes as its voters.
    pub genesis_hash: String,
    /// Addresses chosen for nodes not launched yet: (client, peer, http).
    planned: Vec<(u64, String, String, String)>,
}

impl Cluster {
    /// Starts `count` nodes, each accepting only the genesis DIR/genesis.l
    /// (whose voters they are); `genesis()` starts Raft and commits it.
    /// Approver keys a, b, c (2 of 3) and the example bundle are in the
    /// cluster's directory.
    pub fn start(count: u64, extra: &[&str]) -> Cluster {
        Cluster::start_with(count, extra, false)
    }

    /// As [`Cluster::start`], with every node and client on plaintext.
    pub fn start_plaintext(count: u64, extra: &[&str]) -> Cluster {
        Cluster::start_with(count, extra, true)
    }

    fn start_with(count: u64, extra: &[&str], plaintext: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            stele(dir.path(), &["keygen", "--out", name]).ok();
        }
        stele(dir.path(), &["certs", "init", "tls"]).ok();
        for (name, roles) in CLIENTS {
            let mut args = vec!["certs", "client", "tls", "--name", name];
            for role in roles {
                args.extend(["--role", role]);
            }
            stele(dir.path(), &args).ok();
        }
        copy_dir(&example_bundle(), &dir.path().join("bundle"));
        let mut cluster = Cluster {
            dir,
            nodes: Vec::new(),
            plaintext,
            genesis_hash: String::new(),
            planned: Vec::new(),
        };
        let mut args: Vec<String> = ["--json", "ledger", "new", "genesis.l"]
            .iter()
            .chain(GENESIS_ARGS)
            .map(|s| s.to_string())
            .collect();
        for id in 1..=count {
            let (addr, peer) = cluster.plan(id);
            args.extend([
                "--member".into(),
                format!("{id}={addr},{peer}"),
                "--cert".into(),
                format!("tls/node-{id}.pem"),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let made = stele(cluster.path(), &args).ok().json();
        cluster.genesis_hash = made["hash"].as_str().unwrap().to_string();
        for id in 1..=count {
            cluster.launch(id, extra);
        }
        cluster
    }

    /// Node `id`'s client and peer addresses, chosen now (and its
    /// certificate issued) so that a membership can list them before it
    /// runs; `launch` uses them.
    pub fn plan(&mut self, id: u64) -> (String, String) {
        if let Some(node) = self.nodes.iter().find(|n| n.id == id) {
            return (node.addr.clone(), node.peer_addr.clone());
        }
        if let Some((_, addr, peer, _)) = self.planned.iter().find(|p| p.0 == id) {
            return (addr.clone(), peer.clone());
        }
        let tls = self.tls();
        if !tls.join(format!("node-{id}.pem")).exists() {
            stele(
                self.path(),
                &[
                    "certs",
                    "node",
                    "tls",
                    "--id",
                    &id.to_string(),
                    "--host",
                    "127.0.0.1",
                ],
            )
            .ok();
        }
        let mut taken: Vec<String> = self
            .planned
            .iter()
            .flat_map(|(_, a, p, h)| [a.clone(), p.clone(), h.clone()])
            .chain(
                self.nodes
                    .iter()
                    .flat_map(|n| [n.addr.clone(), n.peer_addr.clone(), n.http.addr.clone()]),
            )
            .collect();
        // The system may hand out a port it just freed again: never twice.
        let [addr, peer, http] = [(); 3].map(|_| {
            loop {
                let addr = format!("127.0.0.1:{}", free_port());
                if !taken.contains(&addr) {
                    taken.push(addr.clone());
                    break addr;
                }
            }
        });
        self.planned.push((id, addr.clone(), peer.clone(), http));
        (addr, peer)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's CA and certificates.
    pub fn tls(&self) -> PathBuf {
        self.path().join("tls")
    }

    /// Node `id`'s certificate (issued by `plan` or `launch`), as `--cert`
    /// takes it.
    pub fn node_cert(&self, id: u64) -> String {
        self.tls()
            .join(format!("node-{id}.pem"))
            .display()
            .to_string()
    }

    /// `--tls-ca/--tls-cert/--tls-key` for the client certificate `name`.
    pub fn tls_files(&self, name: &str) -> stele_tls::TlsFiles {
        let tls = self.tls();
        stele_tls::TlsFiles {
            ca: tls.join("ca.pem"),
            cert: tls.join(format!("{name}.pem")),
            key: tls.join(format!("{name}.key")),
        }
    }

    /// `--tls-ca/--tls-cert/--tls-key` for node `id`'s own certificate.
    pub fn node_tls_args(&self, id: u64) -> Vec<String> {
        let tls = self.tls();
        vec![
            "--tls-ca".into(),
            tls.join("ca.pem").display().to_string(),
            "--tls-cert".into(),
            tls.join(format!("node-{id}.pem")).display().to_string(),
            "--tls-key".into(),
            tls.join(format!("node-{id}.key")).display().to_string(),
        ]
    }

    /// A gRPC client for node `id` with client certificate `name`. Call
    /// inside a tokio runtime.
    pub fn client_as(&self, id: u64, name: &str, timeout: Duration) -> stele_client::Client {
        if self.plaintext {
            let endpoint = format!("http://{}", self.node(id).addr);
            return stele_client::Client::connect(
                &endpoint,
                &stele_client::Transport::InsecurePlaintext,
                timeout,
            )
            .unwrap();
        }
        stele_tls::install_ring();
        let config = self
            .tls_files(name)
            .load()
            .unwrap()
            .client_config()
            .unwrap();
        stele_client::Client::connect(
            &self.node(id).addr,
            &stele_client::Transport::Tls(config),
            timeout,
        )
        .unwrap()
    }

    /// The HTTP API of node `id`, called with client certificate `name`.
    pub fn http_as(&self, id: u64, name: &str) -> Http {
        Http::tls(&self.node(id).http.addr, &self.tls_files(name))
    }

    /// Starts node `id` (a new one, or again after a stop).
    pub fn launch(&mut self, id: u64, extra: &[&str]) {
        let existing = self.nodes.iter().position(|n| n.id == id);
        let (addr, peer_addr, http, extra) = match existing {
            Some(i) => (
                self.nodes[i].addr.clone(),
                self.nodes[i].peer_addr.clone(),
                self.nodes[i].http.addr.clone(),
                self.nodes[i].extra.clone(),
            ),
            None => {
                self.plan(id);
                let at = self.planned.iter().position(|p| p.0 == id).unwrap();
                let (_, addr, peer, http) = self.planned.remove(at);
                let extra = extra.iter().map(|s| s.to_string()).collect();
                (addr, peer, http, extra)
            }
        };
        let data = self.path().join(format!("node{id}"));
        let log = self.path().join(format!("node{id}.log"));
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_stele"))
            .args(["node", "--id", &id.to_string(), "--listen", &addr])
            .args(["--peer-listen", &peer_addr])
            .args(["--http", &http])
            .args(if self.plaintext {
                vec!["--insecure-plaintext".to_string()]
            } else {
                self.node_tls_args(id)
            })
            .env_remove("STELE_TLS_CA")
            .env_remove("STELE_TLS_CERT")
            .env_remove("STELE_TLS_KEY")
            .arg("--data")
            .arg(&data)
            .args(["--genesis", &self.genesis_hash])
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap();
        let process = NodeProcess {
            id,
            addr: addr.clone(),
            peer_addr,
            http: Http::tls(&http, &self.tls_files("operator")),
            data,
            log,
            child: Some(child),
            extra,
        };
        match existing {
            Some(i) => self.nodes[i] = process,
            None => self.nodes.push(process),
        }
        wait_until(
            &format!("node {id} answers"),
            Duration::from_secs(60),
            || self.status_of(id).is_some(),
        );
    }

    pub fn node(&self, id: u64) -> &NodeProcess {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("a node of this cluster")
    }

    /// `stele ARGS --endpoint <node 1 or the first running node>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_at(&self.first_running(), args)
    }

    /// The address of node 1, or of the first node running.
    fn first_running(&self) -> String {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .map(|n| n.addr.clone())
            .expect("a running node")
    }

    pub fn run_at(&self, endpoint: &str, args: &[&str]) -> Run {
        self.run_as("operator", endpoint, args)
    }

    /// `stele ARGS` at `endpoint` with client certificate `name`; a
    /// command that signs is confirmed with `--yes` (see `confirmed`).
    pub fn run_as(&self, name: &str, endpoint: &str, args: &[&str]) -> Run {
        self.run_unconfirmed_as(name, endpoint, &super::confirmed(args))
    }

    /// `stele ARGS` at a running node, exactly as given, without a
    /// terminal.
    pub fn run_unconfirmed(&self, args: &[&str]) -> Run {
        self.run_unconfirmed_as("operator", &self.first_running(), args)
    }

    fn run_unconfirmed_as(&self, name: &str, endpoint: &str, args: &[&str]) -> Run {
        let files = self.tls_files(name);
        let mut command = Command::new(env!("CARGO_BIN_EXE_stele"));
        if self.plaintext {
            command
                .arg("--insecure-plaintext")
                .env("STELE_ENDPOINT", format!("http://{endpoint}"));
        } else {
            command
                .env("STELE_ENDPOINT", endpoint)
                .env("STELE_TLS_CA", &files.ca)
                .env("STELE_TLS_CERT", &files.cert)
                .env("STELE_TLS_KEY", &files.key);
        }
        let output = command
            .args(args)
            .current_dir(self.path())
            .env("USER", "tester")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// `cluster status --json` from node `id`, if it answers.
    pub fn status_of(&self, id: u64) -> Option<Value> {
        let run = self.run_at(
            &self.node(id).addr,
            &["--json", "cluster", "status", "--timeout", "2s"],
        );
        (run.code == 0).then(|| run.json())
    }

    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .find_map(|n| self.status_of(n.id)?["leader"].as_u64())
    }

    pub fn wait_for_leader(&self) -> u64 {
        let mut leader = None;
        wait_until("a leader", Duration::from_secs(30), || {
            leader = self.leader();
            leader.is_some()
        });
        leader.unwrap()
    }

    /// `stele cluster init --genesis-file genesis.l`: Raft starts with the
    /// genesis's voters and the genesis commits (the example bundle,
    /// approvers a, b, c, 2 of 3).
    pub fn genesis(&self) -> Value {
        let init = self
            .run(&["--json", "cluster", "init", "--genesis-file", "genesis.l"])
            .ok()
            .json();
        self.wait_for_leader();
        init
    }

    /// `stele cluster ARGS --key a --key b`: a membership version signed by
    /// two of the three approvers, which commits at once.
    pub fn member_change(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json", "cluster"];
        all.extend_from_slice(args);
        all.extend(["--key", "a", "--key", "b"]);
        let committed = self.run(&all).ok().json();
        assert_eq!(committed["status"], "committed", "{committed}");
        committed
    }

    /// A copy of the example bundle with a unique comment, at `name/`.
    pub fn variant(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        if !dir.exists() {
            copy_dir(&example_bundle(), &dir);
            let path = dir.join("access.cedar");
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, format!("{text}\n// {name}\n")).unwrap();
        }
        dir
    }

    /// The seq node `id` serves, if it answers.
    pub fn served_seq(&self, id: u64) -> Option<u64> {
        self.status_of(id)?["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == id)?["applied_seq"]
            .as_u64()
    }

    pub fn wait_all_serve(&self, seq: u64) {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            wait_until(
                &format!("node {} serves seq {seq}", node.id),
                Duration::from_secs(30),
                || self.served_seq(node.id).is_some_and(|s| s >= seq),
            );
        }
    }

    pub fn signal(&self, id: u64, signal: i32) {
        let pid = self.node(id).child.as_ref().expect("a running node").id();
        // SAFETY: kill(2) on our own child process.
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
    }

    /// kill -9: no chance to flush or say goodbye.
    pub fn kill(&mut self, id: u64) {
        self.signal(id, libc::SIGKILL);
        self.kill_reaped(id);
    }

    /// Reaps node `id` after a SIGKILL sent with `signal`.
    pub fn kill_reaped(&mut self, id: u64) {
        let node = self.nodes.iter_mut().find(|n| n.id == id).unwrap();
        let mut child = node.child.take().unwrap();
        child.wait().unwrap();
    }

    /// Graceful stop (SIGTERM); waits for the process to exit.
    pub fn stop(&mut self, id: u64) -> std::process::ExitStatus {
        self.signal(id, libc::SIGTERM);
        let node = self.nodes.iter_mut().find(|n| n.id == id).unwrap();
        node.child.take().unwrap().wait().unwrap()
    }

    pub fn export(&self, id: u64) -> Vec<u8> {
        let name = format!("export-{id}-{}.l", free_port());
        self.run_at(&self.node(id).addr, &["export", "--out", &name])
            .ok();
        std::fs::read(self.path().join(name)).unwrap()
    }

    pub fn log_of(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child {
                // SAFETY: kill(2) on our own child process; a stopped one must
                // be continued to die.
                unsafe {
                    libc::kill(child.id() as i32, libc::SIGCONT);
                    libc::kill(child.id() as i32, libc::SIGKILL);
                }
                let _ = child.wait();
            }
        }
    }
}
