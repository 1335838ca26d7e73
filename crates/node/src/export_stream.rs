//! `Ledger.Export` as a stream. The ledger file is written a chunk at a
//! time as the client reads it, so an export holds one chunk and one bundle
//! of it, never the whole file, however long the ledger and however many
//! clients export at once.

use std::sync::Arc;

use futures::Stream;
use stele_ledger::Hash;
use stele_ledger::export::Chunked;
use stele_proto::v1::ExportChunk;
use stele_store::{BundleSource, Machine, StoreError};
use tonic::Status;

/// Why an export stopped part way.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the store could not be read: {0}")]
    Store(#[from] StoreError),
    #[error("bundle {0} is missing from the store")]
    Missing(Hash),
}

/// The most ledger-file bytes in one `ExportChunk`.
pub const EXPORT_CHUNK_BYTES: usize = 256 * 1024;

/// Writes one machine's ledger, chunk by chunk.
pub struct ExportWriter {
    machine: Arc<Machine>,
    bundles: Arc<dyn BundleSource>,
    next_seq: u64,
    file: Chunked,
    finished: bool,
}

impl ExportWriter {
    pub fn new(
        machine: Arc<Machine>,
        bundles: Arc<dyn BundleSource>,
        chunk_bytes: usize,
    ) -> ExportWriter {
        ExportWriter {
            machine,
            bundles,
            next_seq: 1,
            file: Chunked::new(chunk_bytes),
            finished: false,
        }
    }

    /// The next chunk of the file, reading versions and bundles only as far
    /// as it needs; `None` once the file is out.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ExportError> {
        loop {
            if let Some(chunk) = self.file.take_full() {
                return Ok(Some(chunk));
            }
            if self.finished {
                return Ok(None);
            }
            let Some(version) = self.machine.version(self.next_seq) else {
                self.finished = true;
                let rest = self.file.finish();
                return Ok((!rest.is_empty()).then_some(rest));
            };
            let bundles = &self.bundles;
            self.file.push(version, |digest| {
                bundles.bundle(digest)?.ok_or(ExportError::Missing(*digest))
            })?;
            self.next_seq += 1;
        }
    }
}

/// The gRPC stream: each chunk is made when the client is ready for it,
/// off the async workers (bundles are read from the store).
pub fn stream(writer: ExportWriter) -> impl Stream<Item = Result<ExportChunk, Status>> + Send {
    futures::stream::try_unfold(writer, |mut writer| async move {
        let (writer, chunk) = stele_store::offload(move || {
            let chunk = writer.next_chunk();
            (writer, chunk)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(chunk
            .map_err(|e| Status::internal(e.to_string()))?
            .map(|data| (ExportChunk { data }, writer)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::sync::Mutex;

    use stele_ledger::{BundleFiles, Header, Kind, Proposal, SecretKey, TrustSet, Version, export};
    use stele_store::{Command, Request};

    use super::*;

    /// A store that counts the bundles asked of it.
    #[derive(Default)]
    struct Counted {
        bundles: HashMap<Hash, BundleFiles>,
        asked: Mutex<usize>,
    }

    impl BundleSource for Counted {
        fn bundle(&self, digest: &Hash) -> Result<Option<BundleFiles>, StoreError> {
            *self.asked.lock().unwrap() += 1;
            Ok(self.bundles.get(digest).cloned())
        }
    }

    fn bundle(n: usize) -> BundleFiles {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/zero-trust");
        let mut out = BundleFiles::default();
        for (path, content) in stele_policy::load_dir(&dir).unwrap().files() {
            let content = match path {
                // Each bundle is about 40 KB, so a chunk holds a few.
                "access.cedar" => format!("{content}\n// {n} {}\n", "x".repeat(40_000)),
                _ => content.to_string(),
            };
            out.insert(path.into(), content).unwrap();
        }
        out
    }

    fn ledger(len: usize) -> (Machine, Counted) {
        let key = SecretKey::from_seed([1; 32]);
        let mut machine = Machine::new(None);
        let mut store = Counted::default();
        for n in 1..=len {
            let files = bundle(n);
            let head = machine.head();
            let mut version = Version::unsigned(Header {
                seq: n as u64,
                parent_hash: head.map_or(Hash::ZERO, |h| h.hash),
                bundle_digest: files.digest(),
                kind: if n == 1 { Kind::Genesis } else { Kind::Update },
                message: format!("v{n}"),
                author: "t".into(),
                created_at: 0,
                trust: (n == 1).then(|| TrustSet::new(vec![key.public_key()], 1).unwrap()),
                expires_at: None,
                members: None,
            });
            version.sign(&key);
            store.bundles.insert(files.digest(), files.clone());
            let request = Request {
                time_ms: 0,
                command: Command::Propose {
                    proposal: Box::new(Proposal {
                        version,
                        bundle: files,
                    }),
                    commit_only: true,
                    pending_ttl_ms: 1_000,
                },
            };
            machine.apply(request, &mut Vec::new());
        }
        assert_eq!(machine.head().unwrap().seq, len as u64);
        (machine, store)
    }

    #[test]
    fn an_export_reads_bundles_only_as_far_as_the_chunk_it_makes() {
        let (machine, store) = ledger(12);
        let whole = export::encode_with(machine.versions(), |digest| {
            Ok::<_, ()>(store.bundles[digest].clone())
        })
        .unwrap();
        let store = Arc::new(store);
        let mut writer = ExportWriter::new(Arc::new(machine), store.clone(), 100_000);

        let first = writer.next_chunk().unwrap().unwrap();
        assert_eq!(first.len(), 100_000);
        let asked = *store.asked.lock().unwrap();
        assert!(asked <= 4, "the first chunk read {asked} of 12 bundles");

        let mut out = first;
        while let Some(chunk) = writer.next_chunk().unwrap() {
            assert!(chunk.len() <= 100_000);
            out.extend(chunk);
        }
        assert_eq!(*store.asked.lock().unwrap(), 12);
        assert_eq!(String::from_utf8(out).unwrap(), whole);
    }

    #[test]
    fn a_missing_bundle_ends_the_export_with_an_error() {
        let (machine, mut store) = ledger(2);
        store.bundles.clear();
        let mut writer = ExportWriter::new(Arc::new(machine), Arc::new(store), 1 << 20);
        let error = writer.next_chunk().unwrap_err();
        assert!(matches!(error, ExportError::Missing(_)), "{error}");
    }
}
