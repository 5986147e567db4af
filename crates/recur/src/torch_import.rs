//! Importing a PyTorch `nn.RNN` / `nn.LSTM` / `nn.GRU` `state_dict()` saved with safetensors.
//!
//! The config is inferred from the keys (PyTorch names, see `recur_nn::ParamBuffer`):
//! `input_size` = columns of `weight_ih_l0`, `hidden_size` = its rows / gates (1 RNN, 4 LSTM,
//! 3 GRU), `proj_size` = rows of `weight_hr_l0` (LSTM only), `num_layers` = highest `l{k}` + 1,
//! `bidirectional` = any `_reverse` key, `bias` = any `bias_*` key. Every tensor is then
//! checked against the layout that config implies: a missing, extra or mis-shaped key is an
//! error naming it. `F32` is taken as is; `F64`, `F16` and `BF16` are converted to `f32`.
//!
//! Module prefixes: a state dict of a wrapper module has keys like `rnn.weight_ih_l0` or
//! `module.gru.weight_ih_l0`. Without an explicit prefix, the prefix is detected from the
//! RNN-named keys; it must be the same for all of them, and every key in the file must carry
//! it (other keys, such as a head's `fc.weight`, are an error listing them). With an explicit
//! prefix ([`ImportOptions::prefix`], `--prefix` on the command line) only the keys under it are
//! imported and all others are ignored (and reported in [`Imported::ignored`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use recur_nn::{CellKind, NnError, Rnn, RnnConfig};
use safetensors::tensor::TensorView;
use safetensors::{SafeTensorError, SafeTensors};
use thiserror::Error;

use crate::tensors::{fill_params, views_by_name, DtypePolicy, TensorError};

/// How to import a state dict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// The module the state dict came from (`nn.RNN`'s nonlinearity cannot be inferred).
    pub cell: CellKind,
    /// Import only keys under this module prefix (`rnn` or `rnn.`; empty = top level) and
    /// ignore the others. `None` = detect it (see the module docs).
    pub prefix: Option<String>,
}

/// A successfully imported model.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The model, with every parameter set.
    pub rnn: Rnn<f32>,
    /// The module prefix that was stripped (may be empty).
    pub prefix: String,
    /// Keys outside an explicit prefix that were ignored.
    pub ignored: Vec<String>,
}

/// Errors importing a state dict; each names the file and, where there is one, the key.
#[derive(Debug, Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error("{}: not a valid safetensors file", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: SafeTensorError,
    },
    /// No key looks like an RNN parameter (under the requested prefix, if any).
    #[error("{}: no RNN parameters found{} (expected keys like `weight_ih_l0`, possibly under a module prefix such as `rnn.`)", path.display(), under(.prefix))]
    NoRnnKeys {
        /// The file.
        path: PathBuf,
        /// The requested prefix.
        prefix: Option<String>,
    },
    /// RNN-named keys sit under more than one prefix.
    #[error("{}: RNN parameters under several module prefixes ({}); choose one with --prefix", path.display(), quoted(.prefixes))]
    AmbiguousPrefix {
        /// The file.
        path: PathBuf,
        /// The prefixes found.
        prefixes: Vec<String>,
    },
    /// Keys outside the detected prefix.
    #[error("{}: keys outside the RNN module prefix `{prefix}`: {}; pass --prefix '{prefix}' to import only the RNN and ignore them", path.display(), quoted(.keys))]
    OutsidePrefix {
        /// The file.
        path: PathBuf,
        /// The detected prefix.
        prefix: String,
        /// The keys outside it.
        keys: Vec<String>,
    },
    /// A size could not be inferred from a key.
    #[error("{}: tensor `{key}`: {reason}", path.display())]
    Infer {
        /// The file.
        path: PathBuf,
        /// The key (without prefix).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The inferred configuration is invalid.
    #[error("{}: inferred an invalid configuration", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// The validation error.
        #[source]
        source: NnError,
    },
    /// The tensors do not match the inferred layout.
    #[error("{}: state dict does not match the inferred model ({})", path.display(), crate::describe_config(.config))]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The inferred config the tensors were checked against.
        config: Box<RnnConfig>,
        /// Which tensor is wrong and how.
        #[source]
        source: TensorError,
    },
}

fn under(prefix: &Option<String>) -> String {
    prefix
        .as_ref()
        .map(|p| format!(" under prefix `{p}`"))
        .unwrap_or_default()
}

fn quoted(keys: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s += &format!(" and {} more", keys.len() - SHOWN);
    }
    s
}

/// A parsed PyTorch RNN parameter name such as `weight_hh_l1_reverse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ParamName<'a> {
    kind: &'a str,
    layer: usize,
    reverse: bool,
}

fn parse_param_name(name: &str) -> Option<ParamName<'_>> {
    let (stem, reverse) = match name.strip_suffix("_reverse") {
        Some(s) => (s, true),
        None => (name, false),
    };
    let (kind, layer) = stem.rsplit_once("_l")?;
    if !["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"].contains(&kind)
        || layer.is_empty()
        || !layer.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(ParamName {
        kind,
        layer: layer.parse().ok()?,
        reverse,
    })
}

/// Splits `rnn.weight_ih_l0` into (`rnn.`, `weight_ih_l0`) when the last component is an RNN
/// parameter name.
fn split_prefix(key: &str) -> Option<(&str, &str)> {
    let at = key.rfind('.').map_or(0, |i| i + 1);
    let (prefix, name) = key.split_at(at);
    parse_param_name(name).map(|_| (prefix, name))
}

/// Normalizes a user prefix: `rnn` → `rnn.`, `` stays empty.
fn normalize_prefix(p: &str) -> String {
    if p.is_empty() || p.ends_with('.') {
        p.to_string()
    } else {
        format!("{p}.")
    }
}

/// Reads a safetensors state dict from `path` and imports it (see the module docs).
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Imported, ImportError> {
    let bytes = fs::read(path).map_err(|source| ImportError::Io {
        path: path.into(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|source| ImportError::Safetensors {
        path: path.into(),
        source,
    })?;
    import_tensors(path, &views_by_name(&st), opts)
}

/// Imports already-parsed tensors (name → view); `path` is only used in error messages.
pub fn import_tensors(
    path: &Path,
    all: &BTreeMap<String, TensorView<'_>>,
    opts: &ImportOptions,
) -> Result<Imported, ImportError> {
    let (prefix, ignored) = choose_prefix(path, all, opts.prefix.as_deref())?;
    let tensors: BTreeMap<String, TensorView<'_>> = all
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix.as_str()).map(|s| (s.to_string(), v.clone())))
        .collect();
    let cfg = infer_config(path, opts.cell, &tensors)?;
    let mut rnn = Rnn::<f32>::zeros(cfg.clone()).map_err(|source| ImportError::Config {
        path: path.into(),
        source,
    })?;
    fill_params(rnn.params_mut(), &tensors, DtypePolicy::ConvertFloats).map_err(|source| ImportError::Tensor {
        path: path.into(),
        config: Box::new(cfg),
        source,
    })?;
    Ok(Imported { rnn, prefix, ignored })
}

/// The prefix to strip and the keys ignored because they are outside an explicit prefix.
fn choose_prefix(
    path: &Path,
    all: &BTreeMap<String, TensorView<'_>>,
    requested: Option<&str>,
) -> Result<(String, Vec<String>), ImportError> {
    if let Some(p) = requested {
        let p = normalize_prefix(p);
        let found = all
            .keys()
            .any(|k| k.strip_prefix(p.as_str()).and_then(parse_param_name).is_some());
        if !found {
            return Err(ImportError::NoRnnKeys {
                path: path.into(),
                prefix: Some(p),
            });
        }
        let ignored = all.keys().filter(|k| !k.starts_with(p.as_str())).cloned().collect();
        return Ok((p, ignored));
    }
    let prefixes: BTreeSet<&str> = all.keys().filter_map(|k| split_prefix(k)).map(|(p, _)| p).collect();
    let prefix = match prefixes.len() {
        0 => {
            return Err(ImportError::NoRnnKeys {
                path: path.into(),
                prefix: None,
            })
        }
        1 => prefixes.into_iter().next().expect("one element").to_string(),
        _ => {
            return Err(ImportError::AmbiguousPrefix {
                path: path.into(),
                prefixes: prefixes.into_iter().map(String::from).collect(),
            })
        }
    };
    let outside: Vec<String> = all
        .keys()
        .filter(|k| !k.starts_with(prefix.as_str()))
        .cloned()
        .collect();
    if !outside.is_empty() {
        return Err(ImportError::OutsidePrefix {
            path: path.into(),
            prefix,
            keys: outside,
        });
    }
    Ok((prefix, Vec::new()))
}

/// Infers the config from prefix-free keys (shapes are checked afterwards against it).
fn infer_config(
    path: &Path,
    cell: CellKind,
    tensors: &BTreeMap<String, TensorView<'_>>,
) -> Result<RnnConfig, ImportError> {
    let infer = |key: &str, reason: String| ImportError::Infer {
        path: path.into(),
        key: key.into(),
        reason,
    };
    let matrix = |key: &str| -> Result<Option<[usize; 2]>, ImportError> {
        match tensors.get(key).map(|v| v.shape()) {
            None => Ok(None),
            Some(&[r, c]) => Ok(Some([r, c])),
            Some(s) => Err(infer(key, format!("has shape {s:?}, expected 2 dimensions"))),
        }
    };
    let [rows, input_size] = matrix("weight_ih_l0")?.ok_or_else(|| {
        infer(
            "weight_ih_l0",
            "missing (needed to infer the input and hidden sizes)".into(),
        )
    })?;
    let gates = cell.gates();
    if rows == 0 || rows % gates != 0 {
        let reason = format!(
            "has {rows} rows, not a positive multiple of the {gates} gate(s) of a {} (is --cell right?)",
            cell.cli_name()
        );
        return Err(infer("weight_ih_l0", reason));
    }
    let names: Vec<ParamName<'_>> = tensors.keys().filter_map(|k| parse_param_name(k)).collect();
    let mut cfg = RnnConfig::new(cell, input_size, rows / gates);
    cfg.num_layers = names.iter().map(|n| n.layer + 1).max().unwrap_or(1);
    cfg.bidirectional = names.iter().any(|n| n.reverse);
    cfg.bias = names.iter().any(|n| n.kind.starts_with("bias_"));
    if let Some([p, _]) = matrix("weight_hr_l0")? {
        if cell != CellKind::Lstm {
            let reason = format!(
                "projections exist only in nn.LSTM, but --cell is {} (is --cell right?)",
                cell.cli_name()
            );
            return Err(infer("weight_hr_l0", reason));
        }
        cfg.proj_size = p;
    }
    if let Some([_, cols]) = matrix("weight_hh_l0")? {
        if cols != cfg.h_out() {
            let reason = format!(
                "has {cols} columns, but weight_ih_l0 ({rows} rows) implies hidden size {} for a {} with {gates} gate(s) \
                 and so {} columns (is --cell right?)",
                cfg.hidden_size,
                cell.cli_name(),
                cfg.h_out()
            );
            return Err(infer("weight_hh_l0", reason));
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;

    struct Dict(Vec<(String, Vec<usize>, Vec<u8>)>);

    impl Dict {
        fn of(cfg: &RnnConfig, prefix: &str) -> Self {
            let rnn = Rnn::<f32>::zeros(cfg.clone()).unwrap();
            Dict(
                rnn.params()
                    .specs()
                    .iter()
                    .map(|s| (format!("{prefix}{}", s.name), s.shape.clone(), vec![0u8; 4 * s.len()]))
                    .collect(),
            )
        }

        fn views(&self) -> BTreeMap<String, TensorView<'_>> {
            self.0
                .iter()
                .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
                .collect()
        }

        fn import(&self, cell: CellKind, prefix: Option<&str>) -> Result<Imported, ImportError> {
            let opts = ImportOptions {
                cell,
                prefix: prefix.map(String::from),
            };
            import_tensors(Path::new("sd.safetensors"), &self.views(), &opts)
        }
    }

    fn cfg(cell: CellKind, layers: usize, bi: bool, proj: usize, bias: bool) -> RnnConfig {
        let mut c = RnnConfig::new(cell, 5, 6);
        c.num_layers = layers;
        c.bidirectional = bi;
        c.proj_size = proj;
        c.bias = bias;
        c
    }

    #[test]
    fn parses_names() {
        assert_eq!(
            parse_param_name("weight_hh_l12_reverse"),
            Some(ParamName {
                kind: "weight_hh",
                layer: 12,
                reverse: true
            })
        );
        assert_eq!(
            parse_param_name("bias_ih_l0"),
            Some(ParamName {
                kind: "bias_ih",
                layer: 0,
                reverse: false
            })
        );
        for bad in [
            "weight_ih_l",
            "weight_ih_lx",
            "weight_xx_l0",
            "input",
            "weight_ih_l0_rev",
        ] {
            assert_eq!(parse_param_name(bad), None, "{bad}");
        }
        assert_eq!(
            split_prefix("module.gru.weight_ih_l0"),
            Some(("module.gru.", "weight_ih_l0"))
        );
        assert_eq!(split_prefix("weight_ih_l0"), Some(("", "weight_ih_l0")));
    }

    #[test]
    fn infers_every_config_shape() {
        for c in [
            cfg(CellKind::Gru, 1, false, 0, true),
            cfg(CellKind::Gru, 3, true, 0, false),
            cfg(CellKind::Lstm, 2, true, 4, true),
            cfg(CellKind::Lstm, 1, false, 0, true),
            cfg(CellKind::RnnRelu, 2, false, 0, true),
            cfg(CellKind::RnnTanh, 1, true, 0, false),
        ] {
            let got = Dict::of(&c, "").import(c.cell, None).unwrap();
            assert_eq!(got.rnn.config(), &c);
            assert_eq!(got.prefix, "");
        }
    }

    #[test]
    fn strips_a_common_prefix() {
        let c = cfg(CellKind::Gru, 2, true, 0, true);
        let got = Dict::of(&c, "module.gru.").import(CellKind::Gru, None).unwrap();
        assert_eq!(got.prefix, "module.gru.");
        assert_eq!(got.rnn.config(), &c);
    }

    #[test]
    fn keys_outside_the_prefix_need_an_explicit_prefix() {
        let c = cfg(CellKind::Lstm, 1, false, 0, true);
        let mut d = Dict::of(&c, "rnn.");
        d.0.push(("fc.weight".into(), vec![2, 6], vec![0; 48]));
        let err = d.import(CellKind::Lstm, None).unwrap_err();
        assert!(
            matches!(&err, ImportError::OutsidePrefix { keys, .. } if keys == &["fc.weight"]),
            "{err}"
        );
        assert!(err.to_string().contains("--prefix 'rnn.'"), "{err}");
        let got = d.import(CellKind::Lstm, Some("rnn")).unwrap();
        assert_eq!(got.ignored, vec!["fc.weight".to_string()]);
    }

    #[test]
    fn several_prefixes_are_ambiguous() {
        let c = cfg(CellKind::Gru, 1, false, 0, true);
        let mut d = Dict::of(&c, "enc.");
        d.0.extend(Dict::of(&c, "dec.").0);
        let err = d.import(CellKind::Gru, None).unwrap_err();
        assert!(
            matches!(&err, ImportError::AmbiguousPrefix { prefixes, .. } if prefixes == &["dec.", "enc."]),
            "{err}"
        );
        assert_eq!(d.import(CellKind::Gru, Some("dec.")).unwrap().ignored.len(), 4);
    }

    #[test]
    fn wrong_cell_is_explained() {
        let c = cfg(CellKind::Gru, 1, false, 0, true);
        let err = Dict::of(&c, "").import(CellKind::Lstm, None).unwrap_err();
        assert!(
            err.to_string().contains("weight_ih_l0") && err.to_string().contains("--cell"),
            "{err}"
        );
    }

    #[test]
    fn projection_needs_an_lstm() {
        let c = cfg(CellKind::Lstm, 1, false, 4, true);
        let err = Dict::of(&c, "").import(CellKind::Gru, None).unwrap_err();
        assert!(
            matches!(&err, ImportError::Infer { key, .. } if key == "weight_hr_l0"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_cell_with_divisible_rows_is_caught_by_weight_hh() {
        let c = cfg(CellKind::Gru, 1, false, 0, true);
        let msg = Dict::of(&c, "")
            .import(CellKind::RnnTanh, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`weight_hh_l0`: has 6 columns") && msg.contains("--cell"),
            "{msg}"
        );
    }

    #[test]
    fn an_unknown_key_is_reported() {
        let c = cfg(CellKind::Gru, 1, false, 0, true);
        let mut d = Dict::of(&c, "");
        d.0.push(("bias_ih_l0_extra".into(), vec![1], vec![0; 4]));
        let err = d.import(CellKind::Gru, None).unwrap_err();
        assert!(
            matches!(&err, ImportError::Tensor { source: TensorError::Extra(k), .. } if k == &["bias_ih_l0_extra"])
        );
    }

    #[test]
    fn no_rnn_keys() {
        let d = Dict(vec![("fc.weight".into(), vec![1], vec![0; 4])]);
        assert!(matches!(
            d.import(CellKind::Gru, None).unwrap_err(),
            ImportError::NoRnnKeys { .. }
        ));
        let c = cfg(CellKind::Gru, 1, false, 0, true);
        assert!(matches!(
            Dict::of(&c, "").import(CellKind::Gru, Some("x")).unwrap_err(),
            ImportError::NoRnnKeys { .. }
        ));
    }
}
