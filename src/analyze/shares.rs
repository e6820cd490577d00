//! How far a share of samples can be trusted: the interval of one share
//! (a flamegraph frame's, a CPU finding's) and of the change of a share
//! between two profiles (a comparison's frame changes).

/// The 95 % Wilson score interval of a share `k / n` of samples, as
/// fractions: the uncertainty a flamegraph share carries.
pub fn share_interval(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.96_f64;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The 95 % interval of the change of a share between two sets of samples,
/// `k_cur / n_cur − k_base / n_base`, as fractions: Newcombe's hybrid score
/// interval, built from the two [`share_interval`]s.
pub fn share_change_interval(k_base: u64, n_base: u64, k_cur: u64, n_cur: u64) -> (f64, f64) {
    let p = |k: u64, n: u64| k as f64 / n.max(1) as f64;
    let (pb, pc) = (p(k_base, n_base), p(k_cur, n_cur));
    let (lb, ub) = share_interval(k_base, n_base);
    let (lc, uc) = share_interval(k_cur, n_cur);
    let d = pc - pb;
    let lo = d - ((pc - lc).powi(2) + (ub - pb).powi(2)).sqrt();
    let hi = d + ((uc - pc).powi(2) + (pb - lb).powi(2)).sqrt();
    (lo, hi)
}

/// Whether a share changed by more than chance between `k_base` of
/// `n_base` and `k_cur` of `n_cur` samples: its
/// [`share_change_interval`] excludes 0. A change that does not is within
/// the noise of these sample counts.
pub fn share_change_significant(k_base: u64, n_base: u64, k_cur: u64, n_cur: u64) -> bool {
    let (lo, hi) = share_change_interval(k_base, n_base, k_cur, n_cur);
    lo > 0.0 || hi < 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_carries_its_interval() {
        // Wilson 95 % intervals (R's prop.test without continuity correction).
        let (lo, hi) = share_interval(60, 100);
        assert!(
            (lo - 0.502).abs() < 0.001 && (hi - 0.691).abs() < 0.001,
            "{lo} {hi}"
        );
        let (lo, hi) = share_interval(3, 5);
        assert!(
            (lo - 0.231).abs() < 0.001 && (hi - 0.882).abs() < 0.001,
            "{lo} {hi}"
        );
        assert_eq!(share_interval(0, 0), (0.0, 1.0));
    }

    #[test]
    fn a_change_of_share_is_significant_only_beyond_the_noise_of_its_counts() {
        // Newcombe (1998), method 10: 56/70 − 48/80 → 0.0524 to 0.3339.
        let (lo, hi) = share_change_interval(48, 80, 56, 70);
        assert!(
            (lo - 0.0524).abs() < 0.0005 && (hi - 0.3339).abs() < 0.0005,
            "{lo} {hi}"
        );
        // The case: 42.9 % → 85.7 % of 7 samples a side is noise;
        // the same shares of 1,000 samples a side are not.
        assert!(!share_change_significant(3, 7, 6, 7));
        assert!(share_change_significant(429, 1000, 857, 1000));
        assert!(share_change_significant(857, 1000, 429, 1000));
        assert!(!share_change_significant(0, 0, 5, 10));
    }
}
