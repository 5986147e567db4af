//! Named tensors in safetensors files ⇄ a model's [`ParamBuffer`], with every name, shape,
//! dtype and value checked.

use std::collections::{BTreeMap, HashMap};

use recur_nn::ParamBuffer;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensorError};
use thiserror::Error;

/// Which element types [`fill_params`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtypePolicy {
    /// Only `F32` (recur's own model files).
    F32Only,
    /// `F32`, or `F64`/`F16`/`BF16` converted to `f32` (foreign checkpoints).
    ConvertFloats,
}

impl DtypePolicy {
    fn accepted(self) -> &'static str {
        match self {
            DtypePolicy::F32Only => "F32",
            DtypePolicy::ConvertFloats => "F32, F64, F16 or BF16",
        }
    }
}

/// A tensor set does not match the parameters a model expects. Every variant names the keys.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum TensorError {
    /// Parameters the model needs are absent, with their expected shapes.
    #[error("missing tensor(s): {}", list_shapes(.0))]
    Missing(Vec<(String, Vec<usize>)>),
    /// Tensors that are not parameters of this model.
    #[error("unexpected tensor(s) not part of this model: {}", list(.0))]
    Extra(Vec<String>),
    /// A parameter has the wrong shape.
    #[error("tensor `{key}` has shape {actual:?}, expected {expected:?}")]
    Shape {
        /// The tensor name.
        key: String,
        /// The shape the model needs.
        expected: Vec<usize>,
        /// The shape in the file.
        actual: Vec<usize>,
    },
    /// A parameter has an element type that cannot be used.
    #[error("tensor `{key}` has dtype {dtype}, expected {accepted}")]
    Dtype {
        /// The tensor name.
        key: String,
        /// The dtype in the file.
        dtype: String,
        /// The dtypes that would have been accepted.
        accepted: &'static str,
    },
    /// A parameter holds NaN or ±infinity.
    #[error("tensor `{key}` holds a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        /// The tensor name.
        key: String,
        /// Row-major element index of the first bad value.
        index: usize,
        /// The value.
        value: f32,
    },
}

fn list(keys: &[String]) -> String {
    keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
}

fn list_shapes(keys: &[(String, Vec<usize>)]) -> String {
    keys.iter()
        .map(|(k, s)| format!("`{k}` (expected shape {s:?})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Copies `tensors` (name → view) into `params`. Every parameter must be present exactly once
/// with its shape and an accepted dtype, no other tensor may be present, and every value must
/// be finite. Reports missing keys first, then extra keys, then the first bad tensor in
/// registration order. On error `params` may be partly written.
pub fn fill_params(
    params: &mut ParamBuffer<f32>,
    tensors: &BTreeMap<String, TensorView<'_>>,
    policy: DtypePolicy,
) -> Result<(), TensorError> {
    let specs = params.specs().to_vec();
    let missing: Vec<_> = specs
        .iter()
        .filter(|s| !tensors.contains_key(&s.name))
        .map(|s| (s.name.clone(), s.shape.clone()))
        .collect();
    if !missing.is_empty() {
        return Err(TensorError::Missing(missing));
    }
    let extra: Vec<String> = tensors.keys().filter(|k| params.spec(k).is_none()).cloned().collect();
    if !extra.is_empty() {
        return Err(TensorError::Extra(extra));
    }
    for spec in &specs {
        let view = &tensors[&spec.name];
        if view.shape() != spec.shape.as_slice() {
            return Err(TensorError::Shape {
                key: spec.name.clone(),
                expected: spec.shape.clone(),
                actual: view.shape().to_vec(),
            });
        }
        let values = to_f32(&spec.name, view, policy)?;
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(TensorError::NonFinite {
                key: spec.name.clone(),
                index,
                value,
            });
        }
        params
            .get_mut(&spec.name)
            .expect("spec comes from params")
            .copy_from_slice(&values);
    }
    Ok(())
}

/// A tensor's elements as `f32`, converting when `policy` allows.
fn to_f32(key: &str, view: &TensorView<'_>, policy: DtypePolicy) -> Result<Vec<f32>, TensorError> {
    let bytes = view.data();
    let convert = policy == DtypePolicy::ConvertFloats;
    let values = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F64 if convert => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
            .collect(),
        Dtype::F16 if convert => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 if convert => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(TensorError::Dtype {
                key: key.to_string(),
                dtype: format!("{other:?}"),
                accepted: policy.accepted(),
            })
        }
    };
    Ok(values)
}

/// Every tensor of a parsed safetensors file, by name.
pub fn views_by_name<'a>(st: &safetensors::SafeTensors<'a>) -> BTreeMap<String, TensorView<'a>> {
    st.tensors().into_iter().collect()
}

/// Serializes every parameter as a little-endian `F32` tensor under its own name.
pub fn serialize_params(
    params: &ParamBuffer<f32>,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, SafeTensorError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .specs()
        .iter()
        .map(|s| {
            let data = params.get(&s.name).expect("spec comes from params");
            (
                s.name.clone(),
                s.shape.clone(),
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, shape, data) in &bytes {
        views.push((name.as_str(), TensorView::new(Dtype::F32, shape.clone(), data)?));
    }
    safetensors::serialize(views, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_nn::{CellKind, Rnn, RnnConfig};

    fn params() -> ParamBuffer<f32> {
        Rnn::<f32>::zeros(RnnConfig::new(CellKind::Gru, 2, 3))
            .unwrap()
            .params()
            .clone()
    }

    #[test]
    fn converts_half_precision_and_f64() {
        let p = params();
        let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        for (i, s) in p.specs().iter().enumerate() {
            let (dtype, data): (Dtype, Vec<u8>) = match i % 4 {
                0 => (Dtype::F64, (0..s.len()).flat_map(|_| 0.5f64.to_le_bytes()).collect()),
                1 => (
                    Dtype::F16,
                    (0..s.len())
                        .flat_map(|_| half::f16::from_f32(0.5).to_le_bytes())
                        .collect(),
                ),
                2 => (
                    Dtype::BF16,
                    (0..s.len())
                        .flat_map(|_| half::bf16::from_f32(0.5).to_le_bytes())
                        .collect(),
                ),
                _ => (Dtype::F32, (0..s.len()).flat_map(|_| 0.5f32.to_le_bytes()).collect()),
            };
            owned.push((s.name.clone(), dtype, s.shape.clone(), data));
        }
        let map: BTreeMap<_, _> = owned
            .iter()
            .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
            .collect();
        let mut q = p.clone();
        fill_params(&mut q, &map, DtypePolicy::ConvertFloats).unwrap();
        assert!(q.as_slice().iter().all(|&v| v == 0.5));
        let err = fill_params(&mut q, &map, DtypePolicy::F32Only).unwrap_err();
        assert!(
            matches!(err, TensorError::Dtype { ref key, .. } if key == "weight_ih_l0"),
            "{err}"
        );
    }

    #[test]
    fn serialized_params_round_trip() {
        let mut p = params();
        for (i, v) in p.as_mut_slice().iter_mut().enumerate() {
            *v = i as f32 * 0.25 - 3.0;
        }
        let bytes = serialize_params(&p, None).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut q = p.zeros_like();
        fill_params(&mut q, &views_by_name(&st), DtypePolicy::F32Only).unwrap();
        assert_eq!(p, q);
    }
}
