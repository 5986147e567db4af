//! Assembling `report.html`: summary tables, the figures and their explanations.

use std::fmt::Write as _;

use plotters::style::RGBColor;
use recur_train::metrics;
use serde_json::Value;

use super::figures::{self, Curve, Reliability, BIGRU, GBDT};
use super::stats::columns;
use super::{
    calibration, CalibrationBin, HoldoutSummary, ModelSummary, Rendered, ReportError, ReportOptions, Result, RunInputs,
    CALIBRATION_BINS, EPOCHS_FILE, LATENCY_FILE, SCORES_FILE,
};

/// Escapes `s` for HTML text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222;\
max-width:980px;margin:2em auto;padding:0 1em;line-height:1.45}\
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}\
.meta{color:#555;font-size:.92em}code{background:#f3f3f3;padding:0 .25em;border-radius:3px}\
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .7em}\
th{background:#f5f5f5;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:.6em 0}figure svg{max-width:100%;height:auto;border:1px solid #eee}\
.explain{font-size:.95em}.missing{background:#fff6e6;border-left:4px solid #f0a020;padding:.6em 1em}\
table.bins{font-size:.85em}.better{font-weight:600}";

fn metric_err(path: &std::path::Path, what: String, err: recur_train::TrainError) -> ReportError {
    ReportError::Metric {
        path: path.display().to_string(),
        what,
        err,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn signed(v: f64) -> String {
    format!("{}{:.4}", if v >= 0.0 { "+" } else { "−" }, v.abs())
}

/// Renders the whole page.
pub(crate) fn page(inputs: &RunInputs, h: &HoldoutSummary, opts: &ReportOptions) -> Result<Rendered> {
    let scores_path = inputs.dir.join(SCORES_FILE);
    let title = opts.title.clone().unwrap_or_else(|| {
        let name = inputs
            .dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| inputs.dir.display().to_string());
        format!("Escalation forecaster — {name}")
    });
    let (labels, bigru, gbdt) = columns(&inputs.scores);
    let models: [(&str, &str, &[f64], ModelSummary, RGBColor); 2] = [
        ("BiGRU", "bigru", &bigru, h.bigru, BIGRU),
        ("GBDT", "gbdt", &gbdt, h.gbdt, GBDT),
    ];
    let mut roc_curves = Vec::new();
    let mut pr_curves = Vec::new();
    let mut bins: Vec<Vec<CalibrationBin>> = Vec::new();
    for (name, key, p, m, color) in &models {
        let roc =
            metrics::roc_curve(&labels, p).map_err(|e| metric_err(&scores_path, format!("{key} ROC curve"), e))?;
        roc_curves.push(Curve {
            label: format!("{name} (AUC {:.4})", m.auc),
            color: *color,
            points: roc.fpr.iter().copied().zip(roc.tpr.iter().copied()).collect(),
        });
        let pr = metrics::pr_curve(&labels, p)
            .map_err(|e| metric_err(&scores_path, format!("{key} precision-recall curve"), e))?;
        pr_curves.push(Curve {
            label: format!("{name} (AP {:.4})", m.average_precision),
            color: *color,
            points: figures::pr_steps(&pr.precision, &pr.recall),
        });
        bins.push(calibration(&labels, p, CALIBRATION_BINS));
    }

    let mut notes = Vec::new();
    let mut figures_drawn = 0usize;
    let mut body = String::new();
    let w = &mut body;
    // Infallible: writing to a String.
    let _ = writeln!(w, "<h1>{}</h1>", esc(&title));
    let _ = writeln!(
        w,
        "<p class=\"meta\">Run directory <code>{}</code>. Inputs: <code>{SCORES_FILE}</code> ({} rows){}{}.</p>",
        esc(&inputs.dir.display().to_string()),
        inputs.scores.len(),
        match &inputs.epochs {
            Some(e) => format!(", <code>{EPOCHS_FILE}</code> ({} epochs)", e.len()),
            None => format!(", no <code>{EPOCHS_FILE}</code>"),
        },
        match &inputs.latency {
            Some(l) => format!(", <code>{LATENCY_FILE}</code> ({} lengths)", l.lengths.len()),
            None => format!(", no <code>{LATENCY_FILE}</code>"),
        },
    );

    // Summary.
    let _ = writeln!(w, "<h2>Summary</h2>");
    let _ = writeln!(
        w,
        "<p>Holdout (time-based): <b>{}</b> cut points, <b>{}</b> escalated within the horizon \
         (positive rate {:.2}%).</p>",
        h.samples,
        h.positives,
        100.0 * h.positive_rate()
    );
    let _ = writeln!(
        w,
        "<table class=\"summary\"><tr><th>holdout metric</th><th>BiGRU</th><th>GBDT</th><th>BiGRU − GBDT</th></tr>"
    );
    let rows: [(&str, &str, f64, f64, bool); 3] = [
        ("ROC-AUC", "auc", h.bigru.auc, h.gbdt.auc, true),
        (
            "average precision",
            "ap",
            h.bigru.average_precision,
            h.gbdt.average_precision,
            true,
        ),
        (
            "Brier score (lower is better)",
            "brier",
            h.bigru.brier,
            h.gbdt.brier,
            false,
        ),
    ];
    for (name, id, a, b, higher) in rows {
        let (ca, cb) = match (a.partial_cmp(&b), higher) {
            (Some(std::cmp::Ordering::Greater), true) | (Some(std::cmp::Ordering::Less), false) => (" better", ""),
            (Some(std::cmp::Ordering::Less), true) | (Some(std::cmp::Ordering::Greater), false) => ("", " better"),
            _ => ("", ""),
        };
        let _ = writeln!(
            w,
            "<tr><th>{name}</th><td class=\"num{ca}\" id=\"bigru-{id}\">{a:.4}</td>\
             <td class=\"num{cb}\" id=\"gbdt-{id}\">{b:.4}</td><td class=\"num\">{}</td></tr>",
            signed(a - b)
        );
    }
    let _ = writeln!(w, "</table>");
    // `recur demo` also records the trees on the guide's narrower flat features, and what
    // reading the log found.
    let recorded = std::fs::read(inputs.dir.join("metrics.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let guide = recorded
        .as_ref()
        .and_then(|v| v["holdout"]["gbdt_guide_features_auc"].as_f64());
    if let Some(bad) = recorded
        .as_ref()
        .and_then(|v| v["input"]["bad_rows"].as_u64())
        .filter(|&n| n > 0)
    {
        let first = recorded
            .as_ref()
            .and_then(|v| v["input"]["bad_row_examples"][0].as_str())
            .unwrap_or("");
        let _ = writeln!(
            w,
            "<p class=\"warning\" id=\"bad-rows\">The input log had <b>{bad}</b> bad rows, skipped \
             (<code>--skip-bad-rows</code>); the first: <code>{}</code>.</p>",
            esc(first)
        );
    }
    if let Some(g) = guide {
        let _ = writeln!(
            w,
            "<p>The same trees on the guide's flat features only (counts per event type, last event type, \
             events so far, duration, priority): ROC-AUC <b id=\"gbdt-guide-auc\">{g:.4}</b> \
             (BiGRU − that: {}).</p>",
            signed(h.bigru.auc - g)
        );
    }
    if let Some(l) = &inputs.latency {
        let mut setup = Vec::new();
        for key in ["kind", "model"] {
            if let Some(v) = l.extra.get(key).filter(|v| !v.is_null()) {
                setup.push(format!("{key} <code>{}</code>", esc(&value_text(v))));
            }
        }
        for (k, v) in [("kernels", &l.kernels), ("SIMD", &l.simd)] {
            if !v.is_null() {
                setup.push(format!("{k} <code>{}</code>", esc(&value_text(v))));
            }
        }
        if let Some(t) = l.threads {
            setup.push(format!("{t} thread{}", if t == 1 { "" } else { "s" }));
        }
        if let Some(b) = l.batch {
            setup.push(format!("batch {b}"));
        }
        let _ = writeln!(
            w,
            "<p>Single-request latency measured by <code>recur bench</code>{}:</p>",
            if setup.is_empty() {
                String::new()
            } else {
                format!(", {}", setup.join(", "))
            }
        );
        let _ = writeln!(
            w,
            "<table class=\"latency\"><tr><th>length (steps)</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th>\
             <th>mean ms</th><th>min ms</th><th>requests</th><th>within {} ms at p99</th></tr>",
            figures::budget_text(opts.latency_budget_ms)
        );
        for (t, s) in &l.lengths {
            let opt = |v: Option<f64>| v.map_or_else(|| "—".to_string(), figures::ms);
            let _ = writeln!(
                w,
                "<tr><td class=\"num\">{t}</td><td class=\"num\" id=\"p50-t{t}\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td>{}</td></tr>",
                figures::ms(s.median_ms),
                figures::ms(s.p95_ms),
                figures::ms(s.p99_ms),
                opt(s.mean_ms),
                opt(s.min_ms),
                s.iterations
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| s.samples_ms.len().to_string()),
                if s.p99_ms <= opts.latency_budget_ms {
                    "yes"
                } else {
                    "no"
                },
            );
        }
        let _ = writeln!(w, "</table>");
    }

    // 1. ROC.
    let _ = writeln!(w, "<h2>1. ROC curves</h2>");
    let _ = writeln!(w, "<figure>{}</figure>", figures::roc(&roc_curves)?);
    figures_drawn += 1;
    let _ = writeln!(
        w,
        "<p class=\"explain\">Each curve traces the share of escalating cut points caught (true positive rate) \
         against the share of quiet ones flagged (false positive rate) as the alert threshold falls through every \
         distinct score. The area under it, ROC-AUC, is the probability that a random escalating cut point scores \
         above a random quiet one (ties count half); the dashed diagonal is chance (0.5). Curves and areas are \
         computed exactly as scikit-learn's <code>roc_curve</code> and <code>roc_auc_score</code>.</p>"
    );

    // 2. Precision-recall.
    let _ = writeln!(w, "<h2>2. Precision-recall curves</h2>");
    let _ = writeln!(w, "<figure>{}</figure>", figures::pr(&pr_curves, h.positive_rate())?);
    figures_drawn += 1;
    let _ = writeln!(
        w,
        "<p class=\"explain\">Precision (the share of alerts that were real escalations) against recall (the share \
         of escalations alerted on). With few positives this is the more telling view: a ranking that ignores the \
         ticket gets the positive rate, {:.4} (dashed line), at every recall. Average precision (AP) is the area \
         under the step curve drawn here, <code>Σ (Rₙ − Rₙ₋₁) Pₙ</code>, as scikit-learn's \
         <code>average_precision_score</code>.</p>",
        h.positive_rate()
    );

    // 3. Training curves.
    let _ = writeln!(w, "<h2>3. Training curves</h2>");
    match inputs.epochs.as_deref() {
        Some(epochs) if !epochs.is_empty() => {
            let _ = writeln!(w, "<figure>{}</figure>", figures::training(epochs)?);
            figures_drawn += 1;
            let phases: Vec<&str> = epochs.iter().fold(Vec::new(), |mut v, e| {
                if !v.contains(&e.phase.as_str()) {
                    v.push(e.phase.as_str());
                }
                v
            });
            let _ = writeln!(
                w,
                "<p class=\"explain\">The BiGRU's mean training loss and validation loss per epoch (left axis) and its \
                 validation ROC-AUC (right axis), from <code>{EPOCHS_FILE}</code>; the dashed vertical line marks the \
                 last epoch flagged best, the weights kept. A validation loss rising while the training loss keeps \
                 falling means overfitting; early stopping ends training there.{}</p>",
                if phases.len() > 1 {
                    format!(
                        " Phases, each with its own colours: {}.",
                        phases.iter().map(|p| esc(p)).collect::<Vec<_>>().join(", ")
                    )
                } else {
                    String::new()
                }
            );
        }
        Some(_) => {
            notes.push(format!("{EPOCHS_FILE} holds no epoch: no training curves"));
            let _ = writeln!(
                w,
                "<p class=\"missing\"><code>{EPOCHS_FILE}</code> holds no epoch, so there are no training curves.</p>"
            );
        }
        None => {
            notes.push(format!("no {EPOCHS_FILE}: no training curves"));
            let _ = writeln!(
                w,
                "<p class=\"missing\">No training curves: the run directory has no <code>{EPOCHS_FILE}</code> \
                 (the trainer's per-epoch log).</p>"
            );
        }
    }

    // 4. Calibration.
    let _ = writeln!(w, "<h2>4. Calibration</h2>");
    let rel: Vec<Reliability<'_>> = models
        .iter()
        .zip(&bins)
        .map(|((name, _, _, m, color), b)| Reliability {
            label: format!("{name} (Brier {:.4})", m.brier),
            color: *color,
            bins: b,
        })
        .collect();
    let _ = writeln!(w, "<figure>{}</figure>", figures::calibration(&rel)?);
    figures_drawn += 1;
    let _ = writeln!(
        w,
        "<p class=\"explain\">Cut points are grouped into {CALIBRATION_BINS} equal-width bins of predicted \
         probability; each marker is a bin's mean prediction against the share of its cut points that escalated, \
         labelled with the bin's count (empty bins are left out). On the diagonal a model is calibrated: below it the \
         model over-predicts, above it under-predicts; bins with few cut points are noisy. The Brier score is the \
         mean squared error of the probabilities (lower is better): BiGRU {:.4}, GBDT {:.4}.</p>",
        h.bigru.brier, h.gbdt.brier
    );
    let _ = writeln!(
        w,
        "<table class=\"bins\"><tr><th rowspan=\"2\">predicted probability</th><th colspan=\"3\">BiGRU</th>\
         <th colspan=\"3\">GBDT</th></tr><tr><th>cut points</th><th>mean predicted</th><th>observed rate</th>\
         <th>cut points</th><th>mean predicted</th><th>observed rate</th></tr>"
    );
    let opt = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.4}"));
    for (k, (a, b)) in bins[0].iter().zip(&bins[1]).enumerate() {
        let close = if k + 1 == bins[0].len() { ']' } else { ')' };
        let _ = writeln!(
            w,
            "<tr><td>[{:.1}, {:.1}{close}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            a.lo,
            a.hi,
            a.count,
            opt(a.mean_predicted),
            opt(a.observed_rate),
            b.count,
            opt(b.mean_predicted),
            opt(b.observed_rate)
        );
    }
    let _ = writeln!(w, "</table>");

    // 5. Latency.
    let _ = writeln!(w, "<h2>5. Latency</h2>");
    match &inputs.latency {
        Some(l) => match figures::latency(l, opts.latency_budget_ms)? {
            Some(fig) => {
                let _ = writeln!(w, "<figure>{}</figure>", fig.svg);
                figures_drawn += 1;
                let _ = writeln!(
                    w,
                    "<p class=\"explain\">The distribution of single-request latencies timed by <code>recur bench</code>, \
                     one colour per benchmarked sequence length (time steps); each bar is the share of that length's \
                     requests in the bin, and the legend gives the median (p50), p95 and p99. {}</p>",
                    esc(&fig.note)
                );
            }
            None => {
                notes.push(format!("{LATENCY_FILE} has no samples_ms: no latency histogram"));
                let _ = writeln!(
                    w,
                    "<p class=\"missing\">No latency histogram: <code>{LATENCY_FILE}</code> has no <code>samples_ms</code> \
                     (run <code>recur bench --json --samples</code>); the percentiles are in the summary table.</p>"
                );
            }
        },
        None => {
            notes.push(format!("no {LATENCY_FILE}: no latency figures"));
            let _ = writeln!(
                w,
                "<p class=\"missing\">No latency figures: the run directory has no <code>{LATENCY_FILE}</code> \
                 (the output of <code>recur bench --json --samples</code>).</p>"
            );
        }
    }

    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        esc(&title)
    );
    Ok(Rendered {
        html,
        holdout: *h,
        figures: figures_drawn,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
