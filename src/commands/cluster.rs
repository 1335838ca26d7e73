//! `stele cluster init|status|add-learner|promote|remove`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use stele_ledger::limits::MAX_RESTORE_LEDGER_BYTES;
use stele_ledger::{ChainState, Ledger, MemberSet, Proposal, Version};
use stele_proto::v1::{BootstrapRequest, MemberStatus, StatusRequest, StatusResponse};

use super::membership::{self, Edit, parse_member};
use crate::cli::ClusterCommand;
use crate::failure::{Code, Failure, Result};
use crate::output::Output;
use crate::remote::{call, client, connect, retrying_write};

pub fn run(out: Output, command: ClusterCommand) -> Result<()> {
    match command {
        ClusterCommand::Init {
            genesis_file,
            ledger,
            endpoint,
            timeout,
        } => {
            let start = match (genesis_file, ledger) {
                (Some(path), None) => Start::genesis(path)?,
                (None, Some(path)) => Start::restore(path)?,
                _ => unreachable!("clap requires exactly one of --genesis-file and --ledger"),
            };
            init(out, start, endpoint, timeout)
        }
        ClusterCommand::Status { remote } => {
            let client = client(&remote)?;
            let status = call(client.status(StatusRequest { local_only: false }))?;
            out.result(&status_json(&status), || status_text(&status));
            Ok(())
        }
        ClusterCommand::AddLearner {
            member,
            region,
            change,
            remote,
        } => {
            let member = parse_member(&member)?;
            let edit = Edit::AddLearner {
                id: member.id,
                client: member.client,
                peer: member.peer,
                region,
            };
            membership::propose(out, &remote, change, edit)
        }
        ClusterCommand::Promote { id, change, remote } => {
            membership::propose(out, &remote, change, Edit::Promote(id))
        }
        ClusterCommand::Remove { id, change, remote } => {
            membership::propose(out, &remote, change, Edit::Remove(id))
        }
    }
}

/// What `cluster init` starts a cluster from: a genesis, or a whole
/// ledger to continue (its head a membership version naming the members).
enum Start {
    Genesis {
        path: PathBuf,
        genesis: Proposal,
    },
    Restore {
        path: PathBuf,
        bytes: Vec<u8>,
        head: Version,
        members: MemberSet,
    },
}

impl Start {
    fn genesis(path: PathBuf) -> Result<Start> {
        let genesis = read_genesis(&path)?;
        if genesis.version.header.members.is_none() {
            return Err(Failure::usage(format!(
                "{}: this genesis names no members, and a cluster starts only from one that does: make it with `stele ledger new ... --member ID=ADDR,PEER --cert node-ID.pem` (each voter)",
                path.display()
            )));
        }
        Ok(Start::Genesis { path, genesis })
    }

    /// A ledger checked here as a verifier would (`stele ledger verify`:
    /// every bundle compiles and passes its scenarios), then as the nodes
    /// will (its head a membership version).
    fn restore(path: PathBuf) -> Result<Start> {
        let bytes = crate::files::read_limited(&path, MAX_RESTORE_LEDGER_BYTES as u64)?;
        let fail = |why: String| {
            Failure::usage(format!(
                "{}: cannot continue this ledger: {why}",
                path.display()
            ))
        };
        stele_ledger::export::read(&bytes, Ledger::new(), &stele_policy::admission_check).map_err(
            |e| {
                let failure: Failure = e.into();
                Failure {
                    message: format!("{}: {}", path.display(), failure.message),
                    ..failure
                }
            },
        )?;
        let restore =
            stele_ledger::restore::verify(&bytes, ChainState::default()).map_err(|e| Failure {
                code: Code::Reason(e.reason()),
                ..fail(e.to_string())
            })?;
        let (head, members) = (restore.head().clone(), restore.members().clone());
        Ok(Start::Restore {
            path,
            bytes,
            head,
            members,
        })
    }

    fn path(&self) -> &Path {
        match self {
            Start::Genesis { path, .. } | Start::Restore { path, .. } => path,
        }
    }

    /// The version whose commit finishes the start: the genesis, or the
    /// ledger's head.
    fn last(&self) -> &Version {
        match self {
            Start::Genesis { genesis, .. } => &genesis.version,
            Start::Restore { head, .. } => head,
        }
    }

    fn members(&self) -> &MemberSet {
        match self {
            Start::Genesis { genesis, .. } => genesis
                .version
                .header
                .members
                .as_ref()
                .expect("checked when read"),
            Start::Restore { members, .. } => members,
        }
    }

    fn bootstrap_request(&self) -> BootstrapRequest {
        match self {
            Start::Genesis { genesis, .. } => BootstrapRequest {
                genesis: genesis.encode().into_bytes(),
                ledger: Vec::new(),
            },
            Start::Restore { bytes, .. } => BootstrapRequest {
                genesis: Vec::new(),
                ledger: bytes.clone(),
            },
        }
    }

    fn commit(&self, client: &stele_client::Client) -> Result<stele_proto::v1::ProposalStatus> {
        match self {
            Start::Genesis { genesis, .. } => retrying_write(|| client.submit(genesis, true)),
            Start::Restore { bytes, .. } => retrying_write(|| client.restore(bytes.clone())),
        }
    }
}

/// `cluster init --genesis-file F | --ledger EXPORT`: Raft starts at one of
/// the listed voters with the voters listed, then the genesis (or the whole
/// ledger) commits. Each step is idempotent, so a crash between them is
/// mended by running it again; and every node accepts only the chain whose
/// genesis it was started with (--genesis), so the moment between them is
/// no window for anyone else's.
fn init(out: Output, start: Start, endpoint: Option<String>, timeout: Duration) -> Result<()> {
    let members = start.members();
    let endpoint = match endpoint {
        Some(endpoint) => endpoint,
        None => members
            .voter_ids()
            .find_map(|id| members.get(id))
            .map(|m| m.client.clone())
            .expect("a member set has a voter"),
    };
    let client = connect(&endpoint, timeout)?;
    refuse_if_expired(&client, &start, timeout)?;
    let started = call(client.bootstrap(start.bootstrap_request()))?;
    let genesis = started.genesis.clone();
    let deadline = Instant::now() + timeout;
    loop {
        let status = call(client.status(StatusRequest { local_only: true }))?;
        if status.leader.is_some() {
            break;
        }
        if Instant::now() > deadline {
            return Err(Failure::new(
                Code::Timeout,
                format!(
                    "Raft started, but no leader was elected within {timeout:?}: start the other voters (with --genesis {genesis}), then run this again"
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = start.commit(&client)?;
    let committed = super::writes::state_name(&status);
    let last = start.last();
    let value = json!({
        "genesis": genesis,
        "initialized": started.initialized,
        "voters": started.voters,
        "status": committed,
        "seq": status.seq,
        "head": last.hash().to_hex(),
    });
    out.result(&value, || {
        let raft = match started.initialized {
            true => "Raft initialized",
            false => "Raft was already initialized",
        };
        let voters: Vec<String> = started.voters.iter().map(u64::to_string).collect();
        let what = match start {
            Start::Genesis { .. } => format!("genesis {genesis}"),
            Start::Restore { .. } => format!(
                "the ledger of genesis {genesis}, up to seq {} ({})",
                last.seq(),
                last.hash()
            ),
        };
        format!(
            "{raft} with voters {}; {what} {}",
            voters.join(", "),
            match committed {
                "committed" => format!("committed, head seq {}", last.seq()),
                "already_committed" => "was already committed".into(),
                _ => "was sent, with an answer this stele does not know".into(),
            }
        )
    });
    Ok(())
}

/// An expired genesis (or restore head) could start Raft on every node
/// pinned to it and then never commit, and so could one that expires while
/// init waits for a leader (up to `timeout`): refused, unless the cluster
/// committed it already (then running init again is the idempotent no-op
/// it always is).
fn refuse_if_expired(
    client: &stele_client::Client,
    start: &Start,
    timeout: Duration,
) -> Result<()> {
    let last = start.last();
    let by = crate::ledger_files::now_unix_seconds() * 1000 + timeout.as_millis() as u64;
    if !last.header.expired_at(by) {
        return Ok(());
    }
    let hash = last.hash();
    let committed = crate::remote::block_on(async { Ok(client.version(last.seq()).await.ok()) })?
        .is_some_and(|(version, _)| version.hash() == hash);
    if committed {
        return Ok(());
    }
    let remedy = match start {
        Start::Genesis { .. } => {
            "make a new one (`stele ledger new` writes none that expire), and start the nodes on empty --data directories with its hash"
        }
        Start::Restore { .. } => {
            "make and sign a new membership version on the export (`stele proposal new --kind membership --ledger EXPORT ...`), and append it to the export instead"
        }
    };
    Err(Failure::new(
        Code::Reason(stele_ledger::Reason::ProposalExpired),
        format!(
            "{}: seq {} expires before init could finish (its signed expires_at is past, or within --timeout {}), and the cluster has not committed it: {remedy} (if the cluster did commit it, check that --endpoint answers)",
            start.path().display(),
            last.seq(),
            humantime::format_duration(timeout)
        ),
    ))
}

/// The genesis in `path`: the first version of a ledger file, or a genesis
/// proposal file; checked here as a verifier would (M signatures of the
/// trust set it declares, the bundle its digest names).
fn read_genesis(path: &Path) -> Result<Proposal> {
    let bytes = crate::files::read_limited(path, crate::ledger_files::MAX_LEDGER_FILE_BYTES)?;
    let proposal = match Proposal::decode(&bytes) {
        Ok(proposal) => proposal,
        Err(as_proposal) => {
            let ledger =
                crate::ledger_files::decode_ledger(path, &bytes).map_err(|failure| Failure {
                    message: format!(
                        "{} (nor is it a genesis proposal file: {as_proposal})",
                        failure.message
                    ),
                    ..failure
                })?;
            let (version, bundle) = ledger.entries().next().ok_or_else(|| {
                Failure::usage(format!("{}: the ledger holds no version", path.display()))
            })?;
            Proposal {
                version: version.clone(),
                bundle: bundle.clone(),
            }
        }
    };
    let mut check = Ledger::new();
    check
        .submit(
            proposal.version.clone(),
            proposal.bundle.clone(),
            &stele_policy::admission_check,
        )
        .map_err(|e| {
            Failure::usage(format!(
                "{}: not an admissible genesis: {e}",
                path.display()
            ))
        })?;
    Ok(proposal)
}

fn status_json(status: &StatusResponse) -> serde_json::Value {
    let present = |text: &String| (!text.is_empty()).then(|| text.clone());
    let members: Vec<_> = status
        .members
        .iter()
        .map(|m| {
            json!({
                "id": m.id,
                "addr": m.addr,
                "peer_addr": m.peer_addr,
                "role": m.role,
                "voter": m.voter,
                "applied_seq": m.applied_seq,
                "stale": m.stale,
                "log_key": present(&m.log_key),
                "log_signed_count": m.log_signed_count,
                "log_signed_head": present(&m.log_signed_head),
                "log_error": present(&m.log_error),
                "spki_sha256": present(&m.spki_sha256),
            })
        })
        .collect();
    json!({ "leader": status.leader, "term": status.term, "members": members })
}

fn status_text(status: &StatusResponse) -> String {
    let mut text = format!(
        "leader: {}   term: {}\n",
        status.leader.map_or("none".into(), |l| l.to_string()),
        status.term
    );
    for member in &status.members {
        text.push_str(&member_text(member));
    }
    text.trim_end().to_string()
}

fn member_text(m: &MemberStatus) -> String {
    let mut text = format!(
        "  node {:<3} {:<22} {:<12} {:<7} seq {:<6} {:<6} log key {}\n",
        m.id,
        m.addr,
        m.role,
        if m.voter { "voter" } else { "learner" },
        m.applied_seq.map_or("-".into(), |s| s.to_string()),
        if m.stale { "STALE" } else { "fresh" },
        if m.log_key.is_empty() {
            "-"
        } else {
            &m.log_key
        },
    );
    if let Some(count) = m.log_signed_count {
        text.push_str(&format!(
            "           log signed: {count} records, head {}\n",
            m.log_signed_head
        ));
    }
    if !m.log_error.is_empty() {
        text.push_str(&format!(
            "           LOG FAILED (decisions refused): {}\n",
            m.log_error
        ));
    }
    text
}
