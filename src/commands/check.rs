//! `stele check --bundle`: offline evaluation.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::json;
use stele_policy::{Decision, Query, Snapshot, load_dir};

use crate::cli::CheckArgs;
use crate::failure::{Failure, Result};
use crate::output::Output;

/// Longest request line, in bytes.
const MAX_REQUEST_LINE_BYTES: usize = 1024 * 1024;

pub fn run(out: Output, args: CheckArgs) -> Result<()> {
    let snapshot = Snapshot::compile(&load_dir(&args.bundle)?)?;
    match &args.requests {
        Some(path) => check_file(out, &snapshot, path),
        None => {
            let query = Query::parse(
                args.principal.as_deref().unwrap_or_default(),
                args.action.as_deref().unwrap_or_default(),
                args.resource.as_deref().unwrap_or_default(),
                args.context.as_deref(),
            )
            .map_err(|e| Failure::new("invalid_request", e.to_string()))?;
            let decision = snapshot
                .evaluate(&query)
                .map_err(|e| Failure::new("invalid_request", e.to_string()))?;
            out.result(&decision, || describe(&decision));
            Ok(())
        }
    }
}

fn check_file(out: Output, snapshot: &Snapshot, path: &Path) -> Result<()> {
    let mut reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| Failure::io(path, e))?;
        Box::new(BufReader::new(file))
    };
    let mut failed = 0usize;
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
        let answer = if !fits {
            Err(format!(
                "request is over the limit of {MAX_REQUEST_LINE_BYTES} bytes"
            ))
        } else {
            std::str::from_utf8(&line)
                .map_err(|_| "not valid UTF-8".to_string())
                .and_then(|text| {
                    Query::from_json(text)
                        .and_then(|query| snapshot.evaluate(&query))
                        .map_err(|e| e.to_string())
                })
        };
        match answer {
            Ok(decision) => out.result(&decision, || describe(&decision)),
            Err(message) => {
                failed += 1;
                let message = format!("line {number}: {message}");
                out.result(&json!({ "error": message }), || format!("error: {message}"));
            }
        }
    }
    if failed > 0 {
        return Err(Failure::new(
            "invalid_request",
            format!("{failed} of {total} request(s) could not be evaluated"),
        )
        .told_by_results());
    }
    Ok(())
}

/// Reads the next line into `line`, never holding more than the limit:
/// `Some(true)` for a line within it, `Some(false)` for a longer one (the rest
/// of which is skipped), `None` at the end of the input.
fn next_line(reader: &mut dyn BufRead, line: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
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
