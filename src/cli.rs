//! The command line, as clap sees it. Each command's doc comment is its
//! `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stele_policy::synthetic::{self, Shape};

/// stele: zero-trust policy decisions from a write-once, signed,
/// hash-chained ledger of Cedar policy versions.
///
/// Offline commands (keygen, bundle, check --bundle, proposal, ledger) work on
/// files alone: an approver on an air-gapped machine, or an auditor with an
/// exported ledger, needs nothing else. Cluster commands talk to one node
/// (--endpoint, or $STELE_ENDPOINT), each call with a deadline, over mutual
/// TLS: --tls-ca, --tls-cert and --tls-key (or $STELE_TLS_CA, _CERT, _KEY;
/// `stele certs` makes them). Every command that prints a result takes
/// --json (one compact JSON line per result on stdout); anything but success
/// exits non-zero.
#[derive(Debug, Parser)]
#[command(
    name = "stele",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print results as compact JSON, one line per result.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// TLS, on by default for cluster commands and `stele node` alike.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// The cluster CA's certificate (PEM): the only issuer trusted.
    #[arg(long, global = true, env = "STELE_TLS_CA", value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// This client's (or, for `stele node`, this node's) certificate (PEM),
    /// issued by the cluster CA: a client's names its roles, a node's its
    /// id.
    #[arg(long, global = true, env = "STELE_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, global = true, env = "STELE_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// No TLS and no authentication: for a node on loopback only (it
    /// refuses any other address), and for a client talking to one. Prints
    /// a warning. Endpoints may then be http://HOST:PORT.
    #[arg(long, global = true)]
    pub insecure_plaintext: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an approver key pair: the secret key at PATH (mode 0600) and
    /// the public key at PATH.pub.
    Keygen {
        /// Where to write the secret key; never overwritten.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Test a bundle, or print its digest.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Evaluate requests against a bundle, offline.
    Check(CheckArgs),
    /// Create, sign and review proposal files: versions collecting approvals.
    #[command(subcommand)]
    Proposal(ProposalCommand),
    /// Create, extend, verify and read ledger files, offline.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Run a node of a stele cluster (until SIGTERM or Ctrl-C).
    Node(NodeArgs),
    /// Bootstrap a cluster, see its state, change its members.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Propose a new bundle for the cluster, signed with your key(s). With
    /// fewer than M signatures it waits, pending, for `stele approve`.
    Propose(ProposeArgs),
    /// Sign a pending proposal (after checking what it is) and send the
    /// signature; it commits when M approvers have signed.
    Approve(ApproveArgs),
    /// Take a pending proposal back, signed by its author, or by M
    /// approvers together (one approver alone cannot veto when M < N). It
    /// stays listed as withdrawn until it would have lapsed.
    Withdraw(WithdrawArgs),
    /// Send a proposal file from the offline flow; it must carry M
    /// signatures (nothing is held pending).
    Submit(SubmitArgs),
    /// Propose restoring version SEQ's bundle as a new version.
    Rollback(RollbackArgs),
    /// Propose a new trust set (kind rotate): who approves from now on,
    /// and how many must sign. It commits with M signatures of the set in
    /// force and M' of the new one; the bundle stays the head's.
    Rotate(RotateArgs),
    /// List the cluster's versions, oldest first, from one node.
    Log(LogArgs),
    /// Show a version or a pending proposal, from one node: its header,
    /// signers, and its change in full against its parent (the Cedar of
    /// each changed policy, the schema, entities and scenarios).
    Show(ShowArgs),
    /// Everything that differs between A and B (versions or pending
    /// proposals): each policy's Cedar as a unified diff, the schema,
    /// entities by attribute, scenarios.
    Diff(DiffArgs),
    /// List the pending proposals: id, kind, author, message, who signed
    /// so far, and when each expires. Review one with `stele show ID`,
    /// sign it with `stele approve ID`.
    Proposals(ProposalsArgs),
    /// Write the cluster's whole ledger to a file (the ledger file format,
    /// which `stele ledger verify` checks).
    Export(ExportArgs),
    /// Start a local three-node cluster with demo keys and the zero-trust
    /// example as genesis; a second run resumes from DIR.
    Dev(DevArgs),
    /// Measure a node: a load generator for decisions, and synthetic
    /// bundles of any size to load it with.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Check a node's decision log offline, or find one decision in it.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Make the cluster's TLS certificates: a CA, node certificates and
    /// client certificates with roles (docs/SECURITY.md).
    #[command(subcommand)]
    Certs(CertsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a cluster CA in DIR: ca.pem and ca.key (mode 0600). Never
    /// overwrites.
    Init {
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "stele cluster CA", value_name = "NAME")]
        name: String,
    },
    /// Issue node N's certificate (SAN stele://node/N, and each --host),
    /// signed by DIR's CA: DIR/node-N.pem and DIR/node-N.key.
    Node {
        dir: PathBuf,
        #[arg(long, value_name = "N")]
        id: u64,
        /// A host name or IP address clients reach the node at (repeat).
        #[arg(long = "host", value_name = "HOST", required = true)]
        hosts: Vec<String>,
        #[command(flatten)]
        issue: IssueArgs,
    },
    /// Issue a client certificate with roles (SAN stele://role/R each),
    /// signed by DIR's CA: DIR/NAME.pem and DIR/NAME.key.
    Client {
        dir: PathBuf,
        /// operator (propose, approve, membership), reader (ledger reads,
        /// status, export, /metrics) or decide (decisions, AuthZEN);
        /// repeat for several.
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// The certificate's name (its common name and file names).
        #[arg(long, value_name = "NAME")]
        name: String,
        #[command(flatten)]
        issue: IssueArgs,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// How long the certificate is valid.
    #[arg(long, default_value = "365d", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub valid_for: Duration,
    /// Renew: keep the existing key file (so the public key fingerprint,
    /// spki_sha256, stays) and replace the certificate. Without it, an
    /// existing certificate or key is never overwritten.
    #[arg(long)]
    pub reuse_key: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a copied decision log: every record chained to the one
    /// before, every checkpoint signed by the node's key and naming the
    /// records before it. Names the first bad record; exits 1 if any.
    ///
    /// A copy cannot show by itself that whole records were cut from its
    /// end: give the node's latest checkpoint (`stele cluster status`:
    /// log_signed_count and log_signed_head) with --expect-count and
    /// --expect-head, and the copy must reach it.
    Verify {
        /// The log directory (a node's DATA/decisions, or a copy of it).
        dir: PathBuf,
        /// The node's log key (hex, from `stele cluster status`), or a file
        /// holding it.
        #[arg(long, value_name = "PUB")]
        node_key: String,
        #[command(flatten)]
        expect: ExpectArgs,
    },
    /// Find one decision: what was asked, what was answered, and the policy
    /// version that answered it. The log is verified first.
    Show {
        dir: PathBuf,
        #[arg(long, value_name = "PUB")]
        node_key: String,
        /// The decision id every answer carries (`decision_id`).
        #[arg(long, value_name = "ID")]
        decision_id: String,
        #[command(flatten)]
        expect: ExpectArgs,
    },
}

/// What `stele audit` requires of a copied log, beyond its own chain.
#[derive(Debug, Args)]
pub struct ExpectArgs {
    /// The copy must hold at least N records: a checkpoint count the node
    /// published (`cluster status`, `/metrics`) after the copy was due.
    #[arg(long, value_name = "N")]
    pub expect_count: Option<u64>,
    /// ...and record N-1 must hash to this (that checkpoint's head).
    #[arg(long, value_name = "HASH", requires = "expect_count")]
    pub expect_head: Option<String>,
    /// Accept a copy without its oldest segments (verified from its first
    /// record, whose link to the removed ones is taken on trust).
    #[arg(long)]
    pub allow_pruned: bool,
    /// Accept records after the last signed checkpoint (a copy taken from
    /// a running node, or one that crashed): chained but not proven.
    #[arg(long)]
    pub allow_unsigned: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send decisions to one node for a while and report throughput and
    /// latency percentiles (p50/p90/p99/p999). Run it from a separate
    /// process (or machine) from the node it measures.
    Check(BenchCheckArgs),
    /// Write a synthetic bundle of N policies (RBAC or ABAC shape) to DIR,
    /// and DIR/requests.jsonl, requests for `stele bench check --requests`.
    Bundle(BenchBundleArgs),
}

#[derive(Debug, Args)]
pub struct BenchCheckArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32, value_name = "C")]
    pub concurrency: usize,
    /// How long to measure, after the warm-up.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub duration: Duration,
    /// Load sent first and not measured.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub warmup: Duration,
    /// Requests to cycle through, one JSON object per line (the format of
    /// `stele check --requests`). Default: the zero-trust example's
    /// scenarios, which `stele dev` serves.
    #[arg(long, value_name = "FILE")]
    pub requests: Option<PathBuf>,
    /// Send CheckBatch calls of N requests instead of single Check calls.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub batch: Option<u32>,
    /// Hold the load at this many decisions per second: calls are due on
    /// one schedule and latency is measured from when each was due, so a
    /// slow node cannot hide its queue (give enough --concurrency to keep
    /// up). Default: as fast as the node answers.
    #[arg(long, value_name = "PER_SEC")]
    pub rate: Option<u64>,
    /// Send AuthZEN evaluations to this node HTTP address (its `stele node
    /// --http`) instead of gRPC calls to --endpoint: POST
    /// /access/v1/evaluation, or /access/v1/evaluations with --batch. One
    /// keep-alive connection per unit of --concurrency.
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchBundleArgs {
    /// rbac: a policy per role; abac: a policy per folder on attributes,
    /// plus unscoped forbids.
    #[arg(long, default_value = "rbac", value_parser = str::parse::<Shape>)]
    pub shape: Shape,
    /// How many policies (1 to 200,000: a bundle holds at most 64 MiB).
    #[arg(long, default_value_t = 10_000, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=synthetic::MAX_POLICIES as i64))]
    pub policies: u32,
    /// How many requests to write to DIR/requests.jsonl.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub requests: usize,
    /// The directory to create (it must not exist).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Which node to talk to.
#[derive(Debug, Args, Clone)]
pub struct Remote {
    /// The node (HOST:PORT, or https://HOST:PORT; http://HOST:PORT with
    /// --insecure-plaintext). Pinned: no failover.
    #[arg(
        long,
        env = "STELE_ENDPOINT",
        default_value = "127.0.0.1:7001",
        value_name = "URL"
    )]
    pub endpoint: String,
    /// Deadline for each call.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WhenFullArg {
    /// The decision waits for room in the log's queue: nothing is lost.
    Block,
    /// The decision is answered unlogged; the log records how many.
    Drop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnStaleArg {
    /// Refuse with an explicit STALE error.
    Fail,
    /// Answer gRPC decisions flagged stale: true. HTTP (AuthZEN) still
    /// refuses: its callers have no field that says an allow is stale.
    Serve,
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long)]
    pub id: Option<u64>,
    /// Where the node keeps its RocksDB data and snapshots.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Address to listen on for clients: Decision, Ledger, Admin, health
    /// (default 127.0.0.1:7001, or `listen` in the config file).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<SocketAddr>,
    /// Address clients (and peers forwarding writes) reach this node at
    /// (default: --listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// Address to listen on for the Raft transport, peers only (default
    /// 127.0.0.1:7401, or `peer_listen` in the config file).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_listen: Option<SocketAddr>,
    /// Address peers reach this node's Raft transport at (default:
    /// --peer-listen).
    #[arg(long, value_name = "HOST:PORT")]
    pub peer_advertise: Option<String>,
    /// Answer decisions (gRPC Decision, AuthZEN) from callers without a
    /// client certificate, for enforcement points that present none. By
    /// default a decision needs a certificate with the decide role.
    #[arg(long)]
    pub decide_without_certificate: bool,
    /// Also serve HTTP here: the AuthZEN 1.0 API (POST /access/v1/evaluation
    /// and /access/v1/evaluations), /.well-known/authzen-configuration,
    /// /healthz, /readyz and Prometheus /metrics. Off unless set.
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<SocketAddr>,
    /// Fail decisions closed after this long without evidence of being current.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DUR")]
    pub max_staleness: Option<Duration>,
    /// What to do when stale: fail (default) or serve flagged answers
    /// (gRPC only; HTTP always answers decision: false when stale).
    #[arg(long, value_enum)]
    pub on_stale: Option<OnStaleArg>,
    /// The longest this node holds a pending proposal while it waits for
    /// approvals (default 24h); a proposal's own `expires_at` may end it
    /// sooner.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DUR")]
    pub pending_ttl: Option<Duration>,
    /// Snapshot and compact the Raft log every N entries (default 1000).
    #[arg(long, value_name = "N")]
    pub snapshot_every: Option<u64>,
    /// Most connections each port holds at once (default 4096). Raise the
    /// process's open-file limit to match: `stele node` raises its own soft
    /// limit to the hard one.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most connections each port holds while they send their first byte
    /// or TLS handshake (default 512): whoever opens connections and never
    /// finishes them takes at most these.
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// Most connections each port holds from callers without a client
    /// certificate (default 512), each for at most 60 s: probes, and
    /// enforcement points under --decide-without-certificate. With
    /// --max-handshakes, less than --max-connections, so that callers who
    /// prove nothing never take a certified caller's connection.
    #[arg(long, value_name = "N")]
    pub max_anonymous_connections: Option<usize>,
    /// Raft heartbeat interval (default 100ms).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DUR")]
    pub heartbeat_interval: Option<Duration>,
    /// Accept only the ledger whose genesis has this hash.
    #[arg(long, value_name = "HASH")]
    pub genesis: Option<String>,
    /// Keep no decision log (by default every decision is logged, chained
    /// and checkpointed under DATA/decisions).
    #[arg(long)]
    pub no_decision_log: bool,
    /// Where the decision log goes (default DATA/decisions).
    #[arg(long, value_name = "DIR")]
    pub decision_log_dir: Option<PathBuf>,
    /// Log one decision in N (default 1: all). Checkpoints state N.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub decision_log_every: Option<u64>,
    /// When the log's queue is full: block (default) or drop, counted.
    #[arg(long, value_enum)]
    pub decision_log_when_full: Option<WhenFullArg>,
    /// Log each request whole, not only its digest.
    #[arg(long)]
    pub decision_log_requests: bool,
    /// A TOML file with any of these settings (flags win).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing's EnvFilter syntax), e.g. info or stele_node=debug.
    #[arg(long, default_value = "info", env = "STELE_LOG")]
    pub log: String,
    /// Logs as JSON lines (on stderr).
    #[arg(long)]
    pub log_json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start a new cluster from its signed genesis (`stele ledger new ...
    /// --member ... --cert ...`): Raft begins with the voters the genesis
    /// lists, and the genesis commits as seq 1. Or continue an existing
    /// chain in a new cluster (--ledger). Every node must run with
    /// --genesis set to the chain's genesis hash. Safe to run again: a
    /// cluster that has this genesis (or ledger) answers
    /// already_committed, and any other is refused.
    #[command(group(clap::ArgGroup::new("start").required(true).args(["genesis_file", "ledger"])))]
    Init {
        /// The genesis: a ledger file (its first version) or a signed
        /// genesis proposal file.
        #[arg(long, value_name = "FILE")]
        genesis_file: Option<PathBuf>,
        /// A ledger to continue (the restore path): a cluster's export
        /// (`stele export`) with a membership version appended that names
        /// the new cluster's members (`stele proposal new --kind
        /// membership`, signed by M, then `stele ledger append`). Raft
        /// begins with the voters it lists, and the whole ledger commits
        /// at once.
        #[arg(long, value_name = "EXPORT")]
        ledger: Option<PathBuf>,
        /// The node to send it to (default: the first voter listed).
        #[arg(long, env = "STELE_ENDPOINT", value_name = "URL")]
        endpoint: Option<String>,
        /// How long to wait for a leader and for the genesis to commit.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, value_name = "DUR")]
        timeout: Duration,
    },
    /// The leader, the term, and each member's role, applied seq and
    /// freshness.
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// Add a non-voting member that replicates and serves decisions:
    /// proposes a signed membership version that lists it.
    AddLearner {
        /// ID=HOST:PORT,PEER_HOST:PEER_PORT
        member: String,
        /// Its region (free text, e.g. eu-west-1), recorded in the ledger.
        #[arg(long, value_name = "TEXT", default_value = "")]
        region: String,
        #[command(flatten)]
        change: MembershipChange,
        #[command(flatten)]
        remote: Remote,
    },
    /// Make a learner a voter: proposes a signed membership version.
    Promote {
        id: u64,
        #[command(flatten)]
        change: MembershipChange,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a member (voter or learner): proposes a signed membership
    /// version.
    Remove {
        id: u64,
        #[command(flatten)]
        change: MembershipChange,
        #[command(flatten)]
        remote: Remote,
    },
}

/// A membership change as a signed `membership` version: the new member set,
/// proposed like a policy change and committed when M of the trust set
/// signed it (`stele approve ID --key K`). There is no unsigned way.
#[derive(Debug, Args)]
pub struct MembershipChange {
    /// An approver's secret key to sign the membership version with
    /// (repeat to sign with several: at M it commits at once).
    #[arg(long = "key", value_name = "PATH", required = true)]
    pub keys: Vec<PathBuf>,
    #[command(flatten)]
    pub confirm: Confirm,
    /// A node's certificate (repeat): the SHA-256 of its public key goes into
    /// the member set for the node it names (stele://node/N). Needed for a
    /// node the ledger does not list yet: the one being added, and, when the
    /// ledger names no members yet, every node. A listed node's given here
    /// replaces its key.
    #[arg(long = "cert", value_name = "PEM")]
    pub certs: Vec<PathBuf>,
    /// Why: signed into the version (default: what changes, e.g. "add
    /// learner 4").
    #[arg(short = 'm', long = "message", value_name = "MSG")]
    pub message: Option<String>,
    /// Who proposes it: an approver's name (default: your first --key's).
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
    /// The version cannot commit after now + DUR.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub expires_in: Duration,
}

/// The first member set, which a genesis declares: the voters Raft starts
/// with, each with the key its certificate holds.
#[derive(Debug, Args)]
pub struct GenesisMembers {
    /// A voter: ID=HOST:PORT,PEER_HOST:PEER_PORT, its client address and
    /// its peer (Raft) address (repeat for each).
    #[arg(long = "member", value_name = "ID=ADDR,PEER_ADDR")]
    pub members: Vec<String>,
    /// Each member's node certificate (repeat): the SHA-256 of its public
    /// key is listed for the node it names (stele://node/N).
    #[arg(long = "cert", value_name = "PEM")]
    pub certs: Vec<PathBuf>,
    /// A member's region: ID=TEXT (repeat; default none).
    #[arg(long = "region", value_name = "ID=TEXT")]
    pub regions: Vec<String>,
}

/// The approver keys a command signs with, here, on this machine.
#[derive(Debug, Args)]
pub struct SigningKeys {
    /// A secret key file to sign with (repeat to sign with several keys).
    #[arg(long = "key", value_name = "PATH", required = true)]
    pub keys: Vec<PathBuf>,
    #[command(flatten)]
    pub confirm: Confirm,
}

/// Every command that signs first shows the signer what they sign (the
/// version, its signers, and its change in full against its parent) and
/// asks on the terminal.
#[derive(Debug, Args, Default)]
pub struct Confirm {
    /// Sign without showing the change and asking: for scripts, which have
    /// no terminal and are refused without it. Read the change first
    /// (`stele proposal show`). With --yes, an id must be given in full.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ProposeArgs {
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub about: About,
    #[command(flatten)]
    pub signing: SigningKeys,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The proposal id (its version hash), as `stele propose` and `stele
    /// proposals` print it. On a terminal, a unique prefix of at least 8
    /// hex digits will do (the full id is shown before you sign); with
    /// --yes, the full id.
    pub proposal_id: String,
    #[command(flatten)]
    pub signing: SigningKeys,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// The pending proposal's id. On a terminal, a unique prefix of at
    /// least 8 hex digits will do; with --yes, the full id.
    pub proposal_id: String,
    #[command(flatten)]
    pub signing: SigningKeys,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// A signed proposal file.
    pub proposal: PathBuf,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The seq whose bundle to restore.
    #[arg(long, value_name = "SEQ")]
    pub to: u64,
    #[command(flatten)]
    pub about: About,
    #[command(flatten)]
    pub signing: SigningKeys,
    #[command(flatten)]
    pub remote: Remote,
}

/// A trust set to declare: who approves, and how many must sign.
#[derive(Debug, Args)]
pub struct TrustSetArgs {
    /// An approver: NAME=PUB, or a public key file named after its
    /// approver (alice.pub is alice). Repeat for each approver; the names
    /// are signed in with the set.
    #[arg(long = "approver", value_name = "[NAME=]PUB", required = true)]
    pub approvers: Vec<PathBuf>,
    /// How to reach an approver, signed in with their name: NAME=TEXT (an
    /// address, a team). Repeat for each approver who has one.
    #[arg(long = "contact", value_name = "NAME=TEXT")]
    pub contacts: Vec<String>,
    /// How many of these approvers must sign each version.
    #[arg(long, value_name = "M")]
    pub threshold: u32,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// The new trust set.
    #[command(flatten)]
    pub trust: TrustSetArgs,
    #[command(flatten)]
    pub about: About,
    #[command(flatten)]
    pub signing: SigningKeys,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A seq, a version hash, a pending proposal id, or a unique prefix of
    /// at least 8 hex digits of either.
    pub id: String,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The older side: a seq, a version hash, a pending proposal id, or a
    /// unique prefix of at least 8 hex digits.
    pub a: String,
    /// The newer side, the same way.
    pub b: String,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ProposalsArgs {
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file to write; never overwritten.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the nodes keep their data, logs and the demo approver keys.
    #[arg(long, default_value = ".stele-dev", value_name = "DIR")]
    pub dir: PathBuf,
    /// The first node's port; the others follow. Node N's HTTP API is at
    /// this + 100 + N - 1.
    #[arg(long, default_value_t = 7001)]
    pub base_port: u16,
    /// Run the nodes without decision logs (to measure what logging costs).
    #[arg(long)]
    pub no_decision_log: bool,
    /// Log each request whole (`stele node --decision-log-requests`), so
    /// that `stele proposal impact --from-log` can replay them.
    #[arg(long, conflicts_with = "no_decision_log")]
    pub decision_log_requests: bool,
}

#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// Compile the bundle, validate its policies against its schema and run
    /// every scenario in tests/*.json. Exits 0 only if all of that passes;
    /// a failure names the file and line, or the scenario and what differed.
    Test {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// Print the bundle's digest (hex), the value a version header carries.
    Digest {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// Format every *.cedar file with Cedar's own formatter (comments are
    /// kept). A new digest: formatting is a change like any other.
    Fmt {
        /// The bundle directory.
        dir: PathBuf,
        /// Change nothing; exit non-zero if a file is not formatted (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Write a minimal bundle to DIR (new or empty): a schema, one policy,
    /// entities and a scenario file, which `stele bundle test` passes.
    Init {
        /// The directory to write.
        dir: PathBuf,
    },
}

/// Evaluate one request (--principal, --action, --resource, --context), or
/// a file of requests (--requests), against a bundle (--bundle, offline) or a
/// node (--endpoint). Prints
/// {"decision":"Allow"|"Deny","reasons":[…],"errors":[…]}; the reasons are the
/// ids of the policies that determined the decision. Exits 0 once every
/// request is evaluated, whatever the decision; non-zero for a request that
/// cannot be evaluated (malformed, or not fitting the schema).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Evaluate offline against this bundle directory (it takes precedence
    /// over --endpoint and STELE_ENDPOINT).
    #[arg(long, value_name = "DIR", conflicts_with = "min_version")]
    pub bundle: Option<PathBuf>,
    /// Ask this node (host:port or http://host:port); the answer names the
    /// version that made it.
    #[arg(long, env = "STELE_ENDPOINT", value_name = "URL")]
    pub endpoint: Option<String>,
    /// With --endpoint: answer only from this version or a newer one.
    #[arg(long, value_name = "SEQ")]
    pub min_version: Option<u64>,
    /// With --endpoint: deadline for each call.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub timeout: Duration,
    /// The principal, e.g. 'User::"alice"'.
    #[arg(
        long,
        required_unless_present = "requests",
        conflicts_with = "requests"
    )]
    pub principal: Option<String>,
    /// The action, e.g. 'Action::"read"'.
    #[arg(
        long,
        required_unless_present = "requests",
        conflicts_with = "requests"
    )]
    pub action: Option<String>,
    /// The resource, e.g. 'Doc::"d1"'.
    #[arg(
        long,
        required_unless_present = "requests",
        conflicts_with = "requests"
    )]
    pub resource: Option<String>,
    /// The context, a JSON object.
    #[arg(long, value_name = "JSON", conflicts_with = "requests")]
    pub context: Option<String>,
    /// A file of requests, one JSON object per line ('-' for stdin):
    /// {"principal":{"type","id"},"action":{…},"resource":{…},"context":{…}}.
    /// One result line per request, in order; a request that cannot be
    /// evaluated gets {"error":"…"} and makes the command exit non-zero.
    #[arg(long, value_name = "FILE")]
    pub requests: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProposalKind {
    /// The first version of a new ledger (needs --bundle, --approver, --threshold).
    Genesis,
    /// A new bundle (needs --ledger and --bundle).
    Update,
    /// Restore an earlier version's bundle as a new version (needs --ledger and --to).
    Rollback,
    /// Replace the trust set (needs --ledger, --approver and --threshold).
    Rotate,
    /// A whole new member set, every member a voter (needs --ledger, and
    /// --member and --cert for each): to continue the chain in a new
    /// cluster (`stele cluster init --ledger`). A running cluster changes
    /// members with `stele cluster add-learner|promote|remove`.
    Membership,
}

#[derive(Debug, Subcommand)]
pub enum ProposalCommand {
    /// Write a new, unsigned proposal file. Its parent is the ledger's head.
    New(Box<ProposalNewArgs>),
    /// Add your signature to a proposal file, in place, after reviewing
    /// its change against the ledger it extends. Approvers can sign one
    /// after another on separate machines. A key that is not an approver
    /// of the trust set in force is refused.
    Sign {
        /// The proposal file.
        proposal: PathBuf,
        /// The ledger the proposal extends (not needed for a genesis): the
        /// change is shown against its parent, and your key is checked
        /// against the trust set in force.
        #[arg(long, value_name = "PATH")]
        ledger: Option<PathBuf>,
        #[command(flatten)]
        signing: SigningKeys,
    },
    /// Remove the signature of one key from a proposal file, in place: a
    /// signature by a key outside the trust set keeps the proposal from
    /// being appended.
    Unsign {
        /// The proposal file.
        proposal: PathBuf,
        /// The signer's public key: a .pub file or 64 hex digits.
        #[arg(long, value_name = "PUB")]
        approver: String,
    },
    /// Replay requests against a proposal's bundle and the bundle it
    /// replaces, and report every decision that would flip (Allow -> Deny,
    /// Deny -> Allow), with counts per policy and examples. Computed here.
    Impact {
        /// A proposal file (with --ledger); or, when no such file exists, a
        /// pending proposal's id or a version (seq, hash, or a unique prefix
        /// of 8+ hex digits) on the node.
        proposal: String,
        /// The requests, one JSON object per line: the format of `stele
        /// check --requests`, or a decision log's request ('-' for stdin).
        #[arg(long, value_name = "FILE", required_unless_present = "from_log")]
        requests: Option<PathBuf>,
        /// Replay the newest requests the cluster's nodes logged instead
        /// (nodes started with --decision-log-requests keep them), read
        /// from every member that answers.
        #[arg(long, conflicts_with = "requests")]
        from_log: bool,
        /// With --from-log: how many of each node's newest requests.
        #[arg(long, default_value_t = 1000, value_name = "N", requires = "from_log")]
        limit: u32,
        /// The ledger the proposal file extends.
        #[arg(long, value_name = "PATH")]
        ledger: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show what a proposal asks you to sign: its header, its signatures,
    /// the bundle check, and with --ledger (or from a cluster) its change
    /// in full against its parent and whether the signatures reach the
    /// threshold.
    Show {
        /// A proposal file; or, when no such file exists, a pending
        /// proposal's id (or a unique prefix of 8+ hex digits) on the node.
        proposal: String,
        /// The ledger the proposal file extends.
        #[arg(long, value_name = "PATH")]
        ledger: Option<PathBuf>,
        /// Requests to replay (as for `proposal impact`): the review then
        /// says which of them the change would answer differently.
        #[arg(long, value_name = "FILE")]
        requests: Option<PathBuf>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Args)]
pub struct ProposalNewArgs {
    /// What the version does.
    #[arg(long, value_enum, default_value_t = ProposalKind::Update)]
    pub kind: ProposalKind,
    /// The ledger file the version extends (all kinds but genesis).
    #[arg(long, value_name = "PATH")]
    pub ledger: Option<PathBuf>,
    /// The bundle directory (genesis and update).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// The seq whose bundle a rollback restores.
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
    /// An approver of the declared trust set (genesis and rotate): NAME=PUB,
    /// or a public key file named after its approver (alice.pub is alice).
    /// Repeat for each approver.
    #[arg(long = "approver", value_name = "[NAME=]PUB")]
    pub approvers: Vec<PathBuf>,
    /// How to reach an approver, signed in with their name: NAME=TEXT (an
    /// address, a team). Repeat for each approver who has one.
    #[arg(long = "contact", value_name = "NAME=TEXT")]
    pub contacts: Vec<String>,
    /// How many approvers must sign (genesis and rotate).
    #[arg(long, value_name = "M")]
    pub threshold: Option<u32>,
    /// The first members (genesis).
    #[command(flatten)]
    pub members: GenesisMembers,
    #[command(flatten)]
    pub about: About,
    /// Where to write the proposal file; never overwritten.
    #[arg(long, value_name = "PATH")]
    pub out: PathBuf,
}

/// What a version says about itself.
#[derive(Debug, Args)]
pub struct About {
    /// Why this version exists: it is signed and stays in the ledger forever.
    #[arg(short = 'm', long = "message", value_name = "MSG")]
    pub message: String,
    /// Who proposes it: an approver's name in the trust set (default: the
    /// name of your first --key). Admission refuses an author who is not
    /// among the signers. (For a trust set made before approvers had
    /// names, any text; default: your key.)
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
    /// How long the version may take to commit: its header says it cannot
    /// commit after now + DUR (the leader's clock decides), so signatures
    /// collected for a change that was never submitted do not stay good
    /// forever.
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration, value_name = "DUR")]
    pub expires_in: Option<Duration>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create a ledger file with its genesis version: either from a bundle,
    /// the approvers and your keys, or from a signed genesis proposal.
    New {
        /// The ledger file to create; never overwritten.
        ledger: PathBuf,
        /// A signed genesis proposal file.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["bundle", "approvers", "threshold", "message", "members", "certs", "regions"])]
        proposal: Option<PathBuf>,
        /// The bundle directory.
        #[arg(long, value_name = "DIR", required_unless_present = "proposal")]
        bundle: Option<PathBuf>,
        /// An approver: NAME=PUB, or a public key file named after its
        /// approver (alice.pub is alice). Repeat for each approver.
        #[arg(
            long = "approver",
            value_name = "[NAME=]PUB",
            required_unless_present = "proposal"
        )]
        approvers: Vec<PathBuf>,
        /// How to reach an approver, signed in with their name: NAME=TEXT (an
        /// address, a team). Repeat for each approver who has one.
        #[arg(long = "contact", value_name = "NAME=TEXT")]
        contacts: Vec<String>,
        /// How many approvers must sign each version.
        #[arg(long, value_name = "M", required_unless_present = "proposal")]
        threshold: Option<u32>,
        /// The cluster's first members, signed into the genesis. A cluster
        /// starts only from a genesis that names them (`stele cluster
        /// init`); a ledger file for offline use may name none.
        #[command(flatten)]
        members: GenesisMembers,
        /// A secret key file to sign with (repeat; M of the approvers).
        #[arg(long = "key", value_name = "PATH")]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        confirm: Confirm,
        /// Why this ledger exists.
        #[arg(
            short = 'm',
            long = "message",
            value_name = "MSG",
            default_value = "genesis"
        )]
        message: String,
        /// Who creates it: an approver's name (default: the name of your
        /// first --key).
        #[arg(long, value_name = "NAME")]
        author: Option<String>,
    },
    /// Append a version: a signed proposal file, or a bundle signed here with
    /// --key. A refused version leaves the file byte-for-byte unchanged; a
    /// version already in the ledger answers already_committed and succeeds.
    Append {
        /// The ledger file.
        ledger: PathBuf,
        /// A signed proposal file.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["bundle", "message"])]
        proposal: Option<PathBuf>,
        /// The bundle directory of a new update.
        #[arg(
            long,
            value_name = "DIR",
            required_unless_present = "proposal",
            requires = "message"
        )]
        bundle: Option<PathBuf>,
        /// Why this version exists.
        #[arg(short = 'm', long = "message", value_name = "MSG")]
        message: Option<String>,
        /// Who proposes it: an approver's name (default: the name of your
        /// first --key).
        #[arg(long, value_name = "NAME")]
        author: Option<String>,
        /// A secret key file to sign with (repeat).
        #[arg(long = "key", value_name = "PATH")]
        keys: Vec<PathBuf>,
        #[command(flatten)]
        confirm: Confirm,
    },
    /// Restore the bundle of version SEQ as a new version (kind rollback):
    /// history is never rewritten, the rollback is signed and logged.
    Rollback {
        /// The ledger file.
        ledger: PathBuf,
        /// The seq whose bundle to restore.
        #[arg(long, value_name = "SEQ")]
        to: u64,
        #[command(flatten)]
        about: About,
        #[command(flatten)]
        signing: SigningKeys,
    },
    /// Verify a ledger file (or a cluster export) from genesis: encoding,
    /// hash chain, signatures and thresholds, and that every bundle compiles,
    /// validates and passes its scenarios. Names the first bad seq.
    Verify {
        /// The ledger file.
        ledger: PathBuf,
        /// Accept only a ledger whose genesis has this hash.
        #[arg(long, value_name = "HASH")]
        genesis: Option<String>,
        /// Require this version hash to be in the ledger (repeat). A ledger
        /// cut short after a whole version is still a valid, shorter chain:
        /// a hash you saw earlier (in a decision, a log) proves it is not.
        #[arg(long, value_name = "HASH")]
        contains: Vec<String>,
    },
    /// List the versions, oldest first (one JSON line each with --json).
    Log {
        /// The ledger file.
        ledger: PathBuf,
    },
    /// Show one version: its header, signers and bundle files.
    Show {
        /// The ledger file.
        ledger: PathBuf,
        /// The version's seq.
        seq: u64,
    },
}
