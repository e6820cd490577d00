//! The one least-squares line fit, shared by leak detection (live bytes
//! against operations), soak runs (RSS against operations) and growth fits
//! (cost against data volume).

/// A straight line `y = intercept + slope × x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Line {
    /// Value at x = 0.
    pub intercept: f64,
    /// Change of y per unit of x.
    pub slope: f64,
}

/// How well a line fits points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Goodness {
    /// Coefficient of determination, 1 − SS_res ÷ SS_tot, at least 0.
    /// Points with no variance at all have nothing to explain: their R² is
    /// 0, so a flat series never passes for a well-fitted trend.
    pub r_squared: f64,
    /// Root-mean-square residual.
    pub rms: f64,
}

fn means(xs: &[f64], ys: &[f64]) -> Option<(f64, f64)> {
    let n = xs.len().min(ys.len());
    if n == 0 {
        return None;
    }
    let n_f = n as f64;
    Some((
        xs[..n].iter().sum::<f64>() / n_f,
        ys[..n].iter().sum::<f64>() / n_f,
    ))
}

impl Line {
    /// The least-squares line through the points. With fewer than two
    /// distinct x values the slope is 0 (the mean of y).
    pub fn fit(xs: &[f64], ys: &[f64]) -> Line {
        let Some((mx, my)) = means(xs, ys) else {
            return Line {
                intercept: 0.0,
                slope: 0.0,
            };
        };
        let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
        let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Line::through_means(xs, ys, slope)
    }

    /// The line of the given slope through the points' means (the best
    /// intercept for that slope).
    pub fn through_means(xs: &[f64], ys: &[f64], slope: f64) -> Line {
        let (mx, my) = means(xs, ys).unwrap_or((0.0, 0.0));
        Line {
            intercept: my - slope * mx,
            slope,
        }
    }

    /// y at `x`.
    pub fn predict(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }

    /// How well this line fits the points.
    pub fn goodness(&self, xs: &[f64], ys: &[f64]) -> Goodness {
        let n = xs.len().min(ys.len());
        let Some((_, my)) = means(xs, ys) else {
            return Goodness {
                r_squared: 0.0,
                rms: 0.0,
            };
        };
        let ss_res: f64 = xs
            .iter()
            .zip(ys)
            .map(|(x, y)| (y - self.predict(*x)).powi(2))
            .sum();
        let ss_tot: f64 = ys[..n].iter().map(|y| (y - my).powi(2)).sum();
        Goodness {
            r_squared: if ss_tot > 0.0 {
                (1.0 - ss_res / ss_tot).max(0.0)
            } else {
                0.0
            },
            rms: (ss_res / n as f64).sqrt(),
        }
    }
}

/// A power law `y ∝ x^k` fitted on a log–log scale, with a 95 % interval
/// on the exponent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerLaw {
    /// The exponent `k`: 0 is flat, 1 proportional, 2 quadratic.
    pub k: f64,
    /// Lower end of its 95 % interval (Student t over the residuals).
    pub low: f64,
    /// Upper end of its 95 % interval.
    pub high: f64,
    /// The fitted line in log–log space (ln y = intercept + k × ln x).
    pub line: Line,
}

/// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom.
fn t975(df: usize) -> f64 {
    const TABLE: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::INFINITY,
        1..=10 => TABLE[df - 1],
        _ => 1.96 + 2.5 / df as f64,
    }
}

impl PowerLaw {
    /// Fits `y = c × x^k` by least squares on `(ln x, ln y)`; `None` unless
    /// there are two distinct positive x and every y is positive.
    pub fn fit(xs: &[f64], ys: &[f64]) -> Option<PowerLaw> {
        if xs.iter().chain(ys).any(|v| !(v.is_finite() && *v > 0.0)) {
            return None;
        }
        let lx: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let ly: Vec<f64> = ys.iter().map(|y| y.ln()).collect();
        let (mx, _) = means(&lx, &ly)?;
        let sxx: f64 = lx.iter().map(|x| (x - mx).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let line = Line::fit(&lx, &ly);
        let n = lx.len().min(ly.len());
        let df = n.saturating_sub(2);
        let ss_res = line.goodness(&lx, &ly).rms.powi(2) * n as f64;
        let half = if df == 0 {
            0.0
        } else {
            t975(df) * (ss_res / df as f64 / sxx).sqrt()
        };
        Some(PowerLaw {
            k: line.slope,
            low: line.slope - half,
            high: line.slope + half,
            line,
        })
    }

    /// The fitted ratio y(to) ÷ y(from).
    pub fn ratio(&self, from: f64, to: f64) -> f64 {
        (to / from).powf(self.k)
    }
}

/// Least-squares slope and R² of the points: the usual pair.
pub fn slope_and_r2(xs: &[f64], ys: &[f64]) -> (f64, f64) {
    let line = Line::fit(xs, ys);
    (line.slope, line.goodness(xs, ys).r_squared)
}

/// The 95 % interval of a least-squares slope (Student t over the
/// residuals); `None` with fewer than three points or one distinct x.
pub fn slope_interval(xs: &[f64], ys: &[f64]) -> Option<(f64, f64)> {
    let n = xs.len().min(ys.len());
    let (mx, _) = means(&xs[..n], &ys[..n])?;
    let sxx: f64 = xs[..n].iter().map(|x| (x - mx).powi(2)).sum();
    if n < 3 || sxx <= 0.0 {
        return None;
    }
    let line = Line::fit(&xs[..n], &ys[..n]);
    let ss_res = line.goodness(&xs[..n], &ys[..n]).rms.powi(2) * n as f64;
    let half = t975(n - 2) * (ss_res / (n - 2) as f64 / sxx).sqrt();
    Some((line.slope - half, line.slope + half))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_lines_are_recovered() {
        let xs = [1000.0, 2000.0, 4000.0];
        let ys: Vec<f64> = xs.iter().map(|x| 5000.0 + 96.0 * x).collect();
        let line = Line::fit(&xs, &ys);
        assert!((line.slope - 96.0).abs() < 1e-9);
        assert!((line.intercept - 5000.0).abs() < 1e-6);
        let g = line.goodness(&xs, &ys);
        assert!(g.r_squared > 0.999_999 && g.rms < 1e-6, "{g:?}");
    }

    #[test]
    fn flat_data_has_no_trend_and_no_r2() {
        let xs = [1.0, 2.0, 3.0];
        let (slope, r2) = slope_and_r2(&xs, &[7.0, 7.0, 7.0]);
        assert_eq!((slope, r2), (0.0, 0.0));
        // One distinct x: no slope to fit.
        assert_eq!(Line::fit(&[2.0, 2.0], &[1.0, 3.0]).slope, 0.0);
        assert_eq!(Line::fit(&[], &[]).slope, 0.0);
    }

    #[test]
    fn power_laws_are_recovered_with_an_interval() {
        let xs = [1e3, 4e3, 16e3, 64e3];
        let ys: Vec<f64> = xs.iter().map(|x: &f64| 3.0 * x.powf(0.5)).collect();
        let p = PowerLaw::fit(&xs, &ys).unwrap();
        assert!(
            (p.k - 0.5).abs() < 1e-9 && (p.high - p.low).abs() < 1e-6,
            "{p:?}"
        );
        assert!((p.ratio(1e3, 4e3) - 2.0).abs() < 1e-9);
        let noisy = [ys[0] * 1.1, ys[1] * 0.9, ys[2] * 1.05, ys[3]];
        let p = PowerLaw::fit(&xs, &noisy).unwrap();
        assert!(p.low < 0.5 && 0.5 < p.high, "{p:?}");
        assert!(PowerLaw::fit(&[1.0, 2.0], &[0.0, 1.0]).is_none());
        assert!(PowerLaw::fit(&[2.0, 2.0], &[1.0, 3.0]).is_none());
    }

    #[test]
    fn noise_lowers_r2() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        let (_, r2) = slope_and_r2(&xs, &[1.0, 3.0, 2.0, 4.0]);
        assert!(r2 > 0.5 && r2 < 0.9, "{r2}");
    }

    #[test]
    fn a_slope_interval_holds_the_slope_and_narrows_to_it_on_a_line() {
        let xs = [1.0, 2.0, 3.0, 4.0, 5.0];
        let (lo, hi) = slope_interval(&xs, &[10.0, 20.0, 30.0, 40.0, 50.0]).unwrap();
        assert!((lo - 10.0).abs() < 1e-9 && (hi - 10.0).abs() < 1e-9);
        let (lo, hi) = slope_interval(&xs, &[10.0, 22.0, 28.0, 41.0, 50.0]).unwrap();
        assert!(lo < 9.9 && hi > 9.9 && lo > 5.0 && hi < 15.0, "{lo} {hi}");
        assert!(slope_interval(&[1.0, 2.0], &[1.0, 2.0]).is_none());
    }
}
