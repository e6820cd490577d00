//! What an async workload's runner counts of its futures' polls (kept
//! outside the async runner itself, which needs the `service` feature's
//! tokio: the measurement types do not), and the async defaults.

/// Defaults of async workloads, defined once.
pub mod defaults {
    /// Operations an async workload keeps in flight unless told otherwise.
    pub const CONCURRENCY: usize = 16;
    /// An async workload's runtime workers unless told otherwise.
    pub const RUNTIME_WORKERS: usize = 2;
    /// A poll this long or longer held a runtime worker: blocking in
    /// async (the threshold `profkit::service`'s layer uses too).
    pub const LONG_POLL: std::time::Duration = std::time::Duration::from_millis(10);
}

/// How the futures of an async workload's operations were polled: time
/// polled (busy on a runtime worker) against the operation's latency, the
/// rest of which it spent awaiting (idle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollTally {
    /// Operations whose futures were polled.
    pub ops: u64,
    /// Polls.
    pub polls: u64,
    /// Time inside `poll`, in nanoseconds.
    pub busy: u64,
    /// The longest single poll, in nanoseconds: a long one held a runtime
    /// worker (blocking in async).
    pub longest: u64,
    /// Polls of [`defaults::LONG_POLL`] or longer.
    pub long: u64,
}

impl PollTally {
    /// Adds another tally.
    pub fn add(&mut self, other: &PollTally) {
        self.ops += other.ops;
        self.polls += other.polls;
        self.busy += other.busy;
        self.longest = self.longest.max(other.longest);
        self.long += other.long;
    }
}
