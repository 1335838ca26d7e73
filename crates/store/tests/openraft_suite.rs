//! openraft's own storage test suite, run against both stores: the log,
//! vote, membership, purge/truncate and snapshot semantics openraft relies on.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use stele_store::mem::{MemBackend, MemLogStore};
use stele_store::{PolicyStateMachine, Published, StorageError, TypeConfig};

struct Memory;

impl StoreBuilder<TypeConfig, MemLogStore, PolicyStateMachine<MemBackend>, ()> for Memory {
    async fn build(
        &self,
    ) -> Result<((), MemLogStore, PolicyStateMachine<MemBackend>), StorageError> {
        let machine =
            PolicyStateMachine::open(Arc::new(MemBackend::default()), Published::new(), None)
                .expect("an empty store opens");
        Ok(((), MemLogStore::default(), machine))
    }
}

#[test]
fn the_memory_store_passes_openraft_suite() {
    Suite::test_all(Memory).unwrap();
}

#[cfg(feature = "rocksdb")]
mod rocks {
    use super::*;
    use stele_store::rocks::{RocksBackend, RocksLogStore, open};

    struct Rocks;

    impl
        StoreBuilder<TypeConfig, RocksLogStore, PolicyStateMachine<RocksBackend>, tempfile::TempDir>
        for Rocks
    {
        async fn build(
            &self,
        ) -> Result<
            (
                tempfile::TempDir,
                RocksLogStore,
                PolicyStateMachine<RocksBackend>,
            ),
            StorageError,
        > {
            let dir = tempfile::tempdir().unwrap();
            let (log, backend) = open(dir.path()).unwrap();
            let machine = PolicyStateMachine::open(backend, Published::new(), None)
                .expect("an empty store opens");
            Ok((dir, log, machine))
        }
    }

    #[test]
    fn the_rocksdb_store_passes_openraft_suite() {
        Suite::test_all(Rocks).unwrap();
    }
}
