//! Log configuration and the durability policy.

use std::fmt;
use std::str::FromStr;

use crate::error::LogError;
use crate::frame::frame_bytes;
use crate::header::HEADER_BYTES;

/// When the driver makes appended records durable. The log never syncs on
/// its own inside `append`; the driver reads this policy and acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Sync before acknowledging each record.
    Always,
    /// Sync once per driver tick, covering everything appended in it.
    Batch,
    /// Leave writeback to the OS (own anchors are still synced before sending).
    Never,
}

impl Durability {
    /// The policy's config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Always => "always",
            Durability::Batch => "batch",
            Durability::Never => "never",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A durability spelling other than `always`, `batch` or `never`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown durability `{input}` (expected always, batch or never)")]
pub struct ParseDurabilityError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for Durability {
    type Err = ParseDurabilityError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        match input {
            "always" => Ok(Durability::Always),
            "batch" => Ok(Durability::Batch),
            "never" => Ok(Durability::Never),
            _ => Err(ParseDurabilityError {
                input: input.to_owned(),
            }),
        }
    }
}

/// Configuration of one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Size of each new segment file, header page included; a multiple of 4096.
    pub segment_bytes: u64,
    /// The driver's sync policy, reported by `Log::durability`.
    pub durability: Durability,
    /// Largest record body accepted; one such record must fit a segment.
    pub max_record_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 64 << 20,
            durability: Durability::Batch,
            max_record_bytes: 16 << 20,
        }
    }
}

impl LogConfig {
    /// Checks that segments are page multiples and hold one maximal record.
    pub fn validate(&self) -> Result<(), LogError> {
        let page_multiple = self.segment_bytes.is_multiple_of(HEADER_BYTES as u64);
        let max_frame_fits =
            HEADER_BYTES as u64 + frame_bytes(self.max_record_bytes) <= self.segment_bytes;
        if page_multiple && max_frame_fits {
            Ok(())
        } else {
            Err(LogError::InvalidConfig {
                segment_bytes: self.segment_bytes,
                max_record_bytes: self.max_record_bytes,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_and_prints_its_three_spellings() {
        for policy in [Durability::Always, Durability::Batch, Durability::Never] {
            assert_eq!(policy.to_string().parse::<Durability>(), Ok(policy));
        }
        let error = "sometimes".parse::<Durability>().expect_err("not a policy");
        assert_eq!(
            error.to_string(),
            "unknown durability `sometimes` (expected always, batch or never)"
        );
    }

    #[test]
    fn default_config_is_valid_and_undersized_segments_are_not() {
        assert!(LogConfig::default().validate().is_ok());
        let too_small = LogConfig {
            segment_bytes: 64 << 10,
            ..LogConfig::default()
        };
        assert!(matches!(
            too_small.validate(),
            Err(LogError::InvalidConfig { .. })
        ));
        let unaligned = LogConfig {
            segment_bytes: (64 << 20) + 8,
            ..LogConfig::default()
        };
        assert!(matches!(
            unaligned.validate(),
            Err(LogError::InvalidConfig { .. })
        ));
        let exact = LogConfig {
            segment_bytes: 8192,
            durability: Durability::Never,
            max_record_bytes: 4096 - 24,
        };
        assert!(exact.validate().is_ok());
    }
}
