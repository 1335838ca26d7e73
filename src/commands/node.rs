//! `stele node`: run one node until SIGTERM or Ctrl-C.

use stele_audit::{LogConfig, WhenFull};
use stele_node::{NodeConfig, OnStale, Transport};
use tracing_subscriber::EnvFilter;

use crate::cli::{NodeArgs, OnStaleArg, WhenFullArg};
use crate::failure::{Code, Failure, Result};

/// Stack size of the node's threads: admission compiles Cedar, whose parser
/// recurses; every node must reach the same verdict, not overflow on a
/// small worker stack.
const NODE_THREAD_STACK_BYTES: usize = 8 * 1024 * 1024;

pub fn run(args: NodeArgs) -> Result<()> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| Failure::usage(format!("--log {:?}: {e}", args.log)))?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_json {
        subscriber.json().init();
    } else {
        subscriber.init();
    }
    let config = config(&args)?;
    tracing::info!(id = config.id, listen = %config.listen, data = %config.data_dir.display(), "starting node");
    raise_open_file_limit(&config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(NODE_THREAD_STACK_BYTES)
        .build()
        .map_err(|e| Failure::new(Code::Io, format!("cannot start the async runtime: {e}")))?;
    runtime
        .block_on(stele_node::run(config, shutdown_signal()))
        .map_err(|e| Failure::new(Code::Node, e.to_string()))?;
    tracing::info!("node stopped");
    Ok(())
}

/// Files RocksDB, the decision log and the runtime keep open, besides
/// connections.
const FILES_BESIDES_CONNECTIONS: u64 = 1024;

/// Raises the soft limit on open files to the hard one, as Go's runtime and
/// etcd do: under a common soft limit of 1024, a thousand idle connections
/// would stop the node accepting any, long before its own caps.
fn raise_open_file_limit(config: &NodeConfig) {
    let needed = (config.connections.total as u64)
        .saturating_mul(3)
        .saturating_add(FILES_BESIDES_CONNECTIONS);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    if limit.rlim_cur < needed {
        tracing::warn!(
            "the open-file limit is {}, and 3 ports of --max-connections {} need about {needed}: raise it (ulimit -n, or LimitNOFILE= in a systemd unit) or lower --max-connections",
            limit.rlim_cur,
            config.connections.total
        );
    }
}

fn config(args: &NodeArgs) -> Result<NodeConfig> {
    let listen = "127.0.0.1:7001".parse().expect("a valid address");
    let peer_listen = "127.0.0.1:7401".parse().expect("a valid address");
    let mut config = NodeConfig::new(0, Default::default(), listen, peer_listen);
    // Unless the file or the flags choose TLS files or plaintext, the node
    // refuses to start: TLS is never off by omission.
    let mut file_chose_transport = false;
    // On by default, in DATA/decisions (an empty dir), unless the file or
    // --no-decision-log turns it off.
    config.decision_log = Some(LogConfig::new(Default::default()));
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))?;
        config
            .apply_file(&text)
            .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
        file_chose_transport = NodeConfig::file_sets_transport(&text);
    }
    let tls = crate::remote::tls_args();
    let flags_choose = tls.insecure_plaintext
        || tls.tls_ca.is_some()
        || tls.tls_cert.is_some()
        || tls.tls_key.is_some();
    if flags_choose || !file_chose_transport {
        config.transport = match crate::remote::tls_files(&tls)? {
            Some(files) => Transport::Tls(files),
            None => Transport::InsecurePlaintext,
        };
    }
    if let Some(addr) = args.peer_listen {
        config.peer_listen = addr;
    }
    if let Some(addr) = &args.peer_advertise {
        config.peer_advertise = Some(addr.clone());
    }
    if args.decide_without_certificate {
        config.decide_requires_certificate = false;
    }
    if let Some(id) = args.id {
        config.id = id;
    }
    if let Some(data) = &args.data {
        config.data_dir = data.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(http) = args.http {
        config.http = Some(http);
    }
    if let Some(advertise) = &args.advertise {
        config.advertise = Some(advertise.clone());
    }
    if let Some(d) = args.max_staleness {
        config.max_staleness = d;
    }
    if let Some(on_stale) = args.on_stale {
        config.on_stale = match on_stale {
            OnStaleArg::Fail => OnStale::Fail,
            OnStaleArg::Serve => OnStale::Serve,
        };
    }
    if let Some(d) = args.pending_ttl {
        config.pending_ttl = d;
    }
    if let Some(n) = args.snapshot_every {
        config.snapshot_every = n;
    }
    if let Some(n) = args.max_connections {
        config.connections.total = n;
    }
    if let Some(n) = args.max_handshakes {
        config.connections.handshaking = n;
    }
    if let Some(n) = args.max_anonymous_connections {
        config.connections.anonymous = n;
    }
    if let Some(d) = args.heartbeat_interval {
        config.set_heartbeat_interval(d);
    }
    if let Some(hash) = &args.genesis {
        config.genesis = Some(
            hash.parse()
                .map_err(|e| Failure::usage(format!("--genesis {hash:?}: {e}")))?,
        );
    }
    apply_decision_log_flags(args, &mut config)?;
    if let Transport::Tls(files) = &config.transport {
        check_own_certificate(files, config.id)?;
    }
    if config.id == 0 {
        return Err(Failure::usage(
            "--id N is required (in flags or the config file)",
        ));
    }
    if config.data_dir.as_os_str().is_empty() {
        return Err(Failure::usage(
            "--data DIR is required (in flags or the config file)",
        ));
    }
    if args.listen.is_none() && args.config.is_none() {
        return Err(Failure::usage(
            "--listen HOST:PORT is required (in flags or the config file)",
        ));
    }
    config
        .validate()
        .map_err(|e| Failure::usage(e.to_string()))?;
    Ok(config)
}

/// `--no-decision-log` and `--decision-log-*`, over the config file's.
fn apply_decision_log_flags(args: &NodeArgs, config: &mut NodeConfig) -> Result<()> {
    if args.no_decision_log {
        config.decision_log = None;
    }
    let settings = args.decision_log_dir.is_some()
        || args.decision_log_every.is_some()
        || args.decision_log_when_full.is_some()
        || args.decision_log_requests;
    let Some(log) = config.decision_log.as_mut() else {
        if settings {
            return Err(Failure::usage(
                "--decision-log-* flags configure the decision log, which is off (--no-decision-log, or enabled = false in the config file)",
            ));
        }
        return Ok(());
    };
    if let Some(dir) = &args.decision_log_dir {
        log.dir = dir.clone();
    }
    if let Some(every) = args.decision_log_every {
        log.sample_every = every;
    }
    if let Some(when_full) = args.decision_log_when_full {
        log.when_full = match when_full {
            WhenFullArg::Block => WhenFull::Block,
            WhenFullArg::Drop => WhenFull::Drop,
        };
    }
    if args.decision_log_requests {
        log.full_requests = true;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// A node's certificate must name the node: a client's certificate (the
/// operator's, from `source stele.env`, say) would start a node that no
/// peer accepts.
fn check_own_certificate(files: &stele_node::TlsFiles, id: u64) -> Result<()> {
    let pem = std::fs::read_to_string(&files.cert).map_err(|e| Failure::io(&files.cert, e))?;
    let names = stele_tls::issue::names(&pem)
        .map_err(|e| Failure::usage(format!("--tls-cert {}: {e}", files.cert.display())))?;
    if id != 0 && names.node != Some(id) {
        return Err(Failure::usage(format!(
            "--tls-cert {} is the certificate of {names}, not node {id}'s: give this node's own (`stele certs node DIR --id {id} --host ...`)",
            files.cert.display()
        )));
    }
    Ok(())
}
