//! The recur model directory: a model as three files that are written atomically and verified
//! on load.
//!
//! ```text
//! MODEL_DIR/
//!   config.json          {"format": "recur-model", "format_version": 1, "kind": "rnn",
//!                         "dtype": "f32", "rnn": <RnnConfig>}
//!   weights.safetensors  every parameter under its PyTorch name (`weight_ih_l0`, …), F32
//!   manifest.json        {"files": [{"path": "config.json", "size": 123, "sha256": "<hex>"}, …]}
//! ```
//!
//! [`save`] writes the files into a hidden sibling directory, fsyncs each file and the
//! directory, renames it into place (replacing an existing recur model directory, never any
//! other non-empty directory), and fsyncs the parent. A reader therefore sees the old model or
//! the new one, never a mix. [`load`] checks the manifest (presence, size and SHA-256 of every
//! listed file) before parsing anything, then the config, then every tensor's name, dtype,
//! shape and finiteness. Files not listed in the manifest are ignored; listed files other
//! than the config and the weights are verified and otherwise ignored, so later format
//! versions can add files.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use recur_nn::{NnError, Rnn, RnnConfig};
use safetensors::{SafeTensorError, SafeTensors};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::tensors::{fill_params, serialize_params, views_by_name, DtypePolicy, TensorError};
use recur_train::fsutil::{parent_of, sync_dir, unique_sibling, write_synced, DirGuard};

/// File name of the configuration.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the parameters.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Value of `format` in `config.json`.
pub const FORMAT: &str = "recur-model";
/// The `format_version` this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;

/// Errors reading or writing a model directory; each names the file (and field or tensor).
#[derive(Debug, Error)]
pub enum ModelDirError {
    /// An I/O operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done (`read`, `write`, `rename`, …).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The model directory does not exist or is not a directory.
    #[error("{} is not a model directory (missing or not a directory)", .0.display())]
    NotADirectory(PathBuf),
    /// A file listed in the manifest is absent.
    #[error("{}: listed in {MANIFEST_FILE} but missing", .0.display())]
    MissingFile(PathBuf),
    /// A file's size differs from the manifest (e.g. truncated).
    #[error("{}: {actual} bytes, but {MANIFEST_FILE} says {expected} (truncated or modified?)", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Size in the manifest.
        expected: u64,
        /// Size on disk.
        actual: u64,
    },
    /// A file's SHA-256 differs from the manifest.
    #[error("{}: sha256 {actual}, but {MANIFEST_FILE} says {expected} (corrupted or modified)", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Hex digest in the manifest.
        expected: String,
        /// Hex digest of the file.
        actual: String,
    },
    /// A JSON file is not valid JSON or does not have the expected structure.
    #[error("{}: invalid JSON", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's error (names the field where it can).
        #[source]
        source: serde_json::Error,
    },
    /// A field of `config.json` or `manifest.json` has an unusable value.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// The field, dotted for nested ones (`rnn.hidden_size`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The weights file is not a valid safetensors file.
    #[error("{}: not a valid safetensors file", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: SafeTensorError,
    },
    /// The weights do not match the config.
    #[error("{}: invalid weights", path.display())]
    Weights {
        /// The file.
        path: PathBuf,
        /// Which tensor is wrong and how.
        #[source]
        source: TensorError,
    },
    /// The destination path has no final component (`.`, `..`, `/`).
    #[error("{}: the model directory must be given by name (not `.`, `..` or `/`)", .0.display())]
    Unnamed(PathBuf),
    /// The destination exists and is neither empty nor a recur model directory.
    #[error("refusing to overwrite {}: it exists and is not an empty directory or a recur model directory", .0.display())]
    NotAModelDir(PathBuf),
}

type Result<T, E = ModelDirError> = std::result::Result<T, E>;

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ModelDirError + 'a {
    move |source| ModelDirError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize)]
struct ConfigFile<'a> {
    format: &'static str,
    format_version: u64,
    kind: &'static str,
    dtype: &'static str,
    rnn: &'a RnnConfig,
}

/// `manifest.json`: every file of the directory (except the manifest) with size and digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    files: Vec<FileEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn manifest_for(files: &[(&str, &[u8])]) -> Manifest {
    let files = files
        .iter()
        .map(|(name, bytes)| FileEntry {
            path: name.to_string(),
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
        })
        .collect();
    Manifest { files }
}

/// The bytes of each file of a model directory, manifest last.
fn encode(rnn: &Rnn<f32>) -> Result<Vec<(&'static str, Vec<u8>)>, SafeTensorError> {
    let cfg = ConfigFile {
        format: FORMAT,
        format_version: FORMAT_VERSION,
        kind: "rnn",
        dtype: "f32",
        rnn: rnn.config(),
    };
    let mut config = serde_json::to_vec_pretty(&cfg).expect("config serializes");
    config.push(b'\n');
    let meta = [("format".to_string(), FORMAT.to_string())].into_iter().collect();
    let weights = serialize_params(rnn.params(), Some(meta))?;
    let mut manifest = serde_json::to_vec_pretty(&manifest_for(&[(CONFIG_FILE, &config), (WEIGHTS_FILE, &weights)]))
        .expect("serializes");
    manifest.push(b'\n');
    Ok(vec![
        (CONFIG_FILE, config),
        (WEIGHTS_FILE, weights),
        (MANIFEST_FILE, manifest),
    ])
}

/// Writes `rnn` as a model directory at `dir`, atomically and durably (see the module docs).
/// Creates missing parent directories. Replaces `dir` if it is an empty directory or a recur
/// model directory; refuses anything else.
pub fn save(dir: &Path, rnn: &Rnn<f32>) -> Result<()> {
    if dir.file_name().is_none() {
        return Err(ModelDirError::Unnamed(dir.to_path_buf()));
    }
    let files = encode(rnn).map_err(|source| ModelDirError::Safetensors {
        path: dir.join(WEIGHTS_FILE),
        source,
    })?;
    let parent = parent_of(dir);
    fs::create_dir_all(&parent).map_err(io_err("create", &parent))?;
    let existing = check_destination(dir)?;

    let tmp_path = unique_sibling(dir, "tmp");
    let tmp = DirGuard::create(tmp_path.clone()).map_err(io_err("create", &tmp_path))?;
    for (name, bytes) in &files {
        let p = tmp.path().join(name);
        write_synced(&p, bytes).map_err(io_err("write", &p))?;
    }
    sync_dir(tmp.path()).map_err(io_err("sync", tmp.path()))?;

    if existing {
        let old = unique_sibling(dir, "old");
        fs::rename(dir, &old).map_err(io_err("move aside", dir))?;
        if let Err(e) = fs::rename(tmp.path(), dir) {
            let _ = fs::rename(&old, dir);
            return Err(io_err("rename into place", dir)(e));
        }
        tmp.disarm();
        sync_dir(&parent).map_err(io_err("sync", &parent))?;
        fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
    } else {
        fs::rename(tmp.path(), dir).map_err(io_err("rename into place", dir))?;
        tmp.disarm();
    }
    sync_dir(&parent).map_err(io_err("sync", &parent))
}

/// Whether `dir` exists and may be replaced; an error if it exists and may not.
fn check_destination(dir: &Path) -> Result<bool> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_err("inspect", dir)(e)),
    };
    if !meta.is_dir() {
        return Err(ModelDirError::NotAModelDir(dir.to_path_buf()));
    }
    let empty = fs::read_dir(dir).map_err(io_err("list", dir))?.next().is_none();
    if empty || is_model_dir(dir) {
        Ok(true)
    } else {
        Err(ModelDirError::NotAModelDir(dir.to_path_buf()))
    }
}

/// Whether `dir` holds a `config.json` whose `format` is `recur-model` (its other files may be
/// damaged: this only decides whether the directory is ours to replace).
pub fn is_model_dir(dir: &Path) -> bool {
    let Ok(bytes) = fs::read(dir.join(CONFIG_FILE)) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return false;
    };
    v.get("format").and_then(Value::as_str) == Some(FORMAT)
}

/// Loads and verifies a model directory (see the module docs for the checks).
pub fn load(dir: &Path) -> Result<Rnn<f32>> {
    if !dir.is_dir() {
        return Err(ModelDirError::NotADirectory(dir.to_path_buf()));
    }
    let mut files = read_verified(dir)?;
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    let cfg = parse_config(
        &config_path,
        &files.remove(CONFIG_FILE).expect("checked by read_verified"),
    )?;
    let mut rnn = Rnn::<f32>::zeros(cfg).map_err(|e| rnn_field_error(&config_path, e))?;
    let weights = files.remove(WEIGHTS_FILE).expect("checked by read_verified");
    let st = SafeTensors::deserialize(&weights).map_err(|source| ModelDirError::Safetensors {
        path: weights_path.clone(),
        source,
    })?;
    fill_params(rnn.params_mut(), &views_by_name(&st), DtypePolicy::F32Only).map_err(|source| {
        ModelDirError::Weights {
            path: weights_path,
            source,
        }
    })?;
    Ok(rnn)
}

/// Reads every file listed in the manifest, checking size and digest; the manifest must list
/// the config and the weights.
fn read_verified(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let bytes = read(&manifest_path)?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|source| ModelDirError::Json {
        path: manifest_path.clone(),
        source,
    })?;
    let field = |reason: String| ModelDirError::Field {
        path: manifest_path.clone(),
        field: "files".into(),
        reason,
    };
    for required in [CONFIG_FILE, WEIGHTS_FILE] {
        if !manifest.files.iter().any(|f| f.path == required) {
            return Err(field(format!("does not list {required}")));
        }
    }
    let mut out = BTreeMap::new();
    for entry in &manifest.files {
        let plain = Path::new(&entry.path)
            .file_name()
            .is_some_and(|n| n == entry.path.as_str());
        if !plain || entry.path == MANIFEST_FILE || out.contains_key(&entry.path) {
            return Err(field(format!("bad or duplicate entry `{}`", entry.path)));
        }
        let path = dir.join(&entry.path);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ModelDirError::MissingFile(path)),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        if bytes.len() as u64 != entry.size {
            return Err(ModelDirError::SizeMismatch {
                path,
                expected: entry.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(&entry.sha256) {
            return Err(ModelDirError::ChecksumMismatch {
                path,
                expected: entry.sha256.clone(),
                actual,
            });
        }
        out.insert(entry.path.clone(), bytes);
    }
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(io_err("read", path))
}

/// Parses `config.json`; every error names the field.
fn parse_config(path: &Path, bytes: &[u8]) -> Result<RnnConfig> {
    let field = |field: &str, reason: String| ModelDirError::Field {
        path: path.into(),
        field: field.into(),
        reason,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|source| ModelDirError::Json {
        path: path.into(),
        source,
    })?;
    let obj = v
        .as_object()
        .ok_or_else(|| field("(top level)", "must be a JSON object".into()))?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["format", "format_version", "kind", "dtype", "rnn"].contains(&k.as_str()))
    {
        return Err(field(k, "unknown field".into()));
    }
    let string = |name: &str, want: &str| match obj.get(name) {
        None => Err(field(name, "missing".into())),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(other) => Err(field(name, format!("is {other}, expected \"{want}\""))),
    };
    string("format", FORMAT)?;
    match obj.get("format_version") {
        None => return Err(field("format_version", "missing".into())),
        Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(field(
                "format_version",
                format!("unsupported version {v}; this build of recur reads version {FORMAT_VERSION}"),
            ))
        }
    }
    string("kind", "rnn")?;
    string("dtype", "f32")?;
    let rnn = obj.get("rnn").ok_or_else(|| field("rnn", "missing".into()))?;
    let cfg: RnnConfig = serde_json::from_value(rnn.clone()).map_err(|e| field("rnn", e.to_string()))?;
    cfg.validate().map_err(|e| rnn_field_error(path, e))?;
    Ok(cfg)
}

fn rnn_field_error(path: &Path, e: NnError) -> ModelDirError {
    let (field, reason) = match e {
        NnError::Config { field, reason } => (format!("rnn.{field}"), reason),
        other => ("rnn".to_string(), other.to_string()),
    };
    ModelDirError::Field {
        path: path.into(),
        field,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_nn::CellKind;
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;

    fn model() -> Rnn<f32> {
        let mut cfg = RnnConfig::new(CellKind::Lstm, 3, 4);
        cfg.num_layers = 2;
        cfg.bidirectional = true;
        cfg.proj_size = 2;
        let mut rnn = Rnn::<f32>::zeros(cfg).unwrap();
        for (i, v) in rnn.params_mut().as_mut_slice().iter_mut().enumerate() {
            *v = (i as f32 * 0.37).sin();
        }
        rnn
    }

    fn saved() -> (tempfile::TempDir, PathBuf, Rnn<f32>) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let rnn = model();
        save(&dir, &rnn).unwrap();
        (tmp, dir, rnn)
    }

    /// Replaces the weights with the given tensors and rewrites the manifest to match, so the
    /// tensor checks (not the checksum) are exercised.
    fn replace_weights(dir: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
        let bytes: Vec<Vec<u8>> = tensors
            .iter()
            .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let views: Vec<_> = tensors
            .iter()
            .zip(&bytes)
            .map(|((n, s, _), b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
            .collect();
        let weights = safetensors::serialize(views, None).unwrap();
        write_with_manifest(dir, WEIGHTS_FILE, &weights);
    }

    fn write_with_manifest(dir: &Path, name: &str, bytes: &[u8]) {
        fs::write(dir.join(name), bytes).unwrap();
        let config = fs::read(dir.join(CONFIG_FILE)).unwrap();
        let weights = fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let m = manifest_for(&[(CONFIG_FILE, &config), (WEIGHTS_FILE, &weights)]);
        fs::write(dir.join(MANIFEST_FILE), serde_json::to_vec(&m).unwrap()).unwrap();
    }

    fn tensors_of(rnn: &Rnn<f32>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let p = rnn.params();
        p.specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.clone(), p.get(&s.name).unwrap().to_vec()))
            .collect()
    }

    fn load_err(dir: &Path) -> String {
        let e = load(dir).unwrap_err();
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg += &format!(": {s}");
            src = s.source();
        }
        msg
    }

    #[test]
    fn round_trip() {
        let (_tmp, dir, rnn) = saved();
        let back = load(&dir).unwrap();
        assert_eq!(back.config(), rnn.config());
        assert_eq!(back.params(), rnn.params());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let cfg: Value = serde_json::from_slice(&fs::read(dir.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(cfg["format"], "recur-model");
        assert_eq!(cfg["format_version"], 1);
        assert_eq!(cfg["rnn"]["cell"], "lstm");
    }

    #[test]
    fn save_replaces_an_existing_model_dir_and_leaves_no_temporaries() {
        let (tmp, dir, _) = saved();
        let mut other = Rnn::<f32>::zeros(RnnConfig::new(CellKind::Gru, 2, 3)).unwrap();
        other.params_mut().as_mut_slice()[0] = 1.5;
        save(&dir, &other).unwrap();
        assert_eq!(load(&dir).unwrap().params(), other.params());
        let entries: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, vec![std::ffi::OsString::from("model")]);
    }

    #[test]
    fn save_fills_an_empty_directory() {
        let tmp = tempfile::tempdir().unwrap();
        save(tmp.path(), &model()).unwrap();
        load(tmp.path()).unwrap();
    }

    #[test]
    fn refuses_to_overwrite_a_foreign_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("precious");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("thesis.tex"), b"do not delete").unwrap();
        let err = save(&dir, &model()).unwrap_err();
        assert!(matches!(err, ModelDirError::NotAModelDir(_)), "{err}");
        assert_eq!(fs::read(dir.join("thesis.tex")).unwrap(), b"do not delete");
        assert!(matches!(
            save(Path::new("."), &model()).unwrap_err(),
            ModelDirError::Unnamed(_)
        ));
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(matches!(
            save(&file, &model()).unwrap_err(),
            ModelDirError::NotAModelDir(_)
        ));
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            2,
            "no temporaries left behind"
        );
    }

    #[test]
    fn corrupted_checksum() {
        let (_tmp, dir, _) = saved();
        let p = dir.join(WEIGHTS_FILE);
        let mut bytes = fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&p, &bytes).unwrap();
        let err = load(&dir).unwrap_err();
        assert!(
            matches!(err, ModelDirError::ChecksumMismatch { ref path, .. } if path == &p),
            "{err}"
        );
        assert!(err.to_string().contains(WEIGHTS_FILE));
    }

    #[test]
    fn truncated_weights_file() {
        let (_tmp, dir, _) = saved();
        let p = dir.join(WEIGHTS_FILE);
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
        let err = load(&dir).unwrap_err();
        assert!(
            matches!(err, ModelDirError::SizeMismatch { ref path, .. } if path == &p),
            "{err}"
        );
        // With a manifest that agrees, the safetensors parser catches it.
        write_with_manifest(&dir, WEIGHTS_FILE, &bytes[..bytes.len() - 10]);
        let err = load(&dir).unwrap_err();
        assert!(
            matches!(err, ModelDirError::Safetensors { ref path, .. } if path == &p),
            "{err}"
        );
    }

    #[test]
    fn missing_file() {
        let (_tmp, dir, _) = saved();
        fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
        assert!(matches!(load(&dir).unwrap_err(), ModelDirError::MissingFile(p) if p.ends_with(CONFIG_FILE)));
    }

    #[test]
    fn missing_key() {
        let (_tmp, dir, rnn) = saved();
        let mut t = tensors_of(&rnn);
        t.retain(|(n, _, _)| n != "bias_hh_l1_reverse");
        replace_weights(&dir, &t);
        let msg = load_err(&dir);
        assert!(msg.contains("missing") && msg.contains("`bias_hh_l1_reverse`"), "{msg}");
    }

    #[test]
    fn extra_key() {
        let (_tmp, dir, rnn) = saved();
        let mut t = tensors_of(&rnn);
        t.push(("weight_ih_l2".into(), vec![1], vec![0.0]));
        replace_weights(&dir, &t);
        let msg = load_err(&dir);
        assert!(msg.contains("`weight_ih_l2`"), "{msg}");
    }

    #[test]
    fn wrong_shape() {
        let (_tmp, dir, rnn) = saved();
        let mut t = tensors_of(&rnn);
        let w = t.iter_mut().find(|(n, _, _)| n == "weight_hr_l0").unwrap();
        w.1 = vec![w.1[1], w.1[0]];
        replace_weights(&dir, &t);
        let msg = load_err(&dir);
        assert!(
            msg.contains("`weight_hr_l0` has shape [4, 2], expected [2, 4]"),
            "{msg}"
        );
        assert!(msg.contains(WEIGHTS_FILE), "{msg}");
    }

    #[test]
    fn nan_weight() {
        let (_tmp, dir, rnn) = saved();
        let mut t = tensors_of(&rnn);
        t.iter_mut().find(|(n, _, _)| n == "weight_hh_l1").unwrap().2[3] = f32::NAN;
        replace_weights(&dir, &t);
        let err = load(&dir).unwrap_err();
        assert!(
            matches!(&err, ModelDirError::Weights { source: TensorError::NonFinite { key, index: 3, .. }, .. } if key == "weight_hh_l1"),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_format_version_and_bad_fields() {
        let (_tmp, dir, _) = saved();
        let original: Value = serde_json::from_slice(&fs::read(dir.join(CONFIG_FILE)).unwrap()).unwrap();
        let cases: [(&str, Value, &str); 4] = [
            (
                "/format_version",
                Value::from(2),
                "field `format_version`: unsupported version 2",
            ),
            ("/dtype", Value::from("f16"), "field `dtype`"),
            ("/rnn/hidden_size", Value::from(0), "field `rnn.hidden_size`"),
            ("/rnn/typo", Value::from(1), "unknown field `typo`"),
        ];
        for (pointer, value, expected) in cases {
            let mut v = original.clone();
            match v.pointer_mut(pointer) {
                Some(slot) => *slot = value,
                None => {
                    v["rnn"].as_object_mut().unwrap().insert("typo".into(), value);
                }
            }
            write_with_manifest(&dir, CONFIG_FILE, &serde_json::to_vec(&v).unwrap());
            let msg = load_err(&dir);
            assert!(msg.contains(expected) && msg.contains(CONFIG_FILE), "{pointer}: {msg}");
        }
    }
}
