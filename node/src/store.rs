//! Where a shard's records go: the [`ShardStore`] a [`crate::ShardHost`]
//! appends to and reads back from. The engine gives each shard its
//! `pc_storage::Log` (appends are copies into memory-mapped segments; the
//! driver makes them durable with `fdatasync` off the core's hot path and
//! reports it with `NodeCore::handle_durable`); the whole-node simulator
//! gives a [`MemStore`], whose un-synced tail a crash throws away.

use pc_codec::LogRecordKind;

/// A shard's append-only record store.
pub trait ShardStore {
    /// Appends a record and returns its seq (counting up from 0).
    fn append(&mut self, kind: LogRecordKind, body: &[u8]) -> Result<u64, String>;
    /// The body of record `seq` if it is an accepted anchor.
    fn anchor_body(&self, seq: u64) -> Option<Vec<u8>>;
    /// The seq the next append gets.
    fn next_seq(&self) -> u64;
}

impl ShardStore for pc_storage::Log {
    fn append(&mut self, kind: LogRecordKind, body: &[u8]) -> Result<u64, String> {
        pc_storage::Log::append(self, kind as u8, body).map_err(|error| error.to_string())
    }

    fn anchor_body(&self, seq: u64) -> Option<Vec<u8>> {
        let record = self.read(seq).ok()??;
        (record.kind == LogRecordKind::AnchorAccepted as u8).then(|| record.body.to_vec())
    }

    fn next_seq(&self) -> u64 {
        pc_storage::Log::next_seq(self)
    }
}

/// An in-memory store with a durable watermark (the simulator's log).
#[derive(Debug, Clone, Default)]
pub struct MemStore {
    records: Vec<(LogRecordKind, Vec<u8>)>,
    durable: u64,
}

impl MemStore {
    /// Every record, in order.
    pub fn records(&self) -> &[(LogRecordKind, Vec<u8>)] {
        &self.records
    }

    /// Records below this count are durable.
    pub fn durable_len(&self) -> u64 {
        self.durable
    }

    /// Marks records up to and including `seq` durable.
    pub fn mark_durable(&mut self, seq: u64) {
        self.durable = self.durable.max((seq + 1).min(self.records.len() as u64));
    }

    /// A crash: every record not yet durable is lost.
    pub fn crash(&mut self) {
        self.records.truncate(self.durable as usize);
    }
}

impl ShardStore for MemStore {
    fn append(&mut self, kind: LogRecordKind, body: &[u8]) -> Result<u64, String> {
        self.records.push((kind, body.to_vec()));
        Ok(self.records.len() as u64 - 1)
    }

    fn anchor_body(&self, seq: u64) -> Option<Vec<u8>> {
        let (kind, body) = self.records.get(usize::try_from(seq).ok()?)?;
        (*kind == LogRecordKind::AnchorAccepted).then(|| body.clone())
    }

    fn next_seq(&self) -> u64 {
        self.records.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_keeps_exactly_the_durable_records() {
        let mut store = MemStore::default();
        for n in 0..5u8 {
            assert_eq!(
                store.append(LogRecordKind::AnchorAccepted, &[n]).unwrap(),
                u64::from(n)
            );
        }
        store.mark_durable(2);
        store.crash();
        assert_eq!(store.next_seq(), 3);
        assert_eq!(store.anchor_body(2), Some(vec![2]));
        assert_eq!(store.anchor_body(3), None);
        store.mark_durable(100);
        assert_eq!(store.durable_len(), 3, "never past the records held");
    }
}
