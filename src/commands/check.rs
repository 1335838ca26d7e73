//! `stele check --bundle`: offline evaluation.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::json;
use stele_node::check_wire::check_request;
use stele_policy::{Decision, Outcome, Query, Snapshot, load_dir};
use stele_proto::v1::CheckResponse;

use crate::cli::CheckArgs;
use crate::failure::{Code, Failure, Result};
use crate::output::Output;
use crate::remote::{call, connect};

/// Longest request line, in bytes.
pub(crate) const MAX_REQUEST_LINE_BYTES: usize = 1024 * 1024;

pub fn run(out: Output, args: CheckArgs) -> Result<()> {
    match (&args.bundle, &args.endpoint) {
        (Some(bundle), _) => offline(out, bundle, &args),
        (None, Some(endpoint)) => remote(out, endpoint, &args),
        (None, None) => Err(Failure::usage(
            "say where to evaluate: --bundle DIR (offline) or --endpoint URL (a node; or set STELE_ENDPOINT)",
        )),
    }
}

/// The request the flags describe.
fn flag_query(args: &CheckArgs) -> Result<Query> {
    Query::parse(
        args.principal.as_deref().unwrap_or_default(),
        args.action.as_deref().unwrap_or_default(),
        args.resource.as_deref().unwrap_or_default(),
        args.context.as_deref(),
    )
    .map_err(|e| Failure::new(Code::InvalidRequest, e.to_string()))
}

fn offline(out: Output, bundle: &Path, args: &CheckArgs) -> Result<()> {
    let snapshot = Snapshot::compile(&load_dir(bundle)?)?;
    match &args.requests {
        Some(path) => for_each_request(
            out,
            path,
            |query| {
                let decision = snapshot
                    .evaluate(&query)
                    .map_err(|e| Failure::new(Code::InvalidRequest, e.to_string()))?;
                Ok(serde_json::to_value(&decision).expect("decisions serialize"))
            },
            describe_json,
        ),
        None => {
            let query = flag_query(args)?;
            let decision = snapshot
                .evaluate(&query)
                .map_err(|e| Failure::new(Code::InvalidRequest, e.to_string()))?;
            out.result(&decision, || describe(&decision));
            Ok(())
        }
    }
}

/// Evaluates requests, one per line, reporting each line's answer or error.
fn for_each_request(
    out: Output,
    path: &Path,
    mut answer: impl FnMut(Query) -> Result<serde_json::Value>,
    describe_answer: impl Fn(&serde_json::Value) -> String,
) -> Result<()> {
    let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| Failure::io(path, e))?;
        Box::new(BufReader::new(file))
    };
    let mut failed = 0usize;
    let mut first_code = None;
    let mut total = 0usize;
    let mut line = Vec::new();
    for number in 1.. {
        let Some(fits) = next_line(&mut reader, &mut line).map_err(|e| Failure::io(path, e))?
        else {
            break;
        };
        if fits && line.trim_ascii().is_empty() {
            continue;
        }
        total += 1;
        let invalid = |message: String| Failure::new(Code::InvalidRequest, message);
        let result = if !fits {
            Err(invalid(format!(
                "request is over the limit of {MAX_REQUEST_LINE_BYTES} bytes"
            )))
        } else {
            std::str::from_utf8(&line)
                .map_err(|_| invalid("not valid UTF-8".into()))
                .and_then(|text| Query::from_json(text).map_err(|e| invalid(e.to_string())))
                .and_then(&mut answer)
        };
        match result {
            Ok(value) => out.result(&value, || describe_answer(&value)),
            Err(failure) => {
                failed += 1;
                first_code.get_or_insert(failure.code);
                let message = format!("line {number}: {}", failure.message);
                out.result(
                    &json!({ "error": message, "code": failure.code.name() }),
                    || format!("error: {message}"),
                );
                // A node that does not answer will not answer the next line
                // either: stop rather than wait out every deadline.
                if matches!(failure.code, Code::Timeout | Code::Unavailable) {
                    return Err(Failure::new(
                        failure.code,
                        format!("stopped at line {number}: the node does not answer"),
                    )
                    .told_by_results());
                }
            }
        }
    }
    if failed > 0 {
        // The first failure's code: `stale` when the node could not answer,
        // `invalid_request` for a bad line.
        return Err(Failure::new(
            first_code.unwrap_or(Code::InvalidRequest),
            format!("{failed} of {total} request(s) could not be evaluated"),
        )
        .told_by_results());
    }
    Ok(())
}

/// Reads the next line into `line`, never holding more than the limit:
/// `Some(true)` for a line within it, `Some(false)` for a longer one (the rest
/// of which is skipped), `None` at the end of the input.
pub(crate) fn next_line(
    reader: &mut dyn BufRead,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<bool>> {
    line.clear();
    let limit = MAX_REQUEST_LINE_BYTES as u64 + 1;
    if Read::take(&mut *reader, limit).read_until(b'\n', line)? == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') || line.len() <= MAX_REQUEST_LINE_BYTES {
        return Ok(Some(true));
    }
    let mut rest = Vec::new();
    loop {
        rest.clear();
        if Read::take(&mut *reader, 64 * 1024).read_until(b'\n', &mut rest)? == 0
            || rest.last() == Some(&b'\n')
        {
            return Ok(Some(false));
        }
    }
}

fn describe_json(value: &serde_json::Value) -> String {
    let strings = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let decision = Decision {
        decision: if value["decision"] == "Allow" {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
        reasons: strings("reasons"),
        errors: strings("errors"),
    };
    let mut text = describe(&decision);
    if let Some(seq) = value["version"]["seq"].as_u64() {
        text.push_str(&format!(
            "\n  version {seq} ({}), node {}, decision {}",
            value["version"]["hash"].as_str().unwrap_or_default(),
            value["node_id"],
            value["decision_id"].as_str().unwrap_or_default()
        ));
    }
    if value["stale"] == true {
        text.push_str("\n  STALE: served although this node cannot show it is current");
    }
    text
}

fn remote(out: Output, endpoint: &str, args: &CheckArgs) -> Result<()> {
    let client = connect(endpoint, args.timeout)?;
    let ask = |query: Query| -> Result<serde_json::Value> {
        let reply = call(client.check(check_request(&query, args.min_version)))?;
        Ok(decision_json(&reply))
    };
    match &args.requests {
        Some(path) => for_each_request(out, path, ask, describe_json),
        None => {
            let value = ask(flag_query(args)?)?;
            out.result(&value, || describe_json(&value));
            Ok(())
        }
    }
}

/// A node's decision in the design's shape.
fn decision_json(reply: &CheckResponse) -> serde_json::Value {
    let allow = reply.decision == stele_proto::v1::Outcome::Allow as i32;
    let mut value = json!({
        "decision": if allow { "Allow" } else { "Deny" },
        "version": reply.version.as_ref().map(|v| json!({"seq": v.seq, "hash": v.hash})),
        "reasons": reply.reasons,
        "errors": reply.errors,
        "decision_id": reply.decision_id,
        "node_id": reply.node_id,
    });
    if reply.stale {
        value["stale"] = true.into();
    }
    value
}

fn describe(decision: &Decision) -> String {
    let mut text = format!("{:?}", decision.decision);
    if decision.reasons.is_empty() {
        text.push_str(" (no policy applies)");
    } else {
        text.push_str(&format!(" (reasons: {})", decision.reasons.join(", ")));
    }
    for error in &decision.errors {
        text.push_str(&format!("\n  error: {error}"));
    }
    text
}
