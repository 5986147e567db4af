//! Running a model on arrays stored as `.npy` files (what `recur run` does).
//!
//! Inputs (C or Fortran order; shapes checked against the model):
//!
//! | file | dtype | shape |
//! |---|---|---|
//! | input | float32 | `[batch, time, input_size]` |
//! | lengths (optional) | int64 or int32 | `[batch]`, each in `1..=time`; absent = all `time` |
//! | h0 (optional) | float32 | `[layers·directions, batch, H_out]` |
//! | c0 (optional, LSTM only) | float32 | `[layers·directions, batch, hidden_size]` |
//!
//! Outputs, each written atomically (temporary sibling, fsync, rename): `output.npy`
//! `[batch, time, directions·H_out]` (zero at padded steps), `h_n.npy`
//! `[layers·directions, batch, H_out]`, and for LSTMs `c_n.npy`
//! `[layers·directions, batch, hidden_size]`. For other cells a `c_n.npy` left in the output
//! directory by an earlier run is removed, so the directory never mixes two runs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadableElement, WriteNpyExt};
use recur_nn::{NnError, Rnn, RnnConfig, RnnOutput, SeqBatch, State};
use thiserror::Error;

use recur_train::fsutil::write_atomic;

/// File name of the output sequence.
pub const OUTPUT_FILE: &str = "output.npy";
/// File name of the final hidden state.
pub const H_N_FILE: &str = "h_n.npy";
/// File name of the final cell state (LSTM).
pub const C_N_FILE: &str = "c_n.npy";

/// Errors reading inputs, running, or writing outputs; each names the file.
#[derive(Debug, Error)]
pub enum RunError {
    /// A file could not be read or written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file is not a readable `.npy` file.
    #[error("{}: not a valid .npy file", path.display())]
    Npy {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: ReadNpyError,
    },
    /// An array has the wrong element type.
    #[error("{}: {what} must be {expected}, found {found}", path.display())]
    Dtype {
        /// The file.
        path: PathBuf,
        /// Which input (`input`, `lengths`, `h0`, `c0`).
        what: &'static str,
        /// Accepted dtypes.
        expected: &'static str,
        /// The file's dtype.
        found: String,
    },
    /// An array has the wrong shape.
    #[error("{}: {what} has shape {actual:?}, expected {expected}", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Which input.
        what: &'static str,
        /// The expected shape, with the meaning of each dimension.
        expected: String,
        /// The file's shape.
        actual: Vec<usize>,
    },
    /// A value is out of range.
    #[error("{}: {reason}", path.display())]
    Value {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The engine rejected the batch.
    #[error("forward pass failed")]
    Model(#[source] NnError),
}

type Result<T, E = RunError> = std::result::Result<T, E>;

/// Paths of the input arrays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputFiles {
    /// `[batch, time, input_size]` float32.
    pub input: PathBuf,
    /// `[batch]` int64/int32.
    pub lengths: Option<PathBuf>,
    /// `[layers·directions, batch, H_out]` float32.
    pub h0: Option<PathBuf>,
    /// `[layers·directions, batch, hidden_size]` float32 (LSTM only).
    pub c0: Option<PathBuf>,
}

/// Validated input arrays, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs {
    /// `[batch, time, input_size]`.
    pub x: Vec<f32>,
    /// Sequences.
    pub batch: usize,
    /// Padded length.
    pub time: usize,
    /// Features per step.
    pub features: usize,
    /// Per-sequence lengths, each in `1..=time`.
    pub lengths: Option<Vec<usize>>,
    /// Initial hidden state.
    pub h0: Option<Vec<f32>>,
    /// Initial cell state.
    pub c0: Option<Vec<f32>>,
}

impl Inputs {
    /// Reads and checks every input against `cfg` (see the module docs).
    pub fn load(cfg: &RnnConfig, files: &InputFiles) -> Result<Self> {
        let x = read_array::<f32>(&files.input, "input", "float32")?;
        let &[batch, time, features] = x.shape() else {
            return Err(shape_err(
                &files.input,
                "input",
                format!("[batch, time, {}]", cfg.input_size),
                x.shape(),
            ));
        };
        if features != cfg.input_size || batch == 0 || time == 0 {
            let expected = format!("[batch, time, {}] with batch ≥ 1 and time ≥ 1", cfg.input_size);
            return Err(shape_err(&files.input, "input", expected, x.shape()));
        }
        let lengths = files
            .lengths
            .as_deref()
            .map(|p| read_lengths(p, batch, time))
            .transpose()?;
        let ld = cfg.num_layers * cfg.directions();
        let state = |path: &Path, what: &'static str, width: usize, name: &str| -> Result<Vec<f32>> {
            let a = read_array::<f32>(path, what, "float32")?;
            if a.shape() != [ld, batch, width] {
                let expected = format!("[{ld}, {batch}, {width}] (layers·directions, batch, {name})");
                return Err(shape_err(path, what, expected, a.shape()));
            }
            Ok(a.iter().copied().collect())
        };
        let h0 = files
            .h0
            .as_deref()
            .map(|p| state(p, "h0", cfg.h_out(), "H_out"))
            .transpose()?;
        let c0 = match files.c0.as_deref() {
            Some(p) if !cfg.has_cell_state() => {
                let reason = format!(
                    "c0 is only accepted by LSTM models, and this model is a {}",
                    cfg.cell.cli_name()
                );
                return Err(RunError::Value { path: p.into(), reason });
            }
            Some(p) => Some(state(p, "c0", cfg.hidden_size, "hidden_size")?),
            None => None,
        };
        Ok(Inputs {
            x: x.iter().copied().collect(),
            batch,
            time,
            features,
            lengths,
            h0,
            c0,
        })
    }

    /// The batch as the engine takes it.
    pub fn seq_batch(&self) -> SeqBatch<'_, f32> {
        let b = SeqBatch::batch_first(&self.x, self.batch, self.time, self.features);
        match &self.lengths {
            Some(l) => b.with_lengths(l),
            None => b,
        }
    }

    /// The initial state as the engine takes it.
    pub fn state(&self) -> State<'_, f32> {
        State {
            h0: self.h0.as_deref(),
            c0: self.c0.as_deref(),
        }
    }

    /// Runs `rnn` on these inputs.
    pub fn forward(&self, rnn: &Rnn<f32>) -> Result<RnnOutput<f32>> {
        rnn.forward(&self.seq_batch(), &self.state()).map_err(RunError::Model)
    }
}

fn shape_err(path: &Path, what: &'static str, expected: String, actual: &[usize]) -> RunError {
    RunError::Shape {
        path: path.into(),
        what,
        expected,
        actual: actual.to_vec(),
    }
}

/// Reads an array of element type `T`, turning a dtype mismatch into [`RunError::Dtype`].
fn read_array<T: ReadableElement>(path: &Path, what: &'static str, expected: &'static str) -> Result<ArrayD<T>> {
    let file = fs::File::open(path).map_err(|source| RunError::Io {
        action: "open",
        path: path.into(),
        source,
    })?;
    ndarray_npy::ReadNpyExt::read_npy(io::BufReader::new(file)).map_err(|e| match e {
        ReadNpyError::WrongDescriptor(d) => RunError::Dtype {
            path: path.into(),
            what,
            expected,
            found: describe_descr(&d.to_string()),
        },
        ReadNpyError::Io(source) => RunError::Io {
            action: "read",
            path: path.into(),
            source,
        },
        source => RunError::Npy {
            path: path.into(),
            source,
        },
    })
}

/// `'<f8'` → `float64 ('<f8')`.
fn describe_descr(descr: &str) -> String {
    let d = descr.trim_matches(|c| c == '\'' || c == '"');
    let body = d.trim_start_matches(['<', '>', '=', '|']);
    let name = match (body.get(..1), body.get(1..).and_then(|n| n.parse::<usize>().ok())) {
        (Some("f"), Some(n)) => format!("float{}", 8 * n),
        (Some("i"), Some(n)) => format!("int{}", 8 * n),
        (Some("u"), Some(n)) => format!("uint{}", 8 * n),
        (Some("b"), Some(1)) => "bool".to_string(),
        (Some("c"), Some(n)) => format!("complex{}", 8 * n),
        _ => return format!("dtype {descr}"),
    };
    format!("{name} ({descr})")
}

/// Reads lengths as int64, or int32 when the file holds that, and checks the range.
fn read_lengths(path: &Path, batch: usize, time: usize) -> Result<Vec<usize>> {
    const EXPECTED: &str = "int64 or int32";
    let values: Vec<i64> = match read_array::<i64>(path, "lengths", EXPECTED) {
        Ok(a) => check_1d(path, a, batch)?,
        Err(RunError::Dtype { .. }) => check_1d(path, read_array::<i32>(path, "lengths", EXPECTED)?, batch)?
            .into_iter()
            .map(i64::from)
            .collect(),
        Err(e) => return Err(e),
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| match usize::try_from(v) {
            Ok(u) if (1..=time).contains(&u) => Ok(u),
            _ => Err(RunError::Value {
                path: path.into(),
                reason: format!("lengths[{i}] = {v} is outside 1..={time} (time steps of the input)"),
            }),
        })
        .collect()
}

fn check_1d<T: Copy>(path: &Path, a: ArrayD<T>, batch: usize) -> Result<Vec<T>> {
    if a.shape() != [batch] {
        return Err(shape_err(path, "lengths", format!("[{batch}] (batch)"), a.shape()));
    }
    Ok(a.iter().copied().collect())
}

/// Writes `out` into `dir` (created if needed) and returns the paths written.
pub fn write_outputs(dir: &Path, cfg: &RnnConfig, inputs: &Inputs, out: &RnnOutput<f32>) -> Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(|source| RunError::Io {
        action: "create",
        path: dir.into(),
        source,
    })?;
    let ld = cfg.num_layers * cfg.directions();
    let (b, t) = (inputs.batch, inputs.time);
    let mut arrays = vec![
        (OUTPUT_FILE, vec![b, t, cfg.directions() * cfg.h_out()], &out.output),
        (H_N_FILE, vec![ld, b, cfg.h_out()], &out.h_n),
    ];
    if let Some(c_n) = &out.c_n {
        arrays.push((C_N_FILE, vec![ld, b, cfg.hidden_size], c_n));
    }
    let mut written = Vec::new();
    for (name, shape, data) in arrays {
        let path = dir.join(name);
        write_npy_atomic(&path, shape, data)?;
        written.push(path);
    }
    if out.c_n.is_none() {
        let stale = dir.join(C_N_FILE);
        match fs::remove_file(&stale) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(RunError::Io {
                    action: "remove stale",
                    path: stale,
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(written)
}

/// Writes a float32 array as `.npy`, atomically.
///
/// # Panics
/// When `data.len()` is not the product of `shape` (the engine's output contract).
pub fn write_npy_atomic(path: &Path, shape: Vec<usize>, data: &[f32]) -> Result<()> {
    let a = ArrayD::from_shape_vec(IxDyn(&shape), data.to_vec()).expect("engine output matches its documented shape");
    let mut bytes = Vec::new();
    a.write_npy(&mut bytes).expect("writing to memory cannot fail");
    write_atomic(path, &bytes).map_err(|source| RunError::Io {
        action: "write",
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_descriptors() {
        assert_eq!(describe_descr("'<f8'"), "float64 ('<f8')");
        assert_eq!(describe_descr("'|b1'"), "bool ('|b1')");
        assert_eq!(describe_descr("'<i4'"), "int32 ('<i4')");
        assert_eq!(describe_descr("[('a', '<f4')]"), "dtype [('a', '<f4')]");
    }
}
