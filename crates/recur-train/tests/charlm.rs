//! The character language model: gradients against central differences, learning a structured
//! text, determinism, sampling, and the config/vocabulary/weights and checkpoint round trips.
//! Dynamic evaluation is in `charlm_dynamic.rs`, multi-threaded training in `charlm_threads.rs`.

mod charlm_support;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::checkpoint;
use recur_train::models::charlm::{
    argmax, mixture_losses, CharLm, CharLmConfig, CharLmTrainConfig, CharLmTrainer, CharVocab, Chunk, Eval, Generator,
    LmState, Seed, CHECKPOINT_KIND, UNK,
};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, ScheduleConfig};
use recur_train::Module;

use charlm_support::{small, tiny};

fn random_state(m: &CharLm, batch: usize, rng: &mut ChaCha8Rng) -> LmState {
    let mut s = m.zero_state(batch);
    s.h.iter_mut().for_each(|v| *v = rng.random_range(-0.8..0.8));
    if let Some(c) = s.c.as_mut() {
        c.iter_mut().for_each(|v| *v = rng.random_range(-0.8..0.8));
    }
    s
}

/// Every parameter's gradient (embedding, both layers of the RNN, head) against central
/// differences of the f64-summed loss, with dropout masks held fixed and a non-zero carried
/// state.
fn gradcheck(cell: CellKind) {
    let vocab = CharVocab::from_text("abcde\n", 1);
    let m = tiny(cell, &vocab, 2, 0.25, 11);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let (batch, time) = (2, 5);
    let ids: Vec<usize> = (0..batch * (time + 1))
        .map(|_| rng.random_range(0..vocab.len()))
        .collect();
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for b in 0..batch {
        inputs.extend_from_slice(&ids[b * (time + 1)..b * (time + 1) + time]);
        targets.extend_from_slice(&ids[b * (time + 1) + 1..(b + 1) * (time + 1)]);
    }
    let chunk = Chunk {
        inputs: &inputs,
        targets: &targets,
        batch,
        time,
    };
    let state = random_state(&m, batch, &mut rng);
    let masks = || ChaCha8Rng::seed_from_u64(99);
    let out = m.forward_backward(&chunk, &state, Some(&mut masks())).unwrap();
    let l0 = m.loss(&chunk, &state, Some(&mut masks())).unwrap();
    assert!((out.loss - l0).abs() < 1e-5, "{} vs {l0}", out.loss);
    // Dropout is really on: the loss without masks differs.
    assert!((m.loss(&chunk, &state, None).unwrap() - l0).abs() > 1e-4);
    let eps = 1e-2f32;
    let mut worst = 0.0f64;
    let mut checked = 0;
    let names: Vec<&str> = m.buffers().iter().map(|(p, _)| *p).collect();
    for (bi, name) in names.iter().enumerate() {
        let n = m.buffers()[bi].1.as_slice().len();
        for i in 0..n {
            let mut p = m.clone();
            p.buffers_mut()[bi].as_mut_slice()[i] += eps;
            let up = p.loss(&chunk, &state, Some(&mut masks())).unwrap();
            p.buffers_mut()[bi].as_mut_slice()[i] -= 2.0 * eps;
            let down = p.loss(&chunk, &state, Some(&mut masks())).unwrap();
            let fd = (up - down) / (2.0 * eps as f64);
            let an = out.grads[bi].as_slice()[i] as f64;
            let err = (fd - an).abs() / (fd.abs().max(an.abs()) + 1e-2);
            worst = worst.max(err);
            assert!(
                (fd - an).abs() <= 1e-2 * fd.abs().max(an.abs()) + 2e-4,
                "{cell:?} {name}[{i}]: finite differences {fd}, backward {an}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, m.num_params());
    eprintln!("{cell:?}: {checked} parameters, worst relative error {worst:.2e}");
}

#[test]
fn gradcheck_lstm() {
    gradcheck(CellKind::Lstm);
}

#[test]
fn gradcheck_gru() {
    gradcheck(CellKind::Gru);
}

fn unigram_entropy(ids: &[usize], v: usize) -> f64 {
    let mut counts = vec![0usize; v];
    ids.iter().for_each(|&i| counts[i] += 1);
    let n = ids.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| -(c as f64 / n) * (c as f64 / n).log2())
        .sum()
}

fn train_cfg(epochs: usize, lr: f64) -> CharLmTrainConfig {
    CharLmTrainConfig {
        batch: 4,
        bptt: 24,
        epochs,
        clip: 1.0,
        optimizer: OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr,
            ..OptimizerConfig::default()
        },
        schedule: ScheduleConfig {
            warmup_steps: 5,
            decay: Decay::Cosine,
            min_factor: 0.1,
            ..ScheduleConfig::default()
        },
        max_bad_steps: 3,
        threads: 1,
        average_from: None,
        weight_drop: 0.0,
    }
}

fn train(m: &mut CharLm, ids: &[usize], cfg: CharLmTrainConfig, seed: u64) -> f64 {
    let mut trainer = CharLmTrainer::new(cfg.clone(), ids.len()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut last = f64::NAN;
    for _ in 0..cfg.epochs {
        last = trainer.train_epoch(m, ids, &mut rng, |_| {}).unwrap().loss;
    }
    assert_eq!(trainer.steps(), (cfg.epochs * cfg.steps_per_epoch(ids.len())) as u64);
    last
}

/// `abcabd` repeated: after `ab` the next character alternates between `c` and `d`, so the
/// model must remember the character three steps back. Entropy rate 0; unigram entropy 1.92.
#[test]
fn learns_a_periodic_text_well_below_the_unigram_entropy() {
    let text = "abcabd".repeat(300);
    let (train_text, test_text) = text.split_at(1500);
    let vocab = CharVocab::from_text(train_text, 1);
    let ids = vocab.encode(train_text);
    let h1 = unigram_entropy(&ids, vocab.len());
    assert!((h1 - 1.918).abs() < 1e-2, "{h1}");
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let mut m = small(cell, &vocab, 1);
        let before = m.evaluate(test_text, 2, 64).unwrap().bpc;
        let loss = train(&mut m, &ids, train_cfg(12, 2e-2), 2);
        let ev = m.evaluate(test_text, 2, 64).unwrap();
        eprintln!(
            "{cell:?}: held-out {:.3} bpc before, {:.3} after (train loss {loss:.3} nats); unigram {h1:.3}",
            before, ev.bpc
        );
        assert_eq!(ev.chars, test_text.len() - 1);
        assert!(ev.bpc < 0.15 * h1, "{cell:?}: {} bpc", ev.bpc);
        // And it continues the pattern greedily.
        let next = m
            .generate(&Seed::text("abcabdab"), 10, 0.0, &mut ChaCha8Rng::seed_from_u64(0))
            .unwrap();
        assert_eq!(next, "cabdabcabd", "{cell:?}");
    }
}

/// Words drawn uniformly from four that differ only in their third letter: 2 bits per 5
/// characters, so a calibrated model approaches 0.4 bpc on held-out text, and cannot beat it.
#[test]
fn approaches_the_entropy_rate_of_a_random_text() {
    let words = ["then ", "than ", "thin ", "this "];
    let mut rng = ChaCha8Rng::seed_from_u64(17);
    let text: String = (0..1400).map(|_| words[rng.random_range(0..4)]).collect();
    let (train_text, test_text) = text.split_at(5 * 1000);
    let vocab = CharVocab::from_text(train_text, 1);
    let ids = vocab.encode(train_text);
    let h1 = unigram_entropy(&ids, vocab.len());
    let mut m = small(CellKind::Lstm, &vocab, 5);
    train(&mut m, &ids, train_cfg(8, 1e-2), 6);
    let ev = m.evaluate(test_text, 1, 256).unwrap();
    eprintln!("held-out {:.3} bpc; entropy rate 0.4, unigram {h1:.3}", ev.bpc);
    assert!(ev.bpc > 0.35 && ev.bpc < 0.55, "{} bpc", ev.bpc);
}

#[test]
fn same_seed_same_weights() {
    let text = "the cat sat on the mat; the dog sat on the log. ".repeat(8);
    let vocab = CharVocab::from_text(&text, 1);
    let ids = vocab.encode(&text);
    let run = |init: u64, drop: u64| {
        let cfg = CharLmConfig {
            cell: CellKind::Lstm,
            embed_dim: 6,
            hidden_size: 12,
            num_layers: 2,
            dropout: 0.2,
            input_dropout: 0.1,
            recurrent_dropout: 0.1,
        };
        let mut m = CharLm::new(cfg, vocab.clone(), &mut ChaCha8Rng::seed_from_u64(init)).unwrap();
        train(&mut m, &ids, train_cfg(2, 1e-2), drop);
        m.named_tensors()
    };
    let a = run(1, 2);
    assert_eq!(a, run(1, 2));
    assert_ne!(a, run(1, 3), "dropout masks come from the training RNG");
    assert_ne!(a, run(4, 2));
}

#[test]
fn sampling_is_reproducible_and_temperature_zero_is_greedy() {
    let text = "abcabd".repeat(50);
    let vocab = CharVocab::from_text(&text, 1);
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let m = small(cell, &vocab, 3);
        let seed = Seed::text("abca");
        let draw = |t: f32, s: u64| m.generate(&seed, 40, t, &mut ChaCha8Rng::seed_from_u64(s)).unwrap();
        assert_eq!(draw(1.0, 7), draw(1.0, 7));
        assert_eq!(draw(1.0, 7).chars().count(), 40);
        assert_ne!(draw(1.0, 7), draw(1.0, 8));
        // Greedy by hand, one step at a time.
        let mut g = Generator::new(&m, &seed).unwrap();
        let mut greedy = String::new();
        for _ in 0..40 {
            let id = argmax(g.logits());
            assert_ne!(id, UNK);
            greedy.push(vocab.char(id).unwrap());
            g.feed(id).unwrap();
        }
        assert_eq!(draw(0.0, 1), greedy);
        assert_eq!(draw(0.0, 2), greedy, "greedy does not use the RNG");
        assert_eq!(draw(1e-6, 3), greedy, "a tiny temperature is greedy too");
        // Bad temperatures are errors, not panics.
        for t in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(m.generate(&seed, 5, t, &mut ChaCha8Rng::seed_from_u64(0)).is_err());
        }
    }
}

#[test]
fn generation_is_seeded_by_a_vector() {
    let text = "abcabd".repeat(50);
    let vocab = CharVocab::from_text(&text, 1);
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let m = tiny(cell, &vocab, 2, 0.0, 4);
        let n = m.state_len();
        assert_eq!(n, 2 * 4);
        let rng = || ChaCha8Rng::seed_from_u64(0);
        // The zero vector is the default start.
        let zero = vec![0.0f32; n];
        assert_eq!(
            m.generate(&Seed::vector(&zero), 20, 0.7, &mut rng()).unwrap(),
            m.generate(&Seed::text(""), 20, 0.7, &mut rng()).unwrap()
        );
        // The first distribution is the head applied to the seed's top layer.
        let h0: Vec<f32> = (0..n).map(|i| ((i * 7 % 5) as f32 - 2.0) / 2.0).collect();
        let g = Generator::new(&m, &Seed::vector(&h0)).unwrap();
        let g0 = Generator::new(&m, &Seed::vector(&zero)).unwrap();
        assert_ne!(g.logits(), g0.logits());
        let mut other = h0.clone();
        other[..4].iter_mut().for_each(|v| *v = 9.0); // bottom layer only
        assert_eq!(Generator::new(&m, &Seed::vector(&other)).unwrap().logits(), g.logits());
        // Different seed vectors lead to different greedy continuations.
        let outs: std::collections::BTreeSet<String> = (0..6)
            .map(|k| {
                let h: Vec<f32> = (0..n).map(|i| ((i + k) as f32 * 1.7).sin() * 3.0).collect();
                m.generate(&Seed::vector(&h), 12, 0.0, &mut rng()).unwrap()
            })
            .collect();
        assert!(outs.len() > 1, "{outs:?}");
        // A vector plus priming text: the text is read from the vector's state.
        let both = Seed {
            h0: Some(&h0),
            prime: "ab",
            ..Seed::default()
        };
        let mut by_hand = Generator::new(&m, &Seed::vector(&h0)).unwrap();
        by_hand.feed(vocab.id('a')).unwrap();
        by_hand.feed(vocab.id('b')).unwrap();
        let g2 = Generator::new(&m, &both).unwrap();
        for (a, b) in g2.logits().iter().zip(by_hand.logits()) {
            assert!((a - b).abs() < 1e-5);
        }
        // Wrong sizes are errors.
        assert!(Generator::new(&m, &Seed::vector(&h0[..3])).is_err());
        let c0 = vec![0.0f32; n];
        let with_c = Seed {
            h0: Some(&h0),
            c0: Some(&c0),
            prime: "",
        };
        assert_eq!(Generator::new(&m, &with_c).is_ok(), cell == CellKind::Lstm);
    }
}

#[test]
fn step_by_step_matches_one_pass_and_evaluation_carries_state() {
    let text = "she sells sea shells by the sea shore\n".repeat(4);
    let vocab = CharVocab::from_text(&text, 1);
    let m = tiny(CellKind::Lstm, &vocab, 2, 0.3, 9);
    let ids = vocab.encode(&text);
    let mut a = Generator::new(&m, &Seed::default()).unwrap();
    a.run(&ids).unwrap();
    let mut b = Generator::new(&m, &Seed::default()).unwrap();
    for &i in &ids {
        b.feed(i).unwrap();
    }
    for (x, y) in a.logits().iter().zip(b.logits()) {
        assert!((x - y).abs() < 1e-5);
    }
    for (x, y) in a.state().h.iter().zip(&b.state().h) {
        assert!((x - y).abs() < 1e-5);
    }
    // Evaluation in chunks of 7 carries the state exactly like one pass, and one pass is the
    // training loss of the whole text as a single chunk (no dropout at evaluation), plus the
    // escape's `−ln(1 − novel)` on every (known) character.
    let whole = m.evaluate_ids(&ids, 1, 10_000).unwrap();
    let chunked = m.evaluate_ids(&ids, 1, 7).unwrap();
    assert!((whole.nats - chunked.nats).abs() < 1e-5);
    let n = ids.len() - 1;
    let chunk = Chunk {
        inputs: &ids[..n],
        targets: &ids[1..],
        batch: 1,
        time: n,
    };
    let direct = m.loss(&chunk, &m.zero_state(1), None).unwrap();
    assert!((whole.nats - (direct - (-vocab.novel()).ln_1p())).abs() < 1e-5);
    assert!((whole.bpc - whole.nats / std::f64::consts::LN_2).abs() < 1e-12);
    // Parallel streams predict the same characters (a different split of the context only).
    for streams in [2, 3, 5] {
        let e = m.evaluate_ids(&ids, streams, 11).unwrap();
        assert_eq!(e.chars, n);
        assert!(e.nats.is_finite());
    }
    assert!(m.evaluate_ids(&ids[..1], 1, 8).is_err());
    assert!(m.evaluate_ids(&[0, 999], 1, 8).is_err());
}

#[test]
fn vocab_config_and_weights_round_trip() {
    let text = "Call me Ishmael.\n\"Whale\" — é ü 🐋\ttabs\\";
    let vocab = CharVocab::from_text(text, 1);
    assert_eq!(vocab.decode(&vocab.encode(text)), text);
    assert_eq!(vocab.id('Z'), UNK);
    assert_eq!(vocab.decode(&vocab.encode("Zaa")), "\u{FFFD}aa");
    let cfg = CharLmConfig {
        cell: CellKind::Gru,
        embed_dim: 5,
        hidden_size: 7,
        num_layers: 2,
        dropout: 0.1,
        recurrent_dropout: 0.2,
        ..CharLmConfig::default()
    };
    let m = CharLm::new(cfg, vocab.clone(), &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let json = m.to_json().unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["config"]["cell"], "gru");
    let mut back = CharLm::from_json(&json).unwrap();
    assert_eq!(back.config(), m.config());
    assert_eq!(back.vocab(), m.vocab());
    assert_ne!(back.named_tensors(), m.named_tensors());
    let tensors = m.named_tensors();
    let names: Vec<&String> = tensors.keys().collect();
    assert!(names.iter().any(|n| *n == "embed.weight"));
    assert!(names.iter().any(|n| *n == "rnn.weight_hh_l1"));
    assert!(names.iter().any(|n| *n == "head.bias"));
    back.load_named(&tensors).unwrap();
    assert_eq!(back.named_tensors(), tensors);
    let gen = |m: &CharLm| {
        m.generate(&Seed::text("Call"), 30, 0.9, &mut ChaCha8Rng::seed_from_u64(4))
            .unwrap()
    };
    assert_eq!(gen(&back), gen(&m));
    assert_eq!(back.evaluate(text, 2, 8).unwrap(), m.evaluate(text, 2, 8).unwrap());
    // The vocabulary alone, and bad documents.
    let vj = serde_json::to_string(&vocab).unwrap();
    assert_eq!(serde_json::from_str::<CharVocab>(&vj).unwrap(), vocab);
    assert!(serde_json::from_str::<CharVocab>(r#"{"chars": "abca"}"#).is_err());
    assert!(CharLm::from_json(&json.replace("\"gru\"", "\"conv\"")).is_err());
    assert!(CharLm::from_json(&json.replace("\"num_layers\":2", "\"num_layers\":0")).is_err());
    assert!(CharLm::from_json(&json.replace("\"config\":{", "\"config\":{\"extra\":1,")).is_err());
    // Weights of another shape do not load.
    let other = CharLm::new(
        CharLmConfig {
            hidden_size: 8,
            ..m.config().clone()
        },
        vocab,
        &mut ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    assert!(back.load_named(&other.named_tensors()).is_err());
}

#[test]
fn bad_inputs_are_errors() {
    let vocab = CharVocab::from_text("abc", 1);
    let m = tiny(CellKind::Lstm, &vocab, 1, 0.0, 1);
    let state = m.zero_state(1);
    let chunk = |inputs: &'static [usize], targets: &'static [usize]| Chunk {
        inputs,
        targets,
        batch: 1,
        time: 2,
    };
    assert!(m.forward_backward(&chunk(&[1, 2], &[2, 3]), &state, None).is_ok());
    assert!(m.forward_backward(&chunk(&[1, 9], &[2, 3]), &state, None).is_err());
    assert!(m.forward_backward(&chunk(&[1, 2], &[2, 4]), &state, None).is_err());
    assert!(m.forward_backward(&chunk(&[1], &[2]), &state, None).is_err());
    assert!(m
        .forward_backward(&chunk(&[1, 2], &[2, 3]), &m.zero_state(2), None)
        .is_err());
    let bad = CharLmConfig {
        dropout: 1.0,
        ..CharLmConfig::default()
    };
    assert!(CharLm::new(bad, vocab.clone(), &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap_err()
        .to_string()
        .contains("charlm.dropout"));
    assert!(CharLm::new(
        CharLmConfig::default(),
        CharVocab::from_text("", 1),
        &mut ChaCha8Rng::seed_from_u64(0)
    )
    .is_err());
    let cfg = CharLmTrainConfig {
        batch: 8,
        ..CharLmTrainConfig::default()
    };
    assert!(CharLmTrainer::new(cfg, 5).is_err(), "too little text for 8 streams");
    let cfg = CharLmTrainConfig {
        bptt: 0,
        ..CharLmTrainConfig::default()
    };
    assert!(CharLmTrainer::new(cfg, 1000)
        .unwrap_err()
        .to_string()
        .contains("train.bptt"));
}

/// `save` → `load` through a recur checkpoint directory: config, vocabulary and weights come
/// back, so the loaded model scores and samples the same; other kinds are refused.
#[test]
fn checkpoint_round_trip() {
    let text = "Call me Ishmael. Some years ago — never mind how long";
    let vocab = CharVocab::from_text(text, 1);
    let m = tiny(CellKind::Lstm, &vocab, 2, 0.1, 6);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ckpt");
    m.save(&dir, serde_json::json!({"epochs": 1}), serde_json::json!({"bpc": 1.5}))
        .unwrap();
    let back = CharLm::load(&dir).unwrap();
    assert_eq!(back.config(), m.config());
    assert_eq!(back.vocab(), m.vocab());
    assert_eq!(back.named_tensors(), m.named_tensors());
    assert_eq!(back.evaluate(text, 2, 8).unwrap(), m.evaluate(text, 2, 8).unwrap());
    let gen = |m: &CharLm| {
        m.generate(&Seed::text("Call"), 30, 0.9, &mut ChaCha8Rng::seed_from_u64(4))
            .unwrap()
    };
    assert_eq!(gen(&back), gen(&m));
    let ckpt = checkpoint::load(&dir).unwrap();
    assert_eq!(ckpt.kind, CHECKPOINT_KIND);
    assert_eq!(
        ckpt.preprocessing["vocab"]["chars"].as_str().unwrap().chars().count(),
        vocab.len() - 1
    );
    assert_eq!(ckpt.metrics["bpc"], 1.5);
    let mut other = ckpt.clone();
    other.kind = "seq2seq".into();
    assert!(CharLm::from_checkpoint(&other).is_err());
    let mut other = ckpt.clone();
    other.preprocessing = serde_json::json!({});
    assert!(CharLm::from_checkpoint(&other).is_err());
    let mut other = ckpt;
    other.tensors.remove("head.bias");
    assert!(CharLm::from_checkpoint(&other).is_err());
}

/// `set_total_steps` (or the callback of `train_epoch_with`) sets the run's length: training
/// stops there, inside an epoch if need be, and the schedule spans it.
#[test]
fn total_steps_end_training_inside_an_epoch() {
    let text = "abcabd".repeat(50);
    let vocab = CharVocab::from_text(&text, 1);
    let ids = vocab.encode(&text);
    let cfg = train_cfg(2, 1e-2);
    let per = cfg.steps_per_epoch(ids.len());
    assert!(per > 3);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut m = small(CellKind::Lstm, &vocab, 1);
    let mut t = CharLmTrainer::new(cfg.clone(), ids.len()).unwrap();
    assert_eq!(t.total_steps(), 2 * per as u64);
    t.set_total_steps(3);
    let s = t.train_epoch(&mut m, &ids, &mut rng, |_| {}).unwrap();
    assert_eq!((s.steps, t.steps(), t.finished()), (3, 3, true));
    let s = t.train_epoch(&mut m, &ids, &mut rng, |_| {}).unwrap();
    assert_eq!((s.steps, t.steps()), (0, 3));
    // The callback shortens the run after the first update.
    let mut t = CharLmTrainer::new(cfg, ids.len()).unwrap();
    let mut seen = Vec::new();
    let s = t
        .train_epoch_with(&mut m, &ids, &mut rng, |s| {
            seen.push(s.step);
            (s.step == 0).then_some(2)
        })
        .unwrap();
    assert_eq!((s.steps, t.total_steps(), seen), (2, 2, vec![0, 1]));
}

/// `losses_ids` is the per-character detail of `evaluate_ids`; an ensemble of one model, or of
/// a model with itself, is that model; a mixture never loses more than its members' mean on any
/// character and beats it where they disagree; members must share the vocabulary.
#[test]
fn mixture_of_models_is_an_exact_static_ensemble() {
    let vocab = CharVocab::from_text("abcdefgh ", 1);
    let ids = vocab.encode("a bad cafe fed a deaf hag; a dab of egg");
    let (m1, m2) = (small(CellKind::Lstm, &vocab, 1), small(CellKind::Gru, &vocab, 2));
    for streams in [1, 3] {
        let l1 = m1.losses_ids(&ids, streams, 7).unwrap();
        assert_eq!(l1.len(), ids.len() - 1);
        let e = m1.evaluate_ids(&ids, streams, 7).unwrap();
        assert_eq!(Eval::from_losses(&l1), e);
        assert_eq!(mixture_losses(&[&m1], &ids, streams, 7).unwrap().mixture, l1);
        let same = mixture_losses(&[&m1, &m1], &ids, streams, 7).unwrap().mixture;
        for (a, b) in same.iter().zip(&l1) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        let l2 = m2.losses_ids(&ids, streams, 7).unwrap();
        let both = mixture_losses(&[&m1, &m2], &ids, streams, 7).unwrap();
        assert_eq!(both.members, vec![l1.clone(), l2.clone()]);
        let mix = both.mixture;
        let mut strictly_better = 0;
        for j in 0..mix.len() {
            let want = -((0.5 * ((-l1[j]).exp() + (-l2[j]).exp())).ln());
            assert!((mix[j] - want).abs() < 1e-9, "{j}: {} vs {want}", mix[j]);
            assert!(mix[j] <= 0.5 * (l1[j] + l2[j]) + 1e-12);
            strictly_better += usize::from(mix[j] < 0.5 * (l1[j] + l2[j]) - 1e-9);
        }
        assert!(strictly_better > 0);
    }
    let other = small(CellKind::Lstm, &CharVocab::from_text("xyz", 1), 1);
    let err = mixture_losses(&[&m1, &other], &ids, 1, 7).unwrap_err().to_string();
    assert!(err.contains("ensemble") && err.contains("vocabulary"), "{err}");
    assert!(mixture_losses(&[], &ids, 1, 7)
        .unwrap_err()
        .to_string()
        .contains("ensemble"));
}
