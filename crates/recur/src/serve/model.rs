//! The served model: an escalation checkpoint loaded and verified, with the featurizer and
//! routing threshold it came with, and scoring of whole tickets and of streamed events.

use std::path::{Path, PathBuf};

use recur_data::features::Preprocessor;
use recur_data::schema::{Event, Ticket};
use recur_train::models::sequence::{SeqInput, SequenceModel};
use recur_train::models::stream::{self, StreamState};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::features::{StepContext, StepFeaturizer};
use crate::recipe::escalation;

/// Why a checkpoint cannot be served (at start-up or as a reload candidate).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The checkpoint does not load: checksums, JSON, shapes or non-finite tensors.
    #[error("{0}")]
    Checkpoint(#[from] crate::recipe::RecipeError),
    /// The manifest cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The files changed while they were being loaded.
    #[error("{0}: the checkpoint changed while it was being loaded")]
    Changed(String),
    /// The preprocessing does not fit the network or the served API.
    #[error("incompatible candidate: {0}")]
    Incompatible(String),
    /// The warm-up prediction failed.
    #[error("warm-up prediction failed: {0}")]
    WarmUp(String),
}

/// A verified, servable checkpoint.
#[derive(Debug)]
pub struct LoadedModel {
    /// The network.
    pub model: SequenceModel,
    /// Vocabulary and scalers fitted in training.
    pub pre: Preprocessor,
    /// One-event featurizer for streaming.
    pub featurizer: StepFeaturizer,
    /// Probability at or above which a ticket routes to `tier3`.
    pub threshold: f64,
    /// The first 16 hex digits of the manifest's SHA-256 (which lists every file's hash).
    pub version: String,
    /// Where it was loaded from.
    pub dir: PathBuf,
}

fn manifest_hash(dir: &Path) -> Result<String, LoadError> {
    let p = dir.join(recur_train::checkpoint::MANIFEST_FILE);
    let bytes = std::fs::read(&p).map_err(|source| LoadError::Io {
        path: p.display().to_string(),
        source,
    })?;
    Ok(Sha256::digest(&bytes)[..8].iter().map(|b| format!("{b:02x}")).collect())
}

impl LoadedModel {
    /// Loads `dir` (verifying every file's SHA-256, the tensors' shapes and finiteness), checks
    /// that the preprocessing fits the network, and runs a warm-up prediction.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        Self::load_with(dir, recur_nn::Precision::F32)
    }

    /// [`LoadedModel::load`] with the recurrent weights stored in `precision` for inference
    /// (see `recur_nn::Rnn::set_precision`); the warm-up runs on the quantized model.
    pub fn load_with(dir: &Path, precision: recur_nn::Precision) -> Result<Self, LoadError> {
        let before = manifest_hash(dir)?;
        let (mut model, pre, threshold) = escalation::load(dir)?;
        model.set_precision(precision);
        if manifest_hash(dir)? != before {
            return Err(LoadError::Changed(dir.display().to_string()));
        }
        let cfg = model.config();
        if pre.vocab_size() != cfg.vocab || pre.embedding_dim() != cfg.embed_dim || pre.n_scalars() != cfg.features {
            return Err(LoadError::Incompatible(format!(
                "the preprocessing has {} event types (+ unknown), embedding {} and {} scalars; the network \
                 expects vocab {}, embedding {} and {} features",
                pre.vocab_size() - 1,
                pre.embedding_dim(),
                pre.n_scalars(),
                cfg.vocab,
                cfg.embed_dim,
                cfg.features
            )));
        }
        if cfg.outputs != 1 || !threshold.is_finite() {
            return Err(LoadError::Incompatible(format!(
                "expected one output logit and a finite threshold, got {} outputs, threshold {threshold}",
                cfg.outputs
            )));
        }
        let m = LoadedModel {
            featurizer: StepFeaturizer::new(&pre),
            model,
            pre,
            threshold,
            version: before,
            dir: dir.to_path_buf(),
        };
        m.warm_up()?;
        Ok(m)
    }

    /// Errors unless this candidate can replace `current` without changing the API: the same
    /// numeric columns (the request fields).
    pub fn check_replaces(&self, current: &LoadedModel) -> Result<(), LoadError> {
        if self.pre.numeric_columns != current.pre.numeric_columns {
            return Err(LoadError::Incompatible(format!(
                "numeric columns {:?} differ from the served model's {:?}",
                self.pre.numeric_columns, current.pre.numeric_columns
            )));
        }
        Ok(())
    }

    fn warm_up(&self) -> Result<(), LoadError> {
        let types = self.pre.vocab.types();
        let events: Vec<Event> = (0..3)
            .map(|i| Event {
                timestamp_ms: 1_740_000_000_000 + i * 600_000,
                event_type: types.get(i as usize).cloned().unwrap_or_else(|| "opened".into()),
                numeric: vec![f64::NAN; self.pre.numeric_columns.len()],
            })
            .collect();
        let p = self.score(&[&events]).map_err(|e| LoadError::WarmUp(e.to_string()))?;
        if self.streamable() {
            let mut st = stream::initial_state(&self.model);
            let mut q = f64::NAN;
            for (i, e) in events.iter().enumerate() {
                let prev = i.checked_sub(1).map(|j| events[j].timestamp_ms);
                q = self
                    .stream_step(&mut st, events[0].timestamp_ms, prev, e)
                    .map_err(|e| LoadError::WarmUp(e.to_string()))?;
            }
            if (q - p[0]).abs() > 1e-4 {
                return Err(LoadError::WarmUp(format!("streamed {q} vs full {}", p[0])));
            }
        }
        match p[0] {
            x if (0.0..=1.0).contains(&x) => Ok(()),
            x => Err(LoadError::WarmUp(format!("probability {x}"))),
        }
    }

    /// Whether the model can stream (unidirectional, final head).
    pub fn streamable(&self) -> bool {
        stream::check_streamable(&self.model).is_ok()
    }

    /// `tier3` at or above the threshold, else `tier1`.
    pub fn route(&self, p: f64) -> &'static str {
        if p >= self.threshold {
            "tier3"
        } else {
            "tier1"
        }
    }

    /// Events whose type is not in the vocabulary (they map to the unknown bucket).
    pub fn unknown_types(&self, events: &[Event]) -> u64 {
        events.iter().filter(|e| self.pre.vocab.id(&e.event_type) == 0).count() as u64
    }

    /// Escalation probabilities of whole tickets (each non-empty, time-ordered), as one
    /// padded batch. A non-finite feature is a 422 naming the ticket, event and channel.
    pub fn score(&self, tickets: &[&[Event]]) -> Result<Vec<f64>, ApiError> {
        let owned: Vec<Ticket> = tickets
            .iter()
            .map(|e| Ticket {
                id: String::new(),
                events: e.to_vec(),
                escalated_at_ms: None,
            })
            .collect();
        self.score_tickets(&owned.iter().collect::<Vec<_>>())
    }

    /// [`LoadedModel::score`] over tickets (no copy of the events).
    pub fn score_tickets(&self, tickets: &[&Ticket]) -> Result<Vec<f64>, ApiError> {
        let (f, b) = (self.pre.n_scalars(), tickets.len());
        let time = tickets.iter().map(|t| t.events.len()).max().unwrap_or(0);
        if b == 0 || time == 0 {
            return Ok(vec![]);
        }
        let mut feats = vec![0.0f32; b * time * f];
        let mut ids = vec![0usize; b * time];
        let mut lengths = Vec::with_capacity(b);
        for (i, ticket) in tickets.iter().enumerate() {
            let n = ticket.events.len();
            let sf = self.pre.sequence_features(ticket, n);
            if let Some(k) = sf.scalars.iter().position(|x| !x.is_finite()) {
                let (t, c) = (k / f, k % f);
                let names = self.pre.scaler.channel_names();
                return Err(ApiError::unprocessable(
                    "non_finite",
                    format!("ticket {i}, events[{t}]: feature `{}` is not finite", names[c]),
                ));
            }
            feats[i * time * f..][..sf.scalars.len()].copy_from_slice(&sf.scalars);
            for (t, &id) in sf.type_ids.iter().enumerate() {
                ids[i * time + t] = id as usize;
            }
            lengths.push(n);
        }
        let x = SeqInput {
            batch: b,
            time,
            lengths: &lengths,
            features: &feats,
            ids: Some(&ids),
        };
        let logits = self.model.forward(&x).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(logits.iter().map(|&l| sigmoid(l)).collect())
    }

    /// Feeds one event to a stream whose first event was at `open_ms` and previous one at
    /// `prev_ms`; returns the probability after it. A non-finite feature is a 422.
    pub fn stream_step(
        &self,
        state: &mut StreamState,
        open_ms: i64,
        prev_ms: Option<i64>,
        e: &Event,
    ) -> Result<f64, ApiError> {
        let mut scalars = vec![0.0f32; self.featurizer.n_scalars()];
        let ctx = StepContext {
            open_ms,
            prev_ms,
            index: state.steps,
        };
        self.featurizer.step(ctx, e, &mut scalars);
        if let Some(c) = scalars.iter().position(|x| !x.is_finite()) {
            let name = &self.pre.scaler.channel_names()[c];
            return Err(ApiError::unprocessable(
                "non_finite",
                format!("feature `{name}` is not finite"),
            ));
        }
        let id = self.pre.vocab.id(&e.event_type) as usize;
        let logits =
            stream::step(&self.model, state, Some(id), &scalars).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(sigmoid(logits[0]))
    }
}

fn sigmoid(l: f32) -> f64 {
    1.0 / (1.0 + (-(l as f64)).exp())
}
