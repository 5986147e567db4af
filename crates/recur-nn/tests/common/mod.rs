//! Shared helpers for the recur-nn integration tests: fixture loading and comparisons.
#![allow(dead_code)]

pub mod alloc;

use std::collections::HashMap;
use std::path::PathBuf;

use recur_nn::{CellKind, Rnn, RnnConfig};
use safetensors::{Dtype, SafeTensors};

/// One golden case written by `fixtures/gen_rnn.py`.
pub struct Fixture {
    pub name: String,
    pub meta: HashMap<String, String>,
    pub f32s: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub lengths: Vec<usize>,
}

impl Fixture {
    pub fn get(&self, k: &str) -> Option<&[f32]> {
        self.f32s.get(k).map(|(_, v)| v.as_slice())
    }
    pub fn meta_usize(&self, k: &str) -> usize {
        self.meta[k].parse().unwrap()
    }
    pub fn config(&self) -> RnnConfig {
        let cell = match self.meta["cell"].as_str() {
            "rnn_tanh" => CellKind::RnnTanh,
            "rnn_relu" => CellKind::RnnRelu,
            "lstm" => CellKind::Lstm,
            "gru" => CellKind::Gru,
            c => panic!("unknown cell {c}"),
        };
        let mut cfg = RnnConfig::new(cell, self.meta_usize("input_size"), self.meta_usize("hidden_size"));
        cfg.num_layers = self.meta_usize("num_layers");
        cfg.bidirectional = self.meta["bidirectional"] == "true";
        cfg.proj_size = self.meta_usize("proj_size");
        cfg
    }
    /// The model with the fixture's weights.
    pub fn model(&self) -> Rnn<f32> {
        let mut m = Rnn::<f32>::zeros(self.config()).unwrap();
        let specs = m.params().specs().to_vec();
        for s in specs {
            let (shape, v) = &self.f32s[&s.name];
            m.params_mut().set(&s.name, shape, v).unwrap();
        }
        m
    }
}

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/rnn")
}

pub fn load_all() -> Vec<Fixture> {
    let index: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("index.json")).unwrap()).unwrap();
    index.iter().map(|n| load(n)).collect()
}

pub fn load(name: &str) -> Fixture {
    let bytes = std::fs::read(fixture_dir().join(format!("{name}.safetensors"))).unwrap();
    let (_, md) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta: HashMap<String, String> = md.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut f32s = HashMap::new();
    let mut lengths = Vec::new();
    for (k, v) in st.tensors() {
        match v.dtype() {
            Dtype::F32 => {
                let data = v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                f32s.insert(k.to_string(), (v.shape().to_vec(), data));
            }
            Dtype::I64 => {
                lengths = v
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as usize)
                    .collect();
            }
            d => panic!("{name}: unexpected dtype {d:?} for {k}"),
        }
    }
    Fixture {
        name: name.to_string(),
        meta,
        f32s,
        lengths,
    }
}

/// Largest `|a − b| / max(|b|, 1)`.
pub fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(&x, &y)| ((x - y).abs() / y.abs().max(1.0)) as f64)
        .fold(0.0, f64::max)
}
