//! Serializable settings of the encoder-decoder and of its training, validated once.

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// How the decoder looks at the encoder's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AttentionKind {
    /// No attention: the decoder sees the bridge state and, at every step, the encoder's last
    /// states `[h_fwd; h_bwd]` next to the embedding (Cho et al. 2014).
    None,
    /// Luong et al. 2015, "general" score `h_tᵀ·W_a·s_j` on the decoder state after the GRU
    /// step; the output layer reads `tanh(W_c·[c_t; h_t])`.
    #[default]
    Luong,
    /// Bahdanau et al. 2015, additive score `vᵀ·tanh(W_q·h_{t−1} + W_k·s_j + b_k)` on the state
    /// before the step; the context enters the GRU input next to the embedding.
    Bahdanau,
}

impl AttentionKind {
    /// The name used on command lines: `none`, `luong`, `bahdanau`.
    pub fn name(self) -> &'static str {
        match self {
            AttentionKind::None => "none",
            AttentionKind::Luong => "luong",
            AttentionKind::Bahdanau => "bahdanau",
        }
    }
}

fn one() -> usize {
    1
}

/// The architecture. Sizes are per direction for the encoder; token ids are `0..src_vocab`
/// on the source side and `0..tgt_vocab` on the target side, where `bos` and `eos` are two
/// reserved target ids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2SeqConfig {
    /// Source vocabulary size.
    pub src_vocab: usize,
    /// Target vocabulary size, including `bos` and `eos`.
    pub tgt_vocab: usize,
    /// Target id fed at the first decoder step.
    pub bos: usize,
    /// Target id that ends a sequence (the last training target of every sequence).
    pub eos: usize,
    /// Source embedding width.
    pub src_embed: usize,
    /// Target embedding width.
    pub tgt_embed: usize,
    /// Encoder GRU hidden units per direction (the encoder is bidirectional).
    pub enc_hidden: usize,
    /// Encoder layers (default 1).
    #[serde(default = "one")]
    pub enc_layers: usize,
    /// Decoder GRU hidden units (one unidirectional layer).
    pub dec_hidden: usize,
    /// Attention kind.
    #[serde(default)]
    pub attention: AttentionKind,
    /// Width of the additive (Bahdanau) attention layer; `0` = `dec_hidden`. Ignored otherwise.
    #[serde(default)]
    pub attn_dim: usize,
    /// Luong's input feeding: the previous step's attentional vector `tanh(W_c·[c; h])` (zeros
    /// at the first step) enters the GRU input next to the embedding, so the decoder knows
    /// where it attended (Luong only; default false).
    #[serde(default)]
    pub input_feeding: bool,
    /// Dropout probability, training only (default 0): variational dropout on every encoder
    /// layer's input (one mask per sequence, the embeddings included) and dropout on the
    /// features the output layer reads (a fresh mask per step and unit).
    #[serde(default)]
    pub dropout: f64,
}

impl Seq2SeqConfig {
    /// A config with the given vocabularies and special ids, one encoder layer, Luong
    /// attention and the given widths for every layer.
    pub fn new(src_vocab: usize, tgt_vocab: usize, bos: usize, eos: usize, width: usize) -> Self {
        Seq2SeqConfig {
            src_vocab,
            tgt_vocab,
            bos,
            eos,
            src_embed: width,
            tgt_embed: width,
            enc_hidden: width,
            enc_layers: 1,
            dec_hidden: width,
            attention: AttentionKind::Luong,
            attn_dim: 0,
            input_feeding: false,
            dropout: 0.0,
        }
    }

    /// Checks every field; errors name it as `seq2seq.<field>`.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(TrainError::config(format!("seq2seq.{field}"), reason));
        for (field, v) in [
            ("src_vocab", self.src_vocab),
            ("src_embed", self.src_embed),
            ("tgt_embed", self.tgt_embed),
            ("enc_hidden", self.enc_hidden),
            ("enc_layers", self.enc_layers),
            ("dec_hidden", self.dec_hidden),
        ] {
            if v == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if self.bos >= self.tgt_vocab {
            return bad(
                "bos",
                format!("{} is outside the target vocabulary 0..{}", self.bos, self.tgt_vocab),
            );
        }
        if self.eos >= self.tgt_vocab {
            return bad(
                "eos",
                format!("{} is outside the target vocabulary 0..{}", self.eos, self.tgt_vocab),
            );
        }
        if self.input_feeding && self.attention != AttentionKind::Luong {
            return bad("input_feeding", "needs luong attention".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", format!("must be in [0, 1), got {}", self.dropout));
        }
        if self.bos == self.eos {
            return bad("eos", "must differ from bos".into());
        }
        Ok(())
    }

    /// The effective width of the additive attention layer.
    pub fn attn_width(&self) -> usize {
        if self.attn_dim == 0 {
            self.dec_hidden
        } else {
            self.attn_dim
        }
    }

    /// Width of one encoder memory slot `s_j = [h_fwd_j; h_bwd_j]`.
    pub fn memory_width(&self) -> usize {
        2 * self.enc_hidden
    }
}

/// Probability of feeding the ground-truth token, as a function of the training step `i`
/// (Bengio et al. 2015, "Scheduled Sampling"). When the coin says no, the decoder is fed its
/// own prediction from the previous step instead; no gradient flows through that choice.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SamplingSchedule {
    /// Always teacher forcing (`ε_i = 1`).
    #[default]
    TeacherForcing,
    /// `ε_i = max(min, k − c·i)`.
    Linear {
        /// Start value, in `(0, 1]`.
        k: f64,
        /// Decrease per step, ≥ 0.
        c: f64,
        /// Floor, in `[0, 1]`.
        min: f64,
    },
    /// `ε_i = kⁱ`, `k` in `(0, 1]`.
    Exponential {
        /// Base.
        k: f64,
    },
    /// `ε_i = k / (k + exp(i / k))`, `k ≥ 1`.
    InverseSigmoid {
        /// Speed (larger = slower decay).
        k: f64,
    },
}

impl SamplingSchedule {
    /// `ε_i`, the probability of feeding the ground truth at training step `i`.
    pub fn teacher_prob(&self, i: u64) -> f64 {
        let i = i as f64;
        match *self {
            SamplingSchedule::TeacherForcing => 1.0,
            SamplingSchedule::Linear { k, c, min } => (k - c * i).max(min).min(1.0),
            SamplingSchedule::Exponential { k } => k.powf(i),
            SamplingSchedule::InverseSigmoid { k } => {
                let e = (i / k).exp();
                if e.is_finite() {
                    k / (k + e)
                } else {
                    0.0
                }
            }
        }
    }

    /// Checks the parameters; errors name them as `sampling.<field>`.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| Err(TrainError::config(format!("sampling.{field}"), reason));
        match *self {
            SamplingSchedule::TeacherForcing => Ok(()),
            SamplingSchedule::Linear { k, c, min } => {
                if !(k > 0.0 && k <= 1.0) {
                    return bad("k", format!("must be in (0, 1], got {k}"));
                }
                if !(c.is_finite() && c >= 0.0) {
                    return bad("c", format!("must be ≥ 0, got {c}"));
                }
                if !(0.0..=1.0).contains(&min) {
                    return bad("min", format!("must be in [0, 1], got {min}"));
                }
                Ok(())
            }
            SamplingSchedule::Exponential { k } => {
                if !(k > 0.0 && k <= 1.0) {
                    return bad("k", format!("must be in (0, 1], got {k}"));
                }
                Ok(())
            }
            SamplingSchedule::InverseSigmoid { k } => {
                if !(k.is_finite() && k >= 1.0) {
                    return bad("k", format!("must be ≥ 1, got {k}"));
                }
                Ok(())
            }
        }
    }
}

/// What the decoder is fed when the scheduled-sampling coin does not pick the ground truth.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SampleFrom {
    /// The most likely token of the previous step.
    #[default]
    Argmax,
    /// A token drawn from the previous step's softmax.
    Softmax,
}

/// Settings of [`train_epoch`](super::train_epoch); missing fields take the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// Sequences per update (default 64).
    pub batch_size: usize,
    /// Clip the global gradient norm to this value (default 5; `None` = no clipping).
    pub clip_norm: Option<f32>,
    /// Teacher forcing / scheduled sampling, indexed by the optimizer's step count (default:
    /// always teacher forcing).
    pub sampling: SamplingSchedule,
    /// What is fed instead of the ground truth (default: argmax).
    pub sample_from: SampleFrom,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            batch_size: 64,
            clip_norm: Some(5.0),
            sampling: SamplingSchedule::TeacherForcing,
            sample_from: SampleFrom::Argmax,
        }
    }
}

impl TrainSettings {
    /// Checks every field; errors name it as `train.<field>` or `sampling.<field>`.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(TrainError::config("train.batch_size", "must be at least 1"));
        }
        if let Some(c) = self.clip_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(TrainError::config("train.clip_norm", format!("must be > 0, got {c}")));
            }
        }
        self.sampling.validate()
    }
}

/// Settings of [`Seq2Seq::beam_search`](super::Seq2Seq::beam_search).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeamConfig {
    /// Hypotheses kept per source (≥ 1; 1 is greedy decoding).
    pub width: usize,
    /// Most target tokens generated, not counting `eos`.
    pub max_len: usize,
    /// Length normalization exponent `α`: hypotheses are ranked by `log p / len^α`, where
    /// `len` counts the tokens including `eos` (0 = raw log-probability).
    #[serde(default)]
    pub length_penalty: f64,
}

impl BeamConfig {
    /// Checks every field; errors name it as `beam.<field>`.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 {
            return Err(TrainError::config("beam.width", "must be at least 1"));
        }
        if !(self.length_penalty.is_finite() && self.length_penalty >= 0.0) {
            return Err(TrainError::config(
                "beam.length_penalty",
                format!("must be ≥ 0, got {}", self.length_penalty),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_bengio_et_al() {
        let lin = SamplingSchedule::Linear {
            k: 1.0,
            c: 0.1,
            min: 0.25,
        };
        assert_eq!(lin.teacher_prob(0), 1.0);
        assert!((lin.teacher_prob(5) - 0.5).abs() < 1e-12);
        assert_eq!(lin.teacher_prob(100), 0.25);
        let exp = SamplingSchedule::Exponential { k: 0.5 };
        assert_eq!(exp.teacher_prob(3), 0.125);
        let sig = SamplingSchedule::InverseSigmoid { k: 10.0 };
        assert!((sig.teacher_prob(0) - 10.0 / 11.0).abs() < 1e-12);
        assert!((sig.teacher_prob(23) - 10.0 / (10.0 + 2.3f64.exp())).abs() < 1e-12);
        assert_eq!(sig.teacher_prob(u64::MAX), 0.0);
        assert_eq!(SamplingSchedule::TeacherForcing.teacher_prob(1 << 40), 1.0);
    }

    #[test]
    fn validation_names_the_field() {
        let e = SamplingSchedule::InverseSigmoid { k: 0.5 }.validate().unwrap_err();
        assert!(e.to_string().contains("sampling.k"), "{e}");
        let mut c = Seq2SeqConfig::new(5, 6, 4, 4, 8);
        assert!(c.validate().unwrap_err().to_string().contains("seq2seq.eos"));
        c.eos = 5;
        c.validate().unwrap();
        c.dec_hidden = 0;
        assert!(c.validate().unwrap_err().to_string().contains("seq2seq.dec_hidden"));
        c.dec_hidden = 8;
        c.dropout = 1.0;
        assert!(c.validate().unwrap_err().to_string().contains("seq2seq.dropout"));
        c.dropout = 0.5;
        c.attention = AttentionKind::Bahdanau;
        c.input_feeding = true;
        assert!(c.validate().unwrap_err().to_string().contains("seq2seq.input_feeding"));
    }

    #[test]
    fn serde_rejects_unknown_fields() {
        let ok: SamplingSchedule = serde_json::from_str(r#"{"kind":"exponential","k":0.99}"#).unwrap();
        assert_eq!(ok, SamplingSchedule::Exponential { k: 0.99 });
        assert!(serde_json::from_str::<SamplingSchedule>(r#"{"kind":"exponential","k":0.9,"x":1}"#).is_err());
        assert!(serde_json::from_str::<TrainSettings>(r#"{"batch":3}"#).is_err());
        let t: TrainSettings = serde_json::from_str(r#"{"sampling":{"kind":"teacher_forcing"}}"#).unwrap();
        assert_eq!(t.batch_size, 64);
    }
}
