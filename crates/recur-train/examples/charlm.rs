//! Trains a character language model on a text file and reports held-out bits per character.
//!
//! ```sh
//! cargo run --release -p recur-train --example charlm -- --text /work/shared/datasets/text/mobydick.txt
//! ```
//!
//! The last 10% of the characters are held out. Before training, the add-one character unigram
//! and bigram baselines of the same split are printed; per epoch, the training loss, held-out
//! bpc and speed go to stderr; at the end, a sample at `--temperature` from `--prime` and one
//! JSON line with the result and the settings go to stdout.
//!
//! Options (defaults in brackets): `--cell lstm|gru [lstm]`, `--embed [64]`, `--hidden [512]`,
//! `--layers [1]`, `--dropout [0.25]` (output and between layers), `--input-dropout [0.1]`,
//! `--recurrent-dropout [0.1]` (variational), `--epochs [12]`, `--bptt [100]`, `--batch [16]`,
//! `--lr [3e-3]` (Adam, cosine decay after warmup), `--warmup [100]`, `--min-lr-factor [0.05]`, `--clip [1.0]`, `--seed [1]`,
//! `--eval-streams [8]`, `--holdout [0.1]`, `--max-chars N` (train on the first N training
//! characters only), `--sample-chars [300]`, `--temperature [0.8]`, `--prime ["The whale"]`,
//! `--log-every [50]` (updates between progress lines; 0 = per epoch only), `--segment-at TEXT`
//! (also report the held-out bpc before and from the first occurrence of TEXT, e.g.
//! `"End of Project Gutenberg"` to separate the novel from the licence).
//!
//! Cost of the defaults on Moby Dick (1.11M training characters, CRLF normalized): ≈7.3 MFLOP
//! per training character, 695 updates per epoch, ≈160 s per epoch on one core at ≈7,000
//! characters/s (2,300 s wall for 12 epochs on a shared 2-core machine). Result: 2.098 held-out
//! bpc (baselines: bigram 3.656, unigram 4.574); 1.974 on the novel part, 2.790 on the 18,779
//! characters of Project Gutenberg licence that end the file.

use std::collections::HashMap;
use std::error::Error;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_nn::CellKind;
use recur_train::models::charlm::{CharLm, CharLmConfig, CharLmTrainConfig, CharLmTrainer, CharVocab, Seed};
use recur_train::optim::{OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, ScheduleConfig};
use recur_train::Module;
use serde_json::json;

struct Args {
    text: String,
    model: CharLmConfig,
    train: CharLmTrainConfig,
    seed: u64,
    eval_streams: usize,
    holdout: f64,
    max_chars: Option<usize>,
    sample_chars: usize,
    temperature: f32,
    prime: String,
    log_every: usize,
    segment_at: Option<String>,
}

fn parse() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        text: String::new(),
        model: CharLmConfig {
            cell: CellKind::Lstm,
            embed_dim: 64,
            hidden_size: 512,
            num_layers: 1,
            dropout: 0.25,
            input_dropout: 0.1,
            recurrent_dropout: 0.1,
        },
        train: CharLmTrainConfig {
            batch: 16,
            bptt: 100,
            epochs: 12,
            clip: 1.0,
            optimizer: OptimizerConfig {
                kind: OptimizerKind::Adam,
                lr: 3e-3,
                ..OptimizerConfig::default()
            },
            schedule: ScheduleConfig {
                warmup_steps: 100,
                decay: Decay::Cosine,
                min_factor: 0.05,
                ..ScheduleConfig::default()
            },
            max_bad_steps: 5,
        },
        seed: 1,
        eval_streams: 8,
        holdout: 0.1,
        max_chars: None,
        sample_chars: 300,
        temperature: 0.8,
        prime: "The whale".into(),
        log_every: 50,
        segment_at: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            let doc = include_str!("charlm.rs").lines().take_while(|l| l.starts_with("//!"));
            let doc: Vec<&str> = doc.map(|l| l.trim_start_matches("//!")).collect();
            println!("{}", doc.join("\n"));
            std::process::exit(0);
        }
        let val = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {val:?}: {e}");
        macro_rules! num {
            () => {
                val.parse().map_err(|e| bad(&e))?
            };
        }
        match flag.as_str() {
            "--text" => a.text = val.clone(),
            "--cell" => {
                a.model.cell = match val.as_str() {
                    "lstm" => CellKind::Lstm,
                    "gru" => CellKind::Gru,
                    "rnn-tanh" => CellKind::RnnTanh,
                    _ => return Err(bad(&"expected lstm, gru or rnn-tanh").into()),
                }
            }
            "--embed" => a.model.embed_dim = num!(),
            "--hidden" => a.model.hidden_size = num!(),
            "--layers" => a.model.num_layers = num!(),
            "--dropout" => a.model.dropout = num!(),
            "--input-dropout" => a.model.input_dropout = num!(),
            "--recurrent-dropout" => a.model.recurrent_dropout = num!(),
            "--epochs" => a.train.epochs = num!(),
            "--bptt" => a.train.bptt = num!(),
            "--batch" => a.train.batch = num!(),
            "--lr" => a.train.optimizer.lr = num!(),
            "--warmup" => a.train.schedule.warmup_steps = num!(),
            "--min-lr-factor" => a.train.schedule.min_factor = num!(),
            "--clip" => a.train.clip = num!(),
            "--seed" => a.seed = num!(),
            "--eval-streams" => a.eval_streams = num!(),
            "--holdout" => a.holdout = num!(),
            "--max-chars" => a.max_chars = Some(num!()),
            "--sample-chars" => a.sample_chars = num!(),
            "--temperature" => a.temperature = num!(),
            "--prime" => a.prime = val.clone(),
            "--log-every" => a.log_every = num!(),
            "--segment-at" => a.segment_at = Some(val.clone()),
            _ => return Err(format!("unknown option {flag} (see --help)").into()),
        }
    }
    if a.text.is_empty() {
        return Err("--text PATH is required".into());
    }
    if !(a.holdout > 0.0 && a.holdout < 1.0) {
        return Err(format!("--holdout must be in (0, 1), got {}", a.holdout).into());
    }
    Ok(a)
}

/// Add-one (Laplace) unigram and bigram models over the vocabulary (unknown bucket included),
/// fitted on `train` and scored in bits per character on every character of `test` (the
/// bigram's first context is the last training character).
fn baselines(vocab: &CharVocab, train: &[usize], test: &[usize]) -> (f64, f64) {
    let v = vocab.len();
    let mut uni = vec![0u64; v];
    let mut prev = vec![0u64; v];
    let mut bi: HashMap<(usize, usize), u64> = HashMap::new();
    for &c in train {
        uni[c] += 1;
    }
    for w in train.windows(2) {
        prev[w[0]] += 1;
        *bi.entry((w[0], w[1])).or_insert(0) += 1;
    }
    let n = train.len() as f64;
    let mut ub = 0.0f64;
    let mut bb = 0.0f64;
    let mut p = *train.last().unwrap_or(&0);
    for &c in test {
        ub -= ((uni[c] as f64 + 1.0) / (n + v as f64)).log2();
        let pair = bi.get(&(p, c)).copied().unwrap_or(0) as f64;
        bb -= ((pair + 1.0) / (prev[p] as f64 + v as f64)).log2();
        p = c;
    }
    let m = test.len().max(1) as f64;
    (ub / m, bb / m)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = parse()?;
    let started = Instant::now();
    let raw = std::fs::read_to_string(&args.text).map_err(|e| format!("{}: {e}", args.text))?;
    // Line endings are normalized to `\n` (a `\r` before every `\n` would be free bits), and
    // a leading byte-order mark is dropped.
    let text = raw.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let chars: Vec<char> = text.chars().collect();
    let cut = chars.len() - (chars.len() as f64 * args.holdout).round() as usize;
    let train_text: String = chars[..cut].iter().collect();
    let test_text: String = chars[cut..].iter().collect();
    let vocab = CharVocab::from_text(&train_text, 1);
    let train_ids = vocab.encode(&train_text);
    let test_ids = vocab.encode(&test_text);
    let (uni, bi) = baselines(&vocab, &train_ids, &test_ids);
    eprintln!(
        "{}: {} characters, {} train / {} held out, vocabulary {} (+ unknown); held-out baselines: unigram {uni:.3} bpc, bigram {bi:.3} bpc (add-one)",
        args.text,
        chars.len(),
        train_ids.len(),
        test_ids.len(),
        vocab.len() - 1
    );
    let used = &train_ids[..args.max_chars.unwrap_or(usize::MAX).min(train_ids.len())];
    let mut init_rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut drop_rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(1));
    let mut sample_rng = ChaCha8Rng::seed_from_u64(args.seed.wrapping_add(2));
    let mut model = CharLm::new(args.model.clone(), vocab, &mut init_rng)?;
    let mut trainer = CharLmTrainer::new(args.train.clone(), used.len())?;
    let per_epoch = args.train.steps_per_epoch(used.len());
    let (e, h, l, v) = (
        args.model.embed_dim as f64,
        args.model.hidden_size as f64,
        args.model.num_layers as f64,
        model.vocab().len() as f64,
    );
    let g = args.model.cell.gates() as f64;
    // Multiply-adds per character: input and recurrent projections, head; backward ≈ 2×.
    let fwd = g * h * (e + h) + (l - 1.0) * g * h * 2.0 * h + h * v;
    eprintln!(
        "model: {} params; ≈{:.1} MFLOP per training character (fwd+bwd); {} updates per epoch of {}×{} characters",
        model.num_params(),
        6.0 * fwd / 1e6,
        per_epoch,
        args.train.batch,
        args.train.bptt
    );
    let mut last = None;
    for epoch in 1..=args.train.epochs {
        let t0 = Instant::now();
        let log_every = args.log_every;
        let stats = trainer.train_epoch(&mut model, used, &mut drop_rng, |s| {
            if log_every > 0 && (s.epoch_step + 1) % log_every == 0 {
                eprintln!(
                    "  epoch {epoch} step {}/{}: loss {:.4} ({:.3} bpc), |g| {:.3}, lr {:.2e}, {:.0} s",
                    s.epoch_step + 1,
                    s.steps_per_epoch,
                    s.loss,
                    s.loss / std::f64::consts::LN_2,
                    s.grad_norm,
                    s.lr,
                    t0.elapsed().as_secs_f64()
                );
            }
        })?;
        let t1 = Instant::now();
        let ev = model.evaluate_ids(&test_ids, args.eval_streams, 256)?;
        eprintln!(
            "epoch {epoch}: train loss {:.4} ({:.3} bpc), held-out {:.3} bpc, {:.0} chars/s training ({:.0} s), eval {:.0} s",
            stats.loss,
            stats.loss / std::f64::consts::LN_2,
            ev.bpc,
            stats.chars as f64 / stats.seconds,
            stats.seconds,
            t1.elapsed().as_secs_f64()
        );
        last = Some((stats, ev));
    }
    let (stats, ev) = last.ok_or("no epochs were run")?;
    let mut segments = serde_json::Value::Null;
    if let Some(at) = &args.segment_at {
        match test_text.find(at.as_str()) {
            Some(byte) if byte > 1 && test_text.len() - byte > 1 => {
                let i = test_text[..byte].chars().count();
                let a = model.evaluate_ids(&test_ids[..i], args.eval_streams, 256)?;
                let b = model.evaluate_ids(&test_ids[i..], args.eval_streams, 256)?;
                let (ua, ba) = baselines(model.vocab(), &train_ids, &test_ids[..i]);
                eprintln!(
                    "held-out before {at:?}: {:.3} bpc ({} chars; bigram {ba:.3}, unigram {ua:.3}); from it: {:.3} bpc ({} chars)",
                    a.bpc, a.chars, b.bpc, b.chars
                );
                segments = json!({"before": a, "from": b, "before_baseline_bigram_bpc": ba, "before_baseline_unigram_bpc": ua});
            }
            _ => eprintln!("--segment-at {at:?} does not split the held-out text"),
        }
    }
    let t2 = Instant::now();
    let sample = model.generate(
        &Seed::text(&args.prime),
        args.sample_chars,
        args.temperature,
        &mut sample_rng,
    )?;
    let gen_secs = t2.elapsed().as_secs_f64();
    println!(
        "--- {} characters at temperature {} after {:?}:",
        args.sample_chars, args.temperature, args.prime
    );
    println!("{}{}", args.prime, sample);
    println!("---");
    let wall = started.elapsed().as_secs_f64();
    let line = json!({
        "bpc": ev.bpc,
        "heldout_chars": ev.chars,
        "baseline_unigram_bpc": uni,
        "baseline_bigram_bpc": bi,
        "train_loss": stats.loss,
        "segments": segments,
        "epochs": args.train.epochs,
        "wall_seconds": wall,
        "generate_chars_per_second": args.sample_chars as f64 / gen_secs.max(1e-9),
        "params": model.num_params(),
        "settings": {
            "text": args.text,
            "model": args.model,
            "train": args.train,
            "seed": args.seed,
            "eval_streams": args.eval_streams,
            "holdout": args.holdout,
            "max_chars": args.max_chars,
            "temperature": args.temperature,
            "prime": args.prime,
        },
    });
    println!("{line}");
    Ok(())
}
