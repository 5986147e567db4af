//! The view of a model that optimizers, clipping and checkpoints work on: a fixed, ordered
//! list of named flat parameter buffers.

use std::collections::BTreeMap;

use recur_nn::ParamBuffer;

use crate::error::{Result, TrainError};

/// Tensors by full name (`prefix.name`): shape and row-major data. Used for checkpoints and
/// for optimizer state.
pub type NamedTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A trainable model: its parameters are a fixed, ordered list of [`ParamBuffer`]s, each with a
/// prefix (`encoder`, `head`, ...). The checkpoint name of tensor `n` in the buffer with prefix
/// `p` is `p.n` (PyTorch `state_dict` style, e.g. `rnn.weight_ih_l0`, `head.weight`).
///
/// Gradients are a `Vec<ParamBuffer<f32>>` in the same order and with the same layouts, as
/// returned by [`Module::zero_grads`].
pub trait Module {
    /// `(prefix, buffer)` pairs, always in the same order.
    fn buffers(&self) -> Vec<(&'static str, &ParamBuffer<f32>)>;

    /// The same buffers, mutable and in the same order. Implementations must invalidate any
    /// cache derived from the parameters (e.g. through `Rnn::params_mut`).
    fn buffers_mut(&mut self) -> Vec<&mut ParamBuffer<f32>>;

    /// Zero gradients: one buffer per parameter buffer, same layouts.
    fn zero_grads(&self) -> Vec<ParamBuffer<f32>> {
        self.buffers().into_iter().map(|(_, b)| b.zeros_like()).collect()
    }

    /// Total number of scalar parameters.
    fn num_params(&self) -> usize {
        self.buffers().iter().map(|(_, b)| b.as_slice().len()).sum()
    }

    /// Every tensor by full name.
    fn named_tensors(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        for (prefix, buf) in self.buffers() {
            for spec in buf.specs() {
                let data = buf.as_slice()[spec.range()].to_vec();
                out.insert(format!("{prefix}.{}", spec.name), (spec.shape.clone(), data));
            }
        }
        out
    }

    /// Loads every tensor from `tensors`, checking names and shapes. Extra tensors in the map
    /// are an error too, so that a checkpoint of another architecture cannot half-load.
    fn load_named(&mut self, tensors: &NamedTensors) -> Result<()> {
        let prefixes: Vec<&'static str> = self.buffers().into_iter().map(|(p, _)| p).collect();
        let mut used = 0usize;
        for (prefix, buf) in prefixes.into_iter().zip(self.buffers_mut()) {
            let specs = buf.specs().to_vec();
            for spec in specs {
                let key = format!("{prefix}.{}", spec.name);
                let (shape, data) = tensors
                    .get(&key)
                    .ok_or_else(|| TrainError::Invalid(format!("missing tensor `{key}`")))?;
                buf.set(&spec.name, shape, data)
                    .map_err(|e| TrainError::Invalid(format!("tensor `{key}`: {e}")))?;
                used += 1;
            }
        }
        if used != tensors.len() {
            let known: std::collections::BTreeSet<String> = self.named_tensors().into_keys().collect();
            let extra: Vec<&String> = tensors.keys().filter(|k| !known.contains(*k)).collect();
            return Err(TrainError::Invalid(format!("unexpected tensors {extra:?}")));
        }
        Ok(())
    }
}

/// Adds `src` into `dst` element-wise (gradient accumulation over several passes).
pub fn accumulate(dst: &mut [ParamBuffer<f32>], src: &[ParamBuffer<f32>]) {
    for (d, s) in dst.iter_mut().zip(src) {
        for (a, b) in d.as_mut_slice().iter_mut().zip(s.as_slice()) {
            *a += *b;
        }
    }
}

/// Iterate (Polyak) averaging of a model's parameters: the running mean of the weights after
/// each [`ParamAverage::add`], kept in f64 so that a long average does not lose the small late
/// contributions. Averaging the last part of a run (as in ASGD or stochastic weight averaging)
/// gives one model whose weights are the mean of the iterates, usually better on held-out data
/// than the last iterate.
#[derive(Clone, Debug)]
pub struct ParamAverage {
    sums: Vec<Vec<f64>>,
    count: u64,
}

impl ParamAverage {
    /// An empty average with the layout of `model`'s parameters.
    pub fn new(model: &impl Module) -> Self {
        let sums = model
            .buffers()
            .iter()
            .map(|(_, b)| vec![0.0; b.as_slice().len()])
            .collect();
        ParamAverage { sums, count: 0 }
    }

    /// Adds the current weights of `model` to the average. Errors if the layout differs from
    /// the one the average was created with.
    pub fn add(&mut self, model: &impl Module) -> Result<()> {
        self.check(model)?;
        for (sum, (_, buf)) in self.sums.iter_mut().zip(model.buffers()) {
            for (s, &w) in sum.iter_mut().zip(buf.as_slice()) {
                *s += w as f64;
            }
        }
        self.count += 1;
        Ok(())
    }

    /// How many iterates have been added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Writes the mean of the added iterates into `model`'s parameters. Errors if nothing has
    /// been added or the layout differs.
    pub fn write_to(&self, model: &mut impl Module) -> Result<()> {
        if self.count == 0 {
            return Err(TrainError::Invalid("parameter average: no iterates were added".into()));
        }
        self.check(model)?;
        let n = self.count as f64;
        for (sum, buf) in self.sums.iter().zip(model.buffers_mut()) {
            for (w, &s) in buf.as_mut_slice().iter_mut().zip(sum) {
                *w = (s / n) as f32;
            }
        }
        Ok(())
    }

    /// The running sums and count as named tensors, exactly: tensor `{prefix}.{i}` holds the
    /// f64 sums of buffer `i` as four 16-bit pieces per value (each an integer-valued f32, so
    /// every piece is finite and the sums come back bit for bit), and `{prefix}.count` the
    /// count the same way. For resumable checkpoints.
    pub fn to_tensors(&self, prefix: &str) -> NamedTensors {
        let pieces = |xs: &mut dyn Iterator<Item = u64>| -> Vec<f32> {
            xs.flat_map(|b| (0..4).map(move |k| ((b >> (16 * k)) & 0xFFFF) as f32))
                .collect()
        };
        let mut t = NamedTensors::new();
        for (i, sum) in self.sums.iter().enumerate() {
            let v = pieces(&mut sum.iter().map(|x| x.to_bits()));
            t.insert(format!("{prefix}.{i}"), (vec![v.len()], v));
        }
        let c = pieces(&mut std::iter::once(self.count));
        t.insert(format!("{prefix}.count"), (vec![4], c));
        t
    }

    /// The average saved by [`ParamAverage::to_tensors`] with `prefix`, checked against
    /// `model`'s layout.
    pub fn from_tensors(t: &NamedTensors, prefix: &str, model: &impl Module) -> Result<Self> {
        let words = |name: String, n: usize| -> Result<Vec<u64>> {
            let (_, v) = t
                .get(&name)
                .ok_or_else(|| TrainError::Invalid(format!("parameter average: no tensor `{name}`")))?;
            if v.len() != 4 * n || v.iter().any(|&x| !(0.0..65_536.0).contains(&x) || x.fract() != 0.0) {
                return Err(TrainError::Invalid(format!(
                    "parameter average: tensor `{name}` is not {n} values of four 16-bit pieces"
                )));
            }
            Ok(v.chunks_exact(4)
                .map(|p| {
                    p.iter()
                        .enumerate()
                        .fold(0u64, |b, (k, &x)| b | ((x as u64) << (16 * k)))
                })
                .collect())
        };
        let sums = model
            .buffers()
            .iter()
            .enumerate()
            .map(|(i, (_, b))| {
                Ok(words(format!("{prefix}.{i}"), b.as_slice().len())?
                    .into_iter()
                    .map(f64::from_bits)
                    .collect())
            })
            .collect::<Result<Vec<Vec<f64>>>>()?;
        let count = words(format!("{prefix}.count"), 1)?[0];
        Ok(ParamAverage { sums, count })
    }

    /// Errors unless `model`'s buffers have the lengths of the average's.
    fn check(&self, model: &impl Module) -> Result<()> {
        let lens: Vec<usize> = model.buffers().iter().map(|(_, b)| b.as_slice().len()).collect();
        let mine: Vec<usize> = self.sums.iter().map(Vec::len).collect();
        if mine != lens {
            return Err(TrainError::Invalid(format!(
                "parameter average: the model's buffers have lengths {lens:?}, the average {mine:?}"
            )));
        }
        Ok(())
    }
}
