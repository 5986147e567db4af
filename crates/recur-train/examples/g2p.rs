//! Grapheme-to-phoneme conversion on CMUdict with the encoder-decoder.
//!
//! ```sh
//! cargo run --release -p recur-train --example g2p -- \
//!     --data /work/shared/datasets/cmudict/cmudict.dict --attention luong
//! ```
//!
//! Source: the letters of a headword (`a`–`z`, `'`, `.`, `-`). Target: its ARPAbet phones with
//! stress. `#` comments are stripped; `word(2)` lines are extra pronunciations of `word`, used
//! as extra training pairs and as extra references. Split: the distinct headwords in sorted
//! order, index `% 10 == 9` is test; of the rest, index `% 40 == 7` is validation (model
//! selection by greedy WER, early stopping), everything else trains.
//!
//! Metrics on the test words, decoded with beam search: WER = share of words whose prediction
//! equals no reference; PER = Σ edit distance to the closest reference / Σ that reference's
//! length. Progress goes to stderr; the last stdout line is a JSON summary.
//!
//! Options (defaults in brackets):
//!
//! * model: `--attention none|luong|bahdanau` [luong], `--input-feeding true|false` [true;
//!   Luong only], `--embed E` [64], `--enc-hidden H` [256 per direction], `--enc-layers L` [1],
//!   `--hidden H` [256, decoder], `--dropout P` [0.3];
//! * training: `--epochs N` [15], `--batch B` [128], `--lr X` [2e-3, Adam],
//!   `--lr-decay cosine|plateau` [cosine], `--clip X` [5], `--patience N` [3],
//!   `--sampling teacher|linear:K:C:MIN|exp:K|sigmoid:K` [teacher], `--seed S` [1],
//!   `--max-train N` [all; for a quick run];
//! * decoding: `--beam K` [5], `--length-penalty A` [0].

use std::collections::BTreeMap;
use std::error::Error;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_train::models::seq2seq::{
    evaluate_loss, train_epoch, AttentionKind, BeamConfig, Example, SamplingSchedule, Seq2Seq, Seq2SeqConfig,
    TrainSettings,
};
use recur_train::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use recur_train::schedule::{Decay, ScheduleConfig};
use recur_train::Module;
use serde::Serialize;

const LETTERS: &str = "abcdefghijklmnopqrstuvwxyz'.-";

/// How the learning rate falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum LrDecay {
    /// Half cosine from `--lr` to 2% of it over `--epochs`.
    Cosine,
    /// Halve whenever the validation WER does not improve.
    Plateau,
}

#[derive(Clone, Debug, Serialize)]
struct Settings {
    data: String,
    attention: AttentionKind,
    input_feeding: bool,
    dropout: f64,
    epochs: usize,
    embed: usize,
    enc_hidden: usize,
    enc_layers: usize,
    hidden: usize,
    batch: usize,
    lr: f64,
    lr_decay: LrDecay,
    clip: f32,
    beam: usize,
    length_penalty: f64,
    patience: usize,
    sampling: SamplingSchedule,
    max_train: Option<usize>,
    seed: u64,
}

fn parse_sampling(s: &str) -> Result<SamplingSchedule, Box<dyn Error>> {
    let parts: Vec<&str> = s.split(':').collect();
    let num = |i: usize| -> Result<f64, Box<dyn Error>> {
        let v = parts
            .get(i)
            .ok_or_else(|| format!("--sampling {s}: missing parameter {i}"))?;
        Ok(v.parse()?)
    };
    let sched = match parts[0] {
        "teacher" => SamplingSchedule::TeacherForcing,
        "linear" => SamplingSchedule::Linear {
            k: num(1)?,
            c: num(2)?,
            min: num(3)?,
        },
        "exp" => SamplingSchedule::Exponential { k: num(1)? },
        "sigmoid" => SamplingSchedule::InverseSigmoid { k: num(1)? },
        other => return Err(format!("--sampling: unknown schedule `{other}`").into()),
    };
    sched.validate()?;
    Ok(sched)
}

fn parse_args() -> Result<Settings, Box<dyn Error>> {
    let mut s = Settings {
        data: String::new(),
        attention: AttentionKind::Luong,
        input_feeding: true,
        dropout: 0.3,
        epochs: 15,
        embed: 64,
        enc_hidden: 256,
        enc_layers: 1,
        hidden: 256,
        batch: 128,
        lr: 2e-3,
        lr_decay: LrDecay::Cosine,
        clip: 5.0,
        beam: 5,
        length_penalty: 0.0,
        patience: 3,
        sampling: SamplingSchedule::TeacherForcing,
        max_train: None,
        seed: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => s.data = value()?.clone(),
            "--attention" => {
                s.attention = match value()?.as_str() {
                    "none" => AttentionKind::None,
                    "luong" => AttentionKind::Luong,
                    "bahdanau" => AttentionKind::Bahdanau,
                    other => return Err(format!("--attention: expected none|luong|bahdanau, got `{other}`").into()),
                }
            }
            "--input-feeding" => s.input_feeding = value()?.parse()?,
            "--dropout" => s.dropout = value()?.parse()?,
            "--epochs" => s.epochs = value()?.parse()?,
            "--embed" => s.embed = value()?.parse()?,
            "--enc-hidden" => s.enc_hidden = value()?.parse()?,
            "--enc-layers" => s.enc_layers = value()?.parse()?,
            "--hidden" => s.hidden = value()?.parse()?,
            "--batch" => s.batch = value()?.parse()?,
            "--lr" => s.lr = value()?.parse()?,
            "--lr-decay" => {
                s.lr_decay = match value()?.as_str() {
                    "cosine" => LrDecay::Cosine,
                    "plateau" => LrDecay::Plateau,
                    other => return Err(format!("--lr-decay: expected cosine|plateau, got `{other}`").into()),
                }
            }
            "--clip" => s.clip = value()?.parse()?,
            "--beam" => s.beam = value()?.parse()?,
            "--length-penalty" => s.length_penalty = value()?.parse()?,
            "--patience" => s.patience = value()?.parse()?,
            "--sampling" => s.sampling = parse_sampling(value()?)?,
            "--max-train" => s.max_train = Some(value()?.parse()?),
            "--seed" => s.seed = value()?.parse()?,
            other => return Err(format!("unknown option `{other}` (see the example's docs)").into()),
        }
    }
    // Input feeding is part of the Luong decoder only.
    s.input_feeding &= s.attention == AttentionKind::Luong;
    if s.data.is_empty() {
        return Err("--data <cmudict.dict> is required".into());
    }
    Ok(s)
}

/// Headword → pronunciations (phone lists).
type Dict = BTreeMap<String, Vec<Vec<String>>>;

/// Reads a CMUdict file.
fn load(path: &str) -> Result<Dict, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut dict = Dict::new();
    for (no, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut fields = line.split_whitespace();
        let Some(word) = fields.next() else { continue };
        let word = match word.find('(') {
            Some(i) if word.ends_with(')') => &word[..i],
            _ => word,
        };
        let phones: Vec<String> = fields.map(str::to_string).collect();
        if phones.is_empty() || !word.chars().all(|c| LETTERS.contains(c)) {
            eprintln!("{path}:{}: skipped `{line}`", no + 1);
            continue;
        }
        dict.entry(word.to_string()).or_default().push(phones);
    }
    Ok(dict)
}

struct Vocab {
    phones: Vec<String>,
    ids: BTreeMap<String, usize>,
}

impl Vocab {
    fn bos(&self) -> usize {
        self.phones.len()
    }
    fn eos(&self) -> usize {
        self.phones.len() + 1
    }
}

fn letters(word: &str) -> Vec<usize> {
    word.chars()
        .map(|c| LETTERS.find(c).expect("checked when loading"))
        .collect()
}

fn examples(words: &[(&String, &Vec<Vec<String>>)], vocab: &Vocab) -> Vec<Example> {
    let mut out = Vec::new();
    for (w, prons) in words {
        for p in prons.iter() {
            if let Some(tgt) = p.iter().map(|ph| vocab.ids.get(ph).copied()).collect() {
                out.push(Example { src: letters(w), tgt });
            }
        }
    }
    out
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let next = (diag + usize::from(x != y)).min(row[j] + 1).min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// (PER, WER) of the model on `words`, with beam width `beam` (1 = greedy).
fn score(
    model: &Seq2Seq,
    words: &[(&String, &Vec<Vec<String>>)],
    vocab: &Vocab,
    beam: &BeamConfig,
) -> Result<(f64, f64), Box<dyn Error>> {
    let (mut edits, mut ref_len, mut wrong) = (0usize, 0usize, 0usize);
    for chunk in words.chunks(256) {
        let srcs: Vec<Vec<usize>> = chunk.iter().map(|(w, _)| letters(w)).collect();
        let srcs: Vec<&[usize]> = srcs.iter().map(|s| s.as_slice()).collect();
        let preds = if beam.width == 1 {
            model.greedy(&srcs, beam.max_len)?
        } else {
            model.beam_search(&srcs, beam)?
        };
        for (pred, (_, refs)) in preds.iter().zip(chunk) {
            let pred: Vec<String> = pred.iter().map(|&id| vocab.phones[id].clone()).collect();
            let (d, len) = refs
                .iter()
                .map(|r| (edit_distance(&pred, r), r.len()))
                .min()
                .expect("every word has a pronunciation");
            edits += d;
            ref_len += len;
            wrong += usize::from(d > 0);
        }
    }
    Ok((edits as f64 / ref_len as f64, wrong as f64 / words.len() as f64))
}

fn main() -> Result<(), Box<dyn Error>> {
    let s = parse_args()?;
    let start = Instant::now();
    let dict = load(&s.data)?;
    let (mut train_w, mut valid_w, mut test_w) = (Vec::new(), Vec::new(), Vec::new());
    let mut rest = 0usize;
    for (i, entry) in dict.iter().enumerate() {
        if i % 10 == 9 {
            test_w.push(entry);
        } else {
            if rest % 40 == 7 {
                valid_w.push(entry);
            } else {
                train_w.push(entry);
            }
            rest += 1;
        }
    }
    if let Some(n) = s.max_train {
        train_w.truncate(n);
    }
    let mut phones: Vec<String> = train_w.iter().flat_map(|(_, p)| p.iter().flatten().cloned()).collect();
    phones.sort();
    phones.dedup();
    let ids = phones.iter().enumerate().map(|(i, p)| (p.clone(), i)).collect();
    let vocab = Vocab { phones, ids };
    let train = examples(&train_w, &vocab);
    let valid = examples(&valid_w, &vocab);
    eprintln!(
        "{} headwords: {} train ({} pairs), {} validation, {} test; {} phones",
        dict.len(),
        train_w.len(),
        train.len(),
        valid_w.len(),
        test_w.len(),
        vocab.phones.len()
    );

    let cfg = Seq2SeqConfig {
        src_vocab: LETTERS.len(),
        tgt_vocab: vocab.phones.len() + 2,
        bos: vocab.bos(),
        eos: vocab.eos(),
        src_embed: s.embed,
        tgt_embed: s.embed,
        enc_hidden: s.enc_hidden,
        enc_layers: s.enc_layers,
        dec_hidden: s.hidden,
        attention: s.attention,
        attn_dim: 0,
        input_feeding: s.input_feeding,
        dropout: s.dropout,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut model = Seq2Seq::new(cfg, &mut rng)?;
    eprintln!("{} parameters", model.num_params());
    let mut opt = Optimizer::new(OptimizerConfig {
        kind: OptimizerKind::Adam,
        lr: s.lr,
        ..Default::default()
    })?;
    let settings = TrainSettings {
        batch_size: s.batch,
        clip_norm: Some(s.clip),
        sampling: s.sampling,
        ..TrainSettings::default()
    };
    let max_len = 2 * dict.keys().map(|w| w.len()).max().unwrap_or(1) + 5;
    let greedy = BeamConfig {
        width: 1,
        max_len,
        length_penalty: 0.0,
    };
    let total_updates = (s.epochs * train.len().div_ceil(s.batch)) as u64;
    let cosine = ScheduleConfig {
        decay: Decay::Cosine,
        min_factor: 0.02,
        ..ScheduleConfig::default()
    };
    let (mut lr, mut best, mut since_best, mut epochs) = (s.lr, (f64::INFINITY, f64::INFINITY), 0, 0);
    let mut best_model = model.clone();
    for epoch in 1..=s.epochs {
        let t0 = Instant::now();
        let lr_at = |step| match s.lr_decay {
            LrDecay::Cosine => s.lr * cosine.factor(step, total_updates),
            LrDecay::Plateau => lr,
        };
        let stats = train_epoch(&mut model, &train, &settings, &mut opt, lr_at, &mut rng)?;
        let shown_lr = lr_at(opt.steps());
        let val_loss = evaluate_loss(&model, &valid, 256)?;
        let (val_per, val_wer) = score(&model, &valid_w, &vocab, &greedy)?;
        epochs = epoch;
        eprintln!(
            "epoch {epoch}: train loss {:.4} (|g| {:.2}, teacher {:.2}, {} updates), valid loss {val_loss:.4} \
             PER {:.2}% WER {:.2}% (greedy), lr {shown_lr:.1e}, {:.0} s (total {:.0} s)",
            stats.loss,
            stats.grad_norm,
            stats.teacher_prob,
            stats.updates,
            100.0 * val_per,
            100.0 * val_wer,
            t0.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
        if (val_wer, val_per) < best {
            best = (val_wer, val_per);
            best_model = model.clone();
            since_best = 0;
        } else {
            since_best += 1;
            if s.lr_decay == LrDecay::Plateau {
                lr *= 0.5;
            }
            if since_best >= s.patience {
                eprintln!("no validation improvement for {} epochs: stopping", s.patience);
                break;
            }
        }
    }
    let beam = BeamConfig {
        width: s.beam,
        max_len,
        length_penalty: s.length_penalty,
    };
    let t0 = Instant::now();
    let (per, wer) = score(&best_model, &test_w, &vocab, &beam)?;
    eprintln!(
        "test ({} words, beam {}): PER {:.2}% WER {:.2}% ({:.0} s)",
        test_w.len(),
        s.beam,
        100.0 * per,
        100.0 * wer,
        t0.elapsed().as_secs_f64()
    );
    let summary = serde_json::json!({
        "task": "g2p-cmudict",
        "attention": s.attention.name(),
        "per": per,
        "wer": wer,
        "valid_wer_greedy": best.0,
        "valid_per_greedy": best.1,
        "epochs": epochs,
        "wall_seconds": start.elapsed().as_secs_f64(),
        "params": best_model.num_params(),
        "train_pairs": train.len(),
        "test_words": test_w.len(),
        "settings": s,
    });
    println!("{summary}");
    Ok(())
}
