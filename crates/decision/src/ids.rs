//! Decision ids: `NODE-BOOT-N`, unique without coordination. The node id
//! and a per-boot prefix keep ids apart across nodes and restarts; the
//! counter, within a boot.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) struct DecisionIds {
    prefix: String,
    counter: AtomicU64,
}

impl DecisionIds {
    pub(crate) fn new(node_id: u64, boot_id: u32) -> DecisionIds {
        DecisionIds {
            prefix: format!("{node_id}-{boot_id:08x}-"),
            counter: AtomicU64::new(0),
        }
    }

    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 20);
        id.push_str(&self.prefix);
        write!(id, "{n}").expect("writing to a String cannot fail");
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_node_and_the_boot_and_count() {
        let ids = DecisionIds::new(3, 0xab);
        assert_eq!(ids.next(), "3-000000ab-0");
        assert_eq!(ids.next(), "3-000000ab-1");
    }
}
