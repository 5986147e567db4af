//! Dynamic evaluation of the character LM (Krause et al.): with learning rate 0 it is static
//! evaluation, it is causal (a character's loss never depends on later text) and it adapts,
//! and the RMS rule with its mean-squared-gradient prior.

mod charlm_support;

use recur_nn::CellKind;
use recur_train::models::charlm::{CharVocab, DynamicEvalConfig, DynamicRule, Eval};
use recur_train::Module;

use charlm_support::{random_ids, small, tiny};

/// With learning rate 0, dynamic evaluation is static evaluation of one stream, exactly, and
/// the model passed in is never changed.
#[test]
fn dynamic_eval_with_lr_zero_is_static_eval() {
    let vocab = CharVocab::from_text("abcdefgh", 1);
    for (cell, layers) in [(CellKind::Lstm, 2), (CellKind::Gru, 1)] {
        let m = tiny(cell, &vocab, layers, 0.2, 3);
        let before = m.named_tensors();
        let ids = random_ids(&vocab, 95, 8);
        for segment in [1, 7, 100] {
            let cfg = DynamicEvalConfig {
                segment,
                lr: 0.0,
                ..DynamicEvalConfig::default()
            };
            let d = m.evaluate_dynamic(&ids, &cfg, None).unwrap();
            let s = m.evaluate_ids(&ids, 1, segment).unwrap();
            assert_eq!(d.eval, s, "{cell:?} segment {segment}");
            assert_eq!(d.losses.len(), ids.len() - 1);
            assert_eq!(Eval::from_losses(&d.losses), s);
        }
        let d = m
            .evaluate_dynamic(
                &ids,
                &DynamicEvalConfig {
                    segment: 10,
                    lr: 0.5,
                    ..DynamicEvalConfig::default()
                },
                None,
            )
            .unwrap();
        assert_ne!(d.eval, m.evaluate_ids(&ids, 1, 10).unwrap());
        assert_eq!(m.named_tensors(), before);
    }
}

/// Each character is scored before the model adapts to it: the loss of predicting `ids[j]`
/// never depends on `ids[j + 1..]`, whatever the segment length; and on a text that repeats
/// itself, adapting lowers the score.
#[test]
fn dynamic_eval_is_causal_and_adapts() {
    let vocab = CharVocab::from_text("abcdefgh", 1);
    let m = small(CellKind::Lstm, &vocab, 4);
    let ids = random_ids(&vocab, 120, 9);
    for segment in [1, 5, 16] {
        let cfg = DynamicEvalConfig {
            segment,
            lr: 1.0,
            decay: 0.01,
            clip: 0.0,
            ..DynamicEvalConfig::default()
        };
        let full = m.evaluate_dynamic(&ids, &cfg, None).unwrap();
        for k in [3, 37, 64, 100] {
            // Replace everything from ids[k] on.
            let mut other = ids[..k].to_vec();
            other.extend(random_ids(&vocab, ids.len() - k, 100 + k as u64));
            assert_ne!(other[k..], ids[k..]);
            let d = m.evaluate_dynamic(&other, &cfg, None).unwrap();
            // losses[j] predicts ids[j + 1]: the first k − 1 are unchanged.
            assert_eq!(d.losses[..k - 1], full.losses[..k - 1], "segment {segment}, k {k}");
            assert_ne!(d.losses[k - 1..], full.losses[k - 1..]);
        }
    }
    // A random 40-character string read 10 times: static scoring cannot exploit the
    // repetition, dynamic evaluation does.
    let unit = random_ids(&vocab, 40, 10);
    let rep: Vec<usize> = unit.iter().cycle().take(400).copied().collect();
    let cfg = DynamicEvalConfig {
        segment: 10,
        lr: 2.0,
        decay: 0.0,
        clip: 0.0,
        ..DynamicEvalConfig::default()
    };
    let s = m.evaluate_ids(&rep, 1, 10).unwrap();
    let d = m.evaluate_dynamic(&rep, &cfg, None).unwrap();
    let first = Eval::from_losses(&d.losses[..39]);
    let last = Eval::from_losses(&d.losses[359..]);
    eprintln!(
        "static {:.3} bpc; dynamic {:.3} bpc, {:.3} on the first and {:.3} on the last repetition",
        s.bpc, d.eval.bpc, first.bpc, last.bpc
    );
    assert!(d.eval.bpc < s.bpc - 0.3, "{} vs {}", d.eval.bpc, s.bpc);
    assert!(last.bpc < first.bpc - 0.5, "{} vs {}", last.bpc, first.bpc);
    // Bad settings.
    for bad in [
        DynamicEvalConfig {
            segment: 0,
            ..cfg.clone()
        },
        DynamicEvalConfig {
            lr: -1.0,
            ..cfg.clone()
        },
        DynamicEvalConfig {
            decay: 1.0,
            ..cfg.clone()
        },
        DynamicEvalConfig {
            lr: f64::NAN,
            ..cfg.clone()
        },
    ] {
        assert!(m.evaluate_dynamic(&rep, &bad, None).is_err(), "{bad:?}");
    }
    assert!(m.evaluate_dynamic(&rep[..1], &cfg, None).is_err());
}

/// The RMS rule: needs the prior, matches static evaluation at lr 0, stays causal, adapts to a
/// repeated text; the prior is a mean of squares over the segments of the given text.
#[test]
fn dynamic_eval_rms_rule() {
    let vocab = CharVocab::from_text("abcdefgh", 1);
    let m = small(CellKind::Lstm, &vocab, 4);
    let train_text = random_ids(&vocab, 301, 11);
    let prior = m.gradient_ms(&train_text, 30).unwrap();
    assert_eq!(prior.segments, 10);
    assert_eq!(prior.ms.len(), m.buffers().len());
    assert!(prior.ms.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
    assert!(prior.ms[2].iter().any(|v| *v > 0.0));
    let ids = random_ids(&vocab, 90, 12);
    let mut cfg = DynamicEvalConfig {
        segment: 9,
        rule: DynamicRule::Rms,
        ..DynamicEvalConfig::default()
    };
    assert!(m.evaluate_dynamic(&ids, &cfg, None).is_err());
    assert_eq!(
        m.evaluate_dynamic(&ids, &cfg, Some(&prior)).unwrap().eval,
        m.evaluate_ids(&ids, 1, 9).unwrap()
    );
    cfg.lr = 0.01;
    cfg.decay = 0.02;
    let full = m.evaluate_dynamic(&ids, &cfg, Some(&prior)).unwrap();
    let mut other = ids[..50].to_vec();
    other.extend(random_ids(&vocab, 40, 13));
    let d = m.evaluate_dynamic(&other, &cfg, Some(&prior)).unwrap();
    assert_eq!(d.losses[..49], full.losses[..49]);
    assert_ne!(d.losses[49..], full.losses[49..]);
    let unit = random_ids(&vocab, 40, 10);
    let rep: Vec<usize> = unit.iter().cycle().take(400).copied().collect();
    cfg.segment = 10;
    cfg.decay = 0.0;
    let s = m.evaluate_ids(&rep, 1, 10).unwrap();
    let d = m.evaluate_dynamic(&rep, &cfg, Some(&prior)).unwrap();
    eprintln!("static {:.3} bpc, dynamic (rms) {:.3} bpc", s.bpc, d.eval.bpc);
    assert!(d.eval.bpc < s.bpc - 0.3, "{} vs {}", d.eval.bpc, s.bpc);
    // A prior of another model's shape is refused.
    let other_model = tiny(CellKind::Lstm, &vocab, 1, 0.0, 1);
    assert!(other_model.evaluate_dynamic(&rep, &cfg, Some(&prior)).is_err());
}
