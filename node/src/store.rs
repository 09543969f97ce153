//! Where a shard's records go: the [`ShardStore`] a [`crate::ShardHost`]
//! appends to and reads back from. The engine gives each shard its
//! `pc_storage::Log` (appends are copies into memory-mapped segments; the
//! driver makes them durable with `fdatasync` off the core's hot path and
//! reports it with `NodeCore::handle_durable`); the whole-node simulator
//! gives a [`MemStore`], whose un-synced tail a crash throws away.

use pc_codec::{Decode, LogRecordKind, Reader, SignedAnchorHeader};

/// One part of an accepted anchor's record: its body is the signed header
/// followed by the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorPart {
    /// The signed header.
    Header,
    /// The payload.
    Payload,
}

/// Where the signed header of an anchor record's `body` ends.
pub fn header_len(body: &[u8]) -> Option<usize> {
    let mut reader = Reader::new(body);
    SignedAnchorHeader::decode(&mut reader).ok()?;
    Some(reader.offset())
}

/// `part` of an anchor record's `body`, copied.
pub fn anchor_part_of(body: &[u8], part: AnchorPart) -> Option<Vec<u8>> {
    let split = header_len(body)?;
    Some(match part {
        AnchorPart::Header => body[..split].to_vec(),
        AnchorPart::Payload => body[split..].to_vec(),
    })
}

/// The parts of an anchor record's `body` asked for, copied (the header
/// decoded once to find where it ends).
pub fn split_parts(body: &[u8], header: bool, payload: bool) -> Option<Parts> {
    let split = header_len(body)?;
    Some((
        header.then(|| body[..split].to_vec()),
        payload.then(|| body[split..].to_vec()),
    ))
}

/// An anchor record's signed header and payload, each if asked for.
pub type Parts = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A shard's append-only record store. Reads go through the shard's
/// [`crate::cache::CachedStore`].
pub trait ShardStore {
    /// Appends a record and returns its seq (counting up from 0).
    fn append(&mut self, kind: LogRecordKind, body: &[u8]) -> Result<u64, String>;
    /// The parts asked for of record `seq` if it is an accepted anchor
    /// (one read of the store).
    fn anchor_parts(&self, seq: u64, header: bool, payload: bool) -> Option<Parts>;
    /// The seq the next append gets.
    fn next_seq(&self) -> u64;
}

impl ShardStore for pc_storage::Log {
    fn append(&mut self, kind: LogRecordKind, body: &[u8]) -> Result<u64, String> {
        pc_storage::Log::append(self, kind as u8, body).map_err(|error| error.to_string())
    }

    fn anchor_parts(&self, seq: u64, header: bool, payload: bool) -> Option<Parts> {
        let record = self.read(seq).ok()??;
        if record.kind != LogRecordKind::AnchorAccepted as u8 {
            return None;
        }
        split_parts(record.body, header, payload)
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

    fn anchor_parts(&self, seq: u64, header: bool, payload: bool) -> Option<Parts> {
        let (kind, body) = self.records.get(usize::try_from(seq).ok()?)?;
        if *kind != LogRecordKind::AnchorAccepted {
            return None;
        }
        split_parts(body, header, payload)
    }

    fn next_seq(&self) -> u64 {
        self.records.len() as u64
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use pc_codec::{AnchorBuilder, Encode, SigningKey};

    /// The record body of a signed anchor with `n` in its seq.
    pub(crate) fn anchor_body(n: u8) -> Vec<u8> {
        let key = SigningKey::from_secret_bytes(&[7; 32]).unwrap();
        let anchor = AnchorBuilder::new([1; 8], 0, 0, u64::from(n))
            .sign(&key, &[n; 32])
            .unwrap();
        let mut body = Vec::new();
        anchor.encode(&mut body);
        body
    }

    #[test]
    fn an_anchor_record_splits_into_its_header_and_payload() {
        let body = anchor_body(3);
        let header = anchor_part_of(&body, AnchorPart::Header).unwrap();
        let payload = anchor_part_of(&body, AnchorPart::Payload).unwrap();
        assert!(!header.is_empty() && !payload.is_empty());
        assert_eq!([header, payload].concat(), body);
        assert_eq!(anchor_part_of(&[1, 2, 3], AnchorPart::Header), None);
    }

    #[test]
    fn a_crash_keeps_exactly_the_durable_records() {
        let mut store = MemStore::default();
        for n in 0..5u8 {
            assert_eq!(
                store
                    .append(LogRecordKind::AnchorAccepted, &anchor_body(n))
                    .unwrap(),
                u64::from(n)
            );
        }
        store.mark_durable(2);
        store.crash();
        assert_eq!(store.next_seq(), 3);
        assert_eq!(
            store.anchor_parts(2, false, true),
            Some((None, anchor_part_of(&anchor_body(2), AnchorPart::Payload)))
        );
        assert_eq!(store.anchor_parts(3, true, false), None);
        store.mark_durable(100);
        assert_eq!(store.durable_len(), 3, "never past the records held");
    }
}
