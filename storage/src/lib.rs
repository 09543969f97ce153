//! `pc-storage` owns a shard's append-only log: segment files that are
//! pre-allocated (`fallocate`), mapped with memmap2 and pre-faulted, holding
//! checksummed, sequence-numbered record frames, plus start-up recovery that
//! refuses corruption below the durable watermark and cuts an unsynced tail
//! above it (DESIGN §6). It never syncs records inside `append` (the driver
//! does, through `dirty` and `mark_durable`; only a roll-over, once per
//! segment, blocks to seal the full segment and create the next), never
//! retries a failed sync (the log is poisoned instead), never maps or touches a byte
//! past a file's end, and keeps memory bounded: per segment a first seq and
//! a sparse index of every 1024th record, never one entry per record. It
//! knows nothing of what records mean; `kind` and body belong to the caller.
//! Linux only (`fallocate`, `flock`, `MAP_POPULATE`).
//!
//! # On-disk format
//!
//! A log directory holds `LOCK` and segment files named by their first
//! record's seq, zero-padded to 20 digits (`00000000000000000000.seg`).
//! Each segment is a 4096-byte header page (see [`header`]) followed by
//! 8-byte aligned frames (see [`frame`]); zero bytes after the last frame
//! mark the end of data. Sequence numbers start at 0 and run on across
//! segments without gaps.

#![warn(missing_docs)]

mod config;
mod error;
pub mod frame;
pub mod header;
mod log;
mod recovery;
mod segment;

pub use config::{Durability, LogConfig, ParseDurabilityError};
pub use error::{CorruptReason, LogError};
pub use log::{DirtyRange, Log, LogIter, Record, RecoveryReport};
pub use segment::{segment_file_name, SPARSE_INDEX_STRIDE};
