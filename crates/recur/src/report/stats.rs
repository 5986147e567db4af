//! The holdout figures: ranking metrics, Brier scores, calibration bins, and the merge into
//! `metrics.json`.

use std::path::Path;

use recur_train::metrics;
use serde_json::{json, Map, Value};

use super::{LatencyReport, ReportError, Result, ScoreRow};

/// One model's holdout figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelSummary {
    /// ROC-AUC (scikit-learn's `roc_auc_score`).
    pub auc: f64,
    /// Average precision (scikit-learn's `average_precision_score`).
    pub average_precision: f64,
    /// Brier score (scikit-learn's `brier_score_loss`).
    pub brier: f64,
}

/// The holdout figures of both models.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HoldoutSummary {
    /// Holdout cut points.
    pub samples: usize,
    /// Cut points labelled 1 (escalated within the horizon).
    pub positives: usize,
    /// The BiGRU.
    pub bigru: ModelSummary,
    /// The gradient-boosted trees.
    pub gbdt: ModelSummary,
}

impl HoldoutSummary {
    /// The share of positive cut points.
    pub fn positive_rate(&self) -> f64 {
        self.positives as f64 / self.samples as f64
    }
}

/// The labels and one model's probabilities, column by column.
pub(crate) fn columns(rows: &[ScoreRow]) -> (Vec<bool>, Vec<f64>, Vec<f64>) {
    (
        rows.iter().map(|r| r.label).collect(),
        rows.iter().map(|r| r.bigru).collect(),
        rows.iter().map(|r| r.gbdt).collect(),
    )
}

/// Computes both models' holdout figures. `path` is the file the rows came from, for errors:
/// an empty holdout or a holdout with one class only is an error (ROC-AUC and average
/// precision are undefined there).
pub fn summarize(path: &Path, rows: &[ScoreRow]) -> Result<HoldoutSummary> {
    if rows.is_empty() {
        return Err(ReportError::invalid(path, "no holdout rows after the header"));
    }
    let positives = rows.iter().filter(|r| r.label).count();
    if positives == 0 || positives == rows.len() {
        let (cls, what) = if positives == 0 {
            ("0", "no escalation")
        } else {
            ("1", "no non-escalated cut point")
        };
        return Err(ReportError::invalid(
            path,
            format!(
                "all {} holdout rows have label {cls} ({what}); ROC-AUC, average precision and their curves \
                 need both classes — use a longer holdout window or more tickets",
                rows.len()
            ),
        ));
    }
    let (labels, bigru, gbdt) = columns(rows);
    let model = |name: &str, p: &[f64]| -> Result<ModelSummary> {
        let m = |what: &str, r: recur_train::Result<f64>| {
            r.map_err(|err| ReportError::Metric {
                path: path.display().to_string(),
                what: format!("{name} {what}"),
                err,
            })
        };
        Ok(ModelSummary {
            auc: m("ROC-AUC", metrics::roc_auc(&labels, p))?,
            average_precision: m("average precision", metrics::average_precision(&labels, p))?,
            brier: m("Brier score", metrics::brier_score(&labels, p))?,
        })
    };
    Ok(HoldoutSummary {
        samples: rows.len(),
        positives,
        bigru: model("bigru", &bigru)?,
        gbdt: model("gbdt", &gbdt)?,
    })
}

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationBin {
    /// Lower edge (inclusive).
    pub lo: f64,
    /// Upper edge (exclusive, except for the last bin, which includes 1).
    pub hi: f64,
    /// Predictions in the bin.
    pub count: usize,
    /// Mean predicted probability of the bin (`None` when empty).
    pub mean_predicted: Option<f64>,
    /// Share of positive labels in the bin (`None` when empty).
    pub observed_rate: Option<f64>,
}

/// Reliability-diagram bins: `bins` equal-width bins over `[0, 1]`; a probability `p` falls
/// into bin `⌊p·bins⌋` (1 into the last one). Probabilities are assumed in `[0, 1]`.
pub fn calibration(labels: &[bool], probs: &[f64], bins: usize) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut acc = vec![(0usize, 0f64, 0usize); bins];
    for (&y, &p) in labels.iter().zip(probs) {
        let k = ((p * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        acc[k].0 += 1;
        acc[k].1 += p;
        acc[k].2 += usize::from(y);
    }
    acc.into_iter()
        .enumerate()
        .map(|(k, (n, sum, pos))| CalibrationBin {
            lo: k as f64 / bins as f64,
            hi: (k + 1) as f64 / bins as f64,
            count: n,
            mean_predicted: (n > 0).then(|| sum / n as f64),
            observed_rate: (n > 0).then(|| pos as f64 / n as f64),
        })
        .collect()
}

fn object_at<'a>(path: &Path, root: &'a mut Map<String, Value>, key: &str) -> Result<&'a mut Map<String, Value>> {
    let v = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ReportError::invalid(
            path,
            format!("\"{key}\" is {other}, not an object; cannot merge the report's figures into it"),
        )),
    }
}

/// The content of `metrics.json` at `path` (an empty object when the file does not exist)
/// with the holdout and latency figures merged in (see the [module docs](super)); nothing is
/// written.
pub(crate) fn merged_metrics(path: &Path, holdout: &HoldoutSummary, latency: Option<&LatencyReport>) -> Result<Value> {
    let mut root = match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(ReportError::invalid(path, "not a JSON object")),
            Err(e) => return Err(ReportError::parse(path, e.line().max(1), e.to_string())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(ReportError::io(path, e)),
    };
    let h = object_at(path, &mut root, "holdout")?;
    for (name, m) in [("bigru", &holdout.bigru), ("gbdt", &holdout.gbdt)] {
        h.insert(format!("{name}_auc"), json!(m.auc));
        h.insert(format!("{name}_average_precision"), json!(m.average_precision));
        h.insert(format!("{name}_brier"), json!(m.brier));
    }
    h.insert("positives".into(), json!(holdout.positives));
    h.insert("samples".into(), json!(holdout.samples));
    if let Some(l) = latency {
        let lat = object_at(path, &mut root, "latency_ms")?;
        for (t, s) in &l.lengths {
            lat.insert(format!("p50_t{t}"), json!(s.median_ms));
            lat.insert(format!("p95_t{t}"), json!(s.p95_ms));
            lat.insert(format!("p99_t{t}"), json!(s.p99_ms));
        }
    }
    Ok(Value::Object(root))
}

pub(crate) fn write_json(path: &Path, v: &Value) -> Result<()> {
    let mut b = serde_json::to_vec_pretty(v).map_err(|e| ReportError::invalid(path, e.to_string()))?;
    b.push(b'\n');
    recur_train::fsutil::write_atomic(path, &b).map_err(|e| ReportError::io(path, e))
}

/// Merges the holdout figures (and the latency percentiles, when given) into `metrics.json` at
/// `path`, keeping every other key, and writes it atomically; returns what was written. Keys
/// set: `holdout.{bigru,gbdt}_{auc,average_precision,brier}`, `holdout.positives`,
/// `holdout.samples`, `latency_ms.p{50,95,99}_t{T}`.
pub fn merge_metrics(path: &Path, holdout: &HoldoutSummary, latency: Option<&LatencyReport>) -> Result<Value> {
    let v = merged_metrics(path, holdout, latency)?;
    write_json(path, &v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(spec: &[(bool, f64, f64)]) -> Vec<ScoreRow> {
        spec.iter()
            .enumerate()
            .map(|(i, &(label, bigru, gbdt))| ScoreRow {
                ticket_id: format!("T{i}"),
                cut_ms: i as i64,
                label,
                bigru,
                gbdt,
            })
            .collect()
    }

    #[test]
    fn summary_matches_the_metrics_module() {
        let r = rows(&[(true, 0.9, 0.6), (false, 0.2, 0.7), (true, 0.7, 0.4), (false, 0.1, 0.1)]);
        let s = summarize(Path::new("s.csv"), &r).unwrap();
        assert_eq!((s.samples, s.positives), (4, 2));
        assert_eq!(s.bigru.auc, 1.0);
        assert_eq!(s.gbdt.auc, 0.5);
        let (labels, _, gbdt) = columns(&r);
        assert_eq!(s.gbdt.brier, metrics::brier_score(&labels, &gbdt).unwrap());
    }

    #[test]
    fn one_class_is_a_clear_error() {
        let r = rows(&[(false, 0.9, 0.6), (false, 0.2, 0.7)]);
        let e = summarize(Path::new("dir/s.csv"), &r).unwrap_err().to_string();
        assert!(e.starts_with("dir/s.csv: all 2 holdout rows have label 0"), "{e}");
        assert!(summarize(Path::new("s.csv"), &[]).is_err());
    }

    #[test]
    fn calibration_bins_edges_and_rates() {
        let labels = [true, false, false, true, true];
        let probs = [0.05, 0.05, 0.95, 1.0, 0.1];
        let b = calibration(&labels, &probs, 10);
        assert_eq!(b.len(), 10);
        assert_eq!(b[0].count, 2);
        assert_eq!(b[0].observed_rate, Some(0.5));
        assert_eq!(b[1].count, 1);
        assert_eq!(b[9].count, 2);
        assert_eq!(b[9].mean_predicted, Some(0.975));
        assert_eq!(b[5].mean_predicted, None);
        assert_eq!(b.iter().map(|b| b.count).sum::<usize>(), 5);
    }

    #[test]
    fn merge_keeps_other_keys_and_refuses_non_objects() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("metrics.json");
        let r = rows(&[(true, 0.9, 0.6), (false, 0.2, 0.7)]);
        let s = summarize(&p, &r).unwrap();
        std::fs::write(&p, r#"{"holdout": {"cut_points": 2, "bigru_auc": 0.1}, "other": [1]}"#).unwrap();
        let v = merge_metrics(&p, &s, None).unwrap();
        assert_eq!(v["holdout"]["cut_points"], 2);
        assert_eq!(v["holdout"]["bigru_auc"], 1.0);
        assert_eq!(v["other"], json!([1]));
        assert!(v.get("latency_ms").is_none());
        let back: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back, v);
        std::fs::write(&p, r#"{"holdout": 3}"#).unwrap();
        let e = merge_metrics(&p, &s, None).unwrap_err().to_string();
        assert!(e.contains("\"holdout\" is 3, not an object"), "{e}");
        std::fs::write(&p, "{").unwrap();
        assert!(merge_metrics(&p, &s, None)
            .unwrap_err()
            .to_string()
            .contains("metrics.json:1"));
    }
}
