//! `pc-shard` is the sans-IO, deterministic state machine of one shard of one
//! validator: the DAG of anchors, virtual-voting consensus (DESIGN §4) and,
//! in later steps, the UTXO state. It never does I/O, never reads a clock,
//! never draws randomness and never lets hash-map iteration order reach an
//! id, a root or an order.
//!
//! The simulator's fast signature scheme (`sim_crypto`,
//! `machine::FastSeatKey`) and the naive consensus oracle (`oracle`) are
//! test support, compiled only with the `test-support` feature: the
//! product's API holds neither.
#![warn(missing_docs)]

pub mod consensus;
pub mod cross;
pub mod crosslink;
pub mod economics;
pub mod machine;
pub mod mint;
pub mod offence;
#[cfg(feature = "test-support")]
pub mod oracle;
#[cfg(any(test, feature = "test-support"))]
pub mod sim_crypto;
pub mod snapshot;
pub mod state;
pub mod validate;
pub mod vertex;

pub use vertex::{FinalizedAnchor, FinalizedRound, VertexSpec};
