//! Parameters as named views over one flat buffer, with PyTorch's names and registration order
//! (`weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, [weight_hr_l0], …, l0_reverse, l1, …`).
//!
//! recur's extra parameters follow the same pattern: `weight_peephole_l{k}` (`[3H]`, order
//! `p_i | p_f | p_o`), and for layer-normalized LSTMs `ln_ih_weight_l{k}`, `ln_ih_bias_l{k}`,
//! `ln_hh_weight_l{k}`, `ln_hh_bias_l{k}` (`[4H]`) and `ln_cell_weight_l{k}`, `ln_cell_bias_l{k}`
//! (`[H]`), each with the `_reverse` suffix for the reverse direction.

use recur_kernels::Float;

use crate::config::RnnConfig;
use crate::error::{NnError, Result};

/// One named tensor inside a [`ParamBuffer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// PyTorch-style name, e.g. `weight_hh_l1_reverse`.
    pub name: String,
    /// Shape, row-major.
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat buffer.
    pub offset: usize,
}

impl ParamSpec {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range in the flat buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// All parameters of a model in one contiguous buffer, so optimizers, clipping and
/// checkpoints are single loops. Gradients use the same layout.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamBuffer<T> {
    specs: Vec<ParamSpec>,
    data: Vec<T>,
}

impl<T: Float> ParamBuffer<T> {
    /// A zero-filled buffer for the given `(name, shape)` list, in order.
    pub fn zeros(layout: &[(String, Vec<usize>)]) -> Self {
        let mut offset = 0;
        let specs: Vec<ParamSpec> = layout
            .iter()
            .map(|(name, shape)| {
                let s = ParamSpec {
                    name: name.clone(),
                    shape: shape.clone(),
                    offset,
                };
                offset += s.len();
                s
            })
            .collect();
        ParamBuffer {
            specs,
            data: vec![T::zero(); offset],
        }
    }

    /// A zero-filled buffer with the same layout as `self` (e.g. for gradients).
    pub fn zeros_like(&self) -> Self {
        ParamBuffer {
            specs: self.specs.clone(),
            data: vec![T::zero(); self.data.len()],
        }
    }

    /// The tensors, in registration order.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// The spec of a named tensor.
    pub fn spec(&self, name: &str) -> Option<&ParamSpec> {
        self.specs.iter().find(|s| s.name == name)
    }

    /// The whole flat buffer.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The whole flat buffer, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// A named tensor's elements.
    pub fn get(&self, name: &str) -> Option<&[T]> {
        self.spec(name).map(|s| &self.data[s.range()])
    }

    /// A named tensor's elements, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut [T]> {
        let r = self.spec(name)?.range();
        Some(&mut self.data[r])
    }

    /// Copies `values` into the named tensor, checking its shape.
    pub fn set(&mut self, name: &str, shape: &[usize], values: &[T]) -> Result<()> {
        let spec = self.spec(name).ok_or_else(|| NnError::UnknownParam(name.to_string()))?;
        if spec.shape != shape || values.len() != spec.len() {
            return Err(NnError::Shape {
                name: name.to_string(),
                got: shape.to_vec(),
                expected: spec.shape.clone(),
            });
        }
        let r = spec.range();
        self.data[r].copy_from_slice(values);
        Ok(())
    }

    /// Elements of the tensor at `spec`.
    pub(crate) fn at(&self, spec: &ParamSpec) -> &[T] {
        &self.data[spec.range()]
    }

    /// Converts every element to another float type.
    pub fn cast<U: Float>(&self) -> ParamBuffer<U> {
        ParamBuffer {
            specs: self.specs.clone(),
            data: self.data.iter().map(|&x| U::of(x.f64())).collect(),
        }
    }
}

/// The `_reverse` suffix for direction 1.
pub fn direction_suffix(direction: usize) -> &'static str {
    if direction == 0 {
        ""
    } else {
        "_reverse"
    }
}

/// Indices (into [`ParamBuffer::specs`]) of one layer-direction's tensors.
#[derive(Clone, Debug, Default)]
pub(crate) struct LayerIndex {
    pub w_ih: usize,
    pub w_hh: usize,
    pub b_ih: Option<usize>,
    pub b_hh: Option<usize>,
    pub w_hr: Option<usize>,
    pub peep: Option<usize>,
    /// `ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_cell_weight, ln_cell_bias`.
    pub ln: Option<[usize; 6]>,
}

/// The parameter layout of a validated config: names and shapes in registration order, plus
/// per-(layer, direction) indices.
pub(crate) fn layout(cfg: &RnnConfig) -> (Vec<(String, Vec<usize>)>, Vec<LayerIndex>) {
    let (h, g, p) = (cfg.hidden_size, cfg.cell.gates() * cfg.hidden_size, cfg.proj_size);
    let mut list = Vec::new();
    let mut index = Vec::new();
    for k in 0..cfg.num_layers {
        for d in 0..cfg.directions() {
            let sfx = direction_suffix(d);
            let mut push = |name: &str, shape: Vec<usize>| {
                list.push((format!("{name}_l{k}{sfx}"), shape));
                list.len() - 1
            };
            let mut li = LayerIndex {
                w_ih: push("weight_ih", vec![g, cfg.layer_input(k)]),
                w_hh: push("weight_hh", vec![g, cfg.h_out()]),
                ..LayerIndex::default()
            };
            if cfg.bias {
                li.b_ih = Some(push("bias_ih", vec![g]));
                li.b_hh = Some(push("bias_hh", vec![g]));
            }
            if p > 0 {
                li.w_hr = Some(push("weight_hr", vec![p, h]));
            }
            if cfg.peephole {
                li.peep = Some(push("weight_peephole", vec![3 * h]));
            }
            if cfg.layer_norm {
                li.ln = Some([
                    push("ln_ih_weight", vec![g]),
                    push("ln_ih_bias", vec![g]),
                    push("ln_hh_weight", vec![g]),
                    push("ln_hh_bias", vec![g]),
                    push("ln_cell_weight", vec![h]),
                    push("ln_cell_bias", vec![h]),
                ]);
            }
            index.push(li);
        }
    }
    (list, index)
}
