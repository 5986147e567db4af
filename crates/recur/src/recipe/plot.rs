//! Training-curve plot (SVG, drawn with plotters).

use std::path::Path;

use plotters::prelude::*;
use recur_train::trainer::EpochRecord;

/// Draws the training loss and the validation metrics of every epoch into an SVG file at
/// `path`: loss curves on the left axis and `[0, 1]`-ranged metrics (accuracy, AUC) on the
/// right one. Written to a string first, then atomically to disk.
pub fn training_curve(path: &Path, records: &[EpochRecord], title: &str) -> std::io::Result<()> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 480)).into_drawing_area();
        draw(&root, records, title).map_err(|e| std::io::Error::other(e.to_string()))?;
        root.present().map_err(|e| std::io::Error::other(e.to_string()))?;
    }
    recur_train::fsutil::write_atomic(path, svg.as_bytes())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    records: &[EpochRecord],
    title: &str,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = records.len().max(1) as f64;
    let mut losses: Vec<(&str, Vec<(f64, f64)>)> = vec![(
        "train loss",
        records
            .iter()
            .filter(|r| r.train_loss.is_finite())
            .map(|r| (r.epoch as f64, r.train_loss))
            .collect(),
    )];
    if records.iter().any(|r| r.val.contains_key("loss")) {
        losses.push((
            "validation loss",
            records
                .iter()
                .filter_map(|r| r.val.get("loss").map(|v| (r.epoch as f64, *v)))
                .collect(),
        ));
    }
    let ymax = losses
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(1e-6f64, f64::max)
        * 1.05;
    let unit_metrics: Vec<&str> = ["accuracy", "auc", "average_precision", "macro_f1"]
        .into_iter()
        .filter(|m| records.iter().any(|r| r.val.contains_key(*m)))
        .collect();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .right_y_label_area_size(48)
        .build_cartesian_2d(0f64..n, 0f64..ymax)?
        .set_secondary_coord(0f64..n, 0f64..1f64);
    chart.configure_mesh().x_desc("epoch").y_desc("loss").draw()?;
    chart.configure_secondary_axes().y_desc("metric").draw()?;
    let palette = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
    for (i, (name, pts)) in losses.into_iter().enumerate() {
        let c = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    for (j, m) in unit_metrics.into_iter().enumerate() {
        let c = palette[(j + 2) % palette.len()];
        let pts: Vec<(f64, f64)> = records
            .iter()
            .filter_map(|r| r.val.get(m).map(|v| (r.epoch as f64, *v)))
            .collect();
        chart
            .draw_secondary_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("validation {m}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::MiddleRight)
        .draw()?;
    Ok(())
}
