//! `stele proposal impact`: the requests a change would answer
//! differently, computed here from checked bundles (never by a node).

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::json;
use stele_ledger::BundleFiles;
use stele_policy::{Described, Impact, Outcome, Query, QueryError, Snapshot};
use stele_proto::v1::StatusRequest;

use super::check::{MAX_REQUEST_LINE_BYTES, next_line};
use super::cluster_view::{find, parent_bundle, versions};
use super::ids::Typed;
use super::proposal::parent_in;
use crate::cli::Remote;
use crate::failure::{Code, Failure, Result};
use crate::ledger_files::{load_ledger, load_proposal};
use crate::output::Output;
use crate::remote::{call, client, connect};

/// Where the requests to replay come from.
pub enum Requests {
    File(std::path::PathBuf),
    /// The newest `limit` of each member's decision log.
    Logged {
        limit: u32,
    },
}

pub fn run(
    out: Output,
    target: &str,
    requests: &Requests,
    ledger: Option<&Path>,
    remote: &Remote,
) -> Result<()> {
    let (current, proposed) = sides(target, ledger, remote)?;
    let impact = match requests {
        Requests::File(path) => replay(path, &current, &proposed)?,
        Requests::Logged { limit } => {
            let logged = logged_requests(remote, *limit)?;
            let mut replayer = Replayer::new(&current, &proposed)?;
            for (number, text) in logged.iter().enumerate() {
                replayer.replay(number + 1, text, "the logged requests")?;
            }
            replayer.impact
        }
    };
    out.result(&impact, || impact_text(&impact));
    Ok(())
}

/// The newest requests every member that answers logged whole.
fn logged_requests(remote: &Remote, limit: u32) -> Result<Vec<String>> {
    let seed = client(remote)?;
    let status = call(seed.status(StatusRequest { local_only: true }))?;
    let mut addrs: Vec<String> = status.members.iter().map(|m| m.addr.clone()).collect();
    if addrs.is_empty() {
        addrs.push(remote.endpoint.clone());
    }
    let mut requests = Vec::new();
    let mut logging = 0;
    let mut refused = None;
    for addr in &addrs {
        let node = match connect(addr, remote.timeout) {
            Ok(node) => node,
            Err(failure) => {
                eprintln!(
                    "warning: {addr}: {}; its requests are left out",
                    failure.message
                );
                continue;
            }
        };
        match call(node.recent_requests(limit)) {
            Ok(recent) => {
                logging += usize::from(recent.logs_requests);
                requests.extend(recent.requests);
            }
            Err(failure) => {
                eprintln!(
                    "warning: {addr}: {}; its requests are left out",
                    failure.message
                );
                refused.get_or_insert(failure);
            }
        }
    }
    if let (true, Some(failure)) = (requests.is_empty() && logging == 0, refused) {
        return Err(failure);
    }
    if requests.is_empty() {
        let why = match logging {
            0 => {
                "no node logs requests whole: start the nodes with --decision-log-requests (each decision's log record then holds the request, docs/AUDIT.md)"
            }
            _ => "the nodes' decision logs hold no whole requests yet",
        };
        return Err(Failure::new(
            Code::NotFound,
            format!("{why}; or give --requests FILE"),
        ));
    }
    Ok(requests)
}

/// The bundle in force below the target, and the target's.
fn sides(
    target: &str,
    ledger: Option<&Path>,
    remote: &Remote,
) -> Result<(BundleFiles, BundleFiles)> {
    let no_parent = || {
        Failure::usage(
            "a genesis replaces nothing: there is no current bundle to compare its answers with",
        )
    };
    let path = Path::new(target);
    if path.exists() {
        let proposal = load_proposal(path)?;
        let ledger = ledger.ok_or_else(|| {
            Failure::usage(format!(
                "give --ledger LEDGER, the ledger {target} extends: its answers are compared with its parent's"
            ))
        })?;
        let chain = load_ledger(ledger)?;
        let parent = parent_in(Some(&chain), &proposal)?.ok_or_else(no_parent)?;
        return Ok((parent.clone(), proposal.bundle));
    }
    let typed = Typed::parse(target)?;
    let client = client(remote)?;
    let versions = versions(&client, None)?;
    let read = find(&client, &versions, &typed)?;
    let parent = parent_bundle(&client, &read.version)?.ok_or_else(no_parent)?;
    Ok((parent, read.bundle))
}

/// Replays requests against the current and the proposed bundle.
struct Replayer {
    current: Snapshot,
    proposed: Snapshot,
    impact: Impact,
}

impl Replayer {
    fn new(current: &BundleFiles, proposed: &BundleFiles) -> Result<Replayer> {
        let compile = |bundle: &BundleFiles, which: &str| {
            Snapshot::compile(bundle).map_err(|e| {
                let failure: Failure = e.into();
                Failure {
                    message: format!("the {which} bundle does not compile: {}", failure.message),
                    ..failure
                }
            })
        };
        Ok(Replayer {
            current: compile(current, "current")?,
            proposed: compile(proposed, "proposed")?,
            impact: Impact::default(),
        })
    }

    /// Request `number` of `source`, as text; a blank one is skipped.
    fn replay(&mut self, number: usize, text: &str, source: &str) -> Result<()> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(());
        }
        let (query, described) = parse_request(text)
            .map_err(|e| Failure::new(Code::InvalidRequest, format!("{source}:{number}: {e}")))?;
        self.impact.replay(
            number,
            text,
            (&query, &described),
            &self.current,
            &self.proposed,
        );
        Ok(())
    }
}

/// Replays every request of the file (`-`: stdin) against both bundles.
pub fn replay(requests: &Path, current: &BundleFiles, proposed: &BundleFiles) -> Result<Impact> {
    let mut replayer = Replayer::new(current, proposed)?;
    let mut reader: Box<dyn BufRead> = if requests.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(requests).map_err(|e| Failure::io(requests, e))?;
        Box::new(BufReader::new(file))
    };
    let source = requests.display().to_string();
    let mut line = Vec::new();
    for number in 1.. {
        let Some(fits) = next_line(&mut reader, &mut line).map_err(|e| Failure::io(requests, e))?
        else {
            break;
        };
        let bad = |message: String| {
            Failure::new(
                Code::InvalidRequest,
                format!("{source}:{number}: {message}"),
            )
        };
        if !fits {
            return Err(bad(format!(
                "a request over the limit of {MAX_REQUEST_LINE_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(&line).map_err(|_| bad("not valid UTF-8".into()))?;
        replayer.replay(number, text, &source)?;
    }
    Ok(replayer.impact)
}

/// A request line: the `stele check --requests` form, or the decision
/// log's (`--decision-log-requests`), whose principal is Cedar text.
fn parse_request(text: &str) -> std::result::Result<(Query, Vec<Described>), QueryError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| QueryError(format!("not a request: {e}")))?;
    if value["principal"].is_string() {
        return Query::from_logged(&value);
    }
    Ok((Query::from_json(text)?, Vec::new()))
}

pub fn impact_text(impact: &Impact) -> String {
    let mut text = format!(
        "impact on {} request(s): {} unchanged, {} Allow -> Deny, {} Deny -> Allow, {} not evaluable on one side or both",
        impact.requests,
        impact.unchanged,
        impact.flips.allow_to_deny,
        impact.flips.deny_to_allow,
        impact.unevaluable
    );
    if !impact.by_policy.is_empty() {
        text.push_str("\n  by policy (flips in whose answer its part changed):");
        for (policy, flips) in &impact.by_policy {
            text.push_str(&format!(
                "\n    {policy:?}: {} Allow -> Deny, {} Deny -> Allow",
                flips.allow_to_deny, flips.deny_to_allow
            ));
        }
    }
    let outcome = |decision: &stele_policy::Decision| {
        let name = match decision.decision {
            Outcome::Allow => "Allow",
            Outcome::Deny => "Deny",
        };
        match decision.reasons.as_slice() {
            [] => format!("{name} (no policy applied)"),
            reasons => format!("{name} by {}", reasons.join(", ")),
        }
    };
    if !impact.examples.is_empty() {
        text.push_str(&format!("\n  flips (the first {}):", impact.examples.len()));
    }
    for flip in &impact.examples {
        text.push_str(&format!(
            "\n    line {}: {} -> {}\n      {}",
            flip.line,
            outcome(&flip.before),
            outcome(&flip.after),
            flip.request
        ));
    }
    for case in &impact.unevaluable_examples {
        text.push_str(&format!(
            "\n    line {}: before: {}; after: {}\n      {}",
            case.line,
            case.before.as_deref().unwrap_or("evaluates"),
            case.after.as_deref().unwrap_or("evaluates"),
            case.request
        ));
    }
    text
}

/// The impact as part of a review: `value["impact"]` and a paragraph.
pub fn add_to_review(
    value: &mut serde_json::Value,
    text: &mut String,
    requests: &Path,
    current: Option<&BundleFiles>,
    proposed: &BundleFiles,
) -> Result<()> {
    let Some(current) = current else {
        value["impact"] = json!(null);
        text.push_str("\nimpact: none to compute (nothing is replaced)");
        return Ok(());
    };
    let impact = replay(requests, current, proposed)?;
    value["impact"] = serde_json::to_value(&impact).expect("an impact serializes");
    text.push_str(&format!("\n{}", impact_text(&impact)));
    Ok(())
}

/// The impact on the requests this node logged, as part of a review; a
/// note instead when there are none to read (advice: the review stands
/// without it).
pub fn add_logged_to_review(
    value: &mut serde_json::Value,
    text: &mut String,
    node: &stele_client::Client,
    current: Option<&BundleFiles>,
    proposed: &BundleFiles,
) {
    let Some(current) = current else {
        return;
    };
    let replayed = call(node.recent_requests(0)).and_then(|recent| {
        if recent.requests.is_empty() {
            return Ok(None);
        }
        let mut replayer = Replayer::new(current, proposed)?;
        for (number, request) in recent.requests.iter().enumerate() {
            replayer.replay(number + 1, request, "the logged requests")?;
        }
        Ok(Some(replayer.impact))
    });
    match replayed {
        Ok(Some(impact)) => {
            value["impact"] = serde_json::to_value(&impact).expect("an impact serializes");
            text.push_str(&format!(
                "\n{} (the requests this node logged)",
                impact_text(&impact)
            ));
        }
        Ok(None) => text.push_str(
            "\nimpact: this node has logged no whole requests (nodes started with --decision-log-requests do); `stele proposal impact ID --requests FILE` replays others",
        ),
        Err(failure) => text.push_str(&format!(
            "\nimpact: not computed from this node's log ({})",
            failure.message
        )),
    }
}
