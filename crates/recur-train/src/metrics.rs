//! Evaluation metrics, computed the way scikit-learn 1.9 computes them, ties included.
//!
//! * Ranking: [`roc_auc`], [`average_precision`], and the curves behind them, [`roc_curve`] and
//!   [`pr_curve`]. Scores are grouped by distinct value exactly like sklearn's
//!   `_binary_clf_curve`, so a tie that spans both classes counts as one step (a diagonal on
//!   the ROC curve), never as an arbitrary order of the tied samples.
//! * Probabilities: [`log_loss`], [`log_loss_multiclass`] (probabilities clipped to
//!   `[ε, 1 − ε]` with `ε = f64::EPSILON`, what sklearn does for float64 input) and
//!   [`brier_score`].
//! * Classes: [`accuracy`], [`macro_f1`], [`confusion_matrix`].
//! * Regression: [`mae`], [`rmse`], [`mape`] (zero targets divide by `f64::EPSILON`, like
//!   sklearn's `mean_absolute_percentage_error`).
//!
//! Everything is computed in `f64`. Inputs may be `f32` or `f64` (any `Copy + Into<f64>`).
//! Sums and means follow numpy's pairwise summation, and each formula keeps sklearn's order
//! of operations, so results agree with sklearn to the last bit or close to it; the
//! committed fixtures (`fixtures/gen_metrics.py`) are checked to 1e-12 relative.
//!
//! Where sklearn warns that a metric is undefined and returns a placeholder, recur returns
//! [`TrainError::Invalid`] instead: ROC-AUC and the ROC curve with one class only (sklearn:
//! NaN), average precision and the PR curve without a positive (sklearn: 0 and recall 1).
//! Empty inputs, length mismatches, non-finite values and probabilities outside `[0, 1]` are
//! errors too, as in sklearn.

use std::collections::BTreeMap;

use crate::{Result, TrainError};

/// A ROC curve like sklearn's `roc_curve(drop_intermediate=False)`: one point per distinct
/// score, from the highest threshold down, preceded by the point `(0, 0)` at threshold `+∞`.
#[derive(Clone, Debug, PartialEq)]
pub struct RocCurve {
    /// False positive rate at each threshold (increasing, ends at 1).
    pub fpr: Vec<f64>,
    /// True positive rate at each threshold (increasing, ends at 1).
    pub tpr: Vec<f64>,
    /// Decreasing thresholds: `+∞`, then the distinct scores. A sample is predicted positive
    /// at threshold `t` when its score is `>= t`.
    pub thresholds: Vec<f64>,
}

/// A precision-recall curve like sklearn's `precision_recall_curve`: one point per distinct
/// score in increasing order of threshold, plus a final point `(precision 1, recall 0)` that
/// has no threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct PrCurve {
    /// Precision at each threshold, then 1. Thresholds where nothing is predicted positive
    /// cannot occur, so every value is a real ratio.
    pub precision: Vec<f64>,
    /// Recall at each threshold (decreasing), then 0.
    pub recall: Vec<f64>,
    /// Increasing distinct scores; one fewer than `precision` and `recall`.
    pub thresholds: Vec<f64>,
}

/// Area under the ROC curve, as sklearn's `roc_auc_score` for binary labels: the trapezoid
/// rule over the curve of distinct thresholds (with sklearn's `drop_intermediate`). Equals the
/// probability that a random positive scores above a random negative, ties counting one half.
///
/// Errors when the lengths differ, the input is empty, a score is not finite, or `labels`
/// hold one class only (sklearn returns NaN with a warning there).
pub fn roc_auc<S: Copy + Into<f64>>(labels: &[bool], scores: &[S]) -> Result<f64> {
    let curve = roc_points("roc_auc", labels, scores, true)?;
    Ok(trapezoid(&curve.fpr, &curve.tpr))
}

/// The ROC curve, as sklearn's `roc_curve(y_true, y_score, drop_intermediate=False)`.
///
/// Errors like [`roc_auc`]: both classes must be present, or one of the rates is undefined.
pub fn roc_curve<S: Copy + Into<f64>>(labels: &[bool], scores: &[S]) -> Result<RocCurve> {
    roc_points("roc_curve", labels, scores, false)
}

/// Average precision, as sklearn's `average_precision_score` for binary labels:
/// `Σₙ (Rₙ − Rₙ₋₁)·Pₙ` over the distinct thresholds of [`pr_curve`] (no interpolation).
///
/// Errors when the lengths differ, the input is empty, a score is not finite, or there is
/// no positive label (sklearn warns and returns 0 there). All-positive labels give 1.
pub fn average_precision<S: Copy + Into<f64>>(labels: &[bool], scores: &[S]) -> Result<f64> {
    let curve = pr_points("average_precision", labels, scores)?;
    let terms: Vec<f64> = (0..curve.precision.len() - 1)
        .map(|i| (curve.recall[i + 1] - curve.recall[i]) * curve.precision[i])
        .collect();
    let ap = -np_sum(&terms);
    // sklearn: max(0.0, -sum), which also turns -0.0 into 0.0.
    Ok(if ap > 0.0 { ap } else { 0.0 })
}

/// The precision-recall curve, as sklearn's `precision_recall_curve(y_true, y_score)`.
///
/// Errors like [`average_precision`]: without a positive label recall is undefined.
pub fn pr_curve<S: Copy + Into<f64>>(labels: &[bool], scores: &[S]) -> Result<PrCurve> {
    pr_points("pr_curve", labels, scores)
}

/// Mean binary cross-entropy of the probabilities `probs` of the positive class, as sklearn's
/// `log_loss(y_true, y_proba, labels=[0, 1])`: each probability is clipped to
/// `[ε, 1 − ε]` (`ε = f64::EPSILON`) before the logarithm, so a confident mistake costs
/// `−ln ε ≈ 36.04` rather than infinity. One class only is fine here.
///
/// Errors when the lengths differ, the input is empty, or a probability is not in `[0, 1]`.
pub fn log_loss<S: Copy + Into<f64>>(labels: &[bool], probs: &[S]) -> Result<f64> {
    const WHAT: &str = "log_loss";
    let p = probabilities(WHAT, "labels", labels.len(), probs)?;
    let losses: Vec<f64> = labels
        .iter()
        .zip(&p)
        .map(|(&y, &p)| -clip_probability(if y { p } else { 1.0 - p }).ln())
        .collect();
    Ok(np_mean(&losses))
}

/// Mean multiclass cross-entropy, as sklearn's
/// `log_loss(y_true, y_proba, labels=range(n_classes))`. `probs` is `[n, n_classes]` row-major,
/// one probability row per entry of `targets`. Each probability is clipped to `[ε, 1 − ε]`;
/// rows are not renormalised (sklearn 1.9 only warns when a row does not sum to 1).
///
/// Errors when the shapes disagree, the input is empty, `n_classes < 2`, a target is not
/// below `n_classes`, or a probability is not in `[0, 1]`.
pub fn log_loss_multiclass<S: Copy + Into<f64>>(targets: &[usize], probs: &[S], n_classes: usize) -> Result<f64> {
    const WHAT: &str = "log_loss_multiclass";
    if n_classes < 2 {
        return Err(invalid(
            WHAT,
            format!("n_classes is {n_classes}; it must be at least 2"),
        ));
    }
    let expected = targets.len().checked_mul(n_classes);
    if expected != Some(probs.len()) {
        return Err(invalid(
            WHAT,
            format!(
                "{} targets × {n_classes} classes need {} probabilities, got {}",
                targets.len(),
                expected.map_or_else(|| "too many".to_string(), |e| e.to_string()),
                probs.len()
            ),
        ));
    }
    check_classes(WHAT, "targets", targets, n_classes)?;
    let p = probabilities(WHAT, "targets", probs.len(), probs)?;
    let losses: Vec<f64> = targets
        .iter()
        .zip(p.chunks_exact(n_classes))
        .map(|(&y, row)| -clip_probability(row[y]).ln())
        .collect();
    Ok(np_mean(&losses))
}

/// Brier score of the probabilities `probs` of the positive class, as sklearn's
/// `brier_score_loss(y_true, y_proba, pos_label=1)`: the mean of `(y − p)²`.
///
/// Errors when the lengths differ, the input is empty, or a probability is not in `[0, 1]`.
pub fn brier_score<S: Copy + Into<f64>>(labels: &[bool], probs: &[S]) -> Result<f64> {
    let p = probabilities("brier_score", "labels", labels.len(), probs)?;
    // sklearn one-hot encodes both sides, `[1 − y, y]` against `[1 − p, p]`, sums the two
    // squares and halves the mean; keeping that order keeps the rounding identical.
    let per_sample: Vec<f64> = labels
        .iter()
        .zip(&p)
        .map(|(&y, &p)| {
            let y = if y { 1.0 } else { 0.0 };
            let (a, b) = ((1.0 - y) - (1.0 - p), y - p);
            a * a + b * b
        })
        .collect();
    Ok(np_mean(&per_sample) * 0.5)
}

/// Fraction of positions where `truth` and `predicted` agree, as sklearn's `accuracy_score`.
///
/// Errors when the lengths differ or the input is empty.
pub fn accuracy<T: PartialEq>(truth: &[T], predicted: &[T]) -> Result<f64> {
    same_len("accuracy", "truth", truth.len(), "predictions", predicted.len())?;
    let hits = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    Ok(hits as f64 / truth.len() as f64)
}

/// Unweighted mean of the per-class F1 scores, as sklearn's
/// `f1_score(y_true, y_pred, average="macro", zero_division=0)`: the classes are those that
/// occur in `truth` or `predicted` (a class that never occurs in either does not count), and a
/// class occurring on one side only scores 0.
///
/// Errors when the lengths differ or the input is empty.
pub fn macro_f1(truth: &[usize], predicted: &[usize]) -> Result<f64> {
    same_len("macro_f1", "truth", truth.len(), "predictions", predicted.len())?;
    // (true positives, occurrences in truth, occurrences in predictions) per class, in
    // increasing class order like sklearn's `unique_labels`.
    let mut counts: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
    for (&t, &p) in truth.iter().zip(predicted) {
        counts.entry(t).or_default().1 += 1;
        counts.entry(p).or_default().2 += 1;
        if t == p {
            counts.entry(t).or_default().0 += 1;
        }
    }
    let f1: Vec<f64> = counts
        .values()
        .map(|&(tp, t, p)| 2.0 * tp as f64 / (t as f64 + p as f64))
        .collect();
    Ok(np_mean(&f1))
}

/// The confusion matrix over classes `0..n_classes`, as sklearn's
/// `confusion_matrix(y_true, y_pred, labels=range(n_classes))`: `m[t][p]` counts samples of
/// true class `t` predicted as `p`.
///
/// Errors when the lengths differ or a class is not below `n_classes`. Empty input gives a
/// matrix of zeros.
pub fn confusion_matrix(truth: &[usize], predicted: &[usize], n_classes: usize) -> Result<Vec<Vec<u64>>> {
    const WHAT: &str = "confusion_matrix";
    if truth.len() != predicted.len() {
        return Err(invalid(
            WHAT,
            format!("truth has {} elements, predictions {}", truth.len(), predicted.len()),
        ));
    }
    check_classes(WHAT, "truth", truth, n_classes)?;
    check_classes(WHAT, "predictions", predicted, n_classes)?;
    let mut m = vec![vec![0u64; n_classes]; n_classes];
    for (&t, &p) in truth.iter().zip(predicted) {
        m[t][p] += 1;
    }
    Ok(m)
}

/// Mean absolute error, as sklearn's `mean_absolute_error`.
///
/// Errors when the lengths differ, the input is empty, or a value is not finite.
pub fn mae<S: Copy + Into<f64>>(truth: &[S], predicted: &[S]) -> Result<f64> {
    let (t, p) = regression_inputs("mae", truth, predicted)?;
    let abs: Vec<f64> = t.iter().zip(&p).map(|(&t, &p)| (p - t).abs()).collect();
    Ok(np_mean(&abs))
}

/// Root mean squared error, as sklearn's `root_mean_squared_error`.
///
/// Errors when the lengths differ, the input is empty, or a value is not finite.
pub fn rmse<S: Copy + Into<f64>>(truth: &[S], predicted: &[S]) -> Result<f64> {
    let (t, p) = regression_inputs("rmse", truth, predicted)?;
    let sq: Vec<f64> = t.iter().zip(&p).map(|(&t, &p)| (t - p) * (t - p)).collect();
    Ok(np_mean(&sq).sqrt())
}

/// Mean absolute percentage error as a fraction (not ×100), as sklearn's
/// `mean_absolute_percentage_error`: the mean of `|p − t| / max(|t|, ε)` with
/// `ε = f64::EPSILON`, so a zero target with a non-zero prediction gives a huge value rather
/// than infinity.
///
/// Errors when the lengths differ, the input is empty, or a value is not finite.
pub fn mape<S: Copy + Into<f64>>(truth: &[S], predicted: &[S]) -> Result<f64> {
    let (t, p) = regression_inputs("mape", truth, predicted)?;
    let rel: Vec<f64> = t
        .iter()
        .zip(&p)
        .map(|(&t, &p)| (p - t).abs() / t.abs().max(f64::EPSILON))
        .collect();
    Ok(np_mean(&rel))
}

// ---------------------------------------------------------------------------------------------
// Curves

/// sklearn's `confusion_matrix_at_thresholds`: cumulative false and true positive counts at
/// each distinct score, scores taken in decreasing order.
struct Counts {
    fps: Vec<f64>,
    tps: Vec<f64>,
    thresholds: Vec<f64>,
}

fn counts_at_thresholds<S: Copy + Into<f64>>(what: &str, labels: &[bool], scores: &[S]) -> Result<Counts> {
    same_len(what, "labels", labels.len(), "scores", scores.len())?;
    let scores = finite(what, "score", scores)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    // Stable and descending; every score is finite, so `partial_cmp` never fails, and 0.0 and
    // -0.0 compare equal, as numpy's `diff` sees them.
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap_or(std::cmp::Ordering::Equal));
    let mut c = Counts {
        fps: Vec::new(),
        tps: Vec::new(),
        thresholds: Vec::new(),
    };
    let mut tp = 0.0f64;
    for (i, &k) in order.iter().enumerate() {
        if labels[k] {
            tp += 1.0;
        }
        let last_of_group = order.get(i + 1).is_none_or(|&next| scores[next] != scores[k]);
        if last_of_group {
            c.fps.push(1.0 + i as f64 - tp);
            c.tps.push(tp);
            c.thresholds.push(scores[k]);
        }
    }
    Ok(c)
}

fn roc_points<S: Copy + Into<f64>>(
    what: &str,
    labels: &[bool],
    scores: &[S],
    drop_intermediate: bool,
) -> Result<RocCurve> {
    let c = counts_at_thresholds(what, labels, scores)?;
    let (pos, neg) = (c.tps[c.tps.len() - 1], c.fps[c.fps.len() - 1]);
    if pos == 0.0 || neg == 0.0 {
        let only = if pos == 0.0 { "negative" } else { "positive" };
        return Err(invalid(
            what,
            format!("every label is {only}; ROC needs both classes (scikit-learn returns NaN here)"),
        ));
    }
    let m = c.fps.len();
    let keep = |i: usize| {
        // sklearn keeps the ends and every point where the curve bends (second differences).
        !drop_intermediate
            || m <= 2
            || i == 0
            || i == m - 1
            || (c.fps[i + 1] - c.fps[i]) - (c.fps[i] - c.fps[i - 1]) != 0.0
            || (c.tps[i + 1] - c.tps[i]) - (c.tps[i] - c.tps[i - 1]) != 0.0
    };
    let mut curve = RocCurve {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    for i in (0..m).filter(|&i| keep(i)) {
        curve.fpr.push(c.fps[i] / neg);
        curve.tpr.push(c.tps[i] / pos);
        curve.thresholds.push(c.thresholds[i]);
    }
    Ok(curve)
}

fn pr_points<S: Copy + Into<f64>>(what: &str, labels: &[bool], scores: &[S]) -> Result<PrCurve> {
    let c = counts_at_thresholds(what, labels, scores)?;
    let pos = c.tps[c.tps.len() - 1];
    if pos == 0.0 {
        return Err(invalid(
            what,
            "no positive label, so recall is undefined (scikit-learn warns and sets recall to 1)",
        ));
    }
    let m = c.tps.len();
    let mut curve = PrCurve {
        precision: Vec::with_capacity(m + 1),
        recall: Vec::with_capacity(m + 1),
        thresholds: Vec::with_capacity(m),
    };
    for i in (0..m).rev() {
        let predicted = c.tps[i] + c.fps[i];
        curve
            .precision
            .push(if predicted != 0.0 { c.tps[i] / predicted } else { 0.0 });
        curve.recall.push(c.tps[i] / pos);
        curve.thresholds.push(c.thresholds[i]);
    }
    curve.precision.push(1.0);
    curve.recall.push(0.0);
    Ok(curve)
}

/// `np.trapezoid(y, x)` for increasing `x`.
fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    let terms: Vec<f64> = (1..x.len())
        .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
        .collect();
    np_sum(&terms)
}

// ---------------------------------------------------------------------------------------------
// numpy's summation

/// `np.sum` of a contiguous float64 array: numpy's pairwise summation (blocks of at most 128
/// summed with 8 accumulators, halves split at multiples of 8), which is what makes sklearn's
/// means reproducible here to the last bit.
fn np_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &x| s + x)
    } else if n <= BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        for chunk in a[8..full].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        a[full..].iter().fold(res, |s, &x| s + x)
    } else {
        let half = n / 2;
        let half = half - half % 8;
        np_sum(&a[..half]) + np_sum(&a[half..])
    }
}

/// `np.mean`: the pairwise sum divided by the count. Callers ensure `a` is not empty.
fn np_mean(a: &[f64]) -> f64 {
    np_sum(a) / a.len() as f64
}

// ---------------------------------------------------------------------------------------------
// Validation

fn invalid(what: &str, reason: impl std::fmt::Display) -> TrainError {
    TrainError::Invalid(format!("{what}: {reason}"))
}

fn same_len(what: &str, a_name: &str, a: usize, b_name: &str, b: usize) -> Result<()> {
    if a != b {
        return Err(invalid(what, format!("{a_name} have {a} elements, {b_name} {b}")));
    }
    if a == 0 {
        return Err(invalid(what, "empty input"));
    }
    Ok(())
}

/// Widens to f64 and rejects NaN and infinities, naming the first offending index.
fn finite<S: Copy + Into<f64>>(what: &str, name: &str, values: &[S]) -> Result<Vec<f64>> {
    let v: Vec<f64> = values.iter().map(|&x| x.into()).collect();
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(invalid(what, format!("{name} {i} is {}, not a finite number", v[i]))),
        None => Ok(v),
    }
}

/// Checks the lengths and that every probability is in `[0, 1]`; returns them as f64.
fn probabilities<S: Copy + Into<f64>>(what: &str, other: &str, n: usize, probs: &[S]) -> Result<Vec<f64>> {
    same_len(what, other, n, "probabilities", probs.len())?;
    let p = finite(what, "probability", probs)?;
    match p.iter().position(|&x| !(0.0..=1.0).contains(&x)) {
        Some(i) => Err(invalid(what, format!("probability {i} is {}, outside [0, 1]", p[i]))),
        None => Ok(p),
    }
}

fn check_classes(what: &str, name: &str, classes: &[usize], n_classes: usize) -> Result<()> {
    match classes.iter().position(|&c| c >= n_classes) {
        Some(i) => Err(invalid(
            what,
            format!("{name} {i} is class {}, but there are {n_classes} classes", classes[i]),
        )),
        None => Ok(()),
    }
}

fn clip_probability(p: f64) -> f64 {
    p.clamp(f64::EPSILON, 1.0 - f64::EPSILON)
}

fn regression_inputs<S: Copy + Into<f64>>(what: &str, truth: &[S], predicted: &[S]) -> Result<(Vec<f64>, Vec<f64>)> {
    same_len(what, "targets", truth.len(), "predictions", predicted.len())?;
    Ok((finite(what, "target", truth)?, finite(what, "prediction", predicted)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn np_sum_matches_numpy_pairwise_blocks() {
        // Values chosen so that the order of additions shows: numpy's 8-accumulator block
        // gives a different last bit than a left fold for this input.
        let a: Vec<f64> = (0..20).map(|i| 0.1 * i as f64 + 1e-3 / (i as f64 + 1.0)).collect();
        let folded = a.iter().fold(0.0, |s, &x| s + x);
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        for i in 8..16 {
            r[i % 8] += a[i];
        }
        let expect = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7])) + a[16] + a[17] + a[18] + a[19];
        assert_eq!(np_sum(&a), expect);
        assert!((np_sum(&a) - folded).abs() < 1e-12);
        assert_eq!(np_sum(&[]), 0.0);
        assert_eq!(np_sum(&[1.5, 2.5]), 4.0);
    }

    #[test]
    fn np_sum_recursion_splits_at_multiple_of_eight() {
        let a: Vec<f64> = (0..300).map(|i| (i as f64).sin()).collect();
        // n = 300: half = 150 → 144; then 144 → 72 | 72 (each ≤ 128) and 156 → 72 | 84.
        let expect = (np_sum(&a[..72]) + np_sum(&a[72..144])) + (np_sum(&a[144..216]) + np_sum(&a[216..]));
        assert_eq!(np_sum(&a), expect);
    }
}
