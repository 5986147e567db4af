//! The report's figures, drawn with plotters into SVG strings.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{CalibrationBin, EpochPoint, LatencyReport, ReportError, Result};

type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Size of every figure in pixels.
const SIZE: (u32, u32) = (760, 480);
/// The most points drawn per curve; longer curves are thinned (see [`thin`]).
const MAX_POINTS: usize = 1500;

/// The BiGRU's colour.
pub(crate) const BIGRU: RGBColor = RGBColor(31, 119, 180);
/// The gradient-boosted trees' colour.
pub(crate) const GBDT: RGBColor = RGBColor(255, 127, 14);
const REFERENCE: RGBColor = RGBColor(110, 110, 110);
const BUDGET: RGBColor = RGBColor(200, 30, 30);
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// One model's curve.
pub(crate) struct Curve {
    /// Legend text.
    pub label: String,
    /// Line colour.
    pub color: RGBColor,
    /// The points, in drawing order.
    pub points: Vec<(f64, f64)>,
}

fn svg(figure: &'static str, draw: impl FnOnce(&Area<'_>) -> DrawResult) -> Result<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, SIZE).into_drawing_area();
        let plot_err = |e: String| ReportError::Plot { figure, message: e };
        draw(&root).map_err(|e| plot_err(e.to_string()))?;
        root.present().map_err(|e| plot_err(e.to_string()))?;
    }
    Ok(s)
}

fn legend_line(c: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
}

/// Drops the middle one of three collinear points (same direction), then, while more than
/// `max` points remain, keeps only points at least `tol` away (in either coordinate) from
/// the last kept one, doubling `tol` from 1/1000 until the curve fits. The first and last
/// points are always kept, so a curve from (0, 0) to (1, 1) still starts and ends there.
pub(crate) fn thin(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if points.len() <= 2 {
        return points.to_vec();
    }
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for &p in points {
        if out.len() >= 2 {
            let (a, b) = (out[out.len() - 2], out[out.len() - 1]);
            let (u, v) = ((b.0 - a.0, b.1 - a.1), (p.0 - b.0, p.1 - b.1));
            if u.0 * v.1 - u.1 * v.0 == 0.0 && u.0 * v.0 + u.1 * v.1 >= 0.0 {
                out.pop();
            }
        }
        out.push(p);
    }
    let mut tol = 1e-3;
    while out.len() > max.max(2) {
        let last = *out.last().expect("non-empty");
        let mut kept = vec![out[0]];
        for &p in &out[1..out.len() - 1] {
            let k = kept[kept.len() - 1];
            if (p.0 - k.0).abs() >= tol || (p.1 - k.1).abs() >= tol {
                kept.push(p);
            }
        }
        kept.push(last);
        out = kept;
        tol *= 2.0;
    }
    out
}

/// ROC curves of the models with the chance diagonal.
pub(crate) fn roc(curves: &[Curve]) -> Result<String> {
    svg("ROC", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption("ROC curves on the holdout", ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                REFERENCE.stroke_width(1),
            ))?
            .label("chance (AUC 0.5)")
            .legend(legend_line(REFERENCE));
        for c in curves {
            chart
                .draw_series(LineSeries::new(thin(&c.points, MAX_POINTS), c.color.stroke_width(2)))?
                .label(c.label.as_str())
                .legend(legend_line(c.color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        Ok(())
    })
}

/// Precision-recall curves (steps, as average precision integrates them) with the no-skill
/// line at the positive rate.
pub(crate) fn pr(curves: &[Curve], positive_rate: f64) -> Result<String> {
    svg("precision-recall", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption("Precision-recall curves on the holdout", ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)?;
        chart.configure_mesh().x_desc("recall").y_desc("precision").draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, positive_rate), (1.0, positive_rate)],
                6,
                4,
                REFERENCE.stroke_width(1),
            ))?
            .label(format!("no skill (positive rate {positive_rate:.4})"))
            .legend(legend_line(REFERENCE));
        for c in curves {
            chart
                .draw_series(LineSeries::new(thin(&c.points, MAX_POINTS), c.color.stroke_width(2)))?
                .label(c.label.as_str())
                .legend(legend_line(c.color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

/// The step path of a precision-recall curve in increasing recall: over `(Rₙ₋₁, Rₙ]` the
/// height is `Pₙ`, so the area under the path is the average precision.
pub(crate) fn pr_steps(precision: &[f64], recall: &[f64]) -> Vec<(f64, f64)> {
    // sklearn's order is decreasing recall, ending at (recall 0, precision 1).
    let pts: Vec<(f64, f64)> = recall.iter().zip(precision).rev().map(|(&r, &p)| (r, p)).collect();
    let mut out = Vec::with_capacity(2 * pts.len());
    if let Some(&first) = pts.first() {
        out.push(first);
    }
    for w in pts.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        out.push((prev.0, cur.1));
        out.push(cur);
    }
    out
}

/// Training curves: train and validation loss per epoch, validation AUC on the right axis,
/// per phase; the best epoch of the last phase marked.
pub(crate) fn training(epochs: &[EpochPoint]) -> Result<String> {
    let mut phases: Vec<&str> = Vec::new();
    for e in epochs {
        if !phases.contains(&e.phase.as_str()) {
            phases.push(&e.phase);
        }
    }
    let (lo_e, hi_e) = epochs
        .iter()
        .fold((usize::MAX, 0), |(lo, hi), e| (lo.min(e.epoch), hi.max(e.epoch)));
    let x = (lo_e as f64 - 0.5)..(hi_e as f64 + 0.5);
    let loss_max = epochs
        .iter()
        .flat_map(|e| e.train_loss.into_iter().chain(e.val.get("loss").copied()))
        .fold(0f64, f64::max);
    let loss_max = if loss_max > 0.0 { loss_max * 1.08 } else { 1.0 };
    let aucs: Vec<f64> = epochs.iter().filter_map(|e| e.val.get("auc").copied()).collect();
    let auc_lo = aucs.iter().copied().fold(1f64, f64::min);
    let auc_lo = (((auc_lo - 0.05) * 10.0).floor() / 10.0).clamp(0.0, 0.9);
    let best = epochs.iter().rev().find(|e| e.is_best).map(|e| e.epoch);
    svg("training-curve", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption("Training curves (BiGRU)", ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .right_y_label_area_size(56)
            .build_cartesian_2d(x.clone(), 0f64..loss_max)?
            .set_secondary_coord(x.clone(), auc_lo..1f64);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("loss")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc(if aucs.is_empty() {
                "validation AUC (not recorded)"
            } else {
                "validation AUC"
            })
            .draw()?;
        if let Some(b) = best {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(b as f64, 0.0), (b as f64, loss_max)],
                    4,
                    4,
                    REFERENCE.stroke_width(1),
                ))?
                .label(format!("best epoch ({b})"))
                .legend(legend_line(REFERENCE));
        }
        for (j, phase) in phases.iter().enumerate() {
            let of = |j: usize| PALETTE[j % PALETTE.len()];
            let suffix = if phases.len() > 1 && !phase.is_empty() {
                format!(" ({phase})")
            } else {
                String::new()
            };
            let sel: Vec<&EpochPoint> = epochs.iter().filter(|e| e.phase == *phase).collect();
            let train: Vec<(f64, f64)> = sel
                .iter()
                .filter_map(|e| e.train_loss.map(|v| (e.epoch as f64, v)))
                .collect();
            let val: Vec<(f64, f64)> = sel
                .iter()
                .filter_map(|e| e.val.get("loss").map(|v| (e.epoch as f64, *v)))
                .collect();
            let auc: Vec<(f64, f64)> = sel
                .iter()
                .filter_map(|e| e.val.get("auc").map(|v| (e.epoch as f64, *v)))
                .collect();
            for (k, (name, pts)) in [("train loss", train), ("validation loss", val)]
                .into_iter()
                .enumerate()
            {
                if pts.is_empty() {
                    continue;
                }
                let c = of(3 * j + k);
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
                chart
                    .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
                    .label(format!("{name}{suffix}"))
                    .legend(legend_line(c));
            }
            if !auc.is_empty() {
                let c = of(3 * j + 2);
                chart.draw_secondary_series(auc.iter().map(|&p| Circle::new(p, 2, c.filled())))?;
                chart
                    .draw_secondary_series(LineSeries::new(auc, c.stroke_width(2)))?
                    .label(format!("validation AUC{suffix} (right axis)"))
                    .legend(legend_line(c));
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

/// One model on the reliability diagram.
pub(crate) struct Reliability<'a> {
    /// Legend text.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// The bins.
    pub bins: &'a [CalibrationBin],
}

/// The reliability diagram: mean predicted probability against observed rate per non-empty
/// bin, each marker labelled with its bin count, plus the diagonal of perfect calibration.
pub(crate) fn calibration(models: &[Reliability<'_>]) -> Result<String> {
    svg("calibration", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption("Calibration (reliability diagram, 10 bins)", ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..1f64, 0f64..1.08f64)?;
        chart
            .configure_mesh()
            .x_desc("mean predicted probability in the bin")
            .y_desc("observed escalation rate in the bin")
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                6,
                4,
                REFERENCE.stroke_width(1),
            ))?
            .label("perfectly calibrated")
            .legend(legend_line(REFERENCE));
        for (j, m) in models.iter().enumerate() {
            let c = m.color;
            let pts: Vec<(f64, f64, usize)> = m
                .bins
                .iter()
                .filter_map(|b| Some((b.mean_predicted?, b.observed_rate?, b.count)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))?
                .label(m.label.as_str())
                .legend(legend_line(c));
            // The first model's counts above its markers, the second's below (above when the
            // marker sits on the x-axis, where a label below would be cut off).
            let font = ("sans-serif", 11).into_font().color(&c);
            chart.draw_series(pts.iter().map(|&(x, y, n)| {
                let dy = match (j % 2, y < 0.06) {
                    (0, _) => -16,
                    (_, true) => -30,
                    _ => 6,
                };
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 4, c.filled())
                    + Text::new(format!("n={n}"), (5, dy), font.clone())
            }))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
        Ok(())
    })
}

/// Milliseconds with three significant-ish digits.
pub(crate) fn ms(v: f64) -> String {
    if v < 0.1 {
        format!("{v:.4}")
    } else if v < 1.0 {
        format!("{v:.3}")
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// A budget in milliseconds: whole numbers without decimals (`10`), others like [`ms`].
pub(crate) fn budget_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        ms(v)
    }
}

/// The latency histogram and a sentence on what it shows.
pub(crate) struct LatencyFigure {
    /// The SVG.
    pub svg: String,
    /// About the axis range and the budget line.
    pub note: String,
}

/// `v` with two significant digits, trailing zeros dropped (`0.25`, `1.6`, `10`, `250`).
pub(crate) fn two_digits(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return format!("{v}");
    }
    let decimals = (1 - v.log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Histogram of the timed requests per benchmarked length on a logarithmic latency axis
/// (share of that length's requests per bin, translucent bars, one colour per length), with
/// the latency budget as a vertical line when it is within (or near) the range. `None` when
/// no length has samples.
///
/// The axis is logarithmic because lengths differ by orders of magnitude: it is drawn as a
/// linear axis over `log10(ms)` whose tick labels are the latencies.
pub(crate) fn latency(l: &LatencyReport, budget_ms: f64) -> Result<Option<LatencyFigure>> {
    let with: Vec<_> = l.lengths.iter().filter(|(_, s)| !s.samples_ms.is_empty()).collect();
    if with.is_empty() {
        return Ok(None);
    }
    let all = || with.iter().flat_map(|(_, s)| s.samples_ms.iter().copied());
    let max_sample = all().fold(0f64, f64::max);
    let min_positive = all().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
    let max_p99 = with.iter().map(|(_, s)| s.p99_ms).fold(0f64, f64::max);
    // Every sample is 0 only on a broken clock; still draw something.
    let lo = if min_positive.is_finite() {
        min_positive / 1.15
    } else {
        1e-3
    };
    let mut hi = (max_sample * 1.05).min(3.0 * max_p99).max(lo * 1.5);
    let show_budget = if budget_ms > lo && budget_ms <= hi {
        true
    } else if budget_ms > lo && budget_ms <= 4.0 * hi {
        hi = budget_ms * 1.2;
        true
    } else {
        false
    };
    let (llo, lhi) = (lo.log10(), hi.log10());
    // About 40 bins per decade (a bin spans 6% of latency), 40 to 160 in all.
    let bins = ((40.0 * (lhi - llo)).ceil() as usize).clamp(40, 160);
    let width = (lhi - llo) / bins as f64;
    let mut overflow = 0usize;
    let hists: Vec<(usize, Vec<f64>)> = with
        .iter()
        .map(|(t, s)| {
            let mut counts = vec![0usize; bins];
            for &v in &s.samples_ms {
                if v > hi {
                    overflow += 1;
                }
                let k = ((v.max(lo).log10() - llo) / width).floor().max(0.0) as usize;
                counts[k.min(bins - 1)] += 1;
            }
            let n = s.samples_ms.len() as f64;
            (**t, counts.into_iter().map(|c| 100.0 * c as f64 / n).collect())
        })
        .collect();
    // Headroom above the tallest bar for the legend.
    let ymax =
        hists.iter().flat_map(|(_, h)| h.iter().copied()).fold(1f64, f64::max) * (1.25 + 0.08 * hists.len() as f64);
    let svg = svg("latency", |root| {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption("Single-request latency per sequence length", ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d(llo..lhi, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_labels(12)
            .x_label_formatter(&|v| two_digits(10f64.powf(*v)))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("latency per request (ms, logarithmic axis)")
            .y_desc("share of the length's requests (%)")
            .draw()?;
        for (j, (t, h)) in hists.iter().enumerate() {
            let c = PALETTE[j % PALETTE.len()];
            let s = &l.lengths[t];
            let bar = |k: usize, v: f64, style: ShapeStyle| {
                let x0 = llo + k as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, v)], style)
            };
            let nonzero = || h.iter().enumerate().filter(|(_, v)| **v > 0.0);
            chart
                .draw_series(nonzero().map(|(k, &v)| bar(k, v, c.mix(0.35).filled())))?
                .label(format!(
                    "T={t}: p50 {} / p95 {} / p99 {} ms",
                    ms(s.median_ms),
                    ms(s.p95_ms),
                    ms(s.p99_ms)
                ))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], c.mix(0.6).filled()));
            chart.draw_series(nonzero().map(|(k, &v)| bar(k, v, c.stroke_width(1))))?;
        }
        if show_budget {
            let b = budget_ms.log10();
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(b, 0.0), (b, ymax)],
                    8,
                    4,
                    BUDGET.stroke_width(2),
                ))?
                .label(format!("{} ms budget", budget_text(budget_ms)))
                .legend(legend_line(BUDGET));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })?;
    let mut note = if show_budget {
        format!("The red dashed line is the {} ms budget.", budget_text(budget_ms))
    } else if budget_ms <= lo {
        format!(
            "The {} ms budget is below every request (the fastest took {} ms).",
            budget_text(budget_ms),
            ms(min_positive)
        )
    } else {
        format!(
            "The {} ms budget is off the chart: the axis ends at {} ms, {:.0}× below it.",
            budget_text(budget_ms),
            ms(hi),
            budget_ms / hi
        )
    };
    if overflow > 0 {
        note += &format!(
            " The axis stops at 3 × the largest p99; {overflow} slower request{} (up to {} ms) {} counted in the last bin.",
            if overflow == 1 { "" } else { "s" },
            ms(max_sample),
            if overflow == 1 { "is" } else { "are" }
        );
    }
    let without: Vec<String> = l
        .lengths
        .iter()
        .filter(|(_, s)| s.samples_ms.is_empty())
        .map(|(t, _)| t.to_string())
        .collect();
    if !without.is_empty() {
        note += &format!(
            " Length{} {} recorded no samples and {} only in the table.",
            if without.len() == 1 { "" } else { "s" },
            without.join(", "),
            if without.len() == 1 { "appears" } else { "appear" }
        );
    }
    Ok(Some(LatencyFigure { svg, note }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinning_keeps_ends_and_bounds_size() {
        let pts: Vec<(f64, f64)> = (0..=10_000)
            .map(|i| {
                let x = i as f64 / 10_000.0;
                (x, x.sqrt())
            })
            .collect();
        let t = thin(&pts, 500);
        assert!(t.len() <= 500 && t.len() > 50, "{}", t.len());
        assert_eq!(t[0], (0.0, 0.0));
        assert_eq!(*t.last().unwrap(), (1.0, 1.0));
        // Collinear runs collapse to their ends.
        let steps = [(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (0.5, 1.0), (1.0, 1.0)];
        assert_eq!(thin(&steps, 100), vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]);
    }

    #[test]
    fn tick_labels_have_two_digits() {
        let got: Vec<String> = [0.398107, 1.0, 1.58489, 2.5, 10.0, 251.2, 0.0631]
            .map(two_digits)
            .to_vec();
        assert_eq!(got, ["0.4", "1", "1.6", "2.5", "10", "251", "0.063"]);
    }

    #[test]
    fn pr_steps_integrate_to_average_precision() {
        let labels = [true, false, true, true, false, false, true];
        let scores = [0.9, 0.8, 0.7, 0.7, 0.4, 0.3, 0.1];
        let c = recur_train::metrics::pr_curve(&labels, &scores).unwrap();
        let ap = recur_train::metrics::average_precision(&labels, &scores).unwrap();
        let s = pr_steps(&c.precision, &c.recall);
        let area: f64 = s.windows(2).map(|w| (w[1].0 - w[0].0) * w[1].1).sum();
        assert!((area - ap).abs() < 1e-12, "{area} vs {ap}");
        assert_eq!(s[0], (0.0, 1.0));
        assert_eq!(s.last().unwrap().0, 1.0);
    }
}
