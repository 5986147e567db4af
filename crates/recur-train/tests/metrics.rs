//! Metrics against scikit-learn (`fixtures/metrics/metrics.json`, written by
//! `fixtures/gen_metrics.py`), plus the cases that show why ties need sklearn's handling.

use std::path::Path;

use recur_train::metrics::{
    accuracy, average_precision, brier_score, confusion_matrix, log_loss, log_loss_multiclass, macro_f1, mae, mape,
    pr_curve, rmse, roc_auc, roc_curve,
};
use recur_train::TrainError;
use serde_json::Value;

/// The implementation follows sklearn's operation order and numpy's pairwise sums, so the
/// results are normally bit-identical. The tolerance absorbs the last-ulp differences of
/// `serde_json`'s default float parser (without its `float_roundtrip` feature, as when this
/// crate is built alone, a few expected values parse one ulp away from the text).
const REL_TOL: f64 = 1e-12;

fn fixture() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/metrics/metrics.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("metrics.json parses")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as usize)
        .collect()
}

fn bools(v: &Value) -> Vec<bool> {
    usizes(v).into_iter().map(|x| x == 1).collect()
}

/// Asserts `got` is within `REL_TOL` of `want` (relative, with an absolute floor at 1e-300 so
/// exact zeros compare); returns the relative error seen.
fn close(case: &str, metric: &str, got: f64, want: f64) -> f64 {
    let err = (got - want).abs() / want.abs().max(1e-300);
    let err = if got == want { 0.0 } else { err };
    assert!(
        err <= REL_TOL,
        "{case}: {metric} = {got:e}, scikit-learn {want:e} (rel {err:e})"
    );
    err
}

fn close_all(case: &str, metric: &str, got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "{case}: {metric} length");
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| close(case, &format!("{metric}[{i}]"), g, w))
        .fold(0.0, f64::max)
}

fn invalid<T: std::fmt::Debug>(r: Result<T, TrainError>) -> String {
    match r {
        Err(TrainError::Invalid(msg)) => msg,
        other => panic!("expected TrainError::Invalid, got {other:?}"),
    }
}

#[test]
fn binary_metrics_match_sklearn() {
    let fx = fixture();
    let mut worst = 0.0f64;
    let mut checked = 0;
    for case in fx["binary"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let labels = bools(&case["labels"]);
        let scores = floats(&case["scores"]);

        match case["roc_auc"].as_f64() {
            Some(want) => worst = worst.max(close(name, "roc_auc", roc_auc(&labels, &scores).unwrap(), want)),
            None => {
                let msg = invalid(roc_auc(&labels, &scores));
                assert!(msg.contains("both classes"), "{name}: {msg}");
            }
        }
        match case["average_precision"].as_f64() {
            Some(want) => {
                let got = average_precision(&labels, &scores).unwrap();
                worst = worst.max(close(name, "average_precision", got, want));
            }
            None => {
                let msg = invalid(average_precision(&labels, &scores));
                assert!(msg.contains("no positive"), "{name}: {msg}");
            }
        }
        if case["roc_curve"].is_null() {
            invalid(roc_curve(&labels, &scores));
        } else {
            let want = &case["roc_curve"];
            let got = roc_curve(&labels, &scores).unwrap();
            worst = worst.max(close_all(name, "fpr", &got.fpr, &floats(&want["fpr"])));
            worst = worst.max(close_all(name, "tpr", &got.tpr, &floats(&want["tpr"])));
            assert_eq!(got.thresholds[0], f64::INFINITY, "{name}");
            let thr = floats(&want["thresholds_after_inf"]);
            worst = worst.max(close_all(name, "roc thresholds", &got.thresholds[1..], &thr));
        }
        if case["pr_curve"].is_null() {
            invalid(pr_curve(&labels, &scores));
        } else {
            let want = &case["pr_curve"];
            let got = pr_curve(&labels, &scores).unwrap();
            worst = worst.max(close_all(
                name,
                "precision",
                &got.precision,
                &floats(&want["precision"]),
            ));
            worst = worst.max(close_all(name, "recall", &got.recall, &floats(&want["recall"])));
            worst = worst.max(close_all(
                name,
                "pr thresholds",
                &got.thresholds,
                &floats(&want["thresholds"]),
            ));
        }
        if case["probability"].as_bool().unwrap() {
            let got = log_loss(&labels, &scores).unwrap();
            worst = worst.max(close(name, "log_loss", got, case["log_loss"].as_f64().unwrap()));
            let got = brier_score(&labels, &scores).unwrap();
            worst = worst.max(close(name, "brier", got, case["brier"].as_f64().unwrap()));
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} binary cases");
    eprintln!("binary: {checked} cases, worst relative error {worst:e}");
}

#[test]
fn multiclass_metrics_match_sklearn() {
    let fx = fixture();
    let mut worst = 0.0f64;
    for case in fx["multiclass"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let k = case["n_classes"].as_u64().unwrap() as usize;
        let truth = usizes(&case["y_true"]);
        let pred = usizes(&case["y_pred"]);
        worst = worst.max(close(
            name,
            "accuracy",
            accuracy(&truth, &pred).unwrap(),
            case["accuracy"].as_f64().unwrap(),
        ));
        worst = worst.max(close(
            name,
            "macro_f1",
            macro_f1(&truth, &pred).unwrap(),
            case["macro_f1"].as_f64().unwrap(),
        ));
        let want: Vec<Vec<u64>> = case["confusion_matrix"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect())
            .collect();
        assert_eq!(confusion_matrix(&truth, &pred, k).unwrap(), want, "{name}");
        if let Some(want) = case["log_loss"].as_f64() {
            let probs = floats(&case["probs"]);
            worst = worst.max(close(
                name,
                "log_loss",
                log_loss_multiclass(&truth, &probs, k).unwrap(),
                want,
            ));
        }
    }
    eprintln!("multiclass: worst relative error {worst:e}");
}

#[test]
fn regression_metrics_match_sklearn() {
    let fx = fixture();
    let mut worst = 0.0f64;
    for case in fx["regression"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (t, p) = (floats(&case["y_true"]), floats(&case["y_pred"]));
        worst = worst.max(close(name, "mae", mae(&t, &p).unwrap(), case["mae"].as_f64().unwrap()));
        worst = worst.max(close(
            name,
            "rmse",
            rmse(&t, &p).unwrap(),
            case["rmse"].as_f64().unwrap(),
        ));
        worst = worst.max(close(
            name,
            "mape",
            mape(&t, &p).unwrap(),
            case["mape"].as_f64().unwrap(),
        ));
    }
    eprintln!("regression: worst relative error {worst:e}");
}

/// AUC by sorting on score and walking samples one at a time (a per-sample "rank by position"
/// curve). It ignores ties, so its answer depends on the order of tied samples.
fn naive_positional_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[b].partial_cmp(&scores[a]).unwrap());
    let pos = labels.iter().filter(|&&l| l).count() as f64;
    let neg = labels.len() as f64 - pos;
    let (mut tp, mut area) = (0.0, 0.0);
    for &i in &order {
        if labels[i] {
            tp += 1.0;
        } else {
            area += tp / pos / neg;
        }
    }
    area
}

/// P(score of a positive > score of a negative) + ½·P(equal), over all pairs.
fn pairwise_auc(labels: &[bool], scores: &[f64]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, &li) in labels.iter().enumerate() {
        for (j, &lj) in labels.iter().enumerate() {
            if li && !lj {
                pairs += 1.0;
                if scores[i] > scores[j] {
                    wins += 1.0;
                } else if scores[i] == scores[j] {
                    wins += 0.5;
                }
            }
        }
    }
    wins / pairs
}

#[test]
fn ties_across_classes_count_half() {
    // One positive and one negative with the same score: sklearn says 0.5; walking samples
    // in input order says 0 or 1 depending on which comes first.
    let scores = [0.4, 0.4];
    assert_eq!(roc_auc(&[true, false], &scores).unwrap(), 0.5);
    assert_eq!(roc_auc(&[false, true], &scores).unwrap(), 0.5);
    assert_eq!(naive_positional_auc(&[true, false], &scores), 1.0);
    assert_eq!(naive_positional_auc(&[false, true], &scores), 0.0);

    // Rounded scores: many ties. sklearn's trapezoid equals the pairwise count with ties at
    // one half; the positional walk does not.
    let labels = [true, false, true, true, false, false, true, false, false, true];
    let scores = [0.7, 0.7, 0.3, 0.7, 0.3, 0.1, 0.3, 0.7, 0.1, 0.9];
    let auc = roc_auc(&labels, &scores).unwrap();
    assert!((auc - pairwise_auc(&labels, &scores)).abs() < 1e-15, "{auc}");
    assert!((auc - 18.0 / 25.0).abs() < 1e-15, "{auc}");
    assert!((naive_positional_auc(&labels, &scores) - 19.0 / 25.0).abs() < 1e-15);

    // Average precision: a tie group is one step, with the precision of the whole group.
    // All tied: one threshold, precision = prevalence, recall 1 → AP = prevalence.
    let labels = [true, false, false, true, false];
    assert_eq!(average_precision(&labels, &[0.5; 5]).unwrap(), 0.4);
    // Walking the tie in input order would see the second positive at precision 2/4 (AP 0.75);
    // grouping the tie gives recall 1 at precision 2/5 after recall 1/2 at precision 1.
    let scores = [0.9, 0.5, 0.5, 0.5, 0.5];
    let ap = average_precision(&labels, &scores).unwrap();
    assert!((ap - (0.5 * 1.0 + 0.5 * 0.4)).abs() < 1e-15, "{ap}");
}

#[test]
fn curves_group_ties_into_one_point() {
    let labels = [true, false, true, false];
    let scores = [0.8, 0.8, 0.2, 0.1];
    let roc = roc_curve(&labels, &scores).unwrap();
    assert_eq!(roc.thresholds, vec![f64::INFINITY, 0.8, 0.2, 0.1]);
    assert_eq!(roc.fpr, vec![0.0, 0.5, 0.5, 1.0]);
    assert_eq!(roc.tpr, vec![0.0, 0.5, 1.0, 1.0]);
    let pr = pr_curve(&labels, &scores).unwrap();
    assert_eq!(pr.thresholds, vec![0.1, 0.2, 0.8]);
    assert_eq!(pr.precision, vec![0.5, 2.0 / 3.0, 0.5, 1.0]);
    assert_eq!(pr.recall, vec![1.0, 1.0, 0.5, 0.0]);
    // 0.0 and -0.0 are one threshold, as in numpy.
    assert_eq!(roc_curve(&[true, false], &[0.0, -0.0]).unwrap().fpr.len(), 2);
}

#[test]
fn f32_inputs_equal_widened_f64() {
    let labels = [true, false, true, false, false, true];
    let s32: [f32; 6] = [0.7, 0.2, 0.7, 0.7, 0.1, 0.35];
    let s64: Vec<f64> = s32.iter().map(|&x| x as f64).collect();
    assert_eq!(roc_auc(&labels, &s32).unwrap(), roc_auc(&labels, &s64).unwrap());
    assert_eq!(
        average_precision(&labels, &s32).unwrap(),
        average_precision(&labels, &s64).unwrap()
    );
    assert_eq!(log_loss(&labels, &s32).unwrap(), log_loss(&labels, &s64).unwrap());
    assert_eq!(brier_score(&labels, &s32).unwrap(), brier_score(&labels, &s64).unwrap());
    assert_eq!(mae(&s32, &s32).unwrap(), 0.0);
}

#[test]
fn probabilities_are_clipped_not_infinite() {
    let eps = f64::EPSILON;
    assert_eq!(log_loss(&[true], &[0.0]).unwrap(), -eps.ln());
    assert_eq!(log_loss(&[false], &[1.0]).unwrap(), -eps.ln());
    assert_eq!(log_loss(&[true], &[1.0]).unwrap(), -(1.0 - eps).ln());
    assert_eq!(log_loss_multiclass(&[2], &[0.5, 0.5, 0.0], 3).unwrap(), -eps.ln());
    // A zero target in MAPE divides by ε instead of 0.
    assert_eq!(mape(&[0.0], &[1.0]).unwrap(), 1.0 / eps);
}

#[test]
fn errors_name_the_problem() {
    let msg = invalid(roc_auc(&[true, true], &[0.1, 0.2]));
    assert!(
        msg.contains("roc_auc") && msg.contains("positive") && msg.contains("both classes"),
        "{msg}"
    );
    let msg = invalid(roc_auc(&[false, false], &[0.1, 0.2]));
    assert!(msg.contains("negative"), "{msg}");
    let msg = invalid(roc_auc(&[true, false], &[0.1]));
    assert!(msg.contains("2") && msg.contains("1"), "{msg}");
    let msg = invalid(roc_auc(&[true, false, true], &[0.1, f64::NAN, 0.3]));
    assert!(msg.contains("score 1 is NaN"), "{msg}");
    let msg = invalid(roc_auc::<f64>(&[], &[]));
    assert!(msg.contains("empty"), "{msg}");
    invalid(average_precision(&[true, false], &[f64::INFINITY, 0.0]));
    let msg = invalid(average_precision(&[false, false], &[0.1, 0.2]));
    assert!(msg.contains("no positive"), "{msg}");
    assert_eq!(average_precision(&[true, true], &[0.1, 0.2]).unwrap(), 1.0);

    let msg = invalid(log_loss(&[true, false], &[0.5, 1.5]));
    assert!(msg.contains("probability 1 is 1.5"), "{msg}");
    invalid(log_loss(&[true], &[-0.1]));
    invalid(brier_score(&[true], &[f64::NAN]));
    invalid(log_loss_multiclass(&[0, 1], &[0.5, 0.5, 0.5], 2));
    let msg = invalid(log_loss_multiclass(&[0, 3], &[0.5, 0.5, 0.5, 0.5], 2));
    assert!(msg.contains("targets 1 is class 3"), "{msg}");
    invalid(log_loss_multiclass(&[0], &[1.0], 1));

    invalid(accuracy(&[1usize, 2], &[1]));
    invalid(accuracy::<usize>(&[], &[]));
    invalid(macro_f1(&[], &[]));
    let msg = invalid(confusion_matrix(&[0, 1], &[0, 2], 2));
    assert!(msg.contains("predictions 1 is class 2"), "{msg}");
    assert_eq!(confusion_matrix(&[], &[], 2).unwrap(), vec![vec![0, 0], vec![0, 0]]);

    invalid(mae(&[1.0], &[f64::NAN]));
    invalid(rmse(&[1.0, 2.0], &[1.0]));
    invalid(mape::<f32>(&[], &[]));
}

#[test]
fn macro_f1_uses_the_union_of_classes() {
    // Class 2 is only predicted (F1 0), class 5 never occurs (not counted).
    let f1 = macro_f1(&[0, 0, 1, 1], &[0, 2, 1, 1]).unwrap();
    let f_0 = 2.0 * 1.0 / (2.0 + 1.0);
    let f_1 = 1.0;
    assert!((f1 - (f_0 + f_1 + 0.0) / 3.0).abs() < 1e-15, "{f1}");
    assert_eq!(accuracy(&[true, false, true], &[true, true, true]).unwrap(), 2.0 / 3.0);
    // Class ids are arbitrary: no table sized by the largest id.
    let f1 = macro_f1(&[usize::MAX, 0], &[usize::MAX, 1]).unwrap();
    assert!((f1 - 1.0 / 3.0).abs() < 1e-15, "{f1}");
}
