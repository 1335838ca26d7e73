//! Wall-clock time as the caller supplies it. Nothing in this crate reads a
//! clock; the crates above take their time from one clock the process
//! injects (the system's in a node, the simulated one in a simulation), so
//! that a seed reproduces everything a run stamps.

use std::sync::Arc;

/// Unix milliseconds, now.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;
