//! A question as the decision log records it, and how the decision path
//! waits when the log's queue is full.

use std::fmt::Display;

use serde_json::{Map, Value};
use stele_audit::LoggedRequest;
use stele_policy::{Described, Query};

/// A query and the entities it describes, as the log digests them.
pub(crate) struct Asked<'a> {
    pub query: &'a Query,
    pub described: &'a [Described],
}

impl LoggedRequest for Asked<'_> {
    fn principal(&self) -> &dyn Display {
        self.query.principal()
    }
    fn action(&self) -> &dyn Display {
        self.query.action()
    }
    fn resource(&self) -> &dyn Display {
        self.query.resource()
    }
    fn context(&self) -> &Value {
        self.query.context()
    }
    fn described(&self) -> usize {
        self.described.len()
    }
    fn entity(&self, n: usize) -> (&dyn Display, &Map<String, Value>) {
        let entity = &self.described[n];
        (entity.uid(), &entity.attributes)
    }
}

/// Waits for room in the decision log without stalling the runtime's other
/// tasks: on a multi-threaded runtime's worker, the worker hands its tasks
/// to another thread first. The log's [`stele_audit::Blocking`] for a node.
pub fn block_in_place(wait: &mut dyn FnMut()) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}
