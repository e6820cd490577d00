//! SVG plots of sweeps and stress runs (plotters, SVG backend: text is
//! left to the viewer's fonts, so no font files are needed).
//!
//! Every plot uses logarithmic axes: thread counts and data volumes grow
//! geometrically, ideal scaling is a straight line, and latencies spread
//! over decades.

use plotters::prelude::*;

use crate::analyze::scaling::{cost_per_op, SweepKind, SweepResult};
use crate::analyze::stress::StressResult;
use crate::measure::BenchResult;

/// Errors drawing a plot.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters failed.
    #[error("cannot draw plot '{name}': {message}")]
    Draw {
        /// The plot's file name.
        name: String,
        /// plotters' message.
        message: String,
    },
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points; non-positive values are skipped (log axes).
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed-looking (thin, no markers): ideal or fitted lines.
    pub reference: bool,
}

/// A chart: title, axis names, lines, and an optional horizontal limit.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Title.
    pub title: String,
    /// X axis name.
    pub x_label: String,
    /// Y axis name.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Series>,
    /// A horizontal line (label, y), e.g. an objective.
    pub limit: Option<(String, f64)>,
}

/// Keeps text to characters that need no escaping in SVG.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_alphanumeric() || " -_.,:/()%<>=+×÷²".contains(c) {
                match c {
                    '<' => '‹',
                    '>' => '›',
                    c => c,
                }
            } else {
                '_'
            }
        })
        .collect()
}

/// A compact number: 1, 2.5, 10k, 1.5M.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.fract().abs() < 1e-9 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{suffix}")
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(120, 120, 120),
];

/// Bounds of positive values, widened a little for the log axis.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    (hi > 0.0).then(|| (lo / 1.25, hi * 1.25))
}

/// Draws a chart with logarithmic axes as SVG text.
pub fn render(chart: &Chart, name: &str) -> Result<String, PlotError> {
    let fail = |e: &dyn std::fmt::Display| PlotError::Draw {
        name: name.to_string(),
        message: e.to_string(),
    };
    let points = || chart.series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = bounds(points().map(|p| p.0)).ok_or_else(|| fail(&"no positive x values"))?;
    let (y0, y1) = bounds(points().map(|p| p.1).chain(chart.limit.iter().map(|l| l.1)))
        .ok_or_else(|| fail(&"no positive y values"))?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| fail(&e))?;
        let mut ctx = ChartBuilder::on(&root)
            .caption(plain(&chart.title), ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(|e| fail(&e))?;
        ctx.configure_mesh()
            .x_desc(plain(&chart.x_label))
            .y_desc(plain(&chart.y_label))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .x_label_formatter(&|v| compact(*v))
            .y_label_formatter(&|v| compact(*v))
            .draw()
            .map_err(|e| fail(&e))?;
        for (i, s) in chart.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|p| p.0 > 0.0 && p.1 > 0.0 && p.0.is_finite() && p.1.is_finite())
                .collect();
            let width = if s.reference { 1 } else { 2 };
            ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
                .map_err(|e| fail(&e))?
                .label(plain(&s.label))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            if !s.reference {
                ctx.draw_series(
                    pts.iter()
                        .map(|&p| Circle::new(p, 4, color.filled()))
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| fail(&e))?;
            }
        }
        if let Some((label, y)) = &chart.limit {
            let color = RGBColor(200, 0, 0);
            ctx.draw_series(LineSeries::new(
                vec![(x0, *y), (x1, *y)],
                color.stroke_width(1),
            ))
            .map_err(|e| fail(&e))?
            .label(plain(label))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

fn percentiles(levels: &[(f64, &BenchResult)]) -> Vec<Series> {
    type Pick = fn(&BenchResult) -> u64;
    let picks: [(&str, Pick); 3] = [
        ("p50", |b| b.latency.p50.0),
        ("p95", |b| b.latency.p95.0),
        ("p99", |b| b.latency.p99.0),
    ];
    picks
        .iter()
        .map(|(label, pick)| Series {
            label: label.to_string(),
            points: levels
                .iter()
                .map(|(x, b)| (*x, pick(b) as f64 / 1e3))
                .collect(),
            reference: false,
        })
        .collect()
}

/// The charts of a sweep, by file name: throughput and latency vs
/// threads, or cost per operation vs rows with its fitted growth.
pub fn sweep_charts(r: &SweepResult) -> Vec<(String, Chart)> {
    match r.kind {
        SweepKind::Threads => {
            let measured: Vec<(f64, f64)> = r
                .levels
                .iter()
                .map(|l| (l.threads as f64, l.bench.throughput.0))
                .collect();
            let ideal = match r.levels.first() {
                Some(first) => r
                    .levels
                    .iter()
                    .map(|l| {
                        (
                            l.threads as f64,
                            first.bench.throughput.0 * l.threads as f64 / first.threads as f64,
                        )
                    })
                    .collect(),
                None => Vec::new(),
            };
            let throughput = Chart {
                title: format!("{}: throughput vs threads ({} cores)", r.workload, r.cores),
                x_label: "threads".into(),
                y_label: "ops/s".into(),
                series: vec![
                    Series {
                        label: "measured".into(),
                        points: measured,
                        reference: false,
                    },
                    Series {
                        label: "ideal (linear scaling)".into(),
                        points: ideal,
                        reference: true,
                    },
                ],
                limit: None,
            };
            let levels: Vec<_> = r
                .levels
                .iter()
                .map(|l| (l.threads as f64, &l.bench))
                .collect();
            let latency = Chart {
                title: format!("{}: latency vs threads", r.workload),
                x_label: "threads".into(),
                y_label: "latency (µs)".into(),
                series: percentiles(&levels),
                limit: None,
            };
            vec![
                ("throughput-vs-threads.svg".into(), throughput),
                ("latency-vs-threads.svg".into(), latency),
            ]
        }
        SweepKind::Rows => {
            let mut series = vec![Series {
                label: "median cost per op".into(),
                points: r
                    .levels
                    .iter()
                    .map(|l| (l.rows as f64, cost_per_op(&l.bench).0 as f64 / 1e3))
                    .collect(),
                reference: false,
            }];
            if let Some(fit) = &r.fit {
                if let Some(model) = fit.models.iter().find(|m| m.model == fit.best) {
                    let (lo, hi) = (
                        r.levels.first().map_or(1, |l| l.rows) as f64,
                        r.levels.last().map_or(1, |l| l.rows) as f64,
                    );
                    let points = (0..=40)
                        .map(|i| {
                            let n = lo * (hi / lo).powf(i as f64 / 40.0);
                            (n, model.predict(n) / 1e3)
                        })
                        .collect();
                    series.push(Series {
                        label: format!("fit {} (R² {:.3})", fit.best, fit.r_squared),
                        points,
                        reference: true,
                    });
                }
            }
            vec![(
                "cost-vs-rows.svg".into(),
                Chart {
                    title: format!("{}: cost per operation vs rows", r.workload),
                    x_label: "rows".into(),
                    y_label: "median latency (µs)".into(),
                    series,
                    limit: None,
                },
            )]
        }
    }
}

/// The chart of a stress run: percentiles per level, with the objective.
pub fn stress_chart(r: &StressResult) -> Chart {
    let levels: Vec<_> = r
        .levels
        .iter()
        .map(|l| (l.threads as f64, &l.bench))
        .collect();
    Chart {
        title: format!("{}: stress, latency vs threads", r.workload),
        x_label: "threads".into(),
        y_label: "latency (µs)".into(),
        series: percentiles(&levels),
        limit: Some((format!("objective {}", r.slo), r.slo.limit.0 as f64 / 1e3)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_with_escaped_text() {
        let chart = Chart {
            title: "<script>alert(1)</script> & co".into(),
            x_label: "threads".into(),
            y_label: "ops/s".into(),
            series: vec![Series {
                label: "measured".into(),
                points: vec![(1.0, 1000.0), (2.0, 1900.0), (4.0, 0.0)],
                reference: false,
            }],
            limit: Some(("limit".into(), 1500.0)),
        };
        let svg = render(&chart, "t.svg").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(!svg.contains("<script"));
        assert!(svg.contains("measured"));
    }

    #[test]
    fn empty_charts_are_an_error_not_a_panic() {
        let chart = Chart {
            title: "x".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![],
            limit: None,
        };
        assert!(render(&chart, "e.svg").is_err());
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact(1.0), "1");
        assert_eq!(compact(2.5), "2.5");
        assert_eq!(compact(10_000.0), "10k");
        assert_eq!(compact(1_500_000.0), "1.5M");
    }
}
