//! The public model type: a validated config plus its parameters.

use rand::Rng;
use std::sync::{Arc, OnceLock};

use recur_kernels::par::Helper;
use recur_kernels::{kernels, Float, KernelChoice, Kernels, PackedGemv, Precision, QuantGemv};

use crate::config::RnnConfig;
use crate::dropout::DropoutMasks;
use crate::engine::{self, ScratchPool};
use crate::error::{check_len, NnError, Result};
use crate::packed::Packing;
use crate::params::{layout, LayerIndex, ParamBuffer};

/// Memory layout of a padded batch of sequences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// `[batch, time, features]` (PyTorch `batch_first=True`).
    #[default]
    BatchFirst,
    /// `[time, batch, features]` (PyTorch's default).
    TimeFirst,
}

/// A padded batch of sequences with optional per-sequence lengths.
#[derive(Clone, Copy, Debug)]
pub struct SeqBatch<'a, T> {
    /// `[batch, time, features]` or `[time, batch, features]` depending on `layout`.
    pub data: &'a [T],
    /// Sequences in the batch.
    pub batch: usize,
    /// Padded length (time steps).
    pub time: usize,
    /// Features per step.
    pub features: usize,
    /// Layout of `data` (and of the output).
    pub layout: Layout,
    /// Real lengths, each in `1..=time`, in any order; `None` = all full length.
    pub lengths: Option<&'a [usize]>,
}

impl<'a, T> SeqBatch<'a, T> {
    /// A batch-first batch with every sequence at full length.
    pub fn batch_first(data: &'a [T], batch: usize, time: usize, features: usize) -> Self {
        SeqBatch {
            data,
            batch,
            time,
            features,
            layout: Layout::BatchFirst,
            lengths: None,
        }
    }

    /// The same batch with per-sequence lengths.
    pub fn with_lengths(self, lengths: &'a [usize]) -> Self {
        SeqBatch {
            lengths: Some(lengths),
            ..self
        }
    }
}

/// Initial states (zeros when `None`). `h0` is `[layers·directions, batch, H_out]`, `c0` is
/// `[layers·directions, batch, H]` (LSTM only); rows are `layer·D + direction`, as in PyTorch.
#[derive(Clone, Copy, Debug, Default)]
pub struct State<'a, T> {
    /// Initial hidden state.
    pub h0: Option<&'a [T]>,
    /// Initial cell state (LSTM).
    pub c0: Option<&'a [T]>,
}

/// The result of a forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnOutput<T> {
    /// The last layer's outputs in the input's layout, `[batch, time, D·H_out]` (or
    /// time-first), forward direction first; zero at padded steps.
    pub output: Vec<T>,
    /// Final hidden states `[layers·D, batch, H_out]`: forward at each sequence's last real
    /// step, reverse after step 0.
    pub h_n: Vec<T>,
    /// Final cell states `[layers·D, batch, H]` (LSTM only).
    pub c_n: Option<Vec<T>>,
}

/// Everything the backward pass needs, recorded by [`Rnn::forward_train`].
#[derive(Debug)]
pub struct Tape<T> {
    pub(crate) inner: engine::TapeInner<T>,
}

/// Options for [`Rnn::backward`].
#[derive(Clone, Copy, Debug, Default)]
pub struct BackwardOptions {
    /// Truncated BPTT: the gradient does not cross chunk boundaries at every multiple of `k`
    /// time steps (between steps `t−1` and `t` when `t % k == 0`, in both directions). The
    /// forward state is carried across them as usual. `None` = full BPTT.
    pub truncate: Option<usize>,
}

/// Gradients of a scalar loss with respect to everything the forward pass read.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradients<T> {
    /// Parameter gradients, same layout and names as [`Rnn::params`].
    pub params: ParamBuffer<T>,
    /// Input gradient in the input's layout (zero at padded steps).
    pub input: Vec<T>,
    /// `∂L/∂h0`, `[layers·D, batch, H_out]`.
    pub h0: Vec<T>,
    /// `∂L/∂c0`, `[layers·D, batch, H]` (LSTM only).
    pub c0: Option<Vec<T>>,
}

/// A recurrent stack: validated config plus parameters (PyTorch names, one flat buffer).
#[derive(Clone, Debug)]
pub struct Rnn<T> {
    cfg: RnnConfig,
    params: ParamBuffer<T>,
    index: Vec<LayerIndex>,
    kernels: Kernels,
    /// Recurrent weights of each layer-direction packed for the per-step kernels; built on
    /// first use, dropped whenever the parameters or the kernel family may change.
    packed_fwd: OnceLock<Vec<PackedStep<T>>>,
    packed_bwd: OnceLock<Vec<PackedStep<T>>>,
    /// With 2 threads: the persistent helper thread that runs the reverse direction of each
    /// bidirectional layer (shared by clones; a busy helper makes a forward run sequentially).
    helper: Option<Arc<Helper>>,
    /// Storage of `W_ih` and `W_hh` for inference passes.
    precision: Precision,
    /// Buffers that inference passes reuse (see `engine::scratch`).
    scratch: ScratchPool<T>,
}

/// The matrices one time step multiplies by, packed for [`Kernels::gemm_packed`]: for the
/// forward pass `W_hh` and `W_hr`; for the backward pass their transposes.
#[derive(Clone, Debug)]
pub(crate) struct PackedStep<T> {
    pub hh: PackedGemv<T>,
    pub hr: Option<PackedGemv<T>>,
    /// Forward only: `W_ih` packed for short inputs (see `engine::forward`).
    pub ih: Option<PackedGemv<T>>,
    /// Forward only, with a reduced [`Precision`]: `W_ih` and `W_hh` quantized for inference.
    pub ih_q: Option<QuantGemv>,
    pub hh_q: Option<QuantGemv>,
}

fn transpose<T: Float>(w: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::zero(); w.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = w[r * cols + c];
        }
    }
    t
}

impl<T: Float> Rnn<T> {
    /// A model with all parameters zero. Validates `cfg`.
    pub fn zeros(cfg: RnnConfig) -> Result<Self> {
        cfg.validate()?;
        let (list, index) = layout(&cfg);
        Ok(Rnn {
            params: ParamBuffer::zeros(&list),
            cfg,
            index,
            kernels: kernels(KernelChoice::Best),
            packed_fwd: OnceLock::new(),
            packed_bwd: OnceLock::new(),
            helper: None,
            precision: Precision::F32,
            scratch: ScratchPool::default(),
        })
    }

    /// A model with PyTorch's default initialization, `U(−1/√H, 1/√H)` for every parameter
    /// (layer-norm gains start at 1 and their biases at 0), drawn from `rng`.
    pub fn new(cfg: RnnConfig, rng: &mut impl Rng) -> Result<Self> {
        let mut m = Self::zeros(cfg)?;
        crate::init::Init::default().apply(&mut m, rng);
        Ok(m)
    }

    /// Selects the kernel family used by this model (default: the best for this CPU).
    pub fn set_kernels(&mut self, choice: KernelChoice) {
        self.kernels = kernels(choice);
        self.reset_packed();
    }

    /// Sets how many threads a forward pass ([`Rnn::forward`], [`Rnn::forward_train`]) uses:
    /// 1 (the default) or 2, in which case the two directions of every bidirectional layer run
    /// concurrently, the reverse one on a persistent helper thread owned by this model (and
    /// shared with its clones). Results are bit-identical to 1 thread. A unidirectional model
    /// accepts 2 and runs on the calling thread. While one forward pass uses the helper, a
    /// concurrent forward pass on a clone runs its directions one after the other.
    ///
    /// # Errors
    /// [`NnError::Invalid`] for any other count, or when the helper thread cannot be spawned.
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        match threads {
            1 => self.helper = None,
            2 if self.helper.is_none() => {
                let h = Helper::new().map_err(|e| NnError::Invalid(format!("cannot start a helper thread: {e}")))?;
                self.helper = Some(Arc::new(h));
            }
            2 => {}
            n => {
                return Err(NnError::Invalid(format!(
                    "threads = {n}: a forward pass runs on 1 or 2 threads (the two directions of a \
                     bidirectional layer in parallel)"
                )))
            }
        }
        Ok(())
    }

    /// Threads a forward pass uses (see [`Rnn::set_threads`]).
    pub fn threads(&self) -> usize {
        if self.helper.is_some() {
            2
        } else {
            1
        }
    }

    /// Sets the storage precision of the input and recurrent weights (`W_ih`, `W_hh` of every
    /// layer and direction) for inference passes ([`Rnn::forward`]): [`Precision::F16`] or
    /// [`Precision::Int8`] (per-row scales) quantize a copy of them when the model is next
    /// run; [`Precision::F32`] (the default) uses the parameters as they are. Biases, LSTM
    /// projections (`W_hr`), peepholes, layer-norm parameters, states and all arithmetic stay
    /// in `T`; [`Rnn::forward_train`] and [`Rnn::backward`] always use the parameters
    /// unquantized. See `recur_kernels::quant` for the quantization and its error bounds.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.reset_packed();
    }

    /// The storage precision of inference weights (see [`Rnn::set_precision`]).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The pool of reusable inference buffers.
    pub(crate) fn scratch(&self) -> &ScratchPool<T> {
        &self.scratch
    }

    /// The helper thread of a 2-thread model.
    pub(crate) fn helper(&self) -> Option<&Helper> {
        self.helper.as_deref()
    }

    /// The kernel family in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The validated config.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// The parameters.
    pub fn params(&self) -> &ParamBuffer<T> {
        &self.params
    }

    /// The parameters, mutable (for optimizers and loaders).
    pub fn params_mut(&mut self) -> &mut ParamBuffer<T> {
        self.reset_packed();
        &mut self.params
    }

    fn reset_packed(&mut self) {
        self.packed_fwd = OnceLock::new();
        self.packed_bwd = OnceLock::new();
    }

    /// Per layer-direction: `W_hh` (`[G·H, H_out]`) and `W_hr` (`[P, H]`) packed, or with
    /// `transposed` their transposes, for [`Kernels::gemm_packed`].
    pub(crate) fn packed(&self, transposed: bool) -> &[PackedStep<T>] {
        let cell = if transposed { &self.packed_bwd } else { &self.packed_fwd };
        cell.get_or_init(|| {
            let (g, h, ho) = (
                self.cfg.cell.gates() * self.cfg.hidden_size,
                self.cfg.hidden_size,
                self.cfg.h_out(),
            );
            let pack = |w: &[T], rows: usize, cols: usize| {
                if transposed {
                    self.kernels.pack_gemv(&transpose(w, rows, cols), cols, rows)
                } else {
                    self.kernels.pack_gemv(w, rows, cols)
                }
            };
            let at = |i: usize| self.params.at(&self.params.specs()[i]);
            let quant = |w: &[T], rows: usize, cols: usize| {
                (!transposed && self.precision != Precision::F32).then(|| {
                    let w32: Vec<f32> = w.iter().map(|v| v.f64() as f32).collect();
                    QuantGemv::new(&w32, rows, cols, self.precision)
                })
            };
            self.index
                .iter()
                .enumerate()
                .map(|(ld, li)| PackedStep {
                    hh: pack(at(li.w_hh), g, ho),
                    hr: li.w_hr.map(|i| pack(at(i), ho, h)),
                    ih: (!transposed).then(|| {
                        let input = self.cfg.layer_input(ld / self.cfg.directions());
                        pack(at(li.w_ih), g, input)
                    }),
                    ih_q: quant(at(li.w_ih), g, self.cfg.layer_input(ld / self.cfg.directions())),
                    hh_q: quant(at(li.w_hh), g, ho),
                })
                .collect()
        })
    }

    pub(crate) fn index(&self) -> &[LayerIndex] {
        &self.index
    }

    /// The same model in another float type.
    pub fn cast<U: Float>(&self) -> Rnn<U> {
        Rnn {
            cfg: self.cfg.clone(),
            params: self.params.cast(),
            index: self.index.clone(),
            kernels: self.kernels,
            packed_fwd: OnceLock::new(),
            packed_bwd: OnceLock::new(),
            helper: self.helper.clone(),
            precision: self.precision,
            scratch: ScratchPool::default(),
        }
    }

    /// Inference forward pass (no dropout, nothing recorded).
    pub fn forward(&self, x: &SeqBatch<'_, T>, state: &State<'_, T>) -> Result<RnnOutput<T>> {
        let packing = self.check(x, state)?;
        Ok(engine::forward(self, x, &packing, state, None, false, true).0)
    }

    /// Inference forward pass that returns only the final states: `output` of the result is
    /// empty, `h_n` and `c_n` equal [`Rnn::forward`]'s bit for bit. For many-to-one models
    /// (a head on the final states) this skips writing the last layer's per-step outputs in
    /// the padded layout, which for a batch of variable-length sequences is mostly padding.
    pub fn forward_final(&self, x: &SeqBatch<'_, T>, state: &State<'_, T>) -> Result<RnnOutput<T>> {
        let packing = self.check(x, state)?;
        Ok(engine::forward(self, x, &packing, state, None, false, false).0)
    }

    /// Training forward pass: applies `masks` (see [`Rnn::sample_masks`]; `None` = no dropout)
    /// and records a [`Tape`] for [`Rnn::backward`].
    pub fn forward_train(
        &self,
        x: &SeqBatch<'_, T>,
        state: &State<'_, T>,
        masks: Option<&DropoutMasks<T>>,
    ) -> Result<(RnnOutput<T>, Tape<T>)> {
        let packing = self.check(x, state)?;
        if let Some(m) = masks {
            m.check(&self.cfg, x.batch, x.time)?;
        }
        let (out, tape) = engine::forward(self, x, &packing, state, masks, true, true);
        Ok((
            out,
            Tape {
                inner: tape.expect("training forward records a tape"),
            },
        ))
    }

    /// Draws dropout masks for a batch of `batch` sequences of padded length `time`, following
    /// the config's `dropout`, `input_dropout` and `recurrent_dropout`.
    pub fn sample_masks(&self, batch: usize, time: usize, rng: &mut impl Rng) -> DropoutMasks<T> {
        DropoutMasks::sample(&self.cfg, batch, time, rng)
    }

    /// Backpropagation through time. `d_output` has the output's shape and layout; `d_hn` and
    /// `d_cn` (optional) the shapes of `h_n` and `c_n`.
    pub fn backward(
        &self,
        tape: &Tape<T>,
        d_output: &[T],
        d_hn: Option<&[T]>,
        d_cn: Option<&[T]>,
        opts: BackwardOptions,
    ) -> Result<Gradients<T>> {
        engine::backward(self, &tape.inner, d_output, d_hn, d_cn, opts)
    }

    fn check(&self, x: &SeqBatch<'_, T>, state: &State<'_, T>) -> Result<Packing> {
        let cfg = &self.cfg;
        if x.features != cfg.input_size {
            return Err(NnError::Shape {
                name: "input".into(),
                got: vec![x.batch, x.time, x.features],
                expected: vec![x.batch, x.time, cfg.input_size],
            });
        }
        if x.batch == 0 || x.time == 0 {
            return Err(NnError::Invalid(format!(
                "input must have batch ≥ 1 and time ≥ 1, got {}x{}",
                x.batch, x.time
            )));
        }
        check_len("input", x.data.len(), vec![x.batch, x.time, x.features])?;
        let ld = cfg.num_layers * cfg.directions();
        if let Some(h0) = state.h0 {
            check_len("h0", h0.len(), vec![ld, x.batch, cfg.h_out()])?;
        }
        match (state.c0, cfg.has_cell_state()) {
            (Some(c0), true) => check_len("c0", c0.len(), vec![ld, x.batch, cfg.hidden_size])?,
            (Some(_), false) => return Err(NnError::Invalid("c0 is only accepted by LSTM models".into())),
            _ => {}
        }
        Packing::new(x.batch, x.time, x.lengths)
    }
}
