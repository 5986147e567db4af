//! Encoder-decoder with attention (Sutskever et al. 2014; Bahdanau et al. 2015; Luong et al.
//! 2015), trained with teacher forcing or scheduled sampling (Bengio et al. 2015), decoded
//! greedily or with beam search.
//!
//! ```text
//! source ids ─ src_embed ─ encoder (bidirectional GRU, packed) ─┬─ states s_j [B, T, 2He] ─ keys
//!                                                               └─ last [h_fwd; h_bwd] ─ bridge: s0 = tanh(W·last + b)
//! decoder step t:  y_{t−1} ─ dec_embed ─┐
//!   none:      x_t = [emb; last]        │   h_t = GRUCell(x_t, h_{t−1})    logits = out(h_t)
//!   bahdanau:  x_t = [emb; c(h_{t−1})]  │   h_t = GRUCell(x_t, h_{t−1})    logits = out(h_t)
//!   luong:     x_t = emb [; o_{t−1}]    │   h_t = GRUCell(x_t, h_{t−1})    logits = out(o_t),
//!                                           o_t = tanh(W_c·[c(h_t); h_t])  (o_{t−1} only with input feeding)
//! ```
//!
//! The context `c(q) = Σ_j a_j·s_j` uses a softmax over each source's real positions only.
//! Without attention the decoder reads the same bridge state and the encoder's last states at
//! every step, so the three kinds differ only in how the memory is read.
//!
//! Parameters, by checkpoint prefix (see [`Module`]): `src_embed`, `encoder` (PyTorch `nn.GRU`
//! names), `bridge`, `dec_embed`, `decoder` (PyTorch `nn.GRUCell` names), then
//! `attn.score` (`W_a [H, 2He]`) and `attn.combine` (`W_c [H, 2He + H]`) for Luong, or
//! `attn.query` (`W_q [A, H]`), `attn.key` (`W_k [A, 2He]`, `b_k`) and `attn.v` (`[1, A]`) for
//! Bahdanau, and `out` (`[V, H]` and bias).
//!
//! The backward pass is explicit: through the output layer, the attention and the decoder
//! step by step, into the encoder memory (`d_output` of the encoder) and through the bridge
//! and the context of the no-attention decoder into the encoder's final states (`d_hn`).
//!
//! Dropout (training only, [`Seq2SeqConfig::dropout`]) is variational on the encoder's layer
//! inputs and per step on the features the output layer reads.
//!
//! Entry points: [`Seq2Seq::forward_backward`] (loss and gradients of a batch, with scheduled
//! sampling), [`Seq2Seq::loss`] (teacher-forced loss), [`Seq2Seq::greedy`] and
//! [`Seq2Seq::beam_search`], and [`train_epoch`] (bucketed batches, clipping, one optimizer
//! step per batch). Randomness always comes from a caller's seeded generator, so a seed fixes
//! the weights bit for bit.
//!
//! Token conventions: a target sequence is given without `bos`/`eos`; the decoder is fed
//! `bos, y_1, …, y_n` and trained to produce `y_1, …, y_n, eos`.

mod attention;
mod config;
mod decode;
mod decoder;
mod gru;
mod train;

pub use config::{AttentionKind, BeamConfig, SampleFrom, SamplingSchedule, Seq2SeqConfig, TrainSettings};
pub use decoder::BatchOutput;
pub use gru::{GruCell, GruStep};
pub use train::{bucket_batches, evaluate_loss, train_epoch, EpochStats};

use rand::{Rng, RngCore};
use recur_kernels::{kernels, KernelChoice, Kernels};
use recur_nn::{CellKind, ParamBuffer, Rnn, RnnConfig, SeqBatch, State, Tape};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::layers::{Embedding, Linear};
use crate::params::Module;
use attention::{Memory, MemoryGrads};

/// One training pair: source ids and target ids (without `bos`/`eos`).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Example {
    /// Source token ids, at least one.
    pub src: Vec<usize>,
    /// Target token ids, possibly none.
    pub tgt: Vec<usize>,
}

#[derive(Clone, Debug)]
enum Attention {
    None,
    Luong { score: Linear, combine: Linear },
    Bahdanau { query: Linear, key: Linear, v: Linear },
}

/// The encoder-decoder model; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Seq2Seq {
    cfg: Seq2SeqConfig,
    src_embed: Embedding,
    encoder: Rnn<f32>,
    bridge: Linear,
    dec_embed: Embedding,
    decoder: GruCell,
    attn: Attention,
    out: Linear,
    kernels: Kernels,
}

/// What the encoder's training pass keeps for the backward pass.
struct EncTape {
    tape: Tape<f32>,
    /// Padded source ids `[B, T]`.
    ids: Vec<usize>,
}

impl Seq2Seq {
    /// A model with PyTorch's default initialization of every layer, drawn from `rng`.
    pub fn new(cfg: Seq2SeqConfig, rng: &mut impl Rng) -> Result<Self> {
        cfg.validate()?;
        let (m, h) = (cfg.memory_width(), cfg.dec_hidden);
        let src_embed = Embedding::new(cfg.src_vocab, cfg.src_embed, rng);
        let mut enc_cfg = RnnConfig::new(CellKind::Gru, cfg.src_embed, cfg.enc_hidden);
        enc_cfg.num_layers = cfg.enc_layers;
        enc_cfg.bidirectional = true;
        enc_cfg.input_dropout = cfg.dropout;
        let encoder = Rnn::new(enc_cfg, rng)?;
        let bridge = Linear::new(m, h, true, rng);
        let dec_embed = Embedding::new(cfg.tgt_vocab, cfg.tgt_embed, rng);
        let ctx = match cfg.attention {
            AttentionKind::Luong if cfg.input_feeding => h,
            AttentionKind::Luong => 0,
            _ => m,
        };
        let decoder = GruCell::new(cfg.tgt_embed + ctx, h, rng);
        let attn = match cfg.attention {
            AttentionKind::None => Attention::None,
            AttentionKind::Luong => Attention::Luong {
                score: Linear::new(m, h, false, rng),
                combine: Linear::new(m + h, h, false, rng),
            },
            AttentionKind::Bahdanau => {
                let a = cfg.attn_width();
                Attention::Bahdanau {
                    query: Linear::new(h, a, false, rng),
                    key: Linear::new(m, a, true, rng),
                    v: Linear::new(a, 1, false, rng),
                }
            }
        };
        let out = Linear::new(h, cfg.tgt_vocab, true, rng);
        Ok(Seq2Seq {
            cfg,
            src_embed,
            encoder,
            bridge,
            dec_embed,
            decoder,
            attn,
            out,
            kernels: kernels(KernelChoice::Best),
        })
    }

    /// The validated config.
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.cfg
    }

    /// Width of the input-feeding vector carried between steps (0 without input feeding).
    fn feed_width(&self) -> usize {
        if self.cfg.input_feeding {
            self.cfg.dec_hidden
        } else {
            0
        }
    }

    /// Width of the decoder state carried between steps: `h`, then the fed vector.
    fn state_width(&self) -> usize {
        self.cfg.dec_hidden + self.feed_width()
    }

    /// The decoder's first state for every source of `mem`: the bridge output, then zeros.
    fn initial_state(&self, mem: &Memory) -> Vec<f32> {
        let (h, f) = (self.cfg.dec_hidden, self.feed_width());
        let mut s = Vec::with_capacity(mem.batch * (h + f));
        for row in mem.init.chunks_exact(h) {
            s.extend_from_slice(row);
            s.resize(s.len() + f, 0.0);
        }
        s
    }

    fn check_sources(&self, srcs: &[&[usize]]) -> Result<()> {
        if srcs.is_empty() {
            return Err(TrainError::Invalid("seq2seq: empty batch".into()));
        }
        for (i, s) in srcs.iter().enumerate() {
            if s.is_empty() {
                return Err(TrainError::Invalid(format!("seq2seq: source {i} is empty")));
            }
            if let Some(&id) = s.iter().find(|&&id| id >= self.cfg.src_vocab) {
                return Err(TrainError::Invalid(format!(
                    "seq2seq: source {i} has id {id} outside the vocabulary 0..{}",
                    self.cfg.src_vocab
                )));
            }
        }
        Ok(())
    }

    fn check_targets(&self, batch: &[Example]) -> Result<()> {
        for (i, ex) in batch.iter().enumerate() {
            if let Some(&id) = ex.tgt.iter().find(|&&id| id >= self.cfg.tgt_vocab) {
                return Err(TrainError::Invalid(format!(
                    "seq2seq: target {i} has id {id} outside the vocabulary 0..{}",
                    self.cfg.tgt_vocab
                )));
            }
        }
        Ok(())
    }

    /// Runs the encoder over `srcs` (validated) and prepares the attention memory; with
    /// `train` it also returns the encoder's tape, with dropout masks drawn from `rng`.
    fn encode(&self, srcs: &[&[usize]], train: Option<&mut dyn RngCore>) -> Result<(Memory, Option<EncTape>)> {
        self.check_sources(srcs)?;
        let (b, e, he) = (srcs.len(), self.cfg.src_embed, self.cfg.enc_hidden);
        let t = srcs.iter().map(|s| s.len()).max().unwrap_or(1);
        let lens: Vec<usize> = srcs.iter().map(|s| s.len()).collect();
        let mut ids = vec![0usize; b * t];
        for (row, s) in ids.chunks_exact_mut(t).zip(srcs) {
            row[..s.len()].copy_from_slice(s);
        }
        let x = self.src_embed.forward(&ids);
        let batch = SeqBatch::batch_first(&x, b, t, e).with_lengths(&lens);
        let (out, tape) = if let Some(mut rng) = train {
            let masks = (self.cfg.dropout > 0.0).then(|| self.encoder.sample_masks(b, t, &mut rng));
            let (o, tape) = self.encoder.forward_train(&batch, &State::default(), masks.as_ref())?;
            (o, Some(EncTape { tape, ids }))
        } else {
            (self.encoder.forward(&batch, &State::default())?, None)
        };
        // h_n rows are layer·2 + direction; the last layer's two rows give [h_fwd; h_bwd].
        let top = 2 * (self.cfg.enc_layers - 1);
        let mut last = Vec::with_capacity(b * 2 * he);
        for i in 0..b {
            for d in 0..2 {
                let at = ((top + d) * b + i) * he;
                last.extend_from_slice(&out.h_n[at..at + he]);
            }
        }
        let (keys, key_width) = match &self.attn {
            Attention::None => (Vec::new(), 0),
            Attention::Luong { score: k, .. } | Attention::Bahdanau { key: k, .. } => {
                (k.forward(&out.output, b * t), k.out_dim)
            }
        };
        let mut init = self.bridge.forward(&last, b);
        self.kernels.tanh(&mut init);
        let mem = Memory {
            batch: b,
            time: t,
            width: 2 * he,
            lens,
            states: out.output,
            keys,
            key_width,
            last,
            init,
        };
        Ok((mem, tape))
    }

    /// Backward of [`Seq2Seq::encode`] given the gradients with respect to the memory. Fills
    /// the gradients of `src_embed`, `encoder`, `bridge` and the key layer.
    fn encode_backward(&self, mem: &Memory, enc: EncTape, dm: MemoryGrads, g: &mut [ParamBuffer<f32>]) -> Result<()> {
        let MemoryGrads {
            mut states,
            keys,
            mut last,
            init,
        } = dm;
        let (b, t, he) = (mem.batch, mem.time, self.cfg.enc_hidden);
        let key_layer = match &self.attn {
            Attention::None => None,
            Attention::Luong { score, .. } => Some((score, ATTN)),
            Attention::Bahdanau { key, .. } => Some((key, ATTN + 1)),
        };
        if let Some((layer, gi)) = key_layer {
            let ds = layer.backward(&mem.states, &keys, b * t, &mut g[gi], true).expect("dx");
            states.iter_mut().zip(&ds).for_each(|(a, d)| *a += *d);
        }
        let d_pre: Vec<f32> = init.iter().zip(&mem.init).map(|(d, s)| d * (1.0 - s * s)).collect();
        let dl = self
            .bridge
            .backward(&mem.last, &d_pre, b, &mut g[BRIDGE], true)
            .expect("dx");
        last.iter_mut().zip(&dl).for_each(|(a, d)| *a += *d);
        let layers = 2 * self.cfg.enc_layers;
        let mut d_hn = vec![0.0; layers * b * he];
        let top = layers - 2;
        for i in 0..b {
            for d in 0..2 {
                let at = ((top + d) * b + i) * he;
                d_hn[at..at + he].copy_from_slice(&last[(2 * i + d) * he..(2 * i + d + 1) * he]);
            }
        }
        let eg = self
            .encoder
            .backward(&enc.tape, &states, Some(&d_hn), None, Default::default())?;
        self.src_embed.backward(&enc.ids, &eg.input, &mut g[SRC_EMBED]);
        g[ENCODER] = eg.params;
        Ok(())
    }
}

/// Positions of the gradient buffers, in [`Module::buffers`] order.
const SRC_EMBED: usize = 0;
const ENCODER: usize = 1;
const BRIDGE: usize = 2;
const DEC_EMBED: usize = 3;
const DECODER: usize = 4;
const ATTN: usize = 5;

impl Module for Seq2Seq {
    fn buffers(&self) -> Vec<(&'static str, &ParamBuffer<f32>)> {
        let mut v = vec![
            ("src_embed", &self.src_embed.params),
            ("encoder", self.encoder.params()),
            ("bridge", &self.bridge.params),
            ("dec_embed", &self.dec_embed.params),
            ("decoder", &self.decoder.params),
        ];
        match &self.attn {
            Attention::None => {}
            Attention::Luong { score, combine } => {
                v.extend([("attn.score", &score.params), ("attn.combine", &combine.params)])
            }
            Attention::Bahdanau { query, key, v: vv } => v.extend([
                ("attn.query", &query.params),
                ("attn.key", &key.params),
                ("attn.v", &vv.params),
            ]),
        }
        v.push(("out", &self.out.params));
        v
    }

    fn buffers_mut(&mut self) -> Vec<&mut ParamBuffer<f32>> {
        let mut v = vec![
            &mut self.src_embed.params,
            self.encoder.params_mut(),
            &mut self.bridge.params,
            &mut self.dec_embed.params,
            &mut self.decoder.params,
        ];
        match &mut self.attn {
            Attention::None => {}
            Attention::Luong { score, combine } => v.extend([&mut score.params, &mut combine.params]),
            Attention::Bahdanau { query, key, v: vv } => v.extend([&mut query.params, &mut key.params, &mut vv.params]),
        }
        v.push(&mut self.out.params);
        v
    }
}
