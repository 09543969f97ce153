//! The tools beside the node: the bench engine ([`engine`], what `bench`
//! and the seat tests run) and `bench` itself, the DAG workload it feeds,
//! the QUIC intake of `bench --network quic`, replay, `tune`, and the
//! agreement check of devnet, and `cache-bench` over a data dir's log.

pub mod agreement;
pub mod backup;
pub mod bench;
pub mod cache_bench;
pub mod consensus;
pub mod engine;
pub mod quic_intake;
pub mod replay;
pub mod restart;
pub mod supply;
pub mod tune;
pub mod workload;
