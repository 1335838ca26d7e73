//! Writing the decision log off the decision path: decisions go into a
//! bounded queue; one thread chains them into records, writes them in
//! batches, rotates segments by size and signs checkpoints.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use stele_ledger::{Hash, PublicKey, SecretKey};
use stele_policy::{Decision, Outcome, Query};

use super::record::{Checkpoint, DecisionRecord, DroppedRecord, Line, record_hash, request_digest};
use super::segments::{segment_name, segments};

/// What the node does when the queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The decision waits for room: nothing is lost (the default).
    #[default]
    Block,
    /// The decision is answered and not logged; the log records how many
    /// were dropped.
    Drop,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// Log one decision in this many (1: every one).
    pub sample_every: u64,
    pub when_full: WhenFull,
    /// Log each request whole, not only its digest.
    pub full_requests: bool,
    pub queue: usize,
    pub segment_bytes: u64,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
}

impl LogConfig {
    pub fn new(dir: PathBuf) -> LogConfig {
        LogConfig {
            dir,
            sample_every: 1,
            when_full: WhenFull::Block,
            full_requests: false,
            queue: 65_536,
            segment_bytes: 64 << 20,
            checkpoint_every: 10_000,
            checkpoint_interval: Duration::from_secs(5),
        }
    }
}

/// A decision as the decision path hands it over: everything the record
/// needs, nothing computed yet.
pub struct Logged {
    pub decision_id: String,
    pub time_ms: u64,
    pub seq: u64,
    pub hash: Hash,
    pub query: Query,
    pub outcome: Outcome,
    pub reasons: Vec<String>,
    pub errors: Vec<String>,
}

/// The decision path's handle on the log.
pub struct DecisionLog {
    queue: SyncSender<Logged>,
    when_full: WhenFull,
    sample_every: u64,
    sampled: AtomicU64,
    /// Decisions in the queue.
    depth: Arc<AtomicU64>,
    /// Decisions dropped since the writer last recorded them.
    dropped: Arc<AtomicU64>,
    dropped_total: AtomicU64,
    stop: Arc<AtomicBool>,
    writer: Mutex<Option<JoinHandle<()>>>,
    key: PublicKey,
}

impl DecisionLog {
    /// Opens (or creates) the log in `config.dir`, resuming its chain, and
    /// starts the writer thread. `key` signs checkpoints.
    pub fn open(config: LogConfig, key: SecretKey, node: u64) -> Result<DecisionLog, String> {
        fs::create_dir_all(&config.dir)
            .map_err(|e| format!("decision log {}: {e}", config.dir.display()))?;
        let (next_index, prev) = resume(&config.dir)?;
        let (queue, receiver) = sync_channel(config.queue);
        let depth = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let public = key.public_key();
        let mut writer = Writer {
            config: config.clone(),
            node,
            key,
            receiver,
            depth: depth.clone(),
            dropped: dropped.clone(),
            stop: stop.clone(),
            next_index,
            prev,
            signed_count: None,
            file: None,
            file_bytes: 0,
            last_checkpoint: Instant::now(),
        };
        let handle = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("cannot start the decision log writer: {e}"))?;
        Ok(DecisionLog {
            queue,
            when_full: config.when_full,
            sample_every: config.sample_every.max(1),
            sampled: AtomicU64::new(0),
            depth,
            dropped,
            dropped_total: AtomicU64::new(0),
            stop,
            writer: Mutex::new(Some(handle)),
            key: public,
        })
    }

    /// The key that verifies this log's checkpoints.
    pub fn public_key(&self) -> PublicKey {
        self.key
    }

    /// Hands one decision to the writer (or drops it, counted, when the
    /// queue is full and the node was told to drop).
    pub fn record(&self, logged: Logged) {
        if self.sample_every > 1
            && !self
                .sampled
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.sample_every)
        {
            return;
        }
        self.depth.fetch_add(1, Ordering::Relaxed);
        let sent = match self.when_full {
            WhenFull::Block => self.queue.send(logged).map_err(|_| ()),
            WhenFull::Drop => match self.queue.try_send(logged) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => Err(()),
            },
        };
        if sent.is_err() {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn queue_depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Writes what is queued, signs a last checkpoint and stops the writer.
    pub fn close(&self) {
        self.stop.store(true, Ordering::Release);
        let handle = self.writer.lock().expect("log handle lock").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

/// The next index and the last record's hash of the log in `dir`. A torn
/// last line (a crash mid-write) is cut off; a last segment left without
/// any record is removed.
fn resume(dir: &Path) -> Result<(u64, Hash), String> {
    let mut all = segments(dir)?;
    let mut last_segment = true;
    while let Some((_, path)) = all.pop() {
        if let Some(resumed) = last_record(&path, last_segment)? {
            return Ok(resumed);
        }
        if last_segment {
            fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        last_segment = false;
    }
    Ok((0, Hash::ZERO))
}

/// The next index and hash after the segment's last record, if it has one.
fn last_record(path: &Path, cut_torn: bool) -> Result<Option<(u64, Hash)>, String> {
    let failed = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = OpenOptions::new()
        .read(true)
        .write(cut_torn)
        .open(path)
        .map_err(failed)?;
    let mut whole = 0u64;
    let mut last = None;
    let mut reader = BufReader::new(&mut file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(failed)?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        whole += read as u64;
        let text = &line[..line.len() - 1];
        let parsed: Line = serde_json::from_slice(text)
            .map_err(|e| format!("{}: a line is not a log record: {e}", path.display()))?;
        if let Some((index, _)) = parsed.chained() {
            last = Some((index + 1, record_hash(text)));
        }
    }
    drop(reader);
    if cut_torn && file.metadata().map_err(failed)?.len() > whole {
        tracing::warn!(
            "{}: cutting a torn last line (the node stopped mid-write)",
            path.display()
        );
        file.set_len(whole).map_err(failed)?;
        file.seek(SeekFrom::End(0)).map_err(failed)?;
    }
    Ok(last)
}

struct Writer {
    config: LogConfig,
    node: u64,
    key: SecretKey,
    receiver: Receiver<Logged>,
    depth: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    next_index: u64,
    prev: Hash,
    /// The count the last checkpoint signed.
    signed_count: Option<u64>,
    file: Option<BufWriter<File>>,
    file_bytes: u64,
    last_checkpoint: Instant,
}

/// Most decisions written between flushes.
const BATCH: usize = 4096;
/// How long the writer sleeps when the queue is empty.
const POLL: Duration = Duration::from_millis(5);

impl Writer {
    fn run(&mut self) {
        if let Err(error) = self.serve() {
            // The log cannot be written: say so loudly; decisions go on
            // (the queue fills, then blocks or drops as configured).
            tracing::error!("decision log stopped: {error}");
        }
    }

    fn serve(&mut self) -> Result<(), String> {
        loop {
            // Polled, not waited on: a sender never has to wake this thread
            // (a syscall on the decision path).
            let mut batch: Vec<Logged> = Vec::new();
            while batch.len() < BATCH {
                match self.receiver.try_recv() {
                    Ok(logged) => batch.push(logged),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.stop.store(true, Ordering::Release);
                        break;
                    }
                }
            }
            if batch.is_empty() && !self.stop.load(Ordering::Acquire) {
                std::thread::sleep(POLL);
            }
            self.depth.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            let dropped = self.dropped.swap(0, Ordering::AcqRel);
            if dropped > 0 {
                self.append_dropped(dropped)?;
            }
            for logged in batch {
                self.append_decision(logged)?;
                if self.next_index - self.signed_count.unwrap_or(0) >= self.config.checkpoint_every
                {
                    self.checkpoint()?;
                }
            }
            self.flush()?;
            let unsigned = self.next_index - self.signed_count.unwrap_or(0);
            let stopping = self.stop.load(Ordering::Acquire);
            let due = unsigned >= self.config.checkpoint_every
                || (unsigned > 0
                    && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval);
            if due || (stopping && self.signed_count != Some(self.next_index)) {
                self.checkpoint()?;
            }
            if stopping && self.depth.load(Ordering::Acquire) == 0 {
                return Ok(());
            }
        }
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    fn append_decision(&mut self, logged: Logged) -> Result<(), String> {
        let principal = logged.query.principal.to_string();
        let action = logged.query.action.to_string();
        let resource = logged.query.resource.to_string();
        let digest = request_digest(&principal, &action, &resource, &logged.query.context);
        let request = self.config.full_requests.then(|| {
            json!({
                "principal": principal,
                "action": action,
                "resource": resource,
                "context": logged.query.context,
            })
        });
        let record = DecisionRecord {
            index: self.next_index,
            decision_id: logged.decision_id,
            time_ms: logged.time_ms,
            node: self.node,
            seq: logged.seq,
            hash: logged.hash,
            request_digest: digest,
            request,
            decision: match logged.outcome {
                Outcome::Allow => "allow",
                Outcome::Deny => "deny",
            }
            .into(),
            reasons: logged.reasons,
            errors: logged.errors,
            prev: self.prev,
        };
        self.append_record(&Line::Decision(record))
    }

    fn append_dropped(&mut self, count: u64) -> Result<(), String> {
        let record = DroppedRecord {
            index: self.next_index,
            count,
            time_ms: Self::now_ms(),
            prev: self.prev,
        };
        self.append_record(&Line::Dropped(record))
    }

    fn append_record(&mut self, line: &Line) -> Result<(), String> {
        let text = line.encode();
        self.prev = record_hash(text.as_bytes());
        self.next_index += 1;
        self.write_line(&text, Some(self.next_index - 1))
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        let checkpoint = Checkpoint::signed(
            &self.key,
            self.next_index,
            self.prev,
            Self::now_ms(),
            self.config.sample_every.max(1),
        );
        self.write_line(&Line::Checkpoint(checkpoint).encode(), None)?;
        self.flush()?;
        if let Some(file) = &self.file {
            file.get_ref()
                .sync_data()
                .map_err(|e| format!("syncing the decision log: {e}"))?;
        }
        self.signed_count = Some(self.next_index);
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Appends a line. Before a record (`index`), starts a new segment
    /// when the current one is full: every segment starts with a record and
    /// is named after its index.
    fn write_line(&mut self, text: &str, index: Option<u64>) -> Result<(), String> {
        let full = self.file_bytes >= self.config.segment_bytes;
        if self.file.is_none() || (full && index.is_some()) {
            self.flush()?;
            self.open_segment(index.unwrap_or(self.next_index), full)?;
        }
        let file = self.file.as_mut().expect("a segment is open");
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|e| format!("writing the decision log: {e}"))?;
        self.file_bytes += text.len() as u64 + 1;
        Ok(())
    }

    fn open_segment(&mut self, index: u64, rotate: bool) -> Result<(), String> {
        let existing = segments(&self.config.dir)?.pop();
        let path = match existing {
            Some((_, path)) if !rotate => path,
            _ => self.config.dir.join(segment_name(index)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(BufWriter::with_capacity(1 << 20, file));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(file) = &mut self.file {
            file.flush()
                .map_err(|e| format!("writing the decision log: {e}"))?;
        }
        Ok(())
    }
}

/// What a decision hands the log.
pub fn logged(
    decision_id: &str,
    seq: u64,
    hash: Hash,
    query: Query,
    decision: &Decision,
) -> Logged {
    Logged {
        decision_id: decision_id.to_string(),
        time_ms: Writer::now_ms(),
        seq,
        hash,
        query,
        outcome: decision.decision,
        reasons: decision.reasons.clone(),
        errors: decision.errors.clone(),
    }
}
