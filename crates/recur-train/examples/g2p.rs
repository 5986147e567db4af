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
//! length (also reported with stress marks ignored). Progress goes to stderr; the last stdout
//! line is a JSON summary.
//!
//! Options (defaults in brackets):
//!
//! * model: `--attention none|luong|bahdanau` [bahdanau], `--input-feeding true|false` [false;
//!   Luong only], `--embed E` [64], `--enc-hidden H` [256 per direction], `--enc-layers L` [1],
//!   `--hidden H` [256, decoder], `--dropout P` [0.2];
//! * training: `--epochs N` [15], `--batch B` [64], `--lr X` [2e-3, Adam],
//!   `--lr-decay cosine|plateau` [cosine], `--clip X` [5], `--patience N` [4],
//!   `--sampling teacher|linear:K:C:MIN|exp:K|sigmoid:K` [teacher], `--seed S` [1],
//!   `--max-train N` [all; an evenly spread subset of at most N headwords, for quick runs];
//! * decoding: `--beam K` [5], `--length-penalty A` [0];
//! * `--predictions FILE` writes every test word's prediction and whether it is right, with and
//!   without stress, as TSV (for paired comparisons of two models, e.g. McNemar's test);
//! * `--save DIR` writes the selected model as a recur checkpoint (kind `seq2seq`, the phone
//!   list under `preprocessing`); `--load DIR` skips training and evaluates that checkpoint.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recur_train::checkpoint::{self, Checkpoint};
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
    save: Option<String>,
    load: Option<String>,
    predictions: Option<String>,
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
        attention: AttentionKind::Bahdanau,
        input_feeding: false,
        dropout: 0.2,
        epochs: 15,
        embed: 64,
        enc_hidden: 256,
        enc_layers: 1,
        hidden: 256,
        batch: 64,
        lr: 2e-3,
        lr_decay: LrDecay::Cosine,
        clip: 5.0,
        beam: 5,
        length_penalty: 0.0,
        patience: 4,
        sampling: SamplingSchedule::TeacherForcing,
        max_train: None,
        seed: 1,
        save: None,
        load: None,
        predictions: None,
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
            "--save" => s.save = Some(value()?.clone()),
            "--load" => s.load = Some(value()?.clone()),
            "--predictions" => s.predictions = Some(value()?.clone()),
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

/// Phone and word error rates against the closest reference.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Rates {
    per: f64,
    wer: f64,
}

/// Accumulates edit distances to the closest reference.
#[derive(Default)]
struct Tally {
    edits: usize,
    ref_len: usize,
    wrong: usize,
    words: usize,
}

impl Tally {
    fn add(&mut self, pred: &[String], refs: &[Vec<String>]) {
        let (d, len) = refs
            .iter()
            .map(|r| (edit_distance(pred, r), r.len()))
            .min()
            .expect("every word has a pronunciation");
        self.edits += d;
        self.ref_len += len;
        self.wrong += usize::from(d > 0);
        self.words += 1;
    }

    fn rates(&self) -> Rates {
        Rates {
            per: self.edits as f64 / self.ref_len.max(1) as f64,
            wer: self.wrong as f64 / self.words.max(1) as f64,
        }
    }
}

/// `AH0` → `AH`.
fn unstressed(phones: &[String]) -> Vec<String> {
    phones
        .iter()
        .map(|p| p.trim_end_matches(|c: char| c.is_ascii_digit()).to_string())
        .collect()
}

/// Error rates of the model on `words` (with stress, and with stress ignored), decoding with
/// beam width `beam.width` (1 = greedy).
///
/// With `rows`, also records each word's prediction and whether it is right with and without
/// stress (for `--predictions`).
fn score(
    model: &Seq2Seq,
    words: &[(&String, &Vec<Vec<String>>)],
    vocab: &Vocab,
    beam: &BeamConfig,
    mut rows: Option<&mut Vec<String>>,
) -> Result<(Rates, Rates), Box<dyn Error>> {
    let (mut stressed, mut plain) = (Tally::default(), Tally::default());
    for chunk in words.chunks(256) {
        let srcs: Vec<Vec<usize>> = chunk.iter().map(|(w, _)| letters(w)).collect();
        let srcs: Vec<&[usize]> = srcs.iter().map(|s| s.as_slice()).collect();
        let preds = if beam.width == 1 {
            model.greedy(&srcs, beam.max_len)?
        } else {
            model.beam_search(&srcs, beam)?
        };
        for (pred, (word, refs)) in preds.iter().zip(chunk) {
            let pred: Vec<String> = pred.iter().map(|&id| vocab.phones[id].clone()).collect();
            let wrong = stressed.wrong;
            stressed.add(&pred, refs);
            let right_stressed = stressed.wrong == wrong;
            let refs: Vec<Vec<String>> = refs.iter().map(|r| unstressed(r)).collect();
            let wrong = plain.wrong;
            plain.add(&unstressed(&pred), &refs);
            if let Some(rows) = rows.as_deref_mut() {
                rows.push(format!(
                    "{word}\t{}\t{}\t{}",
                    pred.join(" "),
                    u8::from(right_stressed),
                    u8::from(plain.wrong == wrong)
                ));
            }
        }
    }
    Ok((stressed.rates(), plain.rates()))
}

/// The fixed split of the distinct headwords (sorted order).
struct Split<'a> {
    train: Vec<(&'a String, &'a Vec<Vec<String>>)>,
    valid: Vec<(&'a String, &'a Vec<Vec<String>>)>,
    test: Vec<(&'a String, &'a Vec<Vec<String>>)>,
}

fn split(dict: &Dict, max_train: Option<usize>) -> Split<'_> {
    let mut sp = Split {
        train: Vec::new(),
        valid: Vec::new(),
        test: Vec::new(),
    };
    let mut rest = 0usize;
    for (i, entry) in dict.iter().enumerate() {
        if i % 10 == 9 {
            sp.test.push(entry);
        } else {
            if rest % 40 == 7 {
                sp.valid.push(entry);
            } else {
                sp.train.push(entry);
            }
            rest += 1;
        }
    }
    if let Some(n) = max_train {
        // An evenly spread subset, so that every initial letter stays represented.
        let stride = sp.train.len().div_ceil(n.max(1));
        sp.train = std::mem::take(&mut sp.train).into_iter().step_by(stride).collect();
    }
    sp
}

fn vocab_of(phones: Vec<String>) -> Vocab {
    let ids = phones.iter().enumerate().map(|(i, p)| (p.clone(), i)).collect();
    Vocab { phones, ids }
}

/// The model with the best validation (WER, PER), the epochs run and that best score.
struct Trained {
    model: Seq2Seq,
    epochs: usize,
    best: (f64, f64),
}

fn train(s: &Settings, sp: &Split<'_>, vocab: &Vocab, max_len: usize) -> Result<Trained, Box<dyn Error>> {
    let start = Instant::now();
    let train = examples(&sp.train, vocab);
    let valid = examples(&sp.valid, vocab);
    eprintln!("{} training pairs", train.len());
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
    let mut lr = s.lr;
    let mut since_best = 0;
    let mut out = Trained {
        model: model.clone(),
        epochs: 0,
        best: (f64::INFINITY, f64::INFINITY),
    };
    for epoch in 1..=s.epochs {
        let t0 = Instant::now();
        let lr_at = |step| match s.lr_decay {
            LrDecay::Cosine => s.lr * cosine.factor(step, total_updates),
            LrDecay::Plateau => lr,
        };
        let stats = train_epoch(&mut model, &train, &settings, &mut opt, lr_at, &mut rng)?;
        let shown_lr = lr_at(opt.steps());
        let val_loss = evaluate_loss(&model, &valid, 256)?;
        let (val, _) = score(&model, &sp.valid, vocab, &greedy, None)?;
        out.epochs = epoch;
        eprintln!(
            "epoch {epoch}: train loss {:.4} (|g| {:.2}, teacher {:.2}, {} updates), valid loss {val_loss:.4} \
             PER {:.2}% WER {:.2}% (greedy), lr {shown_lr:.1e}, {:.0} s (total {:.0} s)",
            stats.loss,
            stats.grad_norm,
            stats.teacher_prob,
            stats.updates,
            100.0 * val.per,
            100.0 * val.wer,
            t0.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
        if (val.wer, val.per) < out.best {
            out.best = (val.wer, val.per);
            out.model = model.clone();
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
    Ok(out)
}

fn save(dir: &str, s: &Settings, t: &Trained, vocab: &Vocab) -> Result<(), Box<dyn Error>> {
    let ckpt = Checkpoint {
        kind: "seq2seq".into(),
        model: serde_json::to_value(t.model.config())?,
        training: serde_json::to_value(s)?,
        metrics: serde_json::json!({"valid_wer_greedy": t.best.0, "valid_per_greedy": t.best.1, "epochs": t.epochs}),
        preprocessing: serde_json::json!({"letters": LETTERS, "phones": vocab.phones}),
        state: serde_json::Value::Null,
        tensors: t.model.named_tensors(),
        optimizer: None,
    };
    checkpoint::save(Path::new(dir), &ckpt)?;
    eprintln!("saved the best model to {dir}");
    Ok(())
}

fn load_trained(dir: &str) -> Result<(Trained, Vocab), Box<dyn Error>> {
    let ckpt = checkpoint::load(Path::new(dir))?;
    if ckpt.kind != "seq2seq" || ckpt.preprocessing["letters"] != LETTERS {
        return Err(format!("{dir}: not a g2p seq2seq checkpoint").into());
    }
    let cfg: Seq2SeqConfig = serde_json::from_value(ckpt.model)?;
    let phones: Vec<String> = serde_json::from_value(ckpt.preprocessing["phones"].clone())?;
    let mut model = Seq2Seq::new(cfg, &mut ChaCha8Rng::seed_from_u64(0))?;
    model.load_named(&ckpt.tensors)?;
    let m = &ckpt.metrics;
    let trained = Trained {
        model,
        epochs: m["epochs"].as_u64().unwrap_or(0) as usize,
        best: (
            m["valid_wer_greedy"].as_f64().unwrap_or(f64::NAN),
            m["valid_per_greedy"].as_f64().unwrap_or(f64::NAN),
        ),
    };
    Ok((trained, vocab_of(phones)))
}

fn main() -> Result<(), Box<dyn Error>> {
    let s = parse_args()?;
    let start = Instant::now();
    let dict = load(&s.data)?;
    let sp = split(&dict, s.max_train);
    eprintln!(
        "{} headwords: {} train, {} validation, {} test",
        dict.len(),
        sp.train.len(),
        sp.valid.len(),
        sp.test.len()
    );
    let max_len = 2 * dict.keys().map(|w| w.len()).max().unwrap_or(1) + 5;
    let (trained, vocab) = match &s.load {
        Some(dir) => load_trained(dir)?,
        None => {
            let mut phones: Vec<String> = sp.train.iter().flat_map(|(_, p)| p.iter().flatten().cloned()).collect();
            phones.sort();
            phones.dedup();
            let vocab = vocab_of(phones);
            eprintln!("{} phones", vocab.phones.len());
            let trained = train(&s, &sp, &vocab, max_len)?;
            if let Some(dir) = &s.save {
                save(dir, &s, &trained, &vocab)?;
            }
            (trained, vocab)
        }
    };
    let beam = BeamConfig {
        width: s.beam,
        max_len,
        length_penalty: s.length_penalty,
    };
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let (Rates { per, wer }, no_stress) = score(
        &trained.model,
        &sp.test,
        &vocab,
        &beam,
        s.predictions.is_some().then_some(&mut rows),
    )?;
    if let Some(path) = &s.predictions {
        let mut text = String::from("word\tprediction\tright\tright_without_stress\n");
        for r in &rows {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))?;
    }
    eprintln!(
        "test ({} words, beam {}): PER {:.2}% WER {:.2}% (stress ignored: PER {:.2}% WER {:.2}%) ({:.0} s)",
        sp.test.len(),
        s.beam,
        100.0 * per,
        100.0 * wer,
        100.0 * no_stress.per,
        100.0 * no_stress.wer,
        t0.elapsed().as_secs_f64()
    );
    let model_cfg = trained.model.config();
    let summary = serde_json::json!({
        "task": "g2p-cmudict",
        "attention": model_cfg.attention.name(),
        "per": per,
        "wer": wer,
        "no_stress": no_stress,
        "valid_wer_greedy": trained.best.0,
        "valid_per_greedy": trained.best.1,
        "epochs": trained.epochs,
        "wall_seconds": start.elapsed().as_secs_f64(),
        "params": trained.model.num_params(),
        "test_words": sp.test.len(),
        "model": model_cfg,
        "settings": s,
    });
    println!("{summary}");
    Ok(())
}
