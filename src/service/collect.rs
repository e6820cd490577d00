//! What the tracing layer gathers, and who reads it: the requests in
//! flight (one per root span), the span each thread is running (so a SQL
//! statement or a CPU sample can be charged to its request), and the open
//! [`Recording`]s that fold finished requests into per-endpoint figures.
//!
//! Nothing is gathered unless someone reads: with no recording and no CPU
//! profile open, every callback of the layer returns after one atomic load.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};

use crate::analyze::sql::normalize;
/// CLOCK_MONOTONIC in nanoseconds: the clock the CPU samplers stamp their
/// samples with.
pub(super) use crate::profile::itimer_stack::now_ns;
use crate::profile::itimer_stack::set_tag;

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Readers: open recordings plus CPU profiles being taken.
static CONSUMERS: AtomicUsize = AtomicUsize::new(0);

/// Whether anyone reads what the layer gathers.
#[inline]
pub(super) fn active() -> bool {
    CONSUMERS.load(Ordering::Relaxed) > 0
}

/// Counts one reader while alive.
pub(super) struct Consumer(());

impl Consumer {
    pub(super) fn new() -> Consumer {
        CONSUMERS.fetch_add(1, Ordering::AcqRel);
        Consumer(())
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        CONSUMERS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A label id meaning "no request" (the sampler's "no tag": a label is
/// the tag of the samples taken while its span runs).
pub(super) const NO_LABEL: u32 = crate::profile::itimer_stack::NO_TAG;

/// (endpoint, span path) pairs, interned: a CPU sample carries a `u32`.
#[derive(Default)]
struct Labels {
    ids: HashMap<(Arc<str>, Arc<str>), u32>,
    list: Vec<(Arc<str>, Arc<str>)>,
}

static LABELS: LazyLock<RwLock<Labels>> = LazyLock::new(Default::default);

/// This thread's copy of the labels it used: a span of a known route
/// takes no global lock and allocates nothing.
#[derive(Default)]
struct Local {
    /// `endpoint\0path` → label.
    seen: HashMap<Box<str>, u32>,
    key: String,
    /// Endpoint and path of each label seen here.
    by_label: Vec<Option<(Arc<str>, Arc<str>)>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::default();
}

impl Local {
    /// The label of `self.key` (`endpoint\0path`, `split` the endpoint's length).
    fn label_of_key(&mut self, split: usize) -> u32 {
        if let Some(&id) = self.seen.get(self.key.as_str()) {
            return id;
        }
        let e: Arc<str> = self.key[..split].into();
        let p: Arc<str> = self.key[split + 1..].into();
        let id = intern(&e, &p);
        self.seen.insert(self.key.as_str().into(), id);
        if self.by_label.len() <= id as usize {
            self.by_label.resize(id as usize + 1, None);
        }
        self.by_label[id as usize] = Some((e, p));
        id
    }
}

/// The label of a root span of `endpoint` named `name`, and the endpoint
/// when `want` it.
pub(super) fn root_label(endpoint: &str, name: &str, want: bool) -> (u32, Option<Arc<str>>) {
    let found = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        l.key.clear();
        l.key.push_str(endpoint);
        l.key.push('\0');
        l.key.push_str(name);
        let id = l.label_of_key(endpoint.len());
        let e = want
            .then(|| l.by_label[id as usize].as_ref().map(|x| x.0.clone()))
            .flatten();
        (id, e)
    });
    match found {
        Ok((id, e)) if e.is_some() || !want => (id, e),
        _ => {
            let e: Arc<str> = endpoint.into();
            (intern(&e, name), Some(e))
        }
    }
}

/// The label of a span named `name` under a span labelled `parent`.
pub(super) fn child_label(parent: u32, name: &str) -> u32 {
    let found = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        let l = &mut *l;
        let (e, p) = match l.by_label.get(parent as usize).and_then(Option::as_ref) {
            Some(x) => x.clone(),
            None => label(parent)?,
        };
        l.key.clear();
        l.key.push_str(&e);
        l.key.push('\0');
        l.key.push_str(&p);
        l.key.push(';');
        l.key.push_str(name);
        Some(l.label_of_key(e.len()))
    });
    match found {
        Ok(Some(id)) => id,
        _ => {
            let (e, p) = label(parent).unwrap_or_else(|| ("?".into(), "?".into()));
            intern(&e, &format!("{p};{name}"))
        }
    }
}

/// The id of (endpoint, span path).
pub(super) fn intern(endpoint: &Arc<str>, path: &str) -> u32 {
    let key = (endpoint.clone(), Arc::<str>::from(path));
    if let Some(&id) = LABELS.read().ids.get(&key) {
        return id;
    }
    let mut l = LABELS.write();
    if let Some(&id) = l.ids.get(&key) {
        return id;
    }
    let id = l.list.len() as u32;
    l.list.push(key.clone());
    l.ids.insert(key, id);
    id
}

/// The (endpoint, span path) of a label id.
pub(super) fn label(id: u32) -> Option<(Arc<str>, Arc<str>)> {
    LABELS.read().list.get(id as usize).cloned()
}

/// One poll that held its thread longer than the blocking threshold.
#[derive(Clone, Copy, Debug)]
pub(super) struct LongPoll {
    pub(super) tid: i32,
    pub(super) start: u64,
    pub(super) end: u64,
}

/// Runs of one normalised statement.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct StmtAcc {
    pub(super) count: u64,
    pub(super) nanos: u64,
    pub(super) rows: u64,
}

/// What one request did so far, beyond its busy time and polls.
#[derive(Default)]
pub(super) struct RequestData {
    pub(super) long_polls: Vec<LongPoll>,
    pub(super) statements: HashMap<String, StmtAcc>,
}

/// One request: a root span and everything under it.
pub(super) struct Request {
    pub(super) endpoint: Arc<str>,
    pub(super) started: u64,
    /// Time polled, ns, and polls: atomics, so a poll takes no lock.
    busy: AtomicU64,
    polls: AtomicU64,
    pub(super) data: Mutex<RequestData>,
}

impl Request {
    pub(super) fn new(endpoint: Arc<str>) -> Request {
        Request {
            endpoint,
            started: now_ns(),
            busy: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            data: Mutex::new(RequestData::default()),
        }
    }
}

/// A span entered on this thread.
struct Entered {
    span: u64,
    label: u32,
    /// `None` for a span opened while no recording was (a CPU profile
    /// needs only the label).
    request: Option<Arc<Request>>,
    /// The request's root span entered with nothing else on the thread: a
    /// poll of the request's future by a runtime worker.
    poll: bool,
    at: u64,
}

/// Span entries and exits of one thread while a CPU profile is taken by a
/// sampler that reads no tags (the per-thread `cpu-clock`, where the
/// process timer is not available): from each time on, the label running
/// (or [`NO_LABEL`]). With the process timer's sampler the samples carry
/// the label themselves ([`set_tag`]) and nothing is logged.
struct ThreadLog {
    tid: i32,
    generation: u64,
    transitions: Vec<(u64, u32)>,
}

/// Most transitions kept per thread and profile (16 bytes each); later
/// samples of that thread go unlabelled.
const MAX_TRANSITIONS: usize = 2_000_000;

static LOGS: Mutex<Vec<Arc<Mutex<ThreadLog>>>> = Mutex::new(Vec::new());
static CPU_ON: AtomicBool = AtomicBool::new(false);
static CPU_GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static STACK: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
    static LOG: Arc<Mutex<ThreadLog>> = {
        let log = Arc::new(Mutex::new(ThreadLog {
            tid: gettid(),
            generation: 0,
            transitions: Vec::new(),
        }));
        LOGS.lock().push(log.clone());
        log
    };
}

fn log_transition(at: u64, label: u32) {
    let generation = CPU_GENERATION.load(Ordering::Acquire);
    let _ = LOG.try_with(|l| {
        let mut l = l.lock();
        if l.generation != generation {
            l.transitions.clear();
            l.generation = generation;
        }
        if l.transitions.len() < MAX_TRANSITIONS {
            l.transitions.push((at, label));
        }
    });
}

/// A span of `request` labelled `label` is entered on this thread.
pub(super) fn enter(span: u64, label: u32, request: Option<Arc<Request>>, root: bool) {
    // Polls are timed for recordings (busy time, long polls) and the
    // transition log; a CPU profile alone needs only the tag.
    let log = CPU_ON.load(Ordering::Relaxed);
    let at = if log || (request.is_some() && OPEN_RECORDINGS.load(Ordering::Relaxed) > 0) {
        now_ns()
    } else {
        0
    };
    set_tag(label);
    let _ = STACK.try_with(|s| {
        let mut s = s.borrow_mut();
        let poll = root && s.is_empty();
        s.push(Entered {
            span,
            label,
            request,
            poll,
            at,
        });
    });
    crate::alloc::sampler::set_thread_label(heap_label(label));
    if log {
        log_transition(at, label);
    }
}

/// A label as the heap sampler keeps it: 0 for none, the id + 1 otherwise
/// ([`heap_label_id`] undoes it).
fn heap_label(label: u32) -> u32 {
    label.wrapping_add(1)
}

/// The label id of a heap sampler's label (`None` for none).
pub(super) fn heap_label_id(heap_label: u32) -> Option<u32> {
    heap_label.checked_sub(1)
}

/// A span is exited on this thread. A span exited on another thread than
/// it was entered on (or never seen entered) is ignored.
pub(super) fn exit(span: u64, threshold: u64) {
    let Ok(Some((e, top))) = STACK.try_with(|s| {
        let mut s = s.borrow_mut();
        let i = s.iter().rposition(|e| e.span == span)?;
        let e = s.remove(i);
        Some((e, s.last().map_or(NO_LABEL, |t| t.label)))
    }) else {
        return;
    };
    set_tag(top);
    crate::alloc::sampler::set_thread_label(heap_label(top));
    let log = CPU_ON.load(Ordering::Relaxed);
    // A poll entered before anyone timed it (at 0) is not measured.
    let request = e
        .request
        .as_ref()
        .filter(|_| e.poll && e.at != 0 && OPEN_RECORDINGS.load(Ordering::Relaxed) > 0);
    if request.is_none() && !log {
        return;
    }
    let at = now_ns();
    if let Some(request) = request {
        let length = at.saturating_sub(e.at);
        request.busy.fetch_add(length, Ordering::Relaxed);
        request.polls.fetch_add(1, Ordering::Relaxed);
        if length >= threshold {
            request.data.lock().long_polls.push(LongPoll {
                tid: gettid(),
                start: e.at,
                end: at,
            });
        }
    }
    if log {
        log_transition(at, top);
    }
}

/// The request whose span is running on this thread, if any.
pub(super) fn current_request() -> Option<Arc<Request>> {
    STACK
        .try_with(|s| s.borrow().last().and_then(|e| e.request.clone()))
        .ok()
        .flatten()
}

/// Starts labelling CPU samples: returns what keeps the layer active.
/// `log` when the sampler reads no tags and transitions must be logged.
pub(super) fn cpu_begin(log: bool) -> Consumer {
    CPU_GENERATION.fetch_add(1, Ordering::AcqRel);
    CPU_ON.store(log, Ordering::Release);
    Consumer::new()
}

/// Stops labelling; the transitions of every thread, by thread id.
pub(super) fn cpu_end(consumer: Consumer) -> HashMap<i32, Vec<(u64, u32)>> {
    CPU_ON.store(false, Ordering::Release);
    drop(consumer);
    let generation = CPU_GENERATION.load(Ordering::Acquire);
    let logs: Vec<_> = LOGS.lock().clone();
    let mut out = HashMap::new();
    for log in logs {
        let mut l = log.lock();
        if l.generation == generation {
            let mut t = std::mem::take(&mut l.transitions);
            t.sort_by_key(|x| x.0);
            out.insert(l.tid, t);
        }
    }
    out
}

/// The label running at `time` according to a thread's sorted transitions.
pub(super) fn label_at(transitions: &[(u64, u32)], time: u64) -> u32 {
    match transitions.partition_point(|t| t.0 <= time) {
        0 => NO_LABEL,
        i => transitions[i - 1].1,
    }
}

/// Per endpoint, what finished requests did during a recording.
pub(super) struct EndpointAcc {
    pub(super) requests: u64,
    pub(super) latency: Histogram<u64>,
    pub(super) busy: u64,
    pub(super) idle: u64,
    pub(super) polls: u64,
    pub(super) long_polls: Vec<LongPoll>,
    pub(super) statements: HashMap<String, StmtAcc>,
    /// Most runs of each statement in one request.
    pub(super) most_per_request: HashMap<String, u64>,
}

impl EndpointAcc {
    fn new() -> EndpointAcc {
        EndpointAcc {
            requests: 0,
            latency: Histogram::new_with_bounds(1, 3_600_000_000_000, 3)
                .expect("valid histogram bounds"),
            busy: 0,
            idle: 0,
            polls: 0,
            long_polls: Vec::new(),
            statements: HashMap::new(),
            most_per_request: HashMap::new(),
        }
    }
}

/// What a recording gathered.
pub(super) struct RecData {
    pub(super) endpoints: HashMap<Arc<str>, EndpointAcc>,
    /// Statements run outside any request.
    pub(super) outside: HashMap<String, StmtAcc>,
    /// SQL events without the fields they should carry.
    pub(super) skipped_events: u64,
}

static RECORDINGS: Mutex<Vec<Weak<Mutex<RecData>>>> = Mutex::new(Vec::new());
/// Recordings open: with none (a CPU profile only), a request is not
/// followed (its spans carry only their label) and takes no lock.
static OPEN_RECORDINGS: AtomicUsize = AtomicUsize::new(0);

/// Whether a recording is open (spans opened now follow their request).
pub(super) fn recording_open() -> bool {
    OPEN_RECORDINGS.load(Ordering::Acquire) > 0
}

/// Counts one open recording while alive.
struct Open(());

/// Held while the count of open recordings changes and tracing's interest
/// cache is rebuilt after it, so the last rebuild sees the last count.
static OPENING: Mutex<()> = Mutex::new(());

impl Open {
    fn new() -> Open {
        let _serial = OPENING.lock();
        if OPEN_RECORDINGS.fetch_add(1, Ordering::AcqRel) == 0 {
            // sqlx's query events turn on (the layer's filter).
            tracing::callsite::rebuild_interest_cache();
        }
        Open(())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let _serial = OPENING.lock();
        if OPEN_RECORDINGS.fetch_sub(1, Ordering::AcqRel) == 1 {
            // sqlx's query events turn off again.
            tracing::callsite::rebuild_interest_cache();
        }
    }
}

/// An open recording: from [`super::record`] until [`Recording::finish`],
/// every request that ends is folded into its endpoint's figures.
pub struct Recording {
    pub(super) data: Arc<Mutex<RecData>>,
    pub(super) started: Instant,
    _open: Open,
    _consumer: Consumer,
}

/// Starts a recording of the layer's per-endpoint figures (requests,
/// latency, busy and idle time, polls, SQL statements). Any number may be
/// open at once; each sees the requests that end while it is open.
pub fn record() -> Recording {
    let data = Arc::new(Mutex::new(RecData {
        endpoints: HashMap::new(),
        outside: HashMap::new(),
        skipped_events: 0,
    }));
    let mut all = RECORDINGS.lock();
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&data));
    drop(all);
    Recording {
        data,
        started: Instant::now(),
        _open: Open::new(),
        _consumer: Consumer::new(),
    }
}

/// Runs `f` on every open recording (under the list's lock: no list
/// copied per request).
fn each_recording(mut f: impl FnMut(&mut RecData)) {
    for r in RECORDINGS.lock().iter().filter_map(Weak::upgrade) {
        f(&mut r.lock());
    }
}

/// A request's root span closed: fold it into every open recording.
pub(super) fn request_done(request: &Request) {
    if OPEN_RECORDINGS.load(Ordering::Acquire) == 0 {
        return;
    }
    let end = now_ns();
    let life = end.saturating_sub(request.started);
    let d = std::mem::take(&mut *request.data.lock());
    let busy = request.busy.load(Ordering::Relaxed);
    let polls = request.polls.load(Ordering::Relaxed);
    each_recording(|r| {
        let e = r
            .endpoints
            .entry(request.endpoint.clone())
            .or_insert_with(EndpointAcc::new);
        e.requests += 1;
        e.latency.saturating_record(life.max(1));
        e.busy += busy;
        e.idle += life.saturating_sub(busy);
        e.polls += polls;
        e.long_polls.extend_from_slice(&d.long_polls);
        for (sql, s) in &d.statements {
            let t = e.statements.entry(sql.clone()).or_default();
            t.count += s.count;
            t.nanos += s.nanos;
            t.rows += s.rows;
            let most = e.most_per_request.entry(sql.clone()).or_default();
            *most = (*most).max(s.count);
        }
    });
}

/// A statement ran (its text as given: literals are stripped here), for
/// `request` or outside any.
pub(super) fn statement(request: Option<&Request>, sql: &str, nanos: u64, rows: u64) {
    let shape = normalize(sql);
    let add = |t: &mut StmtAcc| {
        t.count += 1;
        t.nanos += nanos;
        t.rows += rows;
    };
    match request {
        Some(r) => add(r.data.lock().statements.entry(shape).or_default()),
        None if OPEN_RECORDINGS.load(Ordering::Acquire) == 0 => {}
        None => each_recording(|r| add(r.outside.entry(shape.clone()).or_default())),
    }
}

/// A SQL event without the fields it should carry.
pub(super) fn skipped_event() {
    if OPEN_RECORDINGS.load(Ordering::Acquire) == 0 {
        return;
    }
    each_recording(|r| r.skipped_events += 1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_transitions() {
        let t = [(10, 1), (20, NO_LABEL), (30, 2)];
        assert_eq!(label_at(&t, 5), NO_LABEL);
        assert_eq!(label_at(&t, 10), 1);
        assert_eq!(label_at(&t, 19), 1);
        assert_eq!(label_at(&t, 25), NO_LABEL);
        assert_eq!(label_at(&t, 99), 2);
        assert_eq!(label_at(&[], 99), NO_LABEL);
    }
}
