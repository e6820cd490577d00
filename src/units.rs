//! Units as newtypes, so a nanosecond is never mistaken for a byte count.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration in nanoseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub u64);

impl Nanos {
    /// The value in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The value in milliseconds.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Self {
        Nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl From<Nanos> for Duration {
    fn from(n: Nanos) -> Self {
        Duration::from_nanos(n.0)
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0 as f64;
        if n < 1e3 {
            write!(f, "{} ns", self.0)
        } else if n < 1e6 {
            write!(f, "{:.1} µs", n / 1e3)
        } else if n < 1e9 {
            write!(f, "{:.2} ms", n / 1e6)
        } else {
            write!(f, "{:.2} s", n / 1e9)
        }
    }
}

/// A size in bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses a size: `512KiB`, `64k`, `1MiB`, `4096`, `2MB` (k, m, g are
    /// binary).
    pub fn parse(s: &str) -> Result<Bytes, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a size (e.g. 512KiB, 64k, 1MiB)"))?;
        let mult = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "k" | "kib" => 1024.0,
            "m" | "mib" => 1024.0 * 1024.0,
            "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            _ => {
                return Err(format!(
                    "'{s}': unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)"
                ))
            }
        };
        Ok(Bytes((n * mult).round().min(u64::MAX as f64) as u64))
    }

    /// The value in mebibytes.
    pub fn as_mib(self) -> f64 {
        self.0 as f64 / (1024.0 * 1024.0)
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if b < 1024.0 {
            write!(f, "{} B", self.0)
        } else if b < 1024.0 * 1024.0 {
            write!(f, "{:.1} KiB", b / 1024.0)
        } else if b < 1024.0 * 1024.0 * 1024.0 {
            write!(f, "{:.1} MiB", b / (1024.0 * 1024.0))
        } else {
            write!(f, "{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
        }
    }
}

/// A rate of operations per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpsPerSec(pub f64);

impl fmt::Display for OpsPerSec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        if r >= 1e6 {
            write!(f, "{:.2}M ops/s", r / 1e6)
        } else if r >= 1e3 {
            write!(f, "{:.1}k ops/s", r / 1e3)
        } else {
            write!(f, "{r:.1} ops/s")
        }
    }
}

/// Parses a count such as `1000`, `100k`, `1m` or `10_000`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000u64),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000u64),
        _ => (t.as_str(), 1u64),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a count (examples: 1000, 100k, 1m)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Parses a duration such as `10s`, `500ms` or `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); examples: 500ms, 10s, 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_with_suffixes() {
        assert_eq!(parse_count("100k"), Ok(100_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert_eq!(parse_count("2M"), Ok(2_000_000));
        assert!(parse_count("-5").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("ten seconds").is_err());
    }

    #[test]
    fn display_picks_a_readable_unit() {
        assert_eq!(Nanos(1_500_000).to_string(), "1.50 ms");
        assert_eq!(Bytes(2048).to_string(), "2.0 KiB");
        assert_eq!(Bytes::parse("512KiB"), Ok(Bytes(512 * 1024)));
        assert_eq!(Bytes::parse("64k"), Ok(Bytes(65536)));
        assert_eq!(Bytes::parse("2MB"), Ok(Bytes(2_000_000)));
        assert_eq!(Bytes::parse("4096"), Ok(Bytes(4096)));
        assert!(Bytes::parse("12parsecs").unwrap_err().contains("unit"));
        assert!(Bytes::parse("x").is_err());
    }
}
