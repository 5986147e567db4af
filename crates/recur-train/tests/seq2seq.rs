//! The encoder-decoder: gradients against central differences for every attention kind,
//! learning to reverse digit strings, beam search against greedy, checkpoint round trips and
//! determinism.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_train::models::seq2seq::{
    train_epoch, AttentionKind, BeamConfig, Example, SampleFrom, SamplingSchedule, Seq2Seq, Seq2SeqConfig,
    TrainSettings,
};
use recur_train::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, ScheduleConfig};
use recur_train::Module;

/// Every decoder variant: the attention kind and whether Luong's input feeding is on.
const VARIANTS: [(AttentionKind, bool); 4] = [
    (AttentionKind::None, false),
    (AttentionKind::Luong, false),
    (AttentionKind::Luong, true),
    (AttentionKind::Bahdanau, false),
];

fn tiny((attention, input_feeding): (AttentionKind, bool), seed: u64) -> Seq2Seq {
    let mut cfg = Seq2SeqConfig::new(3, 5, 3, 4, 4);
    cfg.input_feeding = input_feeding;
    cfg.src_embed = 3;
    cfg.tgt_embed = 2;
    cfg.enc_hidden = 3;
    cfg.enc_layers = 2;
    cfg.attention = attention;
    cfg.attn_dim = 5;
    Seq2Seq::new(cfg, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn tiny_batch() -> Vec<Example> {
    vec![
        Example {
            src: vec![0, 2, 1],
            tgt: vec![1, 0],
        },
        Example {
            src: vec![2],
            tgt: vec![],
        },
        Example {
            src: vec![1, 1, 0, 2],
            tgt: vec![2, 2, 1],
        },
    ]
}

/// Central differences in f32 parameters with the loss summed in f64: `eps = 1e-2`, relative
/// tolerance 1e-2 (plus 2e-5 absolute for near-zero entries). With dropout, every evaluation
/// draws the same masks from the same seed.
fn gradcheck(variant: (AttentionKind, bool), dropout: f64) {
    let mut model = tiny(variant, 11);
    if dropout > 0.0 {
        let mut cfg = model.config().clone();
        cfg.dropout = dropout;
        let mut with_dropout = Seq2Seq::new(cfg, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
        with_dropout.load_named(&model.named_tensors()).unwrap();
        model = with_dropout;
    }
    // Sharper attention than at initialization, so its gradients are well above the noise.
    let names: Vec<&str> = model.buffers().iter().map(|(p, _)| *p).collect();
    for (name, buf) in names.into_iter().zip(model.buffers_mut()) {
        if name.starts_with("attn") || name == "encoder" {
            buf.as_mut_slice().iter_mut().for_each(|v| *v *= 3.0);
        }
    }
    let batch = tiny_batch();
    let run = |m: &Seq2Seq| {
        m.forward_backward(&batch, 1.0, SampleFrom::Argmax, &mut ChaCha8Rng::seed_from_u64(5))
            .unwrap()
    };
    let out = run(&model);
    if dropout == 0.0 {
        let (loss, _) = model.loss(&batch).unwrap();
        assert!((loss - out.loss).abs() < 1e-12, "{loss} vs {}", out.loss);
    }
    let names: Vec<String> = model.buffers().iter().map(|(p, _)| p.to_string()).collect();
    let eps = 1e-2f32;
    let (mut checked, mut worst) = (0, 0.0f64);
    for (bi, grad) in out.grads.iter().enumerate() {
        for j in 0..grad.as_slice().len() {
            let orig = model.buffers_mut()[bi].as_slice()[j];
            model.buffers_mut()[bi].as_mut_slice()[j] = orig + eps;
            let up = run(&model).loss;
            model.buffers_mut()[bi].as_mut_slice()[j] = orig - eps;
            let down = run(&model).loss;
            model.buffers_mut()[bi].as_mut_slice()[j] = orig;
            let fd = (up - down) / (2.0 * eps as f64);
            let g = grad.as_slice()[j] as f64;
            let err = (fd - g).abs();
            assert!(
                err <= 1e-2 * fd.abs().max(g.abs()) + 2e-5,
                "{variant:?} {}[{j}]: finite difference {fd} vs backward {g}",
                names[bi]
            );
            if g.abs() > 1e-3 {
                worst = worst.max(err / g.abs());
            }
            checked += 1;
        }
    }
    assert_eq!(checked, model.num_params());
    eprintln!("{variant:?}, dropout {dropout}: {checked} parameters, worst relative error {worst:.2e}");
}

#[test]
fn gradients_match_finite_differences_without_attention() {
    gradcheck(VARIANTS[0], 0.0);
}

#[test]
fn gradients_match_finite_differences_with_luong_attention() {
    gradcheck(VARIANTS[1], 0.0);
}

#[test]
fn gradients_match_finite_differences_with_luong_attention_and_input_feeding() {
    gradcheck(VARIANTS[2], 0.0);
}

#[test]
fn gradients_match_finite_differences_with_bahdanau_attention() {
    gradcheck(VARIANTS[3], 0.0);
}

#[test]
fn gradients_match_finite_differences_with_dropout() {
    gradcheck(VARIANTS[2], 0.3);
    gradcheck(VARIANTS[3], 0.3);
}

/// Digit strings of length 10 to 30; targets are the reversed strings. Source ids are the
/// digits; target ids are the digits plus `bos = 10`, `eos = 11`.
fn reversal_data(n: usize, rng: &mut ChaCha8Rng) -> Vec<Example> {
    (0..n)
        .map(|_| {
            let len = rng.random_range(10..=30);
            let src: Vec<usize> = (0..len).map(|_| rng.random_range(0..10)).collect();
            let tgt = src.iter().rev().copied().collect();
            Example { src, tgt }
        })
        .collect()
}

fn reversal_model((attention, input_feeding): (AttentionKind, bool), seed: u64) -> Seq2Seq {
    let mut cfg = Seq2SeqConfig::new(10, 12, 10, 11, 32);
    cfg.input_feeding = input_feeding;
    cfg.src_embed = 16;
    cfg.tgt_embed = 16;
    cfg.dec_hidden = 64;
    cfg.attention = attention;
    Seq2Seq::new(cfg, &mut ChaCha8Rng::seed_from_u64(seed)).unwrap()
}

fn sources(data: &[Example]) -> Vec<&[usize]> {
    data.iter().map(|ex| ex.src.as_slice()).collect()
}

fn exact_match(pred: &[Vec<usize>], data: &[Example]) -> f64 {
    let hits = pred.iter().zip(data).filter(|(p, ex)| **p == ex.tgt).count();
    hits as f64 / data.len() as f64
}

fn adam(lr: f64) -> Optimizer {
    Optimizer::new(OptimizerConfig {
        kind: OptimizerKind::Adam,
        lr,
        ..Default::default()
    })
    .unwrap()
}

/// Bahdanau attention learns to reverse strings of 10–30 digits from 48 000 fresh examples
/// (6 epochs of 8 000, Adam 3e-3 with cosine decay, batch 32): ≥ 99% of 500 held-out strings
/// exactly right with greedy decoding, and with a beam of 3.
#[test]
fn learns_to_reverse_digit_strings() {
    let (n, epochs, batch_size) = (8000usize, 6, 32);
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let test = reversal_data(500, &mut rng);
    let mut model = reversal_model((AttentionKind::Bahdanau, false), 7);
    let mut opt = adam(3e-3);
    let settings = TrainSettings {
        batch_size,
        ..TrainSettings::default()
    };
    let total = (epochs * n.div_ceil(batch_size)) as u64;
    let schedule = ScheduleConfig {
        decay: Decay::Cosine,
        total_steps: Some(total),
        ..ScheduleConfig::default()
    };
    for epoch in 0..epochs {
        let train = reversal_data(n, &mut rng);
        let lr = |step| 3e-3 * schedule.factor(step, total);
        let stats = train_epoch(&mut model, &train, &settings, &mut opt, lr, &mut rng).unwrap();
        eprintln!(
            "epoch {epoch}: loss {:.4}, gradient norm {:.3}",
            stats.loss, stats.grad_norm
        );
    }
    let acc = exact_match(&model.greedy(&sources(&test), 40).unwrap(), &test);
    let beam = BeamConfig {
        width: 3,
        max_len: 40,
        length_penalty: 1.0,
    };
    let beam_acc = exact_match(&model.beam_search(&sources(&test), &beam).unwrap(), &test);
    eprintln!("exact match: greedy {acc:.3}, beam of 3 {beam_acc:.3}");
    assert!(acc >= 0.99, "greedy exact match {acc}");
    assert!(beam_acc >= 0.99, "beam exact match {beam_acc}");
}

/// A model trained for one short epoch with scheduled sampling (inverse sigmoid, sampled from
/// the softmax), so that its predictions are neither trivial nor perfect.
fn briefly_trained(variant: (AttentionKind, bool), seed: u64) -> Seq2Seq {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = reversal_data(600, &mut rng);
    let mut model = reversal_model(variant, seed);
    let mut opt = adam(1e-2);
    let settings = TrainSettings {
        batch_size: 32,
        sampling: SamplingSchedule::InverseSigmoid { k: 3.0 },
        sample_from: SampleFrom::Softmax,
        ..TrainSettings::default()
    };
    let stats = train_epoch(&mut model, &data, &settings, &mut opt, |_| 1e-2, &mut rng).unwrap();
    assert!(
        stats.teacher_prob < 0.05,
        "the schedule decayed: {}",
        stats.teacher_prob
    );
    model
}

#[test]
fn beam_search_of_width_one_is_greedy() {
    let test = reversal_data(40, &mut ChaCha8Rng::seed_from_u64(5));
    for kind in VARIANTS {
        let model = briefly_trained(kind, 3);
        for max_len in [0, 7, 40] {
            let greedy = model.greedy(&sources(&test), max_len).unwrap();
            let beam = BeamConfig {
                width: 1,
                max_len,
                length_penalty: 0.0,
            };
            assert_eq!(
                model.beam_search(&sources(&test), &beam).unwrap(),
                greedy,
                "{kind:?} {max_len}"
            );
            assert!(greedy.iter().all(|p| p.len() <= max_len));
        }
        let wide = BeamConfig {
            width: 4,
            max_len: 40,
            length_penalty: 1.0,
        };
        let pred = model.beam_search(&sources(&test), &wide).unwrap();
        assert_eq!(pred.len(), test.len());
    }
}

#[test]
fn checkpoint_round_trip_gives_identical_predictions() {
    let test = reversal_data(30, &mut ChaCha8Rng::seed_from_u64(6));
    let beam = BeamConfig {
        width: 3,
        max_len: 40,
        length_penalty: 0.6,
    };
    for kind in VARIANTS {
        let model = briefly_trained(kind, 4);
        let saved = model.named_tensors();
        let mut other = reversal_model(kind, 99);
        assert_ne!(other.named_tensors(), saved);
        other.load_named(&saved).unwrap();
        assert_eq!(other.named_tensors(), saved);
        let srcs = sources(&test);
        assert_eq!(other.greedy(&srcs, 40).unwrap(), model.greedy(&srcs, 40).unwrap());
        assert_eq!(
            other.beam_search(&srcs, &beam).unwrap(),
            model.beam_search(&srcs, &beam).unwrap()
        );
        assert_eq!(other.loss(&test).unwrap(), model.loss(&test).unwrap());
        // A checkpoint of another attention kind does not half-load.
        let mut wrong = reversal_model((AttentionKind::Bahdanau, false), 1);
        if kind.0 != AttentionKind::Bahdanau {
            assert!(wrong.load_named(&saved).is_err());
        }
    }
    let names: Vec<String> = briefly_trained(VARIANTS[1], 4).named_tensors().into_keys().collect();
    for expected in [
        "attn.combine.weight",
        "attn.score.weight",
        "encoder.weight_hh_l0_reverse",
        "decoder.bias_hh",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} in {names:?}");
    }
}

#[test]
fn same_seed_gives_identical_weights() {
    let a = briefly_trained(VARIANTS[3], 8).named_tensors();
    let b = briefly_trained(VARIANTS[3], 8).named_tensors();
    let c = briefly_trained(VARIANTS[3], 9).named_tensors();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn bad_inputs_are_errors() {
    let model = tiny(VARIANTS[1], 1);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let cases = [
        vec![],
        vec![Example {
            src: vec![],
            tgt: vec![1],
        }],
        vec![Example {
            src: vec![3],
            tgt: vec![1],
        }],
        vec![Example {
            src: vec![1],
            tgt: vec![5],
        }],
    ];
    for batch in &cases {
        assert!(model
            .forward_backward(batch, 1.0, SampleFrom::Argmax, &mut rng)
            .is_err());
        assert!(model.loss(batch).is_err());
    }
    assert!(model.greedy(&[], 5).is_err());
    assert!(model.greedy(&[&[0, 9]], 5).is_err());
    let zero = BeamConfig {
        width: 0,
        max_len: 5,
        length_penalty: 0.0,
    };
    let err = model.beam_search(&[&[0]], &zero).unwrap_err().to_string();
    assert!(err.contains("beam.width"), "{err}");
}
