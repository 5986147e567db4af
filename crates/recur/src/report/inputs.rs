//! Reading and writing the run-directory files the report is made from.

use std::collections::BTreeMap;
use std::path::Path;

use recur_train::trainer::EpochRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ReportError, Result};

/// The header line of `holdout_scores.csv`.
pub const SCORES_HEADER: &str = "ticket_id,cut_ms,label,bigru,gbdt";

const SCORE_COLUMNS: [&str; 5] = ["ticket_id", "cut_ms", "label", "bigru", "gbdt"];

/// One holdout cut point: its label and both models' probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreRow {
    /// The ticket.
    pub ticket_id: String,
    /// The cut time (milliseconds since the Unix epoch).
    pub cut_ms: i64,
    /// Whether the ticket escalated within the horizon after the cut.
    pub label: bool,
    /// The BiGRU's probability of escalation, in `[0, 1]`.
    pub bigru: f64,
    /// The gradient-boosted trees' probability of escalation, in `[0, 1]`.
    pub gbdt: f64,
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| ReportError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ReportError::parse(path, line, "not valid UTF-8")
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(t) => t.to_string(),
        None => text,
    })
}

/// Splits one CSV line into fields: comma-separated, a field may be quoted (`"a,b"`, with
/// `""` for a quote inside). Fields are trimmed of surrounding blanks unless quoted.
fn split_csv(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("field {} has an unterminated quote", fields.len() + 1)),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => return Err(format!("field {} has `{c}` after its closing quote", fields.len() + 1)),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

fn quote_csv(field: &str) -> String {
    let needs = field.contains([',', '"']) || field.trim() != field || field.is_empty();
    if needs {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn probability(column: &str, raw: &str) -> std::result::Result<f64, String> {
    let v: f64 = raw.parse().map_err(|_| format!("{column} `{raw}` is not a number"))?;
    check_probability(column, v)
}

fn check_probability(column: &str, v: f64) -> std::result::Result<f64, String> {
    if v.is_nan() {
        Err(format!("{column} is NaN; probabilities must be in [0, 1]"))
    } else if !(0.0..=1.0).contains(&v) {
        Err(format!("{column} {v} is outside [0, 1]"))
    } else {
        Ok(v)
    }
}

/// Reads `holdout_scores.csv` (format in the [module docs](super)). Blank lines are skipped;
/// errors name the file and line, and the column at fault.
pub fn read_scores(path: &Path) -> Result<Vec<ScoreRow>> {
    let text = read_text(path)?;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header = lines.by_ref().find(|(_, l)| !l.trim().is_empty());
    let Some((hline, header)) = header else {
        return Err(ReportError::invalid(
            path,
            format!("the file is empty; expected the header `{SCORES_HEADER}` and one row per holdout cut point"),
        ));
    };
    let names = split_csv(header).map_err(|m| ReportError::parse(path, hline, m))?;
    if names != SCORE_COLUMNS {
        return Err(ReportError::parse(
            path,
            hline,
            format!("expected the header `{SCORES_HEADER}`, found `{}`", header.trim()),
        ));
    }
    let mut rows = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = split_csv(line).map_err(|m| ReportError::parse(path, n, m))?;
        if f.len() != SCORE_COLUMNS.len() {
            return Err(ReportError::parse(
                path,
                n,
                format!(
                    "expected {} fields ({SCORES_HEADER}), found {}",
                    SCORE_COLUMNS.len(),
                    f.len()
                ),
            ));
        }
        let row = (|| -> std::result::Result<ScoreRow, String> {
            if f[0].is_empty() {
                return Err("ticket_id is empty".into());
            }
            let cut_ms = f[1]
                .parse::<i64>()
                .map_err(|_| format!("cut_ms `{}` is not an integer", f[1]))?;
            let label = match f[2].as_str() {
                "0" => false,
                "1" => true,
                other => return Err(format!("label `{other}` is not 0 or 1")),
            };
            Ok(ScoreRow {
                ticket_id: f[0].clone(),
                cut_ms,
                label,
                bigru: probability("bigru", &f[3])?,
                gbdt: probability("gbdt", &f[4])?,
            })
        })()
        .map_err(|m| ReportError::parse(path, n, m))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Writes `holdout_scores.csv` atomically (format in the [module docs](super)). Every
/// probability is checked first, so the file always reads back: errors name the row (1-based,
/// as the data line after the header) and the field.
pub fn write_scores(path: &Path, rows: &[ScoreRow]) -> Result<()> {
    let mut text = String::with_capacity(32 * (rows.len() + 1));
    text.push_str(SCORES_HEADER);
    text.push('\n');
    for (i, r) in rows.iter().enumerate() {
        let bad = |m: String| ReportError::invalid(path, format!("row {}: {m}", i + 1));
        if r.ticket_id.is_empty() {
            return Err(bad("ticket_id is empty".into()));
        }
        if r.ticket_id.contains(['\n', '\r']) {
            return Err(bad(format!("ticket_id {:?} contains a line break", r.ticket_id)));
        }
        check_probability("bigru", r.bigru).map_err(bad)?;
        check_probability("gbdt", r.gbdt).map_err(bad)?;
        text.push_str(&format!(
            "{},{},{},{},{}\n",
            quote_csv(&r.ticket_id),
            r.cut_ms,
            u8::from(r.label),
            r.bigru,
            r.gbdt
        ));
    }
    recur_train::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| ReportError::io(path, e))
}

/// One line of `metrics.jsonl`: a training epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochPoint {
    /// The training phase (`"phase"`; empty when absent), e.g. `select` or `refit`.
    pub phase: String,
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Updates so far.
    pub step: u64,
    /// Learning rate of the last update, when recorded.
    pub lr: Option<f64>,
    /// Mean training loss of the epoch (`None` when it was not finite).
    pub train_loss: Option<f64>,
    /// Validation metrics that were finite (`loss`, `auc`, `average_precision`, …).
    pub val: BTreeMap<String, f64>,
    /// Whether this epoch was the best so far.
    pub is_best: bool,
    /// Wall seconds of the epoch, when recorded.
    pub seconds: Option<f64>,
}

#[derive(Deserialize)]
struct RawEpoch {
    epoch: usize,
    #[serde(default)]
    step: u64,
    #[serde(default)]
    lr: Option<f64>,
    #[serde(default)]
    train_loss: Option<f64>,
    #[serde(default)]
    val: BTreeMap<String, Option<f64>>,
    #[serde(default)]
    is_best: bool,
    #[serde(default)]
    seconds: Option<f64>,
    #[serde(default)]
    phase: Option<String>,
}

/// A serde_json error without its " at line L column C" suffix, and the column.
fn json_message(e: &serde_json::Error) -> (String, usize) {
    let s = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    (s.strip_suffix(&suffix).unwrap_or(&s).to_string(), e.column())
}

/// Reads `metrics.jsonl`: one JSON object per non-blank line. Errors name the file, line and
/// column, and the field (`missing field `epoch``, …).
pub fn read_epochs(path: &Path) -> Result<Vec<EpochPoint>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let raw: RawEpoch = serde_json::from_str(line).map_err(|e| {
            let (m, col) = json_message(&e);
            ReportError::parse(path, i + 1, format!("column {col}: {m}"))
        })?;
        out.push(EpochPoint {
            phase: raw.phase.unwrap_or_default(),
            epoch: raw.epoch,
            step: raw.step,
            lr: raw.lr,
            train_loss: raw.train_loss.filter(|v| v.is_finite()),
            val: raw
                .val
                .into_iter()
                .filter_map(|(k, v)| v.filter(|v| v.is_finite()).map(|v| (k, v)))
                .collect(),
            is_best: raw.is_best,
            seconds: raw.seconds,
        });
    }
    Ok(out)
}

/// Writes `metrics.jsonl` atomically: each trainer record serialized with its phase added,
/// exactly like [`crate::recipe::RunDir::write_epochs`].
pub fn write_epochs(path: &Path, records: &[(String, EpochRecord)]) -> Result<()> {
    let mut text = String::new();
    for (phase, r) in records {
        let mut v = serde_json::to_value(r).map_err(|e| ReportError::invalid(path, e.to_string()))?;
        v["phase"] = Value::String(phase.clone());
        text.push_str(&v.to_string());
        text.push('\n');
    }
    recur_train::fsutil::write_atomic(path, text.as_bytes()).map_err(|e| ReportError::io(path, e))
}

/// The latency of one benchmarked sequence length (`latency.json`'s `lengths.T`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthLatency {
    /// Median single-request latency, milliseconds.
    pub median_ms: f64,
    /// 95th percentile, milliseconds.
    pub p95_ms: f64,
    /// 99th percentile, milliseconds.
    pub p99_ms: f64,
    /// Mean, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
    /// Fastest request, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ms: Option<f64>,
    /// Timed requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// Every timed request, milliseconds (`--samples`); empty when not recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples_ms: Vec<f64>,
    /// Any other field, kept as it is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `latency.json`: the output of `recur bench --json --samples`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// The kernel family used (as reported by the benchmark).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub kernels: Value,
    /// The SIMD level detected (as reported by the benchmark).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub simd: Value,
    /// Threads used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    /// Sequences per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// Per sequence length (time steps).
    pub lengths: BTreeMap<usize, LengthLatency>,
    /// Any other field, kept as it is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn check_latency(path: &Path, l: &LatencyReport) -> Result<()> {
    if l.lengths.is_empty() {
        return Err(ReportError::invalid(path, "`lengths` is empty; no benchmarked length"));
    }
    for (t, s) in &l.lengths {
        let fields = [("median_ms", s.median_ms), ("p95_ms", s.p95_ms), ("p99_ms", s.p99_ms)];
        let extra = [("mean_ms", s.mean_ms), ("min_ms", s.min_ms)];
        for (name, v) in fields
            .into_iter()
            .chain(extra.into_iter().filter_map(|(n, v)| v.map(|v| (n, v))))
        {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ReportError::invalid(
                    path,
                    format!("lengths.{t}.{name} is {v}; latencies must be finite and non-negative"),
                ));
            }
        }
        if let Some(i) = s.samples_ms.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(ReportError::invalid(
                path,
                format!(
                    "lengths.{t}.samples_ms[{i}] is {}; latencies must be finite and non-negative",
                    s.samples_ms[i]
                ),
            ));
        }
    }
    Ok(())
}

/// Reads `latency.json`. Errors name the file and the line and column, or the field.
pub fn read_latency(path: &Path) -> Result<LatencyReport> {
    let text = read_text(path)?;
    let l: LatencyReport = serde_json::from_str(&text).map_err(|e| {
        let (m, col) = json_message(&e);
        ReportError::parse(path, e.line().max(1), format!("column {col}: {m}"))
    })?;
    check_latency(path, &l)?;
    Ok(l)
}

/// Writes `latency.json` atomically (pretty-printed).
pub fn write_latency(path: &Path, latency: &LatencyReport) -> Result<()> {
    check_latency(path, latency)?;
    let mut b = serde_json::to_vec_pretty(latency).map_err(|e| ReportError::invalid(path, e.to_string()))?;
    b.push(b'\n');
    recur_train::fsutil::write_atomic(path, &b).map_err(|e| ReportError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, label: bool, bigru: f64, gbdt: f64) -> ScoreRow {
        ScoreRow {
            ticket_id: id.into(),
            cut_ms: 1_700_000_000_000,
            label,
            bigru,
            gbdt,
        }
    }

    #[test]
    fn scores_round_trip_with_awkward_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let rows = vec![
            row("T-1", true, 0.1 + 0.2, 1.0),
            row("a,b", false, 0.0, 1e-300),
            row("say \"hi\"", false, 0.123_456_789_012_345_68, 0.5),
            row(" padded ", true, 1.0, 0.0),
        ];
        write_scores(&p, &rows).unwrap();
        assert_eq!(read_scores(&p).unwrap(), rows);
    }

    #[test]
    fn write_refuses_what_would_not_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let e = write_scores(&p, &[row("a", true, 0.5, 0.5), row("b", false, f64::NAN, 0.5)]).unwrap_err();
        assert!(e.to_string().contains("row 2: bigru is NaN"), "{e}");
        let e = write_scores(&p, &[row("a\nb", true, 0.5, 0.5)]).unwrap_err();
        assert!(e.to_string().contains("line break"), "{e}");
        assert!(!p.exists());
    }

    #[test]
    fn bad_rows_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let cases = [
            ("t,1,1,0.5\n", "expected 5 fields"),
            ("t,x,1,0.5,0.5\n", "cut_ms `x` is not an integer"),
            ("t,1,2,0.5,0.5\n", "label `2` is not 0 or 1"),
            ("t,1,1,abc,0.5\n", "bigru `abc` is not a number"),
            ("t,1,1,0.5,NaN\n", "gbdt is NaN"),
            ("t,1,1,1.5,0.5\n", "bigru 1.5 is outside [0, 1]"),
            ("t,1,1,0.5,-0.1\n", "gbdt -0.1 is outside [0, 1]"),
            ("\"t,1,1,0.5,0.5\n", "field 1 has an unterminated quote"),
        ];
        for (bad, needle) in cases {
            let text = format!("{SCORES_HEADER}\nok,1,0,0.1,0.2\n\n{bad}");
            std::fs::write(&p, text).unwrap();
            let e = read_scores(&p).unwrap_err().to_string();
            assert!(e.contains(&format!("s.csv:4: {needle}")), "{e}");
        }
        std::fs::write(&p, "id,cut,label,a,b\n").unwrap();
        let e = read_scores(&p).unwrap_err().to_string();
        assert!(e.contains("s.csv:1: expected the header"), "{e}");
        std::fs::write(&p, "\u{feff}ticket_id,cut_ms,label,bigru,gbdt\r\nx,5,1,0.25,0.75\r\n").unwrap();
        assert_eq!(read_scores(&p).unwrap()[0].gbdt, 0.75);
    }

    #[test]
    fn epochs_parse_nulls_and_name_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let mut val = BTreeMap::new();
        val.insert("loss".to_string(), 0.5);
        val.insert("auc".to_string(), f64::NAN);
        let rec = EpochRecord {
            epoch: 1,
            step: 10,
            lr: 1e-3,
            train_loss: f64::NAN,
            skipped_steps: 0,
            val,
            is_best: true,
            seconds: 1.5,
        };
        write_epochs(&p, &[("select".into(), rec)]).unwrap();
        let e = read_epochs(&p).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].phase, "select");
        assert_eq!(e[0].train_loss, None);
        assert_eq!(e[0].val.get("loss"), Some(&0.5));
        assert!(!e[0].val.contains_key("auc"));
        let mut text = std::fs::read_to_string(&p).unwrap();
        text.push_str("{\"step\": 3}\n");
        std::fs::write(&p, text).unwrap();
        let err = read_epochs(&p).unwrap_err().to_string();
        assert!(
            err.contains("m.jsonl:2: column") && err.contains("missing field `epoch`"),
            "{err}"
        );
    }

    #[test]
    fn latency_parses_the_bench_shape_and_checks_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("latency.json");
        let json = r#"{"kernels": "avx2-fma", "simd": "avx2", "threads": 1, "batch": 1, "model": "x",
            "lengths": {"112": {"median_ms": 0.9, "p95_ms": 1.0, "p99_ms": 1.2, "mean_ms": 0.95,
                                "min_ms": 0.8, "iterations": 3, "samples_ms": [0.8, 0.9, 1.2]},
                        "18": {"median_ms": 0.2, "p95_ms": 0.25, "p99_ms": 0.3}}}"#;
        std::fs::write(&p, json).unwrap();
        let l = read_latency(&p).unwrap();
        assert_eq!(l.lengths.keys().copied().collect::<Vec<_>>(), vec![18, 112]);
        assert_eq!(l.extra["model"], "x");
        assert_eq!(l.lengths[&112].samples_ms.len(), 3);
        write_latency(&p, &l).unwrap();
        assert_eq!(read_latency(&p).unwrap(), l);
        std::fs::write(
            &p,
            r#"{"lengths": {"18": {"median_ms": -1, "p95_ms": 1, "p99_ms": 1}}}"#,
        )
        .unwrap();
        let e = read_latency(&p).unwrap_err().to_string();
        assert!(e.contains("lengths.18.median_ms is -1"), "{e}");
        std::fs::write(&p, "{\"lengths\": {\"18\": {\"median_ms\": 1}}}").unwrap();
        let e = read_latency(&p).unwrap_err().to_string();
        assert!(e.contains("latency.json:1: column") && e.contains("p95_ms"), "{e}");
    }
}
