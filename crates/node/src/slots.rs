//! A fixed number of slots where the newcomer is always let in and the
//! oldest holder is told to leave: for callers who prove nothing (a TLS
//! handshake in progress, an anonymous connection). An attacker who fills
//! the slots only ever evicts its own older connections, unless it opens as
//! many new ones as there are slots within the few milliseconds a real
//! handshake or probe takes.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

pub struct Slots {
    capacity: usize,
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    next: u64,
    /// Each holder's sender, oldest first: dropping one tells its holder.
    senders: BTreeMap<u64, oneshot::Sender<()>>,
}

/// One slot, given back when dropped.
pub struct Slot {
    id: u64,
    slots: Arc<Slots>,
    evicted: oneshot::Receiver<()>,
    /// Set once `evicted` has resolved: a oneshot receiver must not be
    /// polled again after that (tokio panics).
    gone: bool,
}

impl Slots {
    pub fn new(capacity: usize) -> Arc<Slots> {
        Arc::new(Slots {
            capacity: capacity.max(1),
            held: Mutex::default(),
        })
    }

    /// A slot for a newcomer. When every slot is held, the oldest holder
    /// is evicted; `true` says one was.
    pub fn take(self: &Arc<Slots>) -> (Slot, bool) {
        let (sender, evicted) = oneshot::channel();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let full = held.senders.len() >= self.capacity;
        if full {
            held.senders.pop_first();
        }
        let id = held.next;
        held.next += 1;
        held.senders.insert(id, sender);
        let slot = Slot {
            id,
            slots: self.clone(),
            evicted,
            gone: false,
        };
        (slot, full)
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.lock().unwrap().senders.len()
    }
}

impl Slot {
    /// Ready once a newcomer has evicted this holder.
    pub fn poll_evicted(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.gone {
            return Poll::Ready(());
        }
        let polled = std::pin::Pin::new(&mut self.evicted).poll(cx).map(|_| ());
        self.gone = polled.is_ready();
        polled
    }

    /// Resolves once a newcomer has evicted this holder.
    pub async fn evicted(&mut self) {
        std::future::poll_fn(|cx| self.poll_evicted(cx)).await
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.senders.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evicted(slot: &mut Slot) -> bool {
        slot.poll_evicted(&mut Context::from_waker(std::task::Waker::noop()))
            .is_ready()
    }

    #[test]
    fn a_newcomer_evicts_the_oldest_holder_only_when_every_slot_is_held() {
        let slots = Slots::new(2);
        let (mut first, full) = slots.take();
        assert!(!full);
        let (mut second, full) = slots.take();
        assert!(!full);
        assert!(!evicted(&mut first) && !evicted(&mut second));
        let (mut third, full) = slots.take();
        assert!(full);
        assert!(evicted(&mut first), "the oldest leaves");
        assert!(evicted(&mut first), "and stays evicted, asked again");
        assert!(!evicted(&mut second) && !evicted(&mut third));
        assert_eq!(slots.held(), 2);
        // A holder that leaves frees its slot: nobody is evicted next.
        drop(second);
        let (mut fourth, full) = slots.take();
        assert!(!full);
        assert!(!evicted(&mut third) && !evicted(&mut fourth));
        drop(first);
        assert_eq!(slots.held(), 2);
    }
}
