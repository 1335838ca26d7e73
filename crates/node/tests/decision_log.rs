//! The decision log as written by a node, and verified offline: any change,
//! deletion, reordering or truncation of a record is found and named.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stele_ledger::{Hash, SecretKey};
use stele_node::decision_log::{DecisionLog, LogConfig, Logged, WhenFull, verify};
use stele_policy::{Outcome, Query};

fn config(dir: &Path) -> LogConfig {
    let mut config = LogConfig::new(dir.to_path_buf());
    config.checkpoint_every = 10;
    config.checkpoint_interval = Duration::from_secs(3600);
    config.segment_bytes = 4096;
    config
}

fn decision(n: u64) -> Logged {
    Logged {
        decision_id: format!("1-test-{n}"),
        time_ms: 1_000 + n,
        seq: 1 + n / 20,
        hash: Hash::of_bytes(&(n / 20).to_be_bytes()),
        query: Query::parse(
            &format!("User::\"u{n}\""),
            "Action::\"read\"",
            "Doc::\"d\"",
            Some(r#"{"ip": "10.0.0.1"}"#),
        )
        .unwrap(),
        outcome: if n.is_multiple_of(3) {
            Outcome::Allow
        } else {
            Outcome::Deny
        },
        reasons: if n.is_multiple_of(3) {
            vec!["p1".into()]
        } else {
            vec![]
        },
        errors: vec![],
    }
}

fn key() -> SecretKey {
    SecretKey::from_seed([7; 32])
}

/// A closed log of `count` decisions, in a new directory.
fn written(count: u64) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let log = DecisionLog::open(config(&dir), key(), 1).unwrap();
    for n in 0..count {
        log.record(decision(n));
    }
    log.close();
    (root, dir)
}

/// The log's lines, file by file.
fn lines(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text.lines().map(str::to_string).collect())
        })
        .collect()
}

/// Rewrites the file holding record `index` with `edit` applied to its
/// lines and the position of that record's line.
fn tamper(dir: &Path, index: u64, edit: impl FnOnce(&mut Vec<String>, usize)) {
    let needle = format!("\"index\":{index},");
    for (path, mut lines) in lines(dir) {
        if let Some(at) = lines.iter().position(|l| l.contains(&needle)) {
            edit(&mut lines, at);
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(path, text).unwrap();
            return;
        }
    }
    panic!("no record {index}");
}

#[test]
fn a_written_log_verifies_across_segments_and_checkpoints() {
    let (_root, dir) = written(95);
    let verified = verify(&dir, &key().public_key(), |_| {}).unwrap();
    assert_eq!(verified.records, 95);
    assert_eq!(verified.decisions, 95);
    assert_eq!(verified.signed, 95, "close signs the last records");
    assert!(verified.checkpoints >= 10, "{verified:?}");
    assert!(verified.segments >= 3, "{verified:?}");
    let mut seen = Vec::new();
    verify(&dir, &key().public_key(), |r| {
        seen.push(r.decision_id.clone())
    })
    .unwrap();
    assert_eq!(seen.len(), 95);
    assert_eq!(seen[42], "1-test-42");
}

#[test]
fn a_copy_without_its_oldest_segments_verifies_from_where_it_starts() {
    let (_root, dir) = written(95);
    let (oldest, _) = lines(&dir).into_iter().next().unwrap();
    std::fs::remove_file(oldest).unwrap();
    let verified = verify(&dir, &key().public_key(), |_| {}).unwrap();
    assert!(verified.first_index > 0, "{verified:?}");
    assert_eq!(verified.next_index, 95);
    assert_eq!(verified.records, 95 - verified.first_index);
    assert_eq!(verified.signed, 95);
}

#[test]
fn another_key_does_not_verify_it() {
    let (_root, dir) = written(12);
    let broken = verify(&dir, &SecretKey::from_seed([8; 32]).public_key(), |_| {}).unwrap_err();
    assert!(broken.reason.contains("signature"), "{broken}");
}

#[test]
fn a_changed_record_is_named() {
    let (_root, dir) = written(40);
    tamper(&dir, 17, |lines, at| {
        lines[at] = lines[at].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    });
    let broken = verify(&dir, &key().public_key(), |_| {}).unwrap_err();
    assert_eq!(broken.index, Some(17), "{broken}");
    assert_eq!(broken.decision_id.as_deref(), Some("1-test-17"));
    assert!(broken.reason.starts_with("changed"), "{broken}");
}

#[test]
fn a_changed_last_record_is_named_by_the_checkpoint_after_it() {
    let (_root, dir) = written(20);
    tamper(&dir, 19, |lines, at| {
        lines[at] = lines[at].replace("\"reasons\":[]", "\"reasons\":[\"p9\"]");
    });
    let broken = verify(&dir, &key().public_key(), |_| {}).unwrap_err();
    assert_eq!(broken.index, Some(19), "{broken}");
}

#[test]
fn a_deleted_record_is_named() {
    let (_root, dir) = written(40);
    tamper(&dir, 23, |lines, at| {
        lines.remove(at);
    });
    let broken = verify(&dir, &key().public_key(), |_| {}).unwrap_err();
    // Named where the gap shows: at record 24, or at the checkpoint that
    // follows record 22 and counts 24.
    assert!(
        broken.reason.contains("expected record 23")
            || broken.reason.contains("record 23 is missing"),
        "{broken}"
    );
}

#[test]
fn reordered_records_are_named() {
    let (_root, dir) = written(40);
    tamper(&dir, 31, |lines, at| {
        // Record 32 is the next line unless a checkpoint sits between.
        let next = (at + 1..lines.len())
            .find(|&i| lines[i].contains("\"index\":32,"))
            .expect("record 32 in the same segment");
        lines.swap(at, next);
    });
    let broken = verify(&dir, &key().public_key(), |_| {}).unwrap_err();
    assert_eq!(broken.index, Some(32), "{broken}");
}

#[test]
fn a_truncated_record_is_named() {
    let (_root, dir) = written(40);
    let (path, lines) = lines(&dir).into_iter().nth(1).unwrap();
    let mut text = lines[..lines.len() - 1].join("\n");
    text.push('\n');
    text.push_str(&lines[lines.len() - 1][..20]);
    std::fs::write(&path, text).unwrap();
    let broken = verify(&dir, &key().public_key(), |_| {}).unwrap_err();
    assert!(broken.reason.contains("cut short"), "{broken}");
    assert!(path.ends_with(&broken.file), "{broken}");
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let (_root, dir) = written(20);
    let (path, lines) = lines(&dir).into_iter().last().unwrap();
    let forged: Vec<String> = lines
        .into_iter()
        .map(|l| l.replace("\"count\":20,", "\"count\":19,"))
        .collect();
    std::fs::write(&path, forged.join("\n") + "\n").unwrap();
    let broken = verify(&dir, &key().public_key(), |_| {}).unwrap_err();
    assert!(broken.reason.contains("signature"), "{broken}");
}

#[test]
fn a_reopened_log_continues_its_chain_and_cuts_a_torn_line() {
    let (_root, dir) = written(15);
    // A crash mid-write leaves half a line.
    let (path, _) = lines(&dir).into_iter().last().unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"kind\":\"decision\",\"index\":15,\"deci");
    std::fs::write(&path, text).unwrap();
    let log = DecisionLog::open(config(&dir), key(), 1).unwrap();
    for n in 15..30 {
        log.record(decision(n));
    }
    log.close();
    let verified = verify(&dir, &key().public_key(), |_| {}).unwrap();
    assert_eq!(verified.records, 30);
    assert_eq!(verified.signed, 30);
}

#[test]
fn sampling_is_stated_in_the_checkpoints() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let mut config = config(&dir);
    config.sample_every = 4;
    config.when_full = WhenFull::Drop;
    let log = DecisionLog::open(config, key(), 1).unwrap();
    for n in 0..40 {
        log.record(decision(n));
    }
    log.close();
    let verified = verify(&dir, &key().public_key(), |_| {}).unwrap();
    assert_eq!(verified.sample_every, 4);
    assert_eq!(verified.decisions + verified.dropped, 10, "{verified:?}");
}
