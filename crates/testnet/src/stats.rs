//! Small measuring tools for the benchmarks: percentiles, the process's
//! resident memory and open files, and a seeded random number generator.
//!
//! The generator is SplitMix64 rather than a crate: the benchmark only needs
//! to pick random (querier, target) pairs, and a fixed seed makes two runs
//! ask exactly the same lookups.

/// The `p`-th percentile (0–100) of `values` by the nearest-rank method,
/// or `None` if there are none. Sorts `values`.
pub fn percentile<T: Ord + Copy>(values: &mut [T], p: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = (p.clamp(0.0, 100.0) / 100.0 * values.len() as f64).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

/// This process's resident memory in bytes (`VmRSS` in
/// `/proc/self/status`), or `None` where that file does not exist.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// How many files (sockets included) this process has open, from
/// `/proc/self/fd`, or `None` where that folder does not exist.
pub fn open_files() -> Option<usize> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count())
}

/// A seeded SplitMix64 generator: fast, reproducible, not cryptographic.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `bound` (which must not be 0); the tiny modulo bias
    /// does not matter for choosing lookups.
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut values: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut values, 50.0), Some(50));
        assert_eq!(percentile(&mut values, 95.0), Some(95));
        assert_eq!(percentile(&mut values, 0.0), Some(1));
        assert_eq!(percentile(&mut values, 100.0), Some(100));
        assert_eq!(percentile(&mut [7u32], 95.0), Some(7));
        assert_eq!(percentile::<u32>(&mut [], 50.0), None);
    }

    #[test]
    fn process_figures_are_readable_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().unwrap() > 0);
            assert!(open_files().unwrap() >= 3);
        }
    }

    #[test]
    fn generator_is_reproducible_and_bounded() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
