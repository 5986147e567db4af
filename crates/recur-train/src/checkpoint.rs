//! Checkpoint directories: weights in safetensors plus one JSON manifest, written atomically.
//!
//! ```text
//! CKPT_DIR/
//!   manifest.json          {"format": "recur-checkpoint", "format_version": 1, "kind": …,
//!                           "model": {…}, "training": {…}, "metrics": {…},
//!                           "preprocessing": {…}, "state": {…} | null,
//!                           "files": [{"path", "size", "sha256"}, …]}
//!   weights.safetensors    the model's tensors under `prefix.name` (F32)
//!   optimizer.safetensors  optimizer moments (resumable checkpoints only)
//! ```
//!
//! `model`, `training`, `preprocessing` (scalers, vocabularies) and `state` (trainer position,
//! early-stopping and RNG state) are JSON values owned by the caller; this module only checks
//! that they are there. [`save`] refuses non-finite tensors, writes every file into a hidden
//! sibling directory, fsyncs the files and the directory, renames it into place (moving an
//! existing checkpoint aside first, never replacing anything that is not an empty directory or
//! a recur checkpoint), and fsyncs the parent. A reader sees the old checkpoint or the new
//! one. [`load`] verifies every listed file's size and SHA-256 before parsing, and every
//! tensor's dtype and finiteness.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};
use crate::fsutil::{parent_of, sync_dir, unique_sibling, write_synced, DirGuard};
use crate::params::NamedTensors;

/// `format` in the manifest.
pub const FORMAT: &str = "recur-checkpoint";
/// The manifest version this build writes and reads.
pub const FORMAT_VERSION: u64 = 1;
/// Manifest file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Weights file name.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Optimizer state file name.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Everything a checkpoint holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Model family (`sequence`, `seq2seq`, `charlm`, …); decides how `model` is read.
    pub kind: String,
    /// Model config.
    pub model: Value,
    /// Training config.
    pub training: Value,
    /// Metrics at the time of saving.
    pub metrics: Value,
    /// Preprocessing fitted on the training split (scalers, vocabularies, label names).
    pub preprocessing: Value,
    /// Trainer state for resuming (`null` in inference-only checkpoints).
    pub state: Value,
    /// Model weights.
    pub tensors: NamedTensors,
    /// Optimizer moments (resumable checkpoints).
    pub optimizer: Option<NamedTensors>,
}

#[derive(Serialize, Deserialize)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    format_version: u64,
    kind: String,
    model: Value,
    training: Value,
    metrics: Value,
    preprocessing: Value,
    state: Value,
    files: Vec<FileEntry>,
}

fn ckpt_err(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn check_finite(dir: &Path, what: &str, t: &NamedTensors) -> Result<()> {
    for (name, (shape, data)) in t {
        if shape.iter().product::<usize>() != data.len() {
            return Err(ckpt_err(
                dir,
                format!("{what} tensor `{name}` has {} values for shape {shape:?}", data.len()),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ckpt_err(
                dir,
                format!(
                    "refusing to write {what} tensor `{name}`: non-finite value {} at index {i}",
                    data[i]
                ),
            ));
        }
    }
    Ok(())
}

fn encode_tensors(dir: &Path, t: &NamedTensors) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .iter()
        .map(|(k, (shape, data))| {
            (
                k.clone(),
                shape.clone(),
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(k, shape, b)| {
            let v = TensorView::new(Dtype::F32, shape.clone(), b)
                .map_err(|e| ckpt_err(dir, format!("tensor `{k}`: {e}")))?;
            Ok((k.clone(), v))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, None).map_err(|e| ckpt_err(dir, format!("serializing tensors: {e}")))
}

fn decode_tensors(path: &Path, bytes: &[u8]) -> Result<NamedTensors> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| ckpt_err(path, format!("not a safetensors file: {e}")))?;
    let mut out = NamedTensors::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(ckpt_err(
                path,
                format!("tensor `{name}` has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(ckpt_err(
                path,
                format!(
                    "tensor `{name}` holds a non-finite value ({}) at flat index {i}",
                    data[i]
                ),
            ));
        }
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok(out)
}

/// Whether `dir` holds a manifest whose `format` is a recur checkpoint (its other files may be
/// damaged: this only decides whether the directory is ours to replace).
pub fn is_checkpoint(dir: &Path) -> bool {
    fs::read(dir.join(MANIFEST_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|v| v.get("format").and_then(Value::as_str) == Some(FORMAT))
}

/// Writes `ckpt` to `dir` atomically and durably (see the module docs).
pub fn save(dir: &Path, ckpt: &Checkpoint) -> Result<()> {
    if dir.file_name().is_none() {
        return Err(ckpt_err(dir, "the checkpoint path must name a directory"));
    }
    check_finite(dir, "model", &ckpt.tensors)?;
    if let Some(o) = &ckpt.optimizer {
        check_finite(dir, "optimizer", o)?;
    }
    let mut files: Vec<(&str, Vec<u8>)> = vec![(WEIGHTS_FILE, encode_tensors(dir, &ckpt.tensors)?)];
    if let Some(o) = &ckpt.optimizer {
        files.push((OPTIMIZER_FILE, encode_tensors(dir, o)?));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kind: ckpt.kind.clone(),
        model: ckpt.model.clone(),
        training: ckpt.training.clone(),
        metrics: ckpt.metrics.clone(),
        preprocessing: ckpt.preprocessing.clone(),
        state: ckpt.state.clone(),
        files: files
            .iter()
            .map(|(p, b)| FileEntry {
                path: p.to_string(),
                size: b.len() as u64,
                sha256: sha256_hex(b),
            })
            .collect(),
    };
    let mut mbytes = serde_json::to_vec_pretty(&manifest).map_err(|e| ckpt_err(dir, format!("manifest: {e}")))?;
    mbytes.push(b'\n');
    files.push((MANIFEST_FILE, mbytes));

    let io = |action: &str, p: &Path| {
        let (action, p) = (action.to_string(), p.display().to_string());
        move |e: io::Error| TrainError::Checkpoint {
            path: p,
            reason: format!("cannot {action}: {e}"),
        }
    };
    let parent = parent_of(dir);
    fs::create_dir_all(&parent).map_err(io("create", &parent))?;
    let existing = match fs::symlink_metadata(dir) {
        Ok(m) => {
            let empty = m.is_dir() && fs::read_dir(dir).map_err(io("list", dir))?.next().is_none();
            if !(m.is_dir() && (empty || is_checkpoint(dir))) {
                return Err(ckpt_err(
                    dir,
                    "exists and is not a recur checkpoint; refusing to replace it",
                ));
            }
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io("inspect", dir)(e)),
    };
    let tmp_path = unique_sibling(dir, "tmp");
    let tmp = DirGuard::create(tmp_path.clone()).map_err(io("create", &tmp_path))?;
    for (name, bytes) in &files {
        let p = tmp.path().join(name);
        write_synced(&p, bytes).map_err(io("write", &p))?;
    }
    sync_dir(tmp.path()).map_err(io("sync", tmp.path()))?;
    if existing {
        let old = unique_sibling(dir, "old");
        fs::rename(dir, &old).map_err(io("move aside", dir))?;
        if let Err(e) = fs::rename(tmp.path(), dir) {
            let _ = fs::rename(&old, dir);
            return Err(io("rename into place", dir)(e));
        }
        tmp.disarm();
        sync_dir(&parent).map_err(io("sync", &parent))?;
        fs::remove_dir_all(&old).map_err(io("remove", &old))?;
    } else {
        fs::rename(tmp.path(), dir).map_err(io("rename into place", dir))?;
        tmp.disarm();
    }
    sync_dir(&parent).map_err(io("sync", &parent))
}

/// Loads and verifies a checkpoint directory.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    if !dir.is_dir() {
        return Err(ckpt_err(dir, "not a directory"));
    }
    let mpath = dir.join(MANIFEST_FILE);
    let mbytes = fs::read(&mpath).map_err(|e| ckpt_err(&mpath, format!("cannot read: {e}")))?;
    let raw: Value = serde_json::from_slice(&mbytes).map_err(|e| ckpt_err(&mpath, format!("invalid JSON: {e}")))?;
    match raw.get("format").and_then(Value::as_str) {
        Some(FORMAT) => {}
        other => {
            return Err(ckpt_err(
                &mpath,
                format!("field `format` is {other:?}, expected \"{FORMAT}\""),
            ))
        }
    }
    match raw.get("format_version").and_then(Value::as_u64) {
        Some(FORMAT_VERSION) => {}
        other => {
            return Err(ckpt_err(
                &mpath,
                format!("field `format_version` is {other:?}; this build reads version {FORMAT_VERSION}"),
            ))
        }
    }
    let m: Manifest = serde_json::from_value(raw).map_err(|e| ckpt_err(&mpath, e.to_string()))?;
    let mut blobs = BTreeMap::new();
    for f in &m.files {
        let plain = Path::new(&f.path).file_name().is_some_and(|n| n == f.path.as_str());
        if !plain || f.path == MANIFEST_FILE || blobs.contains_key(&f.path) {
            return Err(ckpt_err(
                &mpath,
                format!("field `files`: bad or duplicate entry `{}`", f.path),
            ));
        }
        let p = dir.join(&f.path);
        let bytes = fs::read(&p).map_err(|e| ckpt_err(&p, format!("cannot read: {e}")))?;
        if bytes.len() as u64 != f.size {
            return Err(ckpt_err(
                &p,
                format!("size {} does not match the manifest's {}", bytes.len(), f.size),
            ));
        }
        if !sha256_hex(&bytes).eq_ignore_ascii_case(&f.sha256) {
            return Err(ckpt_err(
                &p,
                "SHA-256 does not match the manifest (the file is corrupt or was edited)",
            ));
        }
        blobs.insert(f.path.clone(), bytes);
    }
    let weights = blobs
        .get(WEIGHTS_FILE)
        .ok_or_else(|| ckpt_err(&mpath, format!("field `files` does not list {WEIGHTS_FILE}")))?;
    let tensors = decode_tensors(&dir.join(WEIGHTS_FILE), weights)?;
    let optimizer = match blobs.get(OPTIMIZER_FILE) {
        Some(b) => Some(decode_tensors(&dir.join(OPTIMIZER_FILE), b)?),
        None => None,
    };
    Ok(Checkpoint {
        kind: m.kind,
        model: m.model,
        training: m.training,
        metrics: m.metrics,
        preprocessing: m.preprocessing,
        state: m.state,
        tensors,
        optimizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Checkpoint {
        let mut t = NamedTensors::new();
        t.insert("head.weight".into(), (vec![2, 2], vec![1.0, -2.5, 0.125, 3.0]));
        t.insert("head.bias".into(), (vec![2], vec![0.0, 1e-30]));
        Checkpoint {
            kind: "sequence".into(),
            model: json!({"hidden": 4}),
            training: json!({"epochs": 3}),
            metrics: json!({"val": {"auc": 0.5}}),
            preprocessing: json!({"scaler": {"mean": [0.1f32]}}),
            state: Value::Null,
            tensors: t.clone(),
            optimizer: Some(t),
        }
    }

    #[test]
    fn round_trip_and_replace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ckpt");
        let c = sample();
        save(&dir, &c).unwrap();
        assert_eq!(load(&dir).unwrap(), c);
        let mut c2 = c.clone();
        c2.optimizer = None;
        save(&dir, &c2).unwrap();
        assert_eq!(load(&dir).unwrap(), c2);
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporaries left: {names:?}");
    }

    #[test]
    fn refuses_non_finite_and_foreign_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = sample();
        c.tensors.get_mut("head.bias").unwrap().1[1] = f32::NAN;
        let e = save(&tmp.path().join("x"), &c).unwrap_err().to_string();
        assert!(e.contains("non-finite") && e.contains("head.bias"), "{e}");
        assert!(!tmp.path().join("x").exists());
        let foreign = tmp.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        fs::write(foreign.join("notes.txt"), "mine").unwrap();
        assert!(save(&foreign, &sample()).unwrap_err().to_string().contains("refusing"));
        assert_eq!(fs::read_to_string(foreign.join("notes.txt")).unwrap(), "mine");
    }

    #[test]
    fn detects_corruption() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ckpt");
        save(&dir, &sample()).unwrap();
        let w = dir.join(WEIGHTS_FILE);
        let mut bytes = fs::read(&w).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        fs::write(&w, &bytes).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("SHA-256") && e.contains(WEIGHTS_FILE), "{e}");
        bytes.truncate(10);
        fs::write(&w, &bytes).unwrap();
        assert!(load(&dir).unwrap_err().to_string().contains("size"));
    }
}
