//! Blob stores by URL, through `object_store`: `file:///dir` (the embedded default) and
//! `memory://`.

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use std::path::Path;
use std::sync::Arc;

/// Why a blob store URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported blob store URL '{0}': use file:///absolute/dir or memory://")]
    Unsupported(String),
    #[error("cannot use the blob directory {path}: {reason}")]
    Directory { path: String, reason: String },
}

/// Opens the blob store that `url` names; a `file://` directory is created if missing.
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>, Error> {
    if url == "memory://" || url == "memory:///" {
        return Ok(Arc::new(InMemory::new()));
    }
    let Some(dir) = url.strip_prefix("file://") else {
        return Err(Error::Unsupported(url.to_string()));
    };
    open_dir(Path::new(dir))
}

/// A blob store in a local directory.
pub fn open_dir(dir: &Path) -> Result<Arc<dyn ObjectStore>, Error> {
    let failed = |reason: String| Error::Directory {
        path: dir.display().to_string(),
        reason,
    };
    if !dir.is_absolute() {
        return Err(failed("the path must be absolute".to_string()));
    }
    std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    let store = LocalFileSystem::new_with_prefix(dir).map_err(|e| failed(e.to_string()))?;
    Ok(Arc::new(store))
}
