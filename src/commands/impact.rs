//! `stele proposal impact`: the requests a change would answer
//! differently, computed here from checked bundles (never by a node).

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde_json::json;
use stele_ledger::BundleFiles;
use stele_policy::{Impact, Outcome, Query, Snapshot};

use super::check::{MAX_REQUEST_LINE_BYTES, next_line};
use super::cluster_view::{find, parent_bundle, versions};
use super::ids::Typed;
use super::proposal::parent_in;
use crate::cli::Remote;
use crate::failure::{Code, Failure, Result};
use crate::ledger_files::{load_ledger, load_proposal};
use crate::output::Output;
use crate::remote::client;

pub fn run(
    out: Output,
    target: &str,
    requests: &Path,
    ledger: Option<&Path>,
    remote: &Remote,
) -> Result<()> {
    let (current, proposed) = sides(target, ledger, remote)?;
    let impact = replay(requests, &current, &proposed)?;
    out.result(&impact, || impact_text(&impact));
    Ok(())
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

/// Replays every request of the file (`-`: stdin) against both bundles.
pub fn replay(requests: &Path, current: &BundleFiles, proposed: &BundleFiles) -> Result<Impact> {
    let compile = |bundle: &BundleFiles, which: &str| {
        Snapshot::compile(bundle).map_err(|e| {
            let failure: Failure = e.into();
            Failure {
                message: format!("the {which} bundle does not compile: {}", failure.message),
                ..failure
            }
        })
    };
    let current = compile(current, "current")?;
    let proposed = compile(proposed, "proposed")?;
    let mut reader: Box<dyn BufRead> = if requests.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(requests).map_err(|e| Failure::io(requests, e))?;
        Box::new(BufReader::new(file))
    };
    let mut impact = Impact::default();
    let mut line = Vec::new();
    for number in 1.. {
        let Some(fits) = next_line(&mut reader, &mut line).map_err(|e| Failure::io(requests, e))?
        else {
            break;
        };
        let bad = |message: String| {
            Failure::new(
                Code::InvalidRequest,
                format!("{}:{number}: {message}", requests.display()),
            )
        };
        if !fits {
            return Err(bad(format!(
                "a request over the limit of {MAX_REQUEST_LINE_BYTES} bytes"
            )));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| bad("not valid UTF-8".into()))?
            .trim();
        if text.is_empty() {
            continue;
        }
        let query = Query::from_json(text).map_err(|e| bad(e.to_string()))?;
        impact.replay(number, text, &query, &current, &proposed);
    }
    Ok(impact)
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
