//! `stele audit verify|show`: a node's decision log, checked offline.

use std::path::Path;

use serde_json::json;
use stele_audit::{DecisionRecord, Expected, Verified, verify};
use stele_ledger::PublicKey;

use crate::cli::{AuditCommand, ExpectArgs};
use crate::failure::{Code, Failure, Result};
use crate::files::load_public_key;
use crate::output::Output;

pub fn run(out: Output, command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify {
            dir,
            node_key,
            expect,
        } => {
            let key = node_key_arg(&node_key)?;
            let verified = checked(&dir, &key, &expected(&expect)?, |_| {})?;
            out.result(&summary(&dir, &verified), || verified_text(&verified, &key));
            Ok(())
        }
        AuditCommand::Show {
            dir,
            node_key,
            decision_id,
            expect,
        } => {
            let key = node_key_arg(&node_key)?;
            let mut found: Option<DecisionRecord> = None;
            let verified = checked(&dir, &key, &expected(&expect)?, |record| {
                if record.decision_id == decision_id {
                    found = Some(record.clone());
                }
            })?;
            let Some(record) = found else {
                return Err(Failure::new(
                    Code::NotFound,
                    format!(
                        "no decision {decision_id:?} in {} ({} decisions, verified{})",
                        dir.display(),
                        verified.decisions,
                        sampled_note(&verified)
                    ),
                ));
            };
            let signed = record.index < verified.signed;
            let value = json!({"record": record, "signed": signed});
            out.result(&value, || record_text(&record, signed));
            Ok(())
        }
    }
}

fn verified_text(verified: &Verified, key: &PublicKey) -> String {
    format!(
        "ok: {} records{} ({} decisions, {} dropped) in {} segments, ending at head {}; {} checkpoints signed by {}, the last covering records before {}{}{}",
        verified.records,
        match verified.first_index {
            0 => String::new(),
            first => format!(" from record {first} (older segments are not in this copy)"),
        },
        verified.decisions,
        verified.dropped,
        verified.segments,
        verified.head,
        verified.checkpoints,
        key.to_hex(),
        verified.signed,
        unsigned_note(verified),
        sampled_note(verified),
    )
}

fn record_text(record: &DecisionRecord, signed: bool) -> String {
    let mut text = format!(
        "decision {} by node {} at {} ms: {}\n  version: seq {} ({})\n  reasons: {}\n",
        record.decision_id,
        record.node,
        record.time_ms,
        record.decision,
        record.seq,
        record.hash,
        if record.reasons.is_empty() {
            "none".to_string()
        } else {
            record.reasons.join(", ")
        },
    );
    if !record.errors.is_empty() {
        text.push_str(&format!("  errors: {}\n", record.errors.join("; ")));
    }
    text.push_str(&format!("  request digest: {}\n", record.request_digest));
    if let Some(request) = &record.request {
        text.push_str(&format!("  request: {request}\n"));
    }
    if let Some(omitted) = &record.request_omitted {
        text.push_str(&format!("  request not logged whole: {omitted}\n"));
    }
    text.push_str(if signed {
        "  covered by a checkpoint signed by the node's key"
    } else {
        "  chained, but after the last signed checkpoint: not yet proven"
    });
    text
}

/// The key as hex, or a file holding it (a `.pub` key file or bare hex).
fn node_key_arg(text: &str) -> Result<PublicKey> {
    if let Ok(key) = text.trim().parse::<PublicKey>() {
        return Ok(key);
    }
    let path = Path::new(text);
    if path.exists() {
        let content = std::fs::read_to_string(path).map_err(|e| Failure::io(path, e))?;
        if let Ok(key) = content.trim().parse::<PublicKey>() {
            return Ok(key);
        }
        return load_public_key(path);
    }
    Err(Failure::usage(format!(
        "--node-key {text:?} is neither a public key (64 hex digits) nor a file holding one"
    )))
}

fn expected(args: &ExpectArgs) -> Result<Expected> {
    let head =
        match &args.expect_head {
            Some(text) => Some(text.trim().parse().map_err(|e| {
                Failure::usage(format!("--expect-head {text:?}: {e} (64 hex digits)"))
            })?),
            None => None,
        };
    Ok(Expected {
        count: args.expect_count,
        head,
        allow_pruned: args.allow_pruned,
        allow_unsigned: args.allow_unsigned,
    })
}

fn checked(
    dir: &Path,
    key: &PublicKey,
    expected: &Expected,
    found: impl FnMut(&DecisionRecord),
) -> Result<Verified> {
    verify(dir, key, expected, found).map_err(|broken| {
        Failure::new(
            Code::LogInvalid,
            format!("the decision log does not verify: {broken}"),
        )
    })
}

fn summary(dir: &Path, verified: &Verified) -> serde_json::Value {
    json!({
        "ok": true,
        "dir": dir,
        "segments": verified.segments,
        "records": verified.records,
        "decisions": verified.decisions,
        "dropped": verified.dropped,
        "checkpoints": verified.checkpoints,
        "signed": verified.signed,
        "first_index": verified.first_index,
        "next_index": verified.next_index,
        "head": verified.head,
        "unsigned": verified.next_index - verified.signed,
        "sample_every": verified.sample_every,
        "torn_tail": verified.torn_tail,
    })
}

fn unsigned_note(verified: &Verified) -> String {
    let unsigned = match verified.next_index - verified.signed {
        0 => String::new(),
        n => format!("; {n} records after it are chained but not yet signed"),
    };
    let torn = if verified.torn_tail {
        "; the newest segment ends in a line being written when copied (not counted)"
    } else {
        ""
    };
    format!("{unsigned}{torn}")
}

fn sampled_note(verified: &Verified) -> String {
    match verified.sample_every {
        1 => String::new(),
        n => format!("; one decision in {n} was logged"),
    }
}
