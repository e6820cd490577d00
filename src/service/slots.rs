//! The layer's own per-span slots: a fixed table (one per layer, as span
//! ids are one registry's) indexed by a hash of the span id, so a span entry (once per poll) finds its label, whether it is
//! a request's root and its request with a few loads — no registry lookup,
//! no lock, no allocation per span. tracing's per-span extensions (a boxed
//! value in a map behind a lock, looked up through the registry) cost the
//! layer half of its active path (BENCHMARKS.md, "fourth pass").
//!
//! A span whose two candidate slots are both taken (more spans alive than
//! the table holds well) falls back to an extension; [`fallbacks`] says
//! whether any such span is alive, so the common path never looks there.

use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::collect::Request;

/// Slots in the table (24 bytes each, zeroed memory until used).
const BITS: u32 = 14;
const SLOTS: usize = 1 << BITS;
/// An id no span has: a slot being written.
const RESERVED: u64 = u64::MAX;
const ROOT: u64 = 1 << 32;

struct Slot {
    /// The span's id, 0 when free, [`RESERVED`] while being written.
    id: AtomicU64,
    /// The label (low 32 bits) and [`ROOT`].
    word: AtomicU64,
    /// The request followed (one strong count held by the slot), or null.
    request: AtomicPtr<Request>,
}

/// The table of one layer.
pub(super) struct Slots {
    table: Box<[Slot]>,
    /// Spans alive whose data sits in an extension instead.
    fallbacks: AtomicUsize,
}

/// What the layer keeps of a span.
pub(super) struct SpanData {
    pub(super) label: u32,
    pub(super) root: bool,
    pub(super) request: Option<Arc<Request>>,
}

impl Slots {
    pub(super) fn new() -> Slots {
        let table = (0..SLOTS)
            .map(|_| Slot {
                id: AtomicU64::new(0),
                word: AtomicU64::new(0),
                request: AtomicPtr::new(std::ptr::null_mut()),
            })
            .collect();
        Slots {
            table,
            fallbacks: AtomicUsize::new(0),
        }
    }

    fn candidates(&self, id: u64) -> [&Slot; 2] {
        let i = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BITS)) as usize;
        [&self.table[i], &self.table[(i + 1) & (SLOTS - 1)]]
    }

    /// Keeps `data` for span `id`; gives it back when both its slots are taken.
    pub(super) fn insert(&self, id: u64, data: SpanData) -> Result<(), SpanData> {
        if id == RESERVED || id == 0 {
            return Err(data);
        }
        for s in self.candidates(id) {
            if s.id
                .compare_exchange(0, RESERVED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                let word = data.label as u64 | if data.root { ROOT } else { 0 };
                s.word.store(word, Ordering::Relaxed);
                let req = data
                    .request
                    .map_or(std::ptr::null_mut(), |r| Arc::into_raw(r).cast_mut());
                s.request.store(req, Ordering::Relaxed);
                s.id.store(id, Ordering::Release);
                return Ok(());
            }
        }
        Err(data)
    }

    fn find(&self, id: u64) -> Option<&Slot> {
        self.candidates(id)
            .into_iter()
            .find(|s| s.id.load(Ordering::Acquire) == id)
    }

    /// The label and root flag of live span `id`, and its request when `want`
    /// it (a strong count taken).
    ///
    /// Only for a span that cannot close meanwhile (one being entered, or
    /// the parent of a span being created): its slot is then not reused.
    pub(super) fn get(&self, id: u64, want: bool) -> Option<SpanData> {
        let s = self.find(id)?;
        let word = s.word.load(Ordering::Relaxed);
        let request = if want {
            let p = s.request.load(Ordering::Relaxed);
            (!p.is_null()).then(|| {
                // SAFETY: the slot holds a strong count of `p` until the span
                // closes, which cannot happen while it is being entered.
                unsafe {
                    Arc::increment_strong_count(p);
                    Arc::from_raw(p)
                }
            })
        } else {
            None
        };
        Some(SpanData {
            label: word as u32,
            root: word & ROOT != 0,
            request,
        })
    }

    /// Frees the slot of span `id` (closing), returning what it held.
    pub(super) fn remove(&self, id: u64) -> Option<SpanData> {
        let s = self.find(id)?;
        let word = s.word.load(Ordering::Relaxed);
        let p = s.request.swap(std::ptr::null_mut(), Ordering::Relaxed);
        s.id.store(0, Ordering::Release);
        Some(SpanData {
            label: word as u32,
            root: word & ROOT != 0,
            // SAFETY: the strong count the slot held, taken back once.
            request: (!p.is_null()).then(|| unsafe { Arc::from_raw(p) }),
        })
    }

    /// Whether any span alive keeps its data in an extension.
    #[inline]
    pub(super) fn fallbacks(&self) -> bool {
        self.fallbacks.load(Ordering::Relaxed) > 0
    }

    /// One more (or one fewer) span in an extension.
    pub(super) fn count_fallback(&self, added: bool) {
        if added {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        } else {
            self.fallbacks.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        for s in self.table.iter() {
            let p = s.request.swap(std::ptr::null_mut(), Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: the strong count the slot held.
                drop(unsafe { Arc::from_raw(p) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(label: u32) -> SpanData {
        SpanData {
            label,
            root: label % 2 == 0,
            request: None,
        }
    }

    #[test]
    fn slots_keep_reuse_and_overflow() {
        let t = Slots::new();
        let base = 1 << 40;
        assert!(t.insert(base, data(4)).is_ok());
        let d = t.get(base, true).unwrap();
        assert_eq!((d.label, d.root, d.request.is_none()), (4, true, true));
        assert!(t.get(base + 1, false).is_none());
        // Ids that hash to the same place: two fit, the third overflows.
        let same: Vec<u64> = (base + 1..base + 2_000_000)
            .filter(|&i| std::ptr::eq(t.candidates(i)[0], t.candidates(base)[0]))
            .take(2)
            .collect();
        assert_eq!(same.len(), 2);
        assert!(t.insert(same[0], data(5)).is_ok());
        let overflow = t.insert(same[1], data(6));
        assert_eq!(overflow.map_err(|d| d.label).unwrap_err(), 6);
        assert_eq!(t.get(same[0], false).unwrap().label, 5);
        assert_eq!(t.remove(base).unwrap().label, 4);
        assert!(t.get(base, false).is_none());
        assert!(t.remove(same[1]).is_none());
        assert_eq!(t.remove(same[0]).unwrap().label, 5);
        // A request's strong count goes with the slot.
        let r = Arc::new(Request::new("GET /x".into()));
        assert!(t
            .insert(
                base,
                SpanData {
                    request: Some(r.clone()),
                    ..data(8)
                }
            )
            .is_ok());
        assert_eq!(Arc::strong_count(&r), 2);
        let got = t.get(base, true).unwrap().request.unwrap();
        assert_eq!(Arc::strong_count(&r), 3);
        drop(got);
        drop(t.remove(base));
        assert_eq!(Arc::strong_count(&r), 1);
    }
}
