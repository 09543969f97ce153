//! Token buckets: the serving budget per (peer, shard) and the submission
//! budget per source address. Time is monotonic microseconds.

/// A token bucket: `rate` tokens per second, at most `rate` banked.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    last_us: u64,
}

impl TokenBucket {
    /// A full bucket at `now_us`.
    pub fn full(rate: u32, now_us: u64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(rate),
            last_us: now_us,
        }
    }

    /// When it was last drawn from.
    pub fn last_us(&self) -> u64 {
        self.last_us
    }

    /// Takes up to `wanted` tokens at `now_us` and returns how many it took.
    pub fn take(&mut self, rate: u32, wanted: usize, now_us: u64) -> usize {
        let elapsed_s = now_us.saturating_sub(self.last_us) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed_s * f64::from(rate)).min(f64::from(rate));
        self.last_us = self.last_us.max(now_us);
        let taken = (wanted as f64).min(self.tokens.floor()).max(0.0);
        self.tokens -= taken;
        taken as usize
    }

    /// Takes `cost` tokens at `now_us` if any are left, going into debt
    /// for the rest (a later take waits until the debt is paid off): for
    /// work whose cost may exceed a whole burst. Returns whether it was
    /// taken.
    pub fn take_owing(&mut self, rate: u32, cost: usize, now_us: u64) -> bool {
        let elapsed_s = now_us.saturating_sub(self.last_us) as f64 / 1e6;
        self.tokens = (self.tokens + elapsed_s * f64::from(rate)).min(f64::from(rate));
        self.last_us = self.last_us.max(now_us);
        if self.tokens <= 0.0 {
            return false;
        }
        self.tokens -= cost as f64;
        true
    }

    /// Gives back `unused` tokens (never above the burst).
    pub fn refund(&mut self, rate: u32, unused: usize) {
        self.tokens = (self.tokens + unused as f64).min(f64::from(rate));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owing_bucket_takes_while_positive_and_then_pays_off_its_debt() {
        let mut bucket = TokenBucket::full(100, 0);
        assert!(bucket.take_owing(100, 60, 0));
        assert!(bucket.take_owing(100, 250, 0), "40 left: taken, 210 owed");
        assert!(!bucket.take_owing(100, 1, 0));
        assert!(!bucket.take_owing(100, 1, 2_000_000), "still 10 owed");
        assert!(bucket.take_owing(100, 1, 2_200_000), "paid off");
    }

    #[test]
    fn token_buckets_give_a_burst_then_the_rate() {
        let start = 5_000_000;
        let mut bucket = TokenBucket::full(100, start);
        assert_eq!(bucket.take(100, 60, start), 60);
        assert_eq!(bucket.take(100, 60, start), 40, "the rest of the burst");
        assert_eq!(bucket.take(100, 10, start), 0, "empty");
        let later = start + 250_000;
        assert_eq!(
            bucket.take(100, 60, later),
            25,
            "a quarter second refills 25"
        );
        let much_later = later + 60_000_000;
        assert_eq!(
            bucket.take(100, 1000, much_later),
            100,
            "never more than a burst"
        );
        // A clock that goes backwards refills nothing.
        assert_eq!(bucket.take(100, 1, start), 0);
        bucket.refund(100, 500);
        assert_eq!(
            bucket.take(100, 1000, much_later),
            100,
            "a refund never passes the burst"
        );
    }
}
