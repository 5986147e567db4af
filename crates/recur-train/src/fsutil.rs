//! Durable file-system steps shared by the model directory and the `.npy` writers: write and
//! fsync a file, fsync a directory, name a unique hidden sibling, replace a file atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Creates (or truncates) `path`, writes `bytes` and fsyncs the file.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// The directory that holds `path` (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A path next to `path` that does not exist yet: `.<name>.<tag>-<pid>-<nanos>-<n>`.
pub fn unique_sibling(path: &Path, tag: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    parent_of(path).join(format!(".{name}.{tag}-{}-{nanos}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a synced temporary sibling is renamed over `path`,
/// then the parent directory is synced. The temporary file is removed on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = unique_sibling(path, "tmp");
    let result = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(&parent_of(path))
}

/// Removes a directory tree when dropped, unless [`DirGuard::disarm`] was called.
pub struct DirGuard {
    path: Option<PathBuf>,
}

impl DirGuard {
    /// Creates the directory `path` (which must not exist) and guards it.
    pub fn create(path: PathBuf) -> io::Result<Self> {
        fs::create_dir(&path)?;
        Ok(DirGuard { path: Some(path) })
    }

    /// The guarded directory.
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("guard is armed")
    }

    /// Keeps the directory (it has been renamed into place).
    pub fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}
