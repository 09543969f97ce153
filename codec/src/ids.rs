//! Domain-separated BLAKE3 ids (DESIGN §3.2): every id is
//! `blake3::derive_key("phantom-coin v0 <kind>", material)`, so an id of one
//! kind can never be mistaken for an id of another.

/// A 32-byte digest (ids, roots).
pub type Hash32 = [u8; 32];

/// The id contexts of protocol v0.
pub mod context {
    /// Anchor header id.
    pub const HEADER: &str = "phantom-coin v0 header";
    /// Anchor id (header id and signature).
    pub const ANCHOR: &str = "phantom-coin v0 anchor";
    /// Transfer id, the message a transfer's owner signs.
    pub const TX: &str = "phantom-coin v0 tx";
    /// Micro-event id (including its signature).
    pub const MICRO_EVENT: &str = "phantom-coin v0 micro-event";
    /// Merkle leaf.
    pub const MERKLE_LEAF: &str = "phantom-coin v0 merkle-leaf";
    /// Merkle inner node.
    pub const MERKLE_NODE: &str = "phantom-coin v0 merkle-node";
    /// Shard assignment of an owner key.
    pub const SHARD: &str = "phantom-coin v0 shard";
    /// Whitening of the total order within a round.
    pub const WHITEN: &str = "phantom-coin v0 whiten";
    /// State-root hash chain.
    pub const STATE: &str = "phantom-coin v0 state";
    /// Payout claims: the message a claim's owner signs.
    pub const PAYOUT: &str = "phantom-coin v0 payout";
    /// Genesis hash.
    pub const GENESIS: &str = "phantom-coin v0 genesis";
    /// Binding of a TLS key to a validator key.
    pub const TLS_BINDING: &str = "phantom-coin v0 tls-binding";

    /// Checkpoint id, the message seats sign for other shards (v1).
    pub const CHECKPOINT: &str = "phantom-coin v0 checkpoint";
    /// Snapshot root (v1).
    pub const SNAPSHOT: &str = "phantom-coin v0 snapshot";
    /// Offence id: what slashing deduplicates (v1, DESIGN §5.4).
    pub const EVIDENCE: &str = "phantom-coin v0 evidence";
    /// A mint's proof-of-work hash (v1, DESIGN §5.5).
    pub const MINT: &str = "phantom-coin v0 mint";

    /// Every context of the protocol (the prefix stays `v0` in v1: it names
    /// the id family).
    pub const ALL: [&str; 16] = [
        HEADER,
        ANCHOR,
        TX,
        MICRO_EVENT,
        MERKLE_LEAF,
        MERKLE_NODE,
        SHARD,
        WHITEN,
        STATE,
        PAYOUT,
        GENESIS,
        TLS_BINDING,
        CHECKPOINT,
        SNAPSHOT,
        EVIDENCE,
        MINT,
    ];
}

/// Hashes the concatenation of `parts` under `context`.
///
/// The protocol's own contexts start from a cached hasher, so an id costs
/// only the compressions of its material, not a re-hash of the context string.
pub fn derive(context: &str, parts: &[&[u8]]) -> Hash32 {
    let mut hasher = base_hasher(context);
    for part in parts {
        hasher.update(part);
    }
    *hasher.finalize().as_bytes()
}

/// A `derive_key` hasher for `context`, cloned from a cache for the contexts
/// of [`context`].
fn base_hasher(context: &str) -> blake3::Hasher {
    use context::ALL;
    use std::sync::OnceLock;
    static CACHE: OnceLock<Vec<blake3::Hasher>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| {
        ALL.iter()
            .map(|c| blake3::Hasher::new_derive_key(c))
            .collect()
    });
    match ALL
        .iter()
        .position(|known| std::ptr::eq(*known, context) || *known == context)
    {
        Some(index) => cache[index].clone(),
        None => blake3::Hasher::new_derive_key(context),
    }
}

/// The shard that owns outputs of `owner`: `u16(derive("shard", owner)[0..2]) mod shards`.
///
/// # Panics
/// If `shards` is zero (genesis validation guarantees `shards >= 1`).
pub fn shard_of(owner: &[u8; 32], shards: u16) -> u16 {
    assert!(shards >= 1, "shard count must be at least 1");
    if shards == 1 {
        // Every value mod 1 is 0: no hash needed.
        return 0;
    }
    // Owners repeat (a busy client, change back to the sender): a small
    // per-thread memo of the pure function saves a hash per lookup.
    let slot = usize::from(owner[31]) % SHARD_MEMO_ENTRIES;
    let prefix = SHARD_MEMO.with_borrow_mut(|memo| match memo[slot] {
        Some((key, prefix)) if key == *owner => prefix,
        _ => {
            let digest = derive(context::SHARD, &[owner]);
            let prefix = u16::from_le_bytes([digest[0], digest[1]]);
            memo[slot] = Some((*owner, prefix));
            prefix
        }
    });
    prefix % shards
}

const SHARD_MEMO_ENTRIES: usize = 64;

/// Owner -> the first two bytes of its shard digest, direct-mapped.
type ShardMemo = [Option<([u8; 32], u16)>; SHARD_MEMO_ENTRIES];

thread_local! {
    static SHARD_MEMO: std::cell::RefCell<ShardMemo> =
        const { std::cell::RefCell::new([None; SHARD_MEMO_ENTRIES]) };
}

/// The whitened sort key of an anchor within a round: `derive("whiten",
/// anchor_id || xor_of_ufw_ids)`.
pub fn whiten(anchor_id: &Hash32, ufw_xor: &Hash32) -> Hash32 {
    derive(context::WHITEN, &[anchor_id, ufw_xor])
}

/// The next link of the state-root chain: `derive("state", previous || round_digest)`.
pub fn state_root(previous: &Hash32, round_digest: &Hash32) -> Hash32 {
    derive(context::STATE, &[previous, round_digest])
}

/// The message a validator signs to bind its TLS key to its validator key:
/// `derive("tls-binding", tls_spki || network)`.
pub fn tls_binding(tls_spki: &[u8], network: &[u8; 8]) -> Hash32 {
    derive(context::TLS_BINDING, &[tls_spki, network])
}

/// Lower-case hex of a byte string (for logs and errors).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_separate_equal_material() {
        let material = [7u8; 32];
        let all = context::ALL;
        let mut ids: Vec<Hash32> = all.iter().map(|c| derive(c, &[&material])).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn derive_of_parts_equals_derive_of_concatenation() {
        let joined = derive(context::STATE, &[b"abc", b"def"]);
        assert_eq!(joined, derive(context::STATE, &[b"abcdef"]));
        assert_eq!(joined, blake3::derive_key(context::STATE, b"abcdef"));
    }

    #[test]
    fn shard_of_spreads_owners_over_every_shard() {
        let mut seen = [false; 4];
        for byte in 0..=255u8 {
            seen[usize::from(shard_of(&[byte; 32], 4))] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(shard_of(&[9; 32], 1), 0);
    }

    #[test]
    fn memoized_shard_of_is_the_definition_also_when_owners_share_a_slot() {
        let definition = |owner: &[u8; 32], shards: u16| {
            let digest = blake3::derive_key(context::SHARD, owner);
            u16::from_le_bytes([digest[0], digest[1]]) % shards
        };
        // Owners 0..=255 in the first byte and two values of the last byte:
        // many share a slot and evict each other; asked three times each,
        // under several shard counts.
        for _ in 0..3 {
            for first in 0..=255u8 {
                for last in [0u8, 64] {
                    let mut owner = [7u8; 32];
                    owner[0] = first;
                    owner[31] = last;
                    for shards in [2, 3, 7, 1024] {
                        assert_eq!(shard_of(&owner, shards), definition(&owner, shards));
                    }
                }
            }
        }
    }

    #[test]
    fn hex_is_lower_case() {
        assert_eq!(to_hex(&[0x00, 0xab, 0xff]), "00abff");
    }
}
