//! The deterministic simulator's parts (see `tests/simulation.rs`).

pub mod blocked;
pub mod byzantine;
pub mod checker;
pub mod clients;
pub mod config;
pub mod counters;
pub mod crypto;
pub mod model;
pub mod network;
pub mod node;
pub mod rng;
pub mod simulation;
