//! The command line, as clap sees it. Each command's doc comment is its
//! `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// stele: zero-trust policy decisions from a write-once, signed,
/// hash-chained ledger of Cedar policy versions.
///
/// The offline commands below work on files alone: an approver on an
/// air-gapped machine, or an auditor with an exported ledger, needs nothing
/// else. Every command that prints a result takes --json (one compact JSON
/// line per result on stdout); anything but success exits non-zero.
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

    #[command(subcommand)]
    pub command: Command,
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
}

/// Evaluate one request (--principal, --action, --resource, --context), or
/// a file of requests (--requests), against a bundle. Prints
/// {"decision":"Allow"|"Deny","reasons":[…],"errors":[…]}; the reasons are the
/// ids of the policies that determined the decision. Exits 0 once every
/// request is evaluated, whatever the decision; non-zero for a request that
/// cannot be evaluated (malformed, or not fitting the schema).
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The bundle directory.
    #[arg(long, value_name = "DIR")]
    pub bundle: PathBuf,
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
}

#[derive(Debug, Subcommand)]
pub enum ProposalCommand {
    /// Write a new, unsigned proposal file. Its parent is the ledger's head.
    New(ProposalNewArgs),
    /// Add your signature to a proposal file, in place. Approvers can sign
    /// one after another on separate machines.
    Sign {
        /// The proposal file.
        proposal: PathBuf,
        /// Your secret key file (repeat to sign with several keys).
        #[arg(long = "key", value_name = "PATH", required = true)]
        keys: Vec<PathBuf>,
    },
    /// Show what a proposal asks you to sign: its header, its signatures, and
    /// with --ledger the policy changes against its parent and whether the
    /// signatures reach the threshold.
    Show {
        /// The proposal file.
        proposal: PathBuf,
        /// The ledger the proposal extends.
        #[arg(long, value_name = "PATH")]
        ledger: Option<PathBuf>,
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
    /// An approver public key file of the declared trust set (genesis and
    /// rotate; repeat for each approver).
    #[arg(long = "approver", value_name = "PUB")]
    pub approvers: Vec<PathBuf>,
    /// How many approvers must sign (genesis and rotate).
    #[arg(long, value_name = "M")]
    pub threshold: Option<u32>,
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
    /// Who proposes it (default: $USER).
    #[arg(long, value_name = "NAME")]
    pub author: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Create a ledger file with its genesis version: either from a bundle,
    /// the approvers and your keys, or from a signed genesis proposal.
    New {
        /// The ledger file to create; never overwritten.
        ledger: PathBuf,
        /// A signed genesis proposal file.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["bundle", "approvers", "threshold", "message"])]
        proposal: Option<PathBuf>,
        /// The bundle directory.
        #[arg(long, value_name = "DIR", required_unless_present = "proposal")]
        bundle: Option<PathBuf>,
        /// An approver public key file (repeat for each approver).
        #[arg(
            long = "approver",
            value_name = "PUB",
            required_unless_present = "proposal"
        )]
        approvers: Vec<PathBuf>,
        /// How many approvers must sign each version.
        #[arg(long, value_name = "M", required_unless_present = "proposal")]
        threshold: Option<u32>,
        /// A secret key file to sign with (repeat; M of the approvers).
        #[arg(long = "key", value_name = "PATH")]
        keys: Vec<PathBuf>,
        /// Why this ledger exists.
        #[arg(
            short = 'm',
            long = "message",
            value_name = "MSG",
            default_value = "genesis"
        )]
        message: String,
        /// Who creates it (default: $USER).
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
        /// Who proposes it (default: $USER).
        #[arg(long, value_name = "NAME")]
        author: Option<String>,
        /// A secret key file to sign with (repeat).
        #[arg(long = "key", value_name = "PATH")]
        keys: Vec<PathBuf>,
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
        /// A secret key file to sign with (repeat).
        #[arg(long = "key", value_name = "PATH", required = true)]
        keys: Vec<PathBuf>,
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
