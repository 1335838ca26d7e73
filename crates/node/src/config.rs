//! A node's settings: from `stele node` flags, a TOML file, or both (flags
//! win). Durations are humantime strings in TOML (`"5s"`, `"250ms"`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use stele_audit::{LogConfig, WhenFull};
pub use stele_decision::OnStale;
use stele_ledger::Hash;
pub use stele_tls::TlsFiles;
use thiserror::Error;

use crate::limits::ConnectionLimits;

/// Settings that cannot be used: a file that does not parse, a value out
/// of range, settings that do not fit together.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The TOML file does not parse, or names an unknown key.
    #[error("{0}")]
    File(String),
    /// One setting's value, named as the file names it.
    #[error("{key} = {value:?}: {why}")]
    Value {
        key: &'static str,
        value: String,
        why: String,
    },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub id: u64,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// The address other nodes and clients reach this one at, when it is
    /// not `listen` (see [`NodeConfig::advertise`]).
    pub advertise: Option<String>,
    /// Where the Raft transport listens: peers only, never clients.
    pub peer_listen: SocketAddr,
    /// The address peers reach this node's Raft transport at, when it is
    /// not `peer_listen`.
    pub peer_advertise: Option<String>,
    /// Where the HTTP API (AuthZEN, health, metrics) listens; off when `None`.
    pub http: Option<SocketAddr>,
    /// TLS on every port, or plaintext when explicitly asked for.
    pub transport: Transport,
    /// Whether decisions (gRPC Decision, AuthZEN) need a client certificate
    /// with the `decide` role. On by default; some meshes' enforcement
    /// points present none.
    pub decide_requires_certificate: bool,
    /// Longest time without evidence of being current before decisions fail
    /// closed (invariant 6).
    pub max_staleness: Duration,
    pub on_stale: OnStale,
    /// How long a pending proposal waits for approvals.
    pub pending_ttl: Duration,
    /// Longest wait for `min_version` before a decision fails.
    pub min_version_wait: Duration,
    pub heartbeat_interval: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot (and compact the log) every this many entries.
    pub snapshot_every: u64,
    /// Accept only the chain with this genesis.
    pub genesis: Option<Hash>,
    /// The decision log; off when `None` (`stele node` turns it on).
    pub decision_log: Option<LogConfig>,
    /// Connections each port holds (see [`ConnectionLimits`]).
    pub connections: ConnectionLimits,
}

/// How a node's ports are served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Mutual TLS: the cluster CA, and this node's certificate and key.
    Tls(TlsFiles),
    /// `--insecure-plaintext`: no TLS, nobody authenticated, every call
    /// allowed. Only on loopback addresses.
    InsecurePlaintext,
}

impl NodeConfig {
    /// Settings with defaults, served in plaintext until
    /// [`NodeConfig::transport`] says otherwise (`stele node` refuses to
    /// start without TLS files or `--insecure-plaintext`).
    pub fn new(
        id: u64,
        data_dir: PathBuf,
        listen: SocketAddr,
        peer_listen: SocketAddr,
    ) -> NodeConfig {
        NodeConfig {
            id,
            data_dir,
            listen,
            advertise: None,
            peer_listen,
            peer_advertise: None,
            http: None,
            transport: Transport::InsecurePlaintext,
            decide_requires_certificate: true,
            max_staleness: Duration::from_secs(5),
            on_stale: OnStale::Fail,
            pending_ttl: Duration::from_secs(24 * 3600),
            min_version_wait: Duration::from_secs(2),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(800),
            snapshot_every: 1000,
            genesis: None,
            decision_log: None,
            connections: ConnectionLimits::default(),
        }
    }

    /// Where the decision log is kept, when there is one: `DATA/decisions`
    /// unless told otherwise.
    pub fn decision_log_dir(&self) -> Option<std::path::PathBuf> {
        let log = self.decision_log.as_ref()?;
        Some(match log.dir.as_os_str().is_empty() {
            true => self.data_dir.join("decisions"),
            false => log.dir.clone(),
        })
    }

    /// Applies a TOML file's settings (any subset of [`FileConfig`]).
    pub fn apply_file(&mut self, text: &str) -> Result<(), ConfigError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|e| ConfigError::File(e.to_string()))?;
        let duration = |text: &str, key| humantime::parse_duration(text).map_err(bad(key, text));
        if let Some(v) = file.id {
            self.id = v;
        }
        if let Some(v) = file.data {
            self.data_dir = v;
        }
        if let Some(v) = file.listen {
            self.listen = v.parse().map_err(bad("listen", &v))?;
        }
        if let Some(v) = file.advertise {
            self.advertise = Some(v);
        }
        if let Some(v) = file.peer_listen {
            self.peer_listen = v.parse().map_err(bad("peer_listen", &v))?;
        }
        if let Some(v) = file.peer_advertise {
            self.peer_advertise = Some(v);
        }
        if let Some(v) = file.http {
            self.http = Some(v.parse().map_err(bad("http", &v))?);
        }
        if let Some(v) = file.decide_requires_certificate {
            self.decide_requires_certificate = v;
        }
        match (
            file.tls_ca,
            file.tls_cert,
            file.tls_key,
            file.insecure_plaintext,
        ) {
            (None, None, None, None | Some(false)) => {}
            (Some(ca), Some(cert), Some(key), None | Some(false)) => {
                self.transport = Transport::Tls(TlsFiles { ca, cert, key });
            }
            (None, None, None, Some(true)) => self.transport = Transport::InsecurePlaintext,
            (_, _, _, Some(true)) => {
                return Err(ConfigError::Invalid(
                    "tls_ca, tls_cert and tls_key are set, and insecure_plaintext = true: drop one or the other".into(),
                ));
            }
            _ => {
                return Err(ConfigError::Invalid(
                    "tls_ca, tls_cert and tls_key go together: set all three".into(),
                ));
            }
        }
        if let Some(v) = file.max_staleness {
            self.max_staleness = duration(&v, "max_staleness")?;
        }
        if let Some(v) = file.on_stale {
            self.on_stale = v;
        }
        if let Some(v) = file.pending_ttl {
            self.pending_ttl = duration(&v, "pending_ttl")?;
        }
        if let Some(v) = file.min_version_wait {
            self.min_version_wait = duration(&v, "min_version_wait")?;
        }
        if let Some(v) = file.heartbeat_interval {
            self.set_heartbeat_interval(duration(&v, "heartbeat_interval")?);
        }
        if let Some(v) = file.snapshot_every {
            self.snapshot_every = v;
        }
        if let Some(v) = file.genesis {
            self.genesis = Some(v.parse().map_err(bad("genesis", &v))?);
        }
        if let Some(log) = file.decision_log {
            self.apply_decision_log(log)?;
        }
        if let Some(v) = file.max_connections {
            self.connections.total = v;
        }
        if let Some(v) = file.max_handshakes {
            self.connections.handshaking = v;
        }
        if let Some(v) = file.max_anonymous_connections {
            self.connections.anonymous = v;
        }
        Ok(())
    }

    fn apply_decision_log(&mut self, file: DecisionLogFile) -> Result<(), ConfigError> {
        if file.enabled == Some(false) {
            if file.dir.is_some()
                || file.every.is_some()
                || file.when_full.is_some()
                || file.requests.is_some()
                || file.segment_bytes.is_some()
            {
                return Err(ConfigError::Invalid(
                    "[decision_log] sets enabled = false and other settings: drop one or the other"
                        .into(),
                ));
            }
            self.decision_log = None;
            return Ok(());
        }
        // An empty dir means DATA/decisions, wherever DATA ends up.
        let log = self
            .decision_log
            .get_or_insert_with(|| LogConfig::new(PathBuf::new()));
        if let Some(v) = file.dir {
            log.dir = v;
        }
        if let Some(v) = file.every {
            if v == 0 {
                return Err(ConfigError::Invalid(
                    "[decision_log] every = 0: log one decision in N, N at least 1".into(),
                ));
            }
            log.sample_every = v;
        }
        if let Some(v) = file.when_full {
            log.when_full = v;
        }
        if let Some(v) = file.requests {
            log.full_requests = v;
        }
        if let Some(v) = file.segment_bytes {
            if v < MIN_SEGMENT_BYTES {
                return Err(ConfigError::Invalid(format!(
                    "[decision_log] segment_bytes = {v}: at least {MIN_SEGMENT_BYTES}"
                )));
            }
            log.segment_bytes = v;
        }
        Ok(())
    }

    /// Whether a config file chooses the transport (TLS files or
    /// `insecure_plaintext`); a file that does not parse chooses nothing.
    pub fn file_sets_transport(text: &str) -> bool {
        toml::from_str::<FileConfig>(text).is_ok_and(|file| {
            file.tls_ca.is_some()
                || file.tls_cert.is_some()
                || file.tls_key.is_some()
                || file.insecure_plaintext.is_some()
        })
    }

    /// Sets the heartbeat interval, keeping election timeouts well above it.
    pub fn set_heartbeat_interval(&mut self, interval: Duration) {
        self.heartbeat_interval = interval;
        self.election_timeout_min = self.election_timeout_min.max(interval * 4);
        self.election_timeout_max = self.election_timeout_max.max(interval * 8);
    }

    /// The address other nodes and clients reach this one at.
    pub fn advertise(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// The address peers reach this node's Raft transport at.
    pub fn peer_advertise(&self) -> String {
        self.peer_advertise
            .clone()
            .unwrap_or_else(|| self.peer_listen.to_string())
    }

    /// Plaintext is for one machine: refused on any address but loopback.
    pub fn check_plaintext_is_local(&self) -> Result<(), ConfigError> {
        if self.transport != Transport::InsecurePlaintext {
            return Ok(());
        }
        let listening = [Some(self.listen), Some(self.peer_listen), self.http];
        match listening
            .into_iter()
            .flatten()
            .find(|a| !a.ip().is_loopback())
        {
            Some(addr) => Err(ConfigError::Invalid(format!(
                "--insecure-plaintext serves without TLS or authentication, so only on loopback addresses; {addr} is not one (give --tls-ca, --tls-cert and --tls-key instead)"
            ))),
            None => Ok(()),
        }
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |why: String| Err(ConfigError::Invalid(why));
        if self.id == 0 {
            return invalid("node ids start at 1".into());
        }
        if self.listen == self.peer_listen || Some(self.peer_listen) == self.http {
            return invalid(format!(
                "the peer port ({}) must be a port of its own, apart from the client and HTTP ports",
                self.peer_listen
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.election_timeout_min
        {
            return invalid(
                "the heartbeat interval must be shorter than the election timeout".into(),
            );
        }
        if self.max_staleness <= self.heartbeat_interval * 2 {
            return invalid(format!(
                "max staleness ({}) must be well above the heartbeat interval ({})",
                humantime::format_duration(self.max_staleness),
                humantime::format_duration(self.heartbeat_interval)
            ));
        }
        if self.snapshot_every == 0 {
            return invalid("snapshot_every must be at least 1".into());
        }
        if let Some(why) = self.connections.problem() {
            return invalid(why);
        }
        Ok(())
    }
}

/// A setting `key = value` that does not parse.
fn bad<E: std::fmt::Display>(key: &'static str, value: &str) -> impl FnOnce(E) -> ConfigError {
    let value = value.to_string();
    move |e| ConfigError::Value {
        key,
        value,
        why: e.to_string(),
    }
}

/// The TOML file's keys; every one is optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    data: Option<PathBuf>,
    listen: Option<String>,
    advertise: Option<String>,
    peer_listen: Option<String>,
    peer_advertise: Option<String>,
    http: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    insecure_plaintext: Option<bool>,
    decide_requires_certificate: Option<bool>,
    max_staleness: Option<String>,
    on_stale: Option<OnStale>,
    pending_ttl: Option<String>,
    min_version_wait: Option<String>,
    heartbeat_interval: Option<String>,
    snapshot_every: Option<u64>,
    genesis: Option<String>,
    decision_log: Option<DecisionLogFile>,
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
    max_anonymous_connections: Option<usize>,
}

/// `[decision_log]`: the flags `--no-decision-log` (`enabled = false`),
/// `--decision-log-dir`, `-every`, `-when-full` and `-requests`, and the
/// size at which a segment is closed and the next begun.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionLogFile {
    enabled: Option<bool>,
    dir: Option<PathBuf>,
    every: Option<u64>,
    when_full: Option<WhenFull>,
    requests: Option<bool>,
    segment_bytes: Option<u64>,
}

/// The smallest segment size a file may set: a few records.
const MIN_SEGMENT_BYTES: u64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 1 on loopback, as `stele node` would start it.
    fn local_config() -> NodeConfig {
        NodeConfig::new(
            1,
            "d".into(),
            "127.0.0.1:7001".parse().unwrap(),
            "127.0.0.1:7401".parse().unwrap(),
        )
    }

    #[test]
    fn a_file_sets_what_it_names_and_refuses_unknown_keys() {
        let mut config = local_config();
        config
            .apply_file("max_staleness = \"2s\"\non_stale = \"serve\"\nsnapshot_every = 10\n")
            .unwrap();
        assert_eq!(config.max_staleness, Duration::from_secs(2));
        assert_eq!(config.on_stale, OnStale::Serve);
        assert_eq!(config.snapshot_every, 10);
        assert!(config.apply_file("max_stalenes = \"2s\"").is_err());
        assert!(config.apply_file("max_staleness = \"soon\"").is_err());
    }

    #[test]
    fn a_file_configures_the_decision_log() {
        let mut config = local_config();
        config
            .apply_file("[decision_log]\nevery = 4\nwhen_full = \"drop\"\nrequests = true\nsegment_bytes = 8192\n")
            .unwrap();
        let log = config.decision_log.clone().unwrap();
        assert_eq!(log.sample_every, 4);
        assert_eq!(log.when_full, WhenFull::Drop);
        assert!(log.full_requests);
        assert_eq!(log.segment_bytes, 8192);
        assert!(log.dir.as_os_str().is_empty(), "DATA/decisions by default");
        config
            .apply_file("[decision_log]\nenabled = false\n")
            .unwrap();
        assert!(config.decision_log.is_none());
        for bad in [
            "[decision_log]\nevery = 0\n",
            "[decision_log]\nenabled = false\nevery = 2\n",
            "[decision_log]\nwhen_full = \"sometimes\"\n",
            "[decision_log]\nsample = 2\n",
            "[decision_log]\nsegment_bytes = 100\n",
        ] {
            assert!(config.apply_file(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plaintext_only_on_loopback_and_tls_files_all_or_none() {
        let mut config = local_config();
        assert!(config.check_plaintext_is_local().is_ok());
        config.peer_listen = "0.0.0.0:7401".parse().unwrap();
        assert!(config.check_plaintext_is_local().is_err());
        config
            .apply_file("tls_ca = \"ca.pem\"\ntls_cert = \"n.pem\"\ntls_key = \"n.key\"\n")
            .unwrap();
        assert!(matches!(config.transport, Transport::Tls(_)));
        assert!(config.check_plaintext_is_local().is_ok());
        assert!(config.apply_file("tls_ca = \"ca.pem\"\n").is_err());
        assert!(
            config
                .apply_file(
                    "tls_ca = \"a\"\ntls_cert = \"b\"\ntls_key = \"c\"\ninsecure_plaintext = true\n"
                )
                .is_err()
        );
        config.peer_listen = config.listen;
        assert!(config.validate().is_err());
    }

    #[test]
    fn staleness_must_exceed_heartbeats() {
        let mut config = local_config();
        config.max_staleness = Duration::from_millis(150);
        assert!(config.validate().is_err());
    }
}
