//! BIP-340 batch verification: many signatures checked in one multi-scalar
//! multiplication, with the invalid ones named by bisection.
//!
//! The algorithm is the BIP's "Batch Verification" section. For entries
//! `(P_i, m_i, (r_i, s_i))`, `i = 1..u`: lift `P_i = lift_x(pk_i)` and
//! `R_i = lift_x(r_i)`, fail an entry whose `r_i >= p`, `s_i >= n` or whose
//! lifts fail; compute `e_i = int(hash_BIP0340/challenge(r_i || pk_i || m_i))
//! mod n`; draw coefficients `a_1 = 1, a_2..a_u` from a ChaCha20 stream
//! seeded with a hash of every input of the batch; and accept iff
//!
//! ```text
//! (a_1 s_1 + .. + a_u s_u) G = a_1 R_1 + .. + a_u R_u + (a_1 e_1) P_1 + .. + (a_u e_u) P_u
//! ```
//!
//! Two choices made here, neither of which changes a verdict:
//!
//! * **128-bit coefficients.** `a_2..a_u` are drawn uniformly from
//!   `[1, 2^128)` rather than `[1, n)`. If entry `j` is invalid, its term
//!   `s_j G - R_j - e_j P_j` is a non-identity point of a prime-order group,
//!   so for any fixed other coefficients at most one value of `a_j` makes the
//!   sum vanish: a batch holding an invalid signature passes with
//!   probability at most 2^-128 (per batch, with the coefficients a hash of
//!   the inputs an attacker must grind). The `R_i` terms then have 128-bit
//!   scalars, which halves their share of the multiplication.
//! * **Terms of one key are merged.** `(a_i e_i) P_i` for every entry signed
//!   by the same key become one term `(sum a_i e_i) P`: the same point, so
//!   the same sum, with one point in the multiplication instead of many (a
//!   shard's client often signs many transfers of one anchor).
//!
//! The multiplication is a Pippenger bucket method with signed digits over
//! `k256`'s group arithmetic, the generator included as one more term, and
//! the batch is valid iff the sum is the identity.
//!
//! **Failure isolation and its worst case.** A failing batch is bisected:
//! the left half is batch-checked; if it passes, the right half is known to
//! hold an invalid signature and is split without being checked whole;
//! sub-batches below [`SPLIT_FLOOR`] signatures are verified one at a time
//! with the single verifier (libsecp256k1). Every step is charged to a work
//! budget of `2 x` one single verification per signature, in the cost model
//! of [`cost`] (a lifted `R`, a 128-bit or a 256-bit term, a single
//! verification; upper bounds measured on the development machine): a
//! multiplication runs only if, after it, every unresolved signature could
//! still be verified singly within the budget; otherwise the rest is
//! verified singly. So a hostile batch, all of it invalid, costs at most
//! twice the single verification of its signatures, and a batch with one bad
//! signature costs about `log2(u)` half-size multiplications.
//!
//! Everything here is a pure function of the entries: the coefficients come
//! from their hash, the work is deterministic, and no state outside the
//! per-thread key cache is touched (the cache only ever returns what lifting
//! would).

use std::collections::HashMap;

use k256::elliptic_curve::group::Group;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::point::DecompactPoint;
use k256::elliptic_curve::PrimeField;
use k256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar, U256};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

use crate::crypto::{lift_public_key, Bip340, PublicKeyBytes, SignatureBytes, SignatureVerifier};

/// One signature to verify: `signature` by `key` over `message`.
#[derive(Debug, Clone, Copy)]
pub struct BatchEntry<'a> {
    /// The x-only public key.
    pub key: &'a PublicKeyBytes,
    /// The signed message (any length, as BIP-340 allows).
    pub message: &'a [u8],
    /// The 64-byte signature.
    pub signature: &'a SignatureBytes,
}

/// Batches smaller than this are verified one signature at a time: below it
/// the lifting of every `R` and the fixed cost of a multiplication make a
/// batch slower than the single verifier (measured; `tuning/README.md`).
pub const MIN_BATCH: usize = 8;

/// A failing sub-batch of at most this many signatures is not split further:
/// its signatures are verified singly.
pub const SPLIT_FLOOR: usize = 16;

/// What one call of [`verify_batch`] did, for the counters of the shard, the
/// bench and the worst-case test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchWork {
    /// Calls that verified their entries as a batch (at least one
    /// multiplication ran).
    pub batches: u64,
    /// Signatures in those calls.
    pub batched_signatures: u64,
    /// Multi-scalar multiplications run (the first, and those of bisection).
    pub multiplications: u64,
    /// Points in those multiplications (the generator counted).
    pub points: u64,
    /// Signatures verified singly: calls below [`MIN_BATCH`], bisection
    /// leaves and budget fallbacks.
    pub single_verifies: u64,
    /// Entries refused while preparing (key, `r` or `s` not valid), without
    /// any multiplication or single verification.
    pub refused_early: u64,
    /// The work charged, in [`cost`] units (one single verification is
    /// [`cost::SINGLE`]).
    pub cost_units: u64,
}

impl BatchWork {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &BatchWork) {
        self.batches += other.batches;
        self.batched_signatures += other.batched_signatures;
        self.multiplications += other.multiplications;
        self.points += other.points;
        self.single_verifies += other.single_verifies;
        self.refused_early += other.refused_early;
        self.cost_units += other.cost_units;
    }
}

/// The cost model of the bisection budget, in group additions (one
/// complete addition or doubling of `k256`). The conversions were measured
/// on the development machine (2-vCPU x86-64 VM): one libsecp256k1
/// verification 42 µs, one `k256` addition 0.30 µs, lifting `R` and the
/// challenge hash 8.5 µs.
pub mod cost {
    /// One single verification (libsecp256k1), in additions.
    pub const SINGLE: u64 = 140;
    /// Preparing one entry: lifting `R`, the challenge hash, the coefficient.
    pub const PREPARE: u64 = 30;

    /// The additions of a Pippenger multiplication of `long` 256-bit and
    /// `short` 128-bit terms with windows of `c` bits: a bucket addition
    /// per term and window, the running sums of every window, the doublings.
    pub fn multiplication(long: u64, short: u64, c: u64) -> u64 {
        let windows = 256 / c + 1;
        let short_windows = super::short_windows(c as usize) as u64;
        long * windows + short * short_windows + windows * (1 << c) + 256
    }
}

/// An entry ready for the batch equation.
struct Prepared {
    r: AffinePoint,
    key: AffinePoint,
    /// Index of the first entry of the batch with the same key.
    key_class: u32,
    /// `a_i * e_i`.
    ae: Scalar,
    /// `a_i * s_i`.
    a_s: Scalar,
    /// `a_i` (below 2^128).
    a: Scalar,
}

/// Verifies every entry; `verdicts[i]` is set to whether entry `i` is a
/// valid BIP-340 signature (exactly the single verifier's verdict). Panics
/// if the two slices differ in length.
pub fn verify_batch(entries: &[BatchEntry<'_>], verdicts: &mut [bool]) -> BatchWork {
    assert_eq!(entries.len(), verdicts.len(), "one verdict per entry");
    let mut work = BatchWork::default();
    if entries.len() < MIN_BATCH {
        return verify_each(&Bip340, entries, verdicts);
    }
    // Entries of one key share a class (the index of its first entry):
    // their key terms merge into one.
    let mut first_of_key: HashMap<&PublicKeyBytes, u32> = HashMap::with_capacity(entries.len());
    let classes: Vec<u32> = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| *first_of_key.entry(entry.key).or_insert(index as u32))
        .collect();
    // A batch runs only where the cost model expects it to beat verifying
    // one at a time (a batch of distinct keys pays from about 128
    // signatures, one of a single key from about 32); the decision comes
    // before any lifting, so a batch that does not pay costs nothing extra.
    let len = entries.len() as u64;
    let long = first_of_key.len() as u64 + 1;
    let estimate = len * cost::PREPARE
        + cost::multiplication(long, len, window_bits((long + len) as usize) as u64);
    if estimate >= len * cost::SINGLE {
        return verify_each(&Bip340, entries, verdicts);
    }
    let budget = 2 * cost::SINGLE * len;
    let coefficients = coefficients(entries);
    let mut prepared: Vec<Option<Prepared>> = Vec::with_capacity(entries.len());
    for ((entry, a), class) in entries.iter().zip(&coefficients).zip(classes) {
        work.cost_units += cost::PREPARE;
        let entry = prepare(entry, a, class);
        if entry.is_none() {
            work.refused_early += 1;
        }
        prepared.push(entry);
    }
    for (verdict, entry) in verdicts.iter_mut().zip(&prepared) {
        *verdict = entry.is_some();
    }
    let candidates: Vec<usize> = (0..entries.len()).filter(|&i| verdicts[i]).collect();
    let mut run = Run {
        entries,
        prepared: &prepared,
        verdicts,
        work: &mut work,
        budget,
        unresolved: candidates.len() as u64,
        scratch: Scratch::default(),
    };
    if !candidates.is_empty() {
        run.check(&candidates);
    }
    work.batches = u64::from(work.multiplications > 0);
    if work.batches > 0 {
        work.batched_signatures = entries.len() as u64;
    }
    work
}

/// Every entry through `verifier`'s single verification, one at a time
/// (the [`SignatureVerifier::verify_batch`] default).
pub fn verify_each(
    verifier: &(impl SignatureVerifier + ?Sized),
    entries: &[BatchEntry<'_>],
    verdicts: &mut [bool],
) -> BatchWork {
    assert_eq!(entries.len(), verdicts.len(), "one verdict per entry");
    for (entry, verdict) in entries.iter().zip(verdicts.iter_mut()) {
        *verdict = verifier.verify(entry.key, entry.message, entry.signature);
    }
    BatchWork {
        single_verifies: entries.len() as u64,
        cost_units: entries.len() as u64 * cost::SINGLE,
        ..BatchWork::default()
    }
}

/// The coefficients `a_1 = 1, a_2..a_u`: a ChaCha20 stream seeded with a
/// SHA-256 of every key, message (length-prefixed) and signature of the
/// batch, so they are a pure function of the batch and unknown to whoever
/// chose its contents before they were fixed.
fn coefficients(entries: &[BatchEntry<'_>]) -> Vec<Scalar> {
    let mut seed = Sha256::new();
    seed.update(b"phantom/bip340-batch/v1");
    seed.update((entries.len() as u64).to_le_bytes());
    for entry in entries {
        seed.update(entry.key);
        seed.update((entry.message.len() as u64).to_le_bytes());
        seed.update(entry.message);
        seed.update(entry.signature);
    }
    let mut rng = ChaCha20Rng::from_seed(seed.finalize().into());
    let mut out = Vec::with_capacity(entries.len());
    out.push(Scalar::ONE);
    while out.len() < entries.len() {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let a = u128::from_le_bytes(bytes);
        if a != 0 {
            out.push(Scalar::from(a));
        }
    }
    out
}

/// The BIP-340 challenge `hash_BIP0340/challenge(r || pk || m) mod n`.
fn challenge(r: &[u8; 32], key: &PublicKeyBytes, message: &[u8]) -> Scalar {
    let tag = Sha256::digest(b"BIP0340/challenge");
    let mut hash = Sha256::new();
    hash.update(tag);
    hash.update(tag);
    hash.update(r);
    hash.update(key);
    hash.update(message);
    <Scalar as Reduce<U256>>::reduce_bytes(&hash.finalize())
}

/// Lifts and hashes one entry; `None` if it cannot be valid (key not on the
/// curve, `r >= p` or not an x coordinate, `s >= n`).
fn prepare(entry: &BatchEntry<'_>, a: &Scalar, key_class: u32) -> Option<Prepared> {
    let key = lift_public_key(entry.key)?;
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&entry.signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&entry.signature[32..]);
    let r = Option::<AffinePoint>::from(AffinePoint::decompact(&FieldBytes::from(r_bytes)))?;
    let s = Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(s_bytes)))?;
    let e = challenge(&r_bytes, entry.key, entry.message);
    Some(Prepared {
        r,
        key,
        key_class,
        ae: *a * e,
        a_s: *a * s,
        a: *a,
    })
}

/// Buffers reused across the multiplications of one call.
#[derive(Default)]
struct Scratch {
    /// Merged key terms by class: (point, scalar), in first-seen order.
    key_terms: Vec<(AffinePoint, Scalar)>,
    /// Class index -> position in `key_terms` + 1 (0: none yet).
    class_slot: Vec<u32>,
    msm: Msm,
}

struct Run<'a, 'e> {
    entries: &'a [BatchEntry<'e>],
    prepared: &'a [Option<Prepared>],
    verdicts: &'a mut [bool],
    work: &'a mut BatchWork,
    budget: u64,
    /// Signatures whose verdict is not known yet.
    unresolved: u64,
    scratch: Scratch,
}

impl Run<'_, '_> {
    /// Resolves `set`, not known to hold an invalid signature.
    fn check(&mut self, set: &[usize]) {
        let Some(cost) = self.affordable(set).filter(|_| set.len() > SPLIT_FLOOR) else {
            self.singly(set);
            return;
        };
        if self.multiply(set, cost) {
            self.unresolved -= set.len() as u64;
        } else {
            self.split(set);
        }
    }

    /// Resolves `set`, known to hold at least one invalid signature.
    fn split(&mut self, set: &[usize]) {
        if set.len() <= SPLIT_FLOOR {
            self.singly(set);
            return;
        }
        let (left, right) = set.split_at(set.len() / 2);
        let Some(cost) = self.affordable(left).filter(|_| left.len() > SPLIT_FLOOR) else {
            self.singly(left);
            self.check(right);
            return;
        };
        if self.multiply(left, cost) {
            self.unresolved -= left.len() as u64;
            self.split(right);
        } else {
            self.split(left);
            self.check(right);
        }
    }

    /// The cost of a multiplication over `set`, if it still leaves room in
    /// the budget to verify every unresolved signature singly afterwards.
    fn affordable(&mut self, set: &[usize]) -> Option<u64> {
        let cost = self.multiplication_cost(set);
        (self.work.cost_units + cost + self.unresolved * cost::SINGLE <= self.budget)
            .then_some(cost)
    }

    fn multiplication_cost(&mut self, set: &[usize]) -> u64 {
        let long = self.distinct_keys(set) + 1;
        let short = set.len() as u64;
        cost::multiplication(long, short, window_bits((long + short) as usize) as u64)
    }

    fn distinct_keys(&mut self, set: &[usize]) -> u64 {
        let slots = &mut self.scratch.class_slot;
        slots.clear();
        slots.resize(self.entries.len(), 0);
        let mut count = 0;
        for &index in set {
            let class = self.prepared[index].as_ref().expect("candidate").key_class as usize;
            if slots[class] == 0 {
                slots[class] = 1;
                count += 1;
            }
        }
        count
    }

    fn singly(&mut self, set: &[usize]) {
        for &index in set {
            let entry = &self.entries[index];
            self.verdicts[index] = Bip340.verify(entry.key, entry.message, entry.signature);
            self.work.single_verifies += 1;
            self.work.cost_units += cost::SINGLE;
            self.unresolved -= 1;
        }
    }

    /// Runs the batch equation over `set` (charging `cost`, what
    /// [`Run::affordable`] found); true iff it holds.
    fn multiply(&mut self, set: &[usize], cost: u64) -> bool {
        let scratch = &mut self.scratch;
        scratch.key_terms.clear();
        scratch.class_slot.clear();
        scratch.class_slot.resize(self.entries.len(), 0);
        let mut generator = Scalar::ZERO;
        let msm = &mut scratch.msm;
        msm.clear();
        for &index in set {
            let entry = self.prepared[index].as_ref().expect("candidate");
            generator += entry.a_s;
            let slot = &mut scratch.class_slot[entry.key_class as usize];
            if *slot == 0 {
                scratch.key_terms.push((entry.key, entry.ae));
                *slot = scratch.key_terms.len() as u32;
            } else {
                scratch.key_terms[*slot as usize - 1].1 += entry.ae;
            }
        }
        // a_i R_i + (sum a_i e_i) P - (sum a_i s_i) G == identity.
        msm.push_long(AffinePoint::GENERATOR, -generator);
        for (point, scalar) in &scratch.key_terms {
            msm.push_long(*point, *scalar);
        }
        for &index in set {
            let entry = self.prepared[index].as_ref().expect("candidate");
            msm.push_short(entry.r, entry.a);
        }
        self.work.multiplications += 1;
        self.work.points += msm.len() as u64;
        self.work.cost_units += cost;
        bool::from(msm.evaluate().is_identity())
    }
}

/// A multi-scalar multiplication: terms with 256-bit scalars first, then
/// terms whose scalars are below 2^128 (their upper windows are skipped).
#[derive(Default)]
struct Msm {
    points: Vec<AffinePoint>,
    scalars: Vec<[u64; 4]>,
    long_terms: usize,
    digits: Vec<i16>,
    buckets: Vec<ProjectivePoint>,
    filled: Vec<bool>,
}

impl Msm {
    fn clear(&mut self) {
        self.points.clear();
        self.scalars.clear();
        self.long_terms = 0;
    }

    fn len(&self) -> usize {
        self.points.len()
    }

    fn push_long(&mut self, point: AffinePoint, scalar: Scalar) {
        assert_eq!(self.long_terms, self.points.len(), "long terms come first");
        self.points.push(point);
        self.scalars.push(limbs(&scalar));
        self.long_terms += 1;
    }

    fn push_short(&mut self, point: AffinePoint, scalar: Scalar) {
        let limbs = limbs(&scalar);
        debug_assert!(
            limbs[2] == 0 && limbs[3] == 0,
            "a short scalar is below 2^128"
        );
        self.points.push(point);
        self.scalars.push(limbs);
    }

    /// `sum scalar_i * point_i`, by Pippenger's bucket method with signed
    /// `c`-bit digits, `c` chosen for the number of terms.
    fn evaluate(&mut self) -> ProjectivePoint {
        self.evaluate_with(window_bits(self.points.len()))
    }

    /// [`Msm::evaluate`] with windows of `c` bits (2 to 10).
    fn evaluate_with(&mut self, c: usize) -> ProjectivePoint {
        let terms = self.points.len();
        let windows = 256 / c + 1;
        let short_windows = short_windows(c);
        self.digits.clear();
        self.digits.resize(terms * windows, 0);
        for (term, scalar) in self.scalars.iter().enumerate() {
            signed_digits(
                scalar,
                c,
                &mut self.digits[term * windows..(term + 1) * windows],
            );
        }
        let half = 1usize << (c - 1);
        self.buckets.clear();
        self.buckets.resize(half, ProjectivePoint::IDENTITY);
        self.filled.clear();
        self.filled.resize(half, false);
        let mut sum = ProjectivePoint::IDENTITY;
        for window in (0..windows).rev() {
            if window + 1 != windows {
                for _ in 0..c {
                    sum = sum.double();
                }
            }
            let active = if window < short_windows {
                terms
            } else {
                self.long_terms
            };
            self.filled.iter_mut().for_each(|filled| *filled = false);
            for term in 0..active {
                let digit = self.digits[term * windows + window];
                if digit == 0 {
                    continue;
                }
                let bucket = usize::from(digit.unsigned_abs()) - 1;
                let point = if digit > 0 {
                    self.points[term]
                } else {
                    -self.points[term]
                };
                if self.filled[bucket] {
                    self.buckets[bucket] += &point;
                } else {
                    self.buckets[bucket] = point.into();
                    self.filled[bucket] = true;
                }
            }
            // sum_b (b + 1) * bucket_b by running sums from the top bucket.
            let mut running = ProjectivePoint::IDENTITY;
            let mut window_sum = ProjectivePoint::IDENTITY;
            let mut started = false;
            for bucket in (0..half).rev() {
                if self.filled[bucket] {
                    running += &self.buckets[bucket];
                    started = true;
                }
                if started {
                    window_sum += &running;
                }
            }
            sum += &window_sum;
        }
        sum
    }
}

/// The window width for `terms` points (measured on the development
/// machine; see the criterion bench `batch_verify`).
fn window_bits(terms: usize) -> usize {
    match terms {
        0..=24 => 3,
        25..=80 => 4,
        81..=200 => 5,
        201..=500 => 6,
        501..=1200 => 7,
        1201..=3000 => 8,
        _ => 9,
    }
}

/// The windows of `c` bits that can hold a nonzero signed digit of a
/// scalar below 2^128: those of its 128 bits, and the next one for the
/// carry of the top window (with c = 3, bits 126-128 recode to -4 and carry
/// 1 into window 43).
fn short_windows(c: usize) -> usize {
    (128 / c + 2).min(256 / c + 1)
}

/// The little-endian 64-bit limbs of a scalar.
fn limbs(scalar: &Scalar) -> [u64; 4] {
    let bytes = scalar.to_bytes();
    let mut out = [0u64; 4];
    for (index, limb) in out.iter_mut().enumerate() {
        let start = 32 - 8 * (index + 1);
        *limb = u64::from_be_bytes(bytes[start..start + 8].try_into().expect("8 bytes"));
    }
    out
}

/// Signed base-2^c digits of a 256-bit integer, least significant first,
/// each in `[-2^(c-1), 2^(c-1))` (the last absorbs the final carry; `out`
/// has `256 / c + 1` digits, enough for 257 bits).
fn signed_digits(scalar: &[u64; 4], c: usize, out: &mut [i16]) {
    let mask = (1u64 << c) - 1;
    let half = 1i64 << (c - 1);
    let mut carry = 0i64;
    for (window, digit) in out.iter_mut().enumerate() {
        let bit = window * c;
        let limb = bit / 64;
        let shift = bit % 64;
        let mut value = 0u64;
        if limb < 4 {
            value = scalar[limb] >> shift;
            if shift + c > 64 && limb + 1 < 4 {
                value |= scalar[limb + 1] << (64 - shift);
            }
        }
        let mut signed = (value & mask) as i64 + carry;
        if signed >= half {
            signed -= 1 << c;
            carry = 1;
        } else {
            carry = 0;
        }
        *digit = signed as i16;
    }
    debug_assert_eq!(carry, 0, "257 bits hold a 256-bit scalar's digits");
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::ops::MulByGenerator;

    fn scalar(seed: u64) -> Scalar {
        let mut x = Scalar::from(seed + 1);
        for _ in 0..5 {
            x = x * x + Scalar::from(0x9e37_79b9_7f4a_7c15u64);
        }
        x
    }

    #[test]
    fn digits_recompose_the_scalar() {
        for seed in 0..50 {
            let s = scalar(seed);
            let limbs = limbs(&s);
            for c in 3..=10 {
                let mut digits = vec![0i16; 256 / c + 1];
                signed_digits(&limbs, c, &mut digits);
                let mut back = Scalar::ZERO;
                for digit in digits.iter().rev() {
                    back *= Scalar::from(1u64 << c);
                    if *digit >= 0 {
                        back += Scalar::from(*digit as u64);
                    } else {
                        back -= Scalar::from(digit.unsigned_abs() as u64);
                    }
                }
                assert_eq!(back, s, "c = {c}");
            }
        }
    }

    /// Short scalars at the top of their range (whose signed digits carry
    /// into the window above bit 127) and long ones near n, at every window
    /// width the multiplication can take.
    #[test]
    fn scalars_at_the_top_of_their_range_sum_right_at_every_window_width() {
        let max_short = Scalar::from(u128::MAX);
        let shorts = [
            max_short,
            max_short - Scalar::from(1u64 << 40),
            Scalar::from(3u128 << 126),
            Scalar::from(1u128 << 127),
        ];
        let longs = [-Scalar::ONE, -Scalar::from(12345u64), scalar(7)];
        for c in 2..=10 {
            let mut msm = Msm::default();
            let mut expected = ProjectivePoint::IDENTITY;
            for (index, s) in longs.iter().enumerate() {
                let point = ProjectivePoint::mul_by_generator(&scalar(100 + index as u64));
                msm.push_long(point.to_affine(), *s);
                expected += point * s;
            }
            for (index, s) in shorts.iter().enumerate() {
                let point = ProjectivePoint::mul_by_generator(&scalar(200 + index as u64));
                msm.push_short(point.to_affine(), *s);
                expected += point * s;
            }
            assert_eq!(msm.evaluate_with(c), expected, "c = {c}");
        }
    }

    #[test]
    fn pippenger_matches_the_naive_sum_at_every_window_width() {
        for terms in [1usize, 2, 5, 30, 100, 300] {
            let mut msm = Msm::default();
            let mut expected = ProjectivePoint::IDENTITY;
            for index in 0..terms {
                let point = ProjectivePoint::mul_by_generator(&scalar(index as u64 + 1000));
                let point = point.to_affine();
                if index % 3 == 0 {
                    let s = scalar(index as u64);
                    msm.push_long(point, s);
                    expected += ProjectivePoint::from(point) * s;
                }
            }
            for index in 0..terms {
                if index % 3 != 0 {
                    let point = ProjectivePoint::mul_by_generator(&scalar(index as u64 + 1000));
                    let short = Scalar::from(u128::from(index as u64) << 64 | 0xfeed);
                    msm.push_short(point.to_affine(), short);
                    expected += point * short;
                }
            }
            assert_eq!(msm.evaluate(), expected, "{terms} terms");
        }
    }
}
