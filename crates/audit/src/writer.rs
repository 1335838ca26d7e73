//! Writing the decision log off the decision path: decisions go into a
//! bounded queue; one thread chains them into records, writes them in
//! batches, rotates segments by size and signs checkpoints.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use stele_ledger::limits::json_len;
use stele_ledger::{Hash, PublicKey, SecretKey, WallClock};

use crate::error::{LogError, Unlogged};
use crate::record::{
    Checkpoint, DecisionRecord, DroppedRecord, Line, LoggedRequest, record_hash, request_digest,
    request_json,
};
use crate::segments::{segment_name, segments};

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

/// How a caller that must wait for room in the queue waits: it runs the
/// wait it is given. A caller on an async runtime's worker hands the
/// worker's other tasks away first (tokio's `block_in_place`); this crate
/// knows no runtime.
pub type Blocking = fn(&mut dyn FnMut());

/// Waits on the calling thread.
fn wait_here(wait: &mut dyn FnMut()) {
    wait()
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
    /// How a decision waits for room when the queue is full (`block`).
    pub blocking: Blocking,
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
            blocking: wait_here,
        }
    }
}

/// A decision to log, as the decision path has it.
pub struct ToLog<'a> {
    pub decision_id: &'a str,
    /// The version that made it.
    pub seq: u64,
    pub hash: Hash,
    pub request: &'a dyn LoggedRequest,
    pub allowed: bool,
    pub reasons: &'a [String],
    pub errors: &'a [String],
}

/// A decision as it waits in the queue: its digest taken, nothing that
/// grows with the request kept unless full requests are logged (and then
/// within [`MAX_LOGGED_REQUEST_BYTES`] and [`MAX_QUEUED_REQUEST_BYTES`]).
struct Logged {
    decision_id: String,
    time_ms: u64,
    seq: u64,
    hash: Hash,
    request_digest: Hash,
    /// The whole request and its size in bytes.
    request: Option<(Value, u64)>,
    request_omitted: Option<String>,
    allowed: bool,
    reasons: Vec<String>,
    errors: Vec<String>,
}

/// The most bytes of one request logged whole; a larger one is logged by
/// its digest, with a note saying so.
pub const MAX_LOGGED_REQUEST_BYTES: u64 = 64 * 1024;
/// The most bytes of whole requests waiting in the queue at once.
pub const MAX_QUEUED_REQUEST_BYTES: u64 = 64 << 20;
/// Set in [`Shared::depth`] once [`DecisionLog::close`] began: nothing is
/// queued after it.
const CLOSED: u64 = 1 << 63;

/// The last checkpoint the node signed: the record count it covers and the
/// hash of the last of those records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedHead {
    pub count: u64,
    pub head: Hash,
}

/// What the decision path and the writer thread share.
#[derive(Default)]
struct Shared {
    /// Decisions queued or being queued, with [`CLOSED`] set once the log
    /// is closing.
    depth: AtomicU64,
    /// Decisions dropped since the writer last recorded them.
    dropped: AtomicU64,
    /// Bytes of whole requests in the queue.
    request_bytes: AtomicU64,
    /// Why the writer stopped, when it failed.
    failure: OnceLock<String>,
    /// Decisions answered and then lost when the writer failed (taken from
    /// the queue or waiting in it, never written).
    lost: AtomicU64,
    signed: Mutex<Option<SignedHead>>,
}

/// The decision path's handle on the log.
pub struct DecisionLog {
    queue: SyncSender<Logged>,
    when_full: WhenFull,
    sample_every: u64,
    full_requests: bool,
    sampled: AtomicU64,
    shared: Arc<Shared>,
    dropped_total: AtomicU64,
    writer: Mutex<Option<JoinHandle<()>>>,
    key: PublicKey,
    clock: WallClock,
    blocking: Blocking,
    dir: PathBuf,
}

impl DecisionLog {
    /// Opens (or creates) the log in `config.dir`, resuming its chain, and
    /// starts the writer thread. `key` signs checkpoints; `clock` stamps
    /// records and checkpoints.
    pub fn open(
        config: LogConfig,
        key: SecretKey,
        node: u64,
        clock: WallClock,
    ) -> Result<DecisionLog, LogError> {
        fs::create_dir_all(&config.dir).map_err(LogError::io("decision log", &config.dir))?;
        let resumed = resume(&config.dir)?;
        let (queue, receiver) = sync_channel(config.queue);
        let shared = Arc::new(Shared {
            signed: Mutex::new(resumed.signed),
            ..Shared::default()
        });
        let public = key.public_key();
        let mut writer = Writer {
            config: config.clone(),
            node,
            key,
            receiver,
            shared: shared.clone(),
            next_index: resumed.next_index,
            prev: resumed.prev,
            signed_count: None,
            in_hand: 0,
            unflushed: 0,
            file: None,
            file_bytes: 0,
            last_checkpoint: Instant::now(),
            clock: clock.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run())
            .map_err(LogError::Spawn)?;
        Ok(DecisionLog {
            queue,
            when_full: config.when_full,
            sample_every: config.sample_every.max(1),
            full_requests: config.full_requests,
            sampled: AtomicU64::new(0),
            shared,
            dropped_total: AtomicU64::new(0),
            writer: Mutex::new(Some(handle)),
            key: public,
            clock,
            blocking: config.blocking,
            dir: config.dir,
        })
    }

    /// Where the log's segments are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key that verifies this log's checkpoints.
    pub fn public_key(&self) -> PublicKey {
        self.key
    }

    /// Hands one decision to the writer. When the log cannot take it (its
    /// writer failed, the node is stopping, or the queue is full and the
    /// node was told to drop), the decision is dropped and counted with
    /// `--decision-log-when-full drop`, and refused otherwise: a node that
    /// logs never answers a decision it did not log.
    pub fn record(&self, decision: ToLog<'_>) -> Result<(), Unlogged> {
        if self.sample_every > 1
            && !self
                .sampled
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(self.sample_every)
        {
            return Ok(());
        }
        if let Some(failure) = self.failure() {
            return self.unlogged(failure);
        }
        let logged = self.logged(decision);
        let request_bytes = logged.request.as_ref().map_or(0, |(_, bytes)| *bytes);
        let undo = |shared: &Shared| {
            shared.depth.fetch_sub(1, Ordering::AcqRel);
            shared
                .request_bytes
                .fetch_sub(request_bytes, Ordering::AcqRel);
        };
        // A decision the log does not take is counted (or refused) before
        // `depth` lets go of it, so the writer cannot finish in between.
        if self.shared.depth.fetch_add(1, Ordering::AcqRel) & CLOSED != 0 {
            let answer = self.unlogged(Unlogged::Closed);
            undo(&self.shared);
            return answer;
        }
        let sent = match self.queue.try_send(logged) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(logged)) if self.when_full == WhenFull::Block => {
                let mut logged = Some(logged);
                let mut sent = false;
                (self.blocking)(&mut || {
                    sent = logged.take().is_some_and(|l| self.queue.send(l).is_ok());
                });
                sent.then_some(()).ok_or(())
            }
            Err(TrySendError::Full(_)) => Err(()),
            Err(TrySendError::Disconnected(_)) => {
                let _ = (self.shared.failure).set("its writer stopped".into());
                Err(())
            }
        };
        if sent.is_err() {
            let why = self.failure().unwrap_or(Unlogged::Full);
            let answer = self.unlogged(why);
            undo(&self.shared);
            return answer;
        }
        Ok(())
    }

    /// Why the log cannot be written, once its writer has failed.
    fn failure(&self) -> Option<Unlogged> {
        self.shared
            .failure
            .get()
            .map(|why| Unlogged::Failed(why.clone()))
    }

    /// A decision the log did not take: answered and counted when the node
    /// drops, refused when it blocks.
    fn unlogged(&self, why: Unlogged) -> Result<(), Unlogged> {
        match self.when_full {
            WhenFull::Drop => {
                self.shared.dropped.fetch_add(1, Ordering::AcqRel);
                self.dropped_total.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            WhenFull::Block => Err(why),
        }
    }

    /// The queued form of a decision: its request digested, and kept whole
    /// only when full requests are logged and it fits the limits.
    fn logged(&self, decision: ToLog<'_>) -> Logged {
        let mut request = None;
        let mut request_omitted = None;
        if self.full_requests {
            let whole = request_json(decision.request);
            let bytes = json_len(&whole);
            if bytes > MAX_LOGGED_REQUEST_BYTES {
                request_omitted = Some(format!(
                    "{bytes} bytes, over the limit of {MAX_LOGGED_REQUEST_BYTES} for one logged request"
                ));
            } else if self.shared.request_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes
                > MAX_QUEUED_REQUEST_BYTES
            {
                self.shared.request_bytes.fetch_sub(bytes, Ordering::AcqRel);
                request_omitted = Some(format!(
                    "the log's queue held {MAX_QUEUED_REQUEST_BYTES} bytes of whole requests"
                ));
            } else {
                request = Some((whole, bytes));
            }
        }
        Logged {
            decision_id: decision.decision_id.to_string(),
            time_ms: (self.clock)(),
            seq: decision.seq,
            hash: decision.hash,
            request_digest: request_digest(decision.request),
            request,
            request_omitted,
            allowed: decision.allowed,
            reasons: decision.reasons.to_vec(),
            errors: decision.errors.to_vec(),
        }
    }

    /// Why decisions are refused because the log cannot be written (its
    /// writer failed and the node does not drop), when they are.
    pub fn refuses(&self) -> Option<Unlogged> {
        match self.when_full {
            WhenFull::Block => self.failure(),
            WhenFull::Drop => None,
        }
    }

    /// Why the writer stopped, when it failed.
    pub fn failed(&self) -> Option<&str> {
        self.shared.failure.get().map(String::as_str)
    }

    pub fn queue_depth(&self) -> u64 {
        self.shared.depth.load(Ordering::Relaxed) & !CLOSED
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Decisions answered and then lost because the writer failed.
    pub fn lost_total(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }

    /// The last checkpoint signed (or found when the log was opened).
    pub fn signed(&self) -> Option<SignedHead> {
        *self.shared.signed.lock().expect("signed head lock")
    }

    /// Stops taking decisions, writes what is queued (and a record of any
    /// dropped), signs a last checkpoint and stops the writer.
    pub fn close(&self) {
        self.shared.depth.fetch_or(CLOSED, Ordering::AcqRel);
        let handle = self.writer.lock().expect("log handle lock").take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        let late = self.shared.dropped.load(Ordering::Acquire);
        if late > 0 {
            tracing::warn!(
                "{late} decisions answered unlogged (--decision-log-when-full drop) are not in the log: they came after it closed or failed"
            );
        }
    }
}

/// Where an existing log ends: the next index, the last record's hash,
/// and the last checkpoint after it.
struct Resumed {
    next_index: u64,
    prev: Hash,
    signed: Option<SignedHead>,
}

/// Where the log in `dir` ends. A torn last line (a crash mid-write) is
/// cut off; a last segment left without any record is removed.
fn resume(dir: &Path) -> Result<Resumed, LogError> {
    let mut all = segments(dir)?;
    let mut last_segment = true;
    while let Some((_, path)) = all.pop() {
        if let Some(resumed) = last_record(&path, last_segment)? {
            return Ok(resumed);
        }
        if last_segment {
            fs::remove_file(&path).map_err(LogError::io("removing", &path))?;
        }
        last_segment = false;
    }
    Ok(Resumed {
        next_index: 0,
        prev: Hash::ZERO,
        signed: None,
    })
}

/// Where the segment's records end, if it has any.
fn last_record(path: &Path, cut_torn: bool) -> Result<Option<Resumed>, LogError> {
    let failed = |e: std::io::Error| LogError::io("reading", path)(e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(cut_torn)
        .open(path)
        .map_err(failed)?;
    let mut whole = 0u64;
    let mut last: Option<Resumed> = None;
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
        let parsed: Line = serde_json::from_slice(text).map_err(|e| LogError::NotARecord {
            path: path.to_path_buf(),
            why: e.to_string(),
        })?;
        match (parsed, &mut last) {
            (Line::Checkpoint(checkpoint), Some(resumed)) => {
                resumed.signed = Some(SignedHead {
                    count: checkpoint.count,
                    head: checkpoint.head_hash,
                });
            }
            (Line::Checkpoint(_), None) => {}
            (record, _) => {
                let (index, _) = record.chained().expect("a record");
                let signed = last.as_ref().and_then(|resumed| resumed.signed);
                let next_index = index.checked_add(1).ok_or_else(|| LogError::NotARecord {
                    path: path.to_path_buf(),
                    why: format!("record index {index} is the last a log can hold"),
                })?;
                last = Some(Resumed {
                    next_index,
                    prev: record_hash(text),
                    signed,
                });
            }
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
    shared: Arc<Shared>,
    next_index: u64,
    prev: Hash,
    /// The count the last checkpoint signed.
    signed_count: Option<u64>,
    /// Decisions taken from the queue and not yet flushed to the file
    /// (some may be, when the buffer filled: counted lost if the log
    /// fails, the safe side of the count).
    in_hand: u64,
    /// Of those, the ones appended to the buffer since the last flush.
    unflushed: u64,
    file: Option<BufWriter<File>>,
    file_bytes: u64,
    last_checkpoint: Instant,
    clock: WallClock,
}

/// Most decisions written between flushes.
const BATCH: usize = 4096;
/// How long the writer sleeps when the queue is empty.
const POLL: Duration = Duration::from_millis(5);

impl Writer {
    fn run(&mut self) {
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve()));
        let error = match served {
            Ok(Ok(())) => return,
            Ok(Err(error)) => error.to_string(),
            Err(panic) => format!(
                "its writer panicked: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            ),
        };
        // Said loudly, and kept: from now on the node refuses decisions
        // (or, told to drop, answers them unlogged and counts them).
        tracing::error!("the decision log cannot be written, decisions are refused: {error}");
        let _ = self.shared.failure.set(error);
        self.discard_until_closed();
    }

    /// After a failure: what was taken and not written is counted as lost,
    /// and what still arrives (a sender that looked before the failure) too,
    /// until the log is closed.
    fn discard_until_closed(&mut self) {
        let mut lost = std::mem::take(&mut self.in_hand);
        loop {
            let mut disconnected = false;
            loop {
                match self.receiver.try_recv() {
                    Ok(logged) => {
                        if let Some((_, bytes)) = logged.request {
                            self.shared.request_bytes.fetch_sub(bytes, Ordering::AcqRel);
                        }
                        self.shared.depth.fetch_sub(1, Ordering::AcqRel);
                        lost += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            if lost > 0 {
                tracing::error!(
                    "{lost} decisions answered before the decision log failed are not in it"
                );
                self.shared.lost.fetch_add(lost, Ordering::AcqRel);
                lost = 0;
            }
            if disconnected || self.shared.depth.load(Ordering::Acquire) == CLOSED {
                return;
            }
            std::thread::sleep(POLL);
        }
    }

    fn serve(&mut self) -> Result<(), LogError> {
        loop {
            let depth = self.shared.depth.load(Ordering::Acquire);
            let closing = depth & CLOSED != 0;
            // Closed with nothing queued or in flight, seen before the drops
            // are collected below: a drop is counted before it leaves
            // `depth`, so every drop of a decision taken before closing is
            // in that count. Drops after closing are only warned about, so
            // a stream of them cannot hold the node from stopping.
            let settled = depth == CLOSED;
            // Polled, not waited on: a sender never has to wake this thread
            // (a syscall on the decision path).
            let mut batch: Vec<Logged> = Vec::new();
            let mut disconnected = false;
            while batch.len() < BATCH {
                match self.receiver.try_recv() {
                    Ok(logged) => batch.push(logged),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            let idle = batch.is_empty();
            self.in_hand += batch.len() as u64;
            if idle && !closing && !disconnected {
                std::thread::sleep(POLL);
            }
            self.shared
                .depth
                .fetch_sub(batch.len() as u64, Ordering::AcqRel);
            let dropped = self.shared.dropped.swap(0, Ordering::AcqRel);
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
            debug_assert_eq!(self.in_hand, 0, "a flushed batch leaves nothing in hand");
            let finished = disconnected || settled;
            let unsigned = self.next_index - self.signed_count.unwrap_or(0);
            let due = unsigned >= self.config.checkpoint_every
                || (unsigned > 0
                    && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval);
            if due || (finished && self.signed_count != Some(self.next_index)) {
                self.checkpoint()?;
            }
            if finished {
                return Ok(());
            }
            if closing && idle {
                std::thread::yield_now();
            }
        }
    }

    fn append_decision(&mut self, logged: Logged) -> Result<(), LogError> {
        let request = logged.request.map(|(request, bytes)| {
            self.shared.request_bytes.fetch_sub(bytes, Ordering::AcqRel);
            request
        });
        let record = DecisionRecord {
            index: self.next_index,
            decision_id: logged.decision_id,
            time_ms: logged.time_ms,
            node: self.node,
            seq: logged.seq,
            hash: logged.hash,
            request_digest: logged.request_digest,
            request,
            request_omitted: logged.request_omitted,
            decision: if logged.allowed { "allow" } else { "deny" }.into(),
            reasons: logged.reasons,
            errors: logged.errors,
            prev: self.prev,
        };
        self.append_record(&Line::Decision(record))?;
        self.unflushed += 1;
        Ok(())
    }

    fn append_dropped(&mut self, count: u64) -> Result<(), LogError> {
        let record = DroppedRecord {
            index: self.next_index,
            count,
            time_ms: (self.clock)(),
            prev: self.prev,
        };
        self.append_record(&Line::Dropped(record))
    }
    fn append_record(&mut self, line: &Line) -> Result<(), LogError> {
        let index = self.next_index;
        let text = line.encode();
        self.prev = record_hash(text.as_bytes());
        self.next_index = index.checked_add(1).ok_or(LogError::Exhausted)?;
        self.write_line(&text, Some(index))
    }

    fn checkpoint(&mut self) -> Result<(), LogError> {
        let checkpoint = Checkpoint::signed(
            &self.key,
            self.next_index,
            self.prev,
            (self.clock)(),
            self.config.sample_every.max(1),
        );
        self.write_line(&Line::Checkpoint(checkpoint).encode(), None)?;
        self.flush()?;
        if let Some(file) = &self.file {
            file.get_ref().sync_data().map_err(LogError::Sync)?;
        }
        self.signed_count = Some(self.next_index);
        self.last_checkpoint = Instant::now();
        *self.shared.signed.lock().expect("signed head lock") = Some(SignedHead {
            count: self.next_index,
            head: self.prev,
        });
        Ok(())
    }

    /// Appends a line. Before a record (`index`), starts a new segment
    /// when the current one is full: every segment starts with a record and
    /// is named after its index.
    fn write_line(&mut self, text: &str, index: Option<u64>) -> Result<(), LogError> {
        let full = self.file_bytes >= self.config.segment_bytes;
        if self.file.is_none() || (full && index.is_some()) {
            self.flush()?;
            self.open_segment(index.unwrap_or(self.next_index), full)?;
        }
        let file = self.file.as_mut().expect("a segment is open");
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .map_err(LogError::Write)?;
        self.file_bytes += text.len() as u64 + 1;
        Ok(())
    }

    fn open_segment(&mut self, index: u64, rotate: bool) -> Result<(), LogError> {
        let existing = segments(&self.config.dir)?.pop();
        let path = match existing {
            Some((_, path)) if !rotate => path,
            _ => self.config.dir.join(segment_name(index)),
        };
        let created = !path.exists();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(LogError::io("opening the segment", &path))?;
        if created {
            // The new segment's name must outlive a power loss, with the
            // checkpoints it will hold.
            File::open(&self.config.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(LogError::io("syncing", &self.config.dir))?;
        }
        self.file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(BufWriter::with_capacity(1 << 20, file));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), LogError> {
        if let Some(file) = &mut self.file {
            file.flush().map_err(LogError::Write)?;
        }
        self.in_hand = self.in_hand.saturating_sub(self.unflushed);
        self.unflushed = 0;
        Ok(())
    }
}
