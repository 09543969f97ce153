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
use std::num::NonZeroUsize;
use std::rc::Rc;

use lru::LruCache;

use crate::metrics::SecondsHistogram;
use crate::store::{AnchorPart, ShardStore};

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

struct Inner {
    headers: Option<LruCache<u64, Rc<[u8]>>>,
    payloads: Option<LruCache<u64, Rc<[u8]>>>,
    counts: CacheCounts,
    reads: StoreReads,
}

fn lru(cap: usize) -> Option<LruCache<u64, Rc<[u8]>>> {
    NonZeroUsize::new(cap).map(LruCache::new)
}

/// A shard's store behind its cache.
pub struct CachedStore {
    store: Rc<RefCell<dyn ShardStore>>,
    inner: RefCell<Inner>,
    stopwatch: RefCell<Option<Stopwatch>>,
}

impl CachedStore {
    /// `store` behind a cache of `caps`.
    pub fn new(store: Rc<RefCell<dyn ShardStore>>, caps: CacheCaps) -> CachedStore {
        CachedStore {
            store,
            inner: RefCell::new(Inner {
                headers: lru(caps.header_cap),
                payloads: lru(caps.payload_cap),
                counts: CacheCounts::default(),
                reads: StoreReads::default(),
            }),
            stopwatch: RefCell::new(None),
        }
    }

    /// Sets the capacities (drops what was cached).
    pub fn set_caps(&self, caps: CacheCaps) {
        let mut inner = self.inner.borrow_mut();
        inner.headers = lru(caps.header_cap);
        inner.payloads = lru(caps.payload_cap);
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
        self.part(seq, AnchorPart::Header)
    }

    /// The payload of the anchor record `seq`.
    pub fn payload(&self, seq: u64) -> Option<Rc<[u8]>> {
        self.part(seq, AnchorPart::Payload)
    }

    /// The whole anchor of record `seq` (its record body): header, then
    /// payload.
    pub fn anchor(&self, seq: u64) -> Option<Vec<u8>> {
        let header = self.header(seq)?;
        let payload = self.payload(seq)?;
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

    fn part(&self, seq: u64, part: AnchorPart) -> Option<Rc<[u8]>> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let (cache, hits, misses, reads) = match part {
            AnchorPart::Header => (
                &mut inner.headers,
                &mut inner.counts.header_hits,
                &mut inner.counts.header_misses,
                &mut inner.reads.header,
            ),
            AnchorPart::Payload => (
                &mut inner.payloads,
                &mut inner.counts.payload_hits,
                &mut inner.counts.payload_misses,
                &mut inner.reads.payload,
            ),
        };
        if let Some(bytes) = cache.as_mut().and_then(|c| c.get(&seq)) {
            *hits += 1;
            return Some(bytes.clone());
        }
        *misses += 1;
        let stopwatch = self.stopwatch.borrow();
        let started = stopwatch.as_ref().map(|clock| clock());
        let read = self.store.borrow().anchor_part(seq, part);
        let elapsed_ns = match (stopwatch.as_ref(), started) {
            (Some(clock), Some(started)) => clock().saturating_sub(started),
            _ => 0,
        };
        reads.observe_ns(elapsed_ns);
        let bytes: Rc<[u8]> = read?.into();
        if let Some(cache) = cache.as_mut() {
            cache.put(seq, bytes.clone());
        }
        Some(bytes)
    }
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
