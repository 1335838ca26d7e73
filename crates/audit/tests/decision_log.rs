//! The decision log as written by a node, and verified offline: any change,
//! deletion, reordering or truncation of a record is found and named.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use stele_audit::{
    self as audit, Break, Broken, CheckpointFault, DecisionLog, DecisionRecord, Expected,
    LogConfig, LoggedRequest, Segment, SegmentFile, ToLog, Unlogged, Verified, WhenFull,
};
use stele_ledger::{Hash, PublicKey, SecretKey, WallClock};

fn config(dir: &Path) -> LogConfig {
    let mut config = LogConfig::new(dir.to_path_buf());
    config.checkpoint_every = 10;
    config.checkpoint_interval = Duration::from_secs(3600);
    config.segment_bytes = 4096;
    config
}

/// A request as a decision path hands it to the log: entities already in
/// Cedar's printed form.
struct Request {
    principal: String,
    action: String,
    resource: String,
    context: Value,
    described: Vec<(String, Map<String, Value>)>,
}

impl LoggedRequest for Request {
    fn principal(&self) -> &dyn Display {
        &self.principal
    }
    fn action(&self) -> &dyn Display {
        &self.action
    }
    fn resource(&self) -> &dyn Display {
        &self.resource
    }
    fn context(&self) -> &Value {
        &self.context
    }
    fn described(&self) -> usize {
        self.described.len()
    }
    fn entity(&self, n: usize) -> (&dyn Display, &Map<String, Value>) {
        let (uid, attributes) = &self.described[n];
        (uid, attributes)
    }
}

fn request(principal: &str, context: Value) -> Request {
    Request {
        principal: principal.into(),
        action: "Action::\"read\"".into(),
        resource: "Doc::\"d\"".into(),
        context,
        described: Vec::new(),
    }
}

/// The clock the log stamps with: a fixed time, so records are the same
/// from run to run.
fn clock() -> WallClock {
    Arc::new(|| 1_767_225_600_000)
}

fn open(config: LogConfig) -> DecisionLog {
    DecisionLog::open(config, key(), 1, clock()).unwrap()
}

/// Hands decision `n` to the log.
fn record(log: &DecisionLog, n: u64) -> Result<(), Unlogged> {
    let request = request(&format!("User::\"u{n}\""), json!({"ip": "10.0.0.1"}));
    let allowed = n.is_multiple_of(3);
    let reasons = if allowed { vec!["p1".into()] } else { vec![] };
    log.record(ToLog {
        decision_id: &format!("1-test-{n}"),
        seq: 1 + n / 20,
        hash: Hash::of_bytes(&(n / 20).to_be_bytes()),
        request: &request,
        allowed,
        reasons: &reasons,
        errors: &[],
    })
}

/// Verifies with the default expectations: a whole log, all of it signed.
fn verify(dir: &Path, key: &PublicKey) -> Result<Verified, Broken> {
    verify_expecting(dir, key, &Expected::default())
}

fn verify_expecting(dir: &Path, key: &PublicKey, expected: &Expected) -> Result<Verified, Broken> {
    audit::verify(dir, key, expected, |_| {})
}

/// The decision records of a log that verifies, in order.
fn verified_records(dir: &Path) -> Vec<DecisionRecord> {
    let mut records = Vec::new();
    audit::verify(dir, &key().public_key(), &Expected::default(), |r| {
        records.push(r.clone())
    })
    .unwrap();
    records
}

fn key() -> SecretKey {
    SecretKey::from_seed([7; 32])
}

/// A closed log of `count` decisions, in a new directory.
fn written(count: u64) -> (tempfile::TempDir, PathBuf) {
    let (root, dir, _) = written_with(count, |_| {});
    (root, dir)
}

/// A closed log of `count` decisions offered to a log configured by
/// `tune`, in a new directory, and the log itself.
fn written_with(
    count: u64,
    tune: impl FnOnce(&mut LogConfig),
) -> (tempfile::TempDir, PathBuf, DecisionLog) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let mut config = config(&dir);
    tune(&mut config);
    let log = open(config);
    for n in 0..count {
        record(&log, n).unwrap();
    }
    log.close();
    (root, dir, log)
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
    let verified = verify(&dir, &key().public_key()).unwrap();
    assert_eq!(verified.records, 95);
    assert_eq!(verified.decisions, 95);
    assert_eq!(verified.signed, 95, "close signs the last records");
    assert!(verified.checkpoints >= 10, "{verified:?}");
    assert!(verified.segments >= 3, "{verified:?}");
    let seen = verified_records(&dir);
    assert_eq!(seen.len(), 95);
    assert_eq!(seen[42].decision_id, "1-test-42");
}

#[test]
fn a_copy_without_its_oldest_segments_verifies_from_where_it_starts() {
    let (_root, dir) = written(95);
    let (oldest, _) = lines(&dir).into_iter().next().unwrap();
    std::fs::remove_file(oldest).unwrap();
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert!(
        matches!(broken.reason, Break::Pruned { first } if first > 0),
        "{broken}"
    );
    let pruned = Expected {
        allow_pruned: true,
        ..Expected::default()
    };
    let verified = verify_expecting(&dir, &key().public_key(), &pruned).unwrap();
    assert!(verified.first_index > 0, "{verified:?}");
    assert_eq!(verified.next_index, 95);
    assert_eq!(verified.records, 95 - verified.first_index);
    assert_eq!(verified.signed, 95);
}

#[test]
fn another_key_does_not_verify_it() {
    let (_root, dir) = written(12);
    let broken = verify(&dir, &SecretKey::from_seed([8; 32]).public_key()).unwrap_err();
    assert_eq!(
        broken.reason,
        Break::Checkpoint(CheckpointFault::Signature),
        "{broken}"
    );
}

#[test]
fn a_changed_record_is_named() {
    let (_root, dir) = written(40);
    tamper(&dir, 17, |lines, at| {
        lines[at] = lines[at].replace("\"decision\":\"deny\"", "\"decision\":\"allow\"");
    });
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert_eq!(broken.index, Some(17), "{broken}");
    assert_eq!(broken.decision_id.as_deref(), Some("1-test-17"));
    assert_eq!(broken.reason, Break::Changed { next: 18 }, "{broken}");
    assert!(broken.to_string().contains("changed"), "{broken}");
}

#[test]
fn a_changed_last_record_is_named_by_the_checkpoint_after_it() {
    let (_root, dir) = written(20);
    tamper(&dir, 19, |lines, at| {
        lines[at] = lines[at].replace("\"reasons\":[]", "\"reasons\":[\"p9\"]");
    });
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert_eq!(broken.index, Some(19), "{broken}");
    assert!(matches!(broken.reason, Break::ChangedBefore(_)), "{broken}");
}

#[test]
fn a_deleted_record_is_named() {
    let (_root, dir) = written(40);
    tamper(&dir, 23, |lines, at| {
        lines.remove(at);
    });
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    // Named where the gap shows: at record 24, or at the checkpoint that
    // follows record 22 and counts 24.
    assert!(
        matches!(
            broken.reason,
            Break::OutOfOrder { expected: 23, .. } | Break::MissingBefore { index: 23, .. }
        ),
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
    let broken = verify(&dir, &key().public_key()).unwrap_err();
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
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert_eq!(broken.reason, Break::TornLine, "{broken}");
    assert!(path.ends_with(&broken.file), "{broken}");
}

#[test]
fn a_copy_taken_mid_write_verifies_with_allow_unsigned_without_its_torn_line() {
    let (_root, dir) = written(40);
    let (path, lines) = lines(&dir).into_iter().last().unwrap();
    // The newest segment as a copy taken while its last record was being
    // written: everything after that record's first 20 bytes is missing.
    let record = lines
        .iter()
        .rposition(|line| line.contains(r#""kind":"decision""#))
        .unwrap();
    let mut text = lines[..record].join("\n");
    text.push('\n');
    text.push_str(&lines[record][..20]);
    std::fs::write(&path, text).unwrap();
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert_eq!(broken.reason, Break::TornLine, "{broken}");
    let expected = Expected {
        allow_unsigned: true,
        ..Expected::default()
    };
    let verified = verify_expecting(&dir, &key().public_key(), &expected).unwrap();
    assert!(verified.torn_tail);
    assert_eq!(verified.records, 39, "{verified:?}");
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
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert_eq!(
        broken.reason,
        Break::Checkpoint(CheckpointFault::Signature),
        "{broken}"
    );
    assert_eq!(broken.index, None, "the checkpoint is named, not a record");
}

#[test]
fn a_reopened_log_continues_its_chain_and_cuts_a_torn_line() {
    let (_root, dir) = written(15);
    // A crash mid-write leaves half a line.
    let (path, _) = lines(&dir).into_iter().last().unwrap();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"kind\":\"decision\",\"index\":15,\"deci");
    std::fs::write(&path, text).unwrap();
    let log = open(config(&dir));
    for n in 15..30 {
        record(&log, n).unwrap();
    }
    log.close();
    let verified = verify(&dir, &key().public_key()).unwrap();
    assert_eq!(verified.records, 30);
    assert_eq!(verified.signed, 30);
}

#[test]
fn sampling_is_stated_in_the_checkpoints() {
    let (_root, dir, _) = written_with(40, |config| {
        config.sample_every = 4;
        config.when_full = WhenFull::Drop;
    });
    let verified = verify(&dir, &key().public_key()).unwrap();
    assert_eq!(verified.sample_every, 4);
    assert_eq!(verified.decisions + verified.dropped, 10, "{verified:?}");
}

#[test]
fn a_copy_missing_its_newest_segment_fails_against_the_signed_count() {
    let (_root, dir) = written(95);
    let root_key = key().public_key();
    let whole = verify(&dir, &root_key).unwrap();
    // What the node published (cluster status, /metrics): its last
    // checkpoint.
    let signed = Expected {
        count: Some(whole.signed),
        head: Some(whole.head),
        allow_unsigned: true,
        ..Expected::default()
    };
    verify_expecting(&dir, &root_key, &signed).unwrap();
    let (newest, _) = lines(&dir).into_iter().last().unwrap();
    std::fs::remove_file(newest).unwrap();
    // The copy is consistent by itself: a shorter log...
    let lenient = Expected {
        allow_unsigned: true,
        ..Expected::default()
    };
    let shorter = verify_expecting(&dir, &root_key, &lenient).unwrap();
    assert!(shorter.next_index < 95, "{shorter:?}");
    // ...but not against what the node signed.
    let broken = verify_expecting(&dir, &root_key, &signed).unwrap_err();
    assert!(
        matches!(broken.reason, Break::CutFromEnd { next, count: 95 } if next < 95),
        "{broken}"
    );
    assert!(broken.to_string().contains("94"), "{broken}");
}

#[test]
fn a_rewritten_log_of_the_same_length_fails_against_the_signed_head() {
    let (_root, dir) = written(20);
    let whole = verify(&dir, &key().public_key()).unwrap();
    // The same number of records, other decisions: what someone holding
    // the key could write.
    let other = tempfile::tempdir().unwrap();
    let rewritten = other.path().join("decisions");
    let log = open(config(&rewritten));
    for n in 100..120 {
        record(&log, n).unwrap();
    }
    log.close();
    let signed = Expected {
        count: Some(whole.signed),
        head: Some(whole.head),
        ..Expected::default()
    };
    let broken = verify_expecting(&rewritten, &key().public_key(), &signed).unwrap_err();
    assert!(
        matches!(broken.reason, Break::Rewritten { count: 20, .. }),
        "{broken}"
    );
}

#[test]
fn records_after_the_last_checkpoint_are_refused_unless_allowed() {
    let (_root, dir) = written(20);
    // Remove the closing checkpoint: records 10..19 are chained, unsigned.
    let (path, mut last) = lines(&dir).into_iter().last().unwrap();
    assert!(last.last().unwrap().contains("\"kind\":\"checkpoint\""));
    last.pop();
    std::fs::write(&path, last.join("\n") + "\n").unwrap();
    let broken = verify(&dir, &key().public_key()).unwrap_err();
    assert_eq!(broken.index, Some(10), "{broken}");
    assert_eq!(broken.reason, Break::Unsigned { after: 9 }, "{broken}");
    let unsigned = Expected {
        allow_unsigned: true,
        ..Expected::default()
    };
    let verified = verify_expecting(&dir, &key().public_key(), &unsigned).unwrap();
    assert_eq!((verified.signed, verified.next_index), (10, 20));
}

#[test]
fn a_closed_log_takes_no_more_decisions() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let log = open(config(&dir));
    record(&log, 0).unwrap();
    log.close();
    // Blocking (the default): the decision is refused, not answered
    // unlogged.
    let refused = record(&log, 1).unwrap_err();
    assert_eq!(refused, Unlogged::Closed);
    assert_eq!(verify(&dir, &key().public_key()).unwrap().records, 1);
}

#[test]
fn closing_under_load_writes_every_decision_it_took() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let mut config = config(&dir);
    config.queue = 64;
    config.segment_bytes = 1 << 20;
    let log = std::sync::Arc::new(open(config));
    let writers: Vec<_> = (0..4u64)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..)
                    .map(|n| record(&log, t * 1_000_000 + n))
                    .take_while(Result::is_ok)
                    .count() as u64
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    log.close();
    let taken: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(taken > 0);
    let verified = verify(&dir, &key().public_key()).unwrap();
    assert_eq!(verified.decisions, taken, "{verified:?}");
    assert_eq!(verified.signed, verified.next_index);
}

#[test]
fn every_decision_is_logged_or_counted_as_dropped() {
    let (_root, dir, log) = written_with(2_000, |config| {
        config.queue = 4;
        config.when_full = WhenFull::Drop;
    });
    let verified = verify(&dir, &key().public_key()).unwrap();
    assert_eq!(
        verified.decisions + verified.dropped,
        2_000,
        "every decision answered is logged or counted: {verified:?}"
    );
    assert_eq!(log.dropped_total(), verified.dropped);
}

#[test]
fn a_writer_that_cannot_write_refuses_decisions() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let log = open(config(&dir));
    record(&log, 0).unwrap();
    // The directory becomes a file: the next segment cannot be created.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    let mut refused = None;
    for n in 1..100_000 {
        if let Err(unlogged) = record(&log, n) {
            refused = Some(unlogged);
            break;
        }
        if n % 100 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let refused = refused.expect("decisions are refused once the writer fails");
    assert!(matches!(refused, Unlogged::Failed(_)), "{refused:?}");
    assert!(log.failed().is_some());
    assert!(log.refuses().is_some());
    log.close();
    // The decision the writer held when it failed had been answered: it is
    // counted as lost, and nothing is left counted as queued.
    assert!(log.lost_total() >= 1, "{}", log.lost_total());
    assert_eq!(log.queue_depth(), 0);
}

#[test]
fn described_entities_are_in_the_digest_and_the_full_request() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let mut config = config(&dir);
    config.full_requests = true;
    let log = open(config);
    let described = |level: i64| {
        let mut request = request("User::\"u0\"", json!({"ip": "10.0.0.1"}));
        let attributes = json!({"level": level}).as_object().unwrap().clone();
        request.described = vec![("User::\"u0\"".into(), attributes)];
        request
    };
    for (n, level) in [(0, 1), (1, 9)] {
        log.record(ToLog {
            decision_id: &format!("d{n}"),
            seq: 1,
            hash: Hash::ZERO,
            request: &described(level),
            allowed: false,
            reasons: &[],
            errors: &[],
        })
        .unwrap();
    }
    log.close();
    let records = verified_records(&dir);
    assert_ne!(
        records[0].request_digest, records[1].request_digest,
        "the same query with other properties is another request"
    );
    assert_eq!(
        records[1].request_digest,
        audit::request_digest(&described(9))
    );
    let request = records[1].request.as_ref().unwrap();
    assert_eq!(request["entities"][0]["attrs"]["level"], 9);
    assert_eq!(request["entities"][0]["uid"], "User::\"u0\"");
}

#[test]
fn the_request_digest_is_the_documented_one() {
    // docs/AUDIT.md: SHA-256 over the tag, a NUL, then each part and a
    // newline.
    let mut request = request("User::\"alice\"", json!({"ip": "10.0.0.1"}));
    request.described = vec![(
        "User::\"alice\"".into(),
        json!({"level": 3}).as_object().unwrap().clone(),
    )];
    let body = "User::\"alice\"\nAction::\"read\"\nDoc::\"d\"\n{\"ip\":\"10.0.0.1\"}\nUser::\"alice\"\n{\"level\":3}\n";
    let mut tagged = b"stele/decision-log/request/v1\0".to_vec();
    tagged.extend_from_slice(body.as_bytes());
    assert_eq!(audit::request_digest(&request), Hash::of_bytes(&tagged));
}

#[test]
fn records_carry_the_time_of_the_clock_the_log_was_given() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(5_000));
    let clock: WallClock = {
        let ticks = ticks.clone();
        Arc::new(move || ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    };
    let log = DecisionLog::open(config(&dir), key(), 1, clock).unwrap();
    for n in 0..3 {
        record(&log, n).unwrap();
    }
    log.close();
    let times: Vec<u64> = verified_records(&dir).iter().map(|r| r.time_ms).collect();
    assert_eq!(times, vec![5_000, 5_001, 5_002]);
}

#[test]
fn an_oversized_request_is_logged_by_its_digest_and_said_so() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    let mut config = config(&dir);
    config.full_requests = true;
    let log = open(config);
    let big = "x".repeat(audit::MAX_LOGGED_REQUEST_BYTES as usize);
    let query = request("User::\"u\"", json!({ "blob": big }));
    log.record(ToLog {
        decision_id: "big",
        seq: 1,
        hash: Hash::ZERO,
        request: &query,
        allowed: false,
        reasons: &[],
        errors: &[],
    })
    .unwrap();
    log.close();
    let records = verified_records(&dir);
    assert!(records[0].request.is_none());
    let omitted = records[0].request_omitted.as_deref().unwrap();
    assert!(omitted.contains("over the limit"), "{omitted}");
    assert_eq!(records[0].request_digest, audit::request_digest(&query));
}

fn verify_in_memory(files: &[SegmentFile]) -> Result<Verified, Broken> {
    let segments: Vec<Segment<'_>> = files.iter().map(SegmentFile::as_segment).collect();
    audit::verify_segments(
        "copy",
        &segments,
        &key().public_key(),
        &Expected::default(),
        |_| {},
    )
}

#[test]
fn the_verifier_reads_bytes_as_the_files_hold_them() {
    let (_root, dir) = written(30);
    let segments = audit::read_segments(&dir).unwrap();
    assert_eq!(
        verify_in_memory(&segments).unwrap(),
        verify(&dir, &key().public_key()).unwrap()
    );
    let none: Vec<SegmentFile> = Vec::new();
    assert_eq!(
        verify_in_memory(&none).unwrap_err().reason,
        Break::NoSegments
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any one byte of a log changed to any other is found, wherever it
    /// is: in a record, a checkpoint, a separator.
    #[test]
    fn any_changed_byte_is_found(at in 0.0f64..1.0, replacement in 0u8..=255) {
        use std::sync::OnceLock;
        static LOG: OnceLock<Vec<SegmentFile>> = OnceLock::new();
        let log = LOG.get_or_init(|| {
            let (_root, dir) = written(25);
            audit::read_segments(&dir).unwrap()
        });
        let mut segments = log.clone();
        let total: usize = segments.iter().map(|s| s.bytes.len()).sum();
        let mut offset = ((total as f64) * at) as usize;
        let bytes = &mut segments
            .iter_mut()
            .find(|segment| {
                if offset < segment.bytes.len() {
                    return true;
                }
                offset -= segment.bytes.len();
                false
            })
            .unwrap()
            .bytes;
        proptest::prop_assume!(bytes[offset] != replacement);
        bytes[offset] = replacement;
        proptest::prop_assert!(
            verify_in_memory(&segments).is_err(),
            "byte {} changed to {:#04x} went unnoticed", offset, replacement
        );
    }
}

#[test]
fn a_record_at_the_last_index_is_refused_not_overflowed() {
    let (_root, dir) = written(1);
    let mut segments = audit::read_segments(&dir).unwrap();
    let text = String::from_utf8(segments[0].bytes.clone()).unwrap();
    segments[0].bytes = text
        .replacen("\"index\":0,", &format!("\"index\":{},", u64::MAX), 1)
        .into_bytes();
    segments[0].first_index = u64::MAX;
    let broken = verify_in_memory(&segments).unwrap_err();
    assert_eq!(broken.reason, Break::IndexOverflow, "{broken}");
}

#[test]
fn a_line_longer_than_any_record_is_refused_without_reading_it_whole() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("decisions");
    std::fs::create_dir_all(&dir).unwrap();
    let endless = vec![b'x'; audit::MAX_LINE_BYTES + 1];
    std::fs::write(dir.join(audit::segment_name(0)), &endless).unwrap();
    for allow_unsigned in [false, true] {
        let expected = Expected {
            allow_unsigned,
            ..Expected::default()
        };
        let broken = verify_expecting(&dir, &key().public_key(), &expected).unwrap_err();
        assert_eq!(broken.reason, Break::LineTooLong, "{broken}");
        assert_eq!(broken.line, 1);
    }
    let in_memory = [SegmentFile {
        first_index: 0,
        name: audit::segment_name(0),
        bytes: endless,
    }];
    assert_eq!(
        verify_in_memory(&in_memory).unwrap_err().reason,
        Break::LineTooLong,
        "the same verdict from bytes in memory"
    );
}
