//! `pc-shard` is the sans-IO, deterministic state machine of one shard of one
//! validator: the DAG of anchors, virtual-voting consensus (DESIGN §4) and,
//! in later steps, the UTXO state. It never does I/O, never reads a clock,
//! never draws randomness and never lets hash-map iteration order reach an
//! id, a root or an order.
#![warn(missing_docs)]

pub mod consensus;
pub mod machine;
pub mod oracle;
pub mod sim_crypto;
pub mod state;
pub mod validate;
pub mod vertex;

pub use vertex::{FinalizedAnchor, FinalizedRound, VertexSpec};
