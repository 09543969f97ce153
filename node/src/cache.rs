//! The header/payload cache of a shard (DESIGN §6): two LRUs in front of
//! the reads of the shard's store — serving peers' `Get` and `GetRange`,
//! and the machine reading spilled payloads back at apply time. The cache
//! is owned by its shard (one core; `RefCell`, no mutex). An anchor's
//! record is its signed header followed by its payload; the two parts are
//! cached apart because headers are small and asked for often, payloads
//! large.
//!
//! Memory is bounded by the capacities, counted in entries: an entry holds
//! one part's bytes plus the LRU's node (about 64 bytes) — a signed header
//! is about 300 bytes at k = 4 (its parent list grows with k: 1.6 KiB at
//! k = 21), a payload of 256 transfers tens of KiB. The seed's
//! `header_cap = 10000` is at most about 17 MiB at k = 21.
//!
//! Every store read is timed with the stopwatch the driver hands in (none:
//! counted with zero duration) into histograms of exactly the seed's
//! buckets ([`STORE_READ_BUCKETS_S`]).

use std::cell::RefCell;
use std::rc::Rc;

use lru::LruCache;

use crate::metrics::SecondsHistogram;
use crate::store::ShardStore;

/// The seed's buckets of `pc_node_store_{header,payload}_read_seconds`
/// (`+Inf` is implied).
pub const STORE_READ_BUCKETS_S: &[f64] = &[0.001, 0.005, 0.01, 0.05, 0.1, 0.5];

/// A monotonic clock in nanoseconds, handed in by the driver (never used
/// for a decision: only to time reads and signature checks).
pub type Stopwatch = Rc<dyn Fn() -> u64>;

/// Capacities of a shard's cache, in entries (0: that part is off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheCaps {
    /// Headers held.
    pub header_cap: usize,
    /// Payloads held.
    pub payload_cap: usize,
}

/// Lookups so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CacheCounts {
    /// Header lookups the cache answered.
    pub header_hits: u64,
    /// Header lookups that read the store.
    pub header_misses: u64,
    /// Payload lookups the cache answered.
    pub payload_hits: u64,
    /// Payload lookups that read the store.
    pub payload_misses: u64,
}

/// Store reads and their latency, per part.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreReads {
    /// Header reads.
    pub header: SecondsHistogram,
    /// Payload reads.
    pub payload: SecondsHistogram,
}

impl Default for StoreReads {
    fn default() -> StoreReads {
        StoreReads {
            header: SecondsHistogram::new(STORE_READ_BUCKETS_S),
            payload: SecondsHistogram::new(STORE_READ_BUCKETS_S),
        }
    }
}

/// Bytes a cached header may average (a full parent list at k = 64 is
/// under 3 KiB): the header cache holds at most `header_cap` times this.
pub const HEADER_BUDGET_BYTES: usize = 4 << 10;
/// Bytes a cached payload may average: the payload cache holds at most
/// `payload_cap` times this (a peer's anchors of up to 1 MiB cannot make
/// it hold `payload_cap` of them).
pub const PAYLOAD_BUDGET_BYTES: usize = 64 << 10;

/// One part's LRU, bounded in entries and in bytes.
struct Lru {
    entries: LruCache<u64, Rc<[u8]>>,
    cap: usize,
    bytes: usize,
    budget: usize,
}

impl Lru {
    /// `None` when `cap` is 0 (off).
    fn new(cap: usize, per_entry: usize) -> Option<Lru> {
        (cap > 0).then(|| Lru {
            entries: LruCache::unbounded(),
            cap,
            bytes: 0,
            budget: cap.saturating_mul(per_entry),
        })
    }

    fn get(&mut self, seq: u64) -> Option<Rc<[u8]>> {
        self.entries.get(&seq).cloned()
    }

    /// Keeps `bytes` unless they alone exceed the budget; evicts the least
    /// recently used until both bounds hold.
    fn put(&mut self, seq: u64, bytes: Rc<[u8]>) {
        if bytes.len() > self.budget {
            return;
        }
        self.bytes += bytes.len();
        if let Some(old) = self.entries.put(seq, bytes) {
            self.bytes -= old.len();
        }
        while self.entries.len() > self.cap || self.bytes > self.budget {
            match self.entries.pop_lru() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }
}

struct Inner {
    headers: Option<Lru>,
    payloads: Option<Lru>,
    counts: CacheCounts,
    reads: StoreReads,
}

/// A shard's store behind its cache.
pub struct CachedStore {
    store: Rc<RefCell<dyn ShardStore>>,
    inner: RefCell<Inner>,
    stopwatch: RefCell<Option<Stopwatch>>,
}

/// The parts one lookup returns.
type Found = (Option<Rc<[u8]>>, Option<Rc<[u8]>>);

impl CachedStore {
    /// `store` behind a cache of `caps`.
    pub fn new(store: Rc<RefCell<dyn ShardStore>>, caps: CacheCaps) -> CachedStore {
        CachedStore {
            store,
            inner: RefCell::new(Inner {
                headers: Lru::new(caps.header_cap, HEADER_BUDGET_BYTES),
                payloads: Lru::new(caps.payload_cap, PAYLOAD_BUDGET_BYTES),
                counts: CacheCounts::default(),
                reads: StoreReads::default(),
            }),
            stopwatch: RefCell::new(None),
        }
    }

    /// Sets the capacities (drops what was cached).
    pub fn set_caps(&self, caps: CacheCaps) {
        let mut inner = self.inner.borrow_mut();
        inner.headers = Lru::new(caps.header_cap, HEADER_BUDGET_BYTES);
        inner.payloads = Lru::new(caps.payload_cap, PAYLOAD_BUDGET_BYTES);
    }

    /// Times store reads with `stopwatch` from now on.
    pub fn set_stopwatch(&self, stopwatch: Stopwatch) {
        *self.stopwatch.borrow_mut() = Some(stopwatch);
    }

    /// The store behind the cache.
    pub fn store(&self) -> &Rc<RefCell<dyn ShardStore>> {
        &self.store
    }

    /// The signed header of the anchor record `seq`.
    pub fn header(&self, seq: u64) -> Option<Rc<[u8]>> {
        self.parts(seq, true, false)?.0
    }

    /// The payload of the anchor record `seq`.
    pub fn payload(&self, seq: u64) -> Option<Rc<[u8]>> {
        self.parts(seq, false, true)?.1
    }

    /// The whole anchor of record `seq` (its record body): header, then
    /// payload; one store read for what the cache does not hold.
    pub fn anchor(&self, seq: u64) -> Option<Vec<u8>> {
        let (header, payload) = self.parts(seq, true, true)?;
        let (header, payload) = (header?, payload?);
        let mut body = Vec::with_capacity(header.len() + payload.len());
        body.extend_from_slice(&header);
        body.extend_from_slice(&payload);
        Some(body)
    }

    /// Lookups so far.
    pub fn counts(&self) -> CacheCounts {
        self.inner.borrow().counts
    }

    /// Store reads so far.
    pub fn reads(&self) -> StoreReads {
        self.inner.borrow().reads.clone()
    }

    /// The parts asked for: from the cache where it holds them, the rest
    /// in one store read (timed into the histogram of each part it read).
    fn parts(&self, seq: u64, want_header: bool, want_payload: bool) -> Option<Found> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let counts = &mut inner.counts;
        let mut header = want_header
            .then(|| {
                lookup(
                    &mut inner.headers,
                    seq,
                    &mut counts.header_hits,
                    &mut counts.header_misses,
                )
            })
            .flatten();
        let mut payload = want_payload
            .then(|| {
                lookup(
                    &mut inner.payloads,
                    seq,
                    &mut counts.payload_hits,
                    &mut counts.payload_misses,
                )
            })
            .flatten();
        let (read_header, read_payload) = (
            want_header && header.is_none(),
            want_payload && payload.is_none(),
        );
        if !read_header && !read_payload {
            return Some((header, payload));
        }
        let stopwatch = self.stopwatch.borrow();
        let started = stopwatch.as_ref().map(|clock| clock());
        let read = self
            .store
            .borrow()
            .anchor_parts(seq, read_header, read_payload);
        let elapsed_ns = match (stopwatch.as_ref(), started) {
            (Some(clock), Some(started)) => clock().saturating_sub(started),
            _ => 0,
        };
        if read_header {
            inner.reads.header.observe_ns(elapsed_ns);
        }
        if read_payload {
            inner.reads.payload.observe_ns(elapsed_ns);
        }
        let (read_h, read_p) = read?;
        if read_header {
            header = Some(keep(&mut inner.headers, seq, read_h?));
        }
        if read_payload {
            payload = Some(keep(&mut inner.payloads, seq, read_p?));
        }
        Some((header, payload))
    }
}

/// A part from `cache`, counting the hit or the miss.
fn lookup(cache: &mut Option<Lru>, seq: u64, hits: &mut u64, misses: &mut u64) -> Option<Rc<[u8]>> {
    let found = cache.as_mut().and_then(|c| c.get(seq));
    match found {
        Some(_) => *hits += 1,
        None => *misses += 1,
    }
    found
}

/// A part read from the store, kept in `cache` (if it is on).
fn keep(cache: &mut Option<Lru>, seq: u64, bytes: Vec<u8>) -> Rc<[u8]> {
    let bytes: Rc<[u8]> = bytes.into();
    if let Some(cache) = cache.as_mut() {
        cache.put(seq, bytes.clone());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use pc_codec::LogRecordKind;

    fn store_with_anchors(n: u64) -> (Rc<RefCell<dyn ShardStore>>, Vec<Vec<u8>>) {
        let mut store = MemStore::default();
        let mut bodies = Vec::new();
        for seq in 0..n {
            let body = crate::store::tests::anchor_body(seq as u8);
            store.append(LogRecordKind::AnchorAccepted, &body).unwrap();
            bodies.push(body);
        }
        (Rc::new(RefCell::new(store)), bodies)
    }

    #[test]
    fn hits_after_the_first_read_within_the_capacity_and_none_when_off() {
        let (store, bodies) = store_with_anchors(8);
        let cache = CachedStore::new(
            store.clone(),
            CacheCaps {
                header_cap: 8,
                payload_cap: 8,
            },
        );
        for _ in 0..3 {
            for (seq, body) in bodies.iter().enumerate() {
                assert_eq!(cache.anchor(seq as u64).as_ref(), Some(body));
            }
        }
        let counts = cache.counts();
        assert_eq!((counts.header_misses, counts.header_hits), (8, 16));
        assert_eq!((counts.payload_misses, counts.payload_hits), (8, 16));
        assert_eq!(cache.reads().payload.count(), 8, "one store read per miss");
        assert_eq!(cache.reads().header.count(), 8, "the same read");

        let off = CachedStore::new(store, CacheCaps::default());
        for _ in 0..3 {
            for seq in 0..8 {
                assert!(off.payload(seq).is_some());
            }
        }
        assert_eq!(off.counts().payload_hits, 0);
        assert_eq!(off.reads().payload.count(), 24);
        assert_eq!(off.anchor(99), None, "no such record");
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used() {
        let (store, _) = store_with_anchors(3);
        let cache = CachedStore::new(
            store,
            CacheCaps {
                header_cap: 2,
                payload_cap: 0,
            },
        );
        cache.header(0);
        cache.header(1);
        cache.header(0); // 0 is now the most recent
        cache.header(2); // evicts 1
        cache.header(0);
        cache.header(1);
        let counts = cache.counts();
        assert_eq!((counts.header_hits, counts.header_misses), (2, 4));
    }

    #[test]
    fn the_payload_cache_holds_at_most_its_byte_budget() {
        let (store, bodies) = store_with_anchors(4);
        let cache = CachedStore::new(
            store,
            CacheCaps {
                header_cap: 4,
                payload_cap: 4,
            },
        );
        let small = {
            let mut inner = cache.inner.borrow_mut();
            let payloads = inner.payloads.as_mut().unwrap();
            payloads.budget = 2 * payloads_len(&bodies[0]);
            payloads.budget
        };
        for seq in 0..4 {
            cache.payload(seq);
        }
        let inner = cache.inner.borrow();
        let payloads = inner.payloads.as_ref().unwrap();
        assert!(payloads.bytes <= small, "{} > {small}", payloads.bytes);
        assert_eq!(payloads.entries.len(), 2, "the two most recent fit");
    }

    fn payloads_len(body: &[u8]) -> usize {
        body.len() - crate::store::header_len(body).unwrap()
    }

    #[test]
    fn store_reads_are_timed_with_the_stopwatch_into_the_seed_buckets() {
        let (store, _) = store_with_anchors(2);
        let cache = CachedStore::new(store, CacheCaps::default());
        let ticks = Rc::new(std::cell::Cell::new(0u64));
        let clock = ticks.clone();
        // Each read of the clock advances it by 3 ms.
        cache.set_stopwatch(Rc::new(move || {
            clock.set(clock.get() + 3_000_000);
            clock.get()
        }));
        cache.payload(0);
        cache.payload(1);
        let reads = cache.reads().payload;
        assert_eq!(reads.bounds(), STORE_READ_BUCKETS_S);
        assert_eq!(reads.count(), 2);
        assert_eq!(reads.cumulative(), vec![0, 2, 2, 2, 2, 2, 2]);
        assert!((reads.sum_seconds() - 0.006).abs() < 1e-9);
    }
}
