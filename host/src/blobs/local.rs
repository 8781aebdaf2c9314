//! The `file://` fast path: a file is copied by the kernel (`copy_file_range`, through
//! `std::io::copy`) into a temporary file while another thread hashes it, then fsynced,
//! renamed over the blob and its directory fsynced, so that a completed copy survives a
//! power loss. The SHA-256 goes in a sidecar under `<root>/.weft-meta/`, which the
//! directory has no other place for; it is written only once the blob is
//! durable and is not itself synced, so a power loss can lose a sidecar (the next
//! `--skip-unchanged` run then copies that file again) but never leave one that vouches
//! for bytes the blob does not hold.

use super::upload::{Failure, grew, hash_file, hex, read_exact_at, reserve};
use super::{Copied, SHA256_KEY};
use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The first path segment reserved for Weft's own files in a `file://` store.
pub(super) const META_DIR: &str = ".weft-meta";
/// Files up to this size are read into memory and written in one call; larger ones are
/// copied by the kernel while a second thread hashes them.
const SMALL: u64 = 1 << 20;

/// What the sidecar of a blob records. The blob's inode, size and modification time tie
/// it to one version of the blob: a blob replaced by other means (or by a copy that
/// crashed before writing its sidecar) no longer matches, and is treated as unknown.
#[derive(serde::Serialize, serde::Deserialize)]
struct Sidecar {
    name: String,
    size: u64,
    sha256: String,
    inode: u64,
    mtime_ns: i128,
}

/// A blob store in a local directory.
#[derive(Clone)]
pub(super) struct LocalDir {
    root: PathBuf,
    store: Arc<LocalFileSystem>,
}

impl LocalDir {
    pub(super) fn new(root: PathBuf, store: Arc<LocalFileSystem>) -> Self {
        Self { root, store }
    }

    /// Blob names under [`META_DIR`] would collide with the sidecars.
    pub(super) fn check_name(&self, location: &BlobPath) -> Result<(), String> {
        match location.parts().next() {
            Some(first) if first.as_ref() == META_DIR => Err(format!(
                "'{META_DIR}/' is reserved for Weft's metadata in a file:// blob store"
            )),
            _ => Ok(()),
        }
    }

    /// Copies `file` into the blob; see [`super::Blobs::copy_file`]. A full disk is
    /// waited out (see [`while_disk_full`]).
    pub(super) async fn copy(
        &self,
        file: File,
        size: u64,
        location: &BlobPath,
        skip_unchanged: bool,
        budget: &Arc<Semaphore>,
    ) -> Result<Copied, Failure> {
        let permit = if size <= SMALL {
            Some(reserve(budget, size as usize).await?)
        } else {
            None
        };
        // Shared with each try's thread, so that the memory stays reserved while a thread
        // that outlived a cancelled copy still holds it.
        let permit = Arc::new(permit);
        let file = Arc::new(file);
        while_disk_full(location, || {
            let (this, location) = (self.clone(), location.clone());
            let (file, permit) = (file.clone(), permit.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    this.copy_blocking(&file, size, &location, skip_unchanged)
                })
                .await
                .map_err(|e| Failure::Local(format!("the copying thread failed: {e}")))?
            }
        })
        .await
    }

    /// Writes a small blob whole, waiting out a full disk.
    pub(super) async fn put(&self, location: &BlobPath, data: Vec<u8>) -> Result<(), Failure> {
        let data = Arc::new(data);
        while_disk_full(location, || {
            let (this, location, data) = (self.clone(), location.clone(), data.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    this.write_durably(&location, data.len() as u64, |out| {
                        out.write_all(&data)?;
                        Ok(hex(Sha256::digest(data.as_slice())))
                    })
                    .map(|_| ())
                })
                .await
                .map_err(|e| Failure::Local(format!("the writing thread failed: {e}")))?
            }
        })
        .await
    }

    fn copy_blocking(
        &self,
        file: &File,
        size: u64,
        location: &BlobPath,
        skip_unchanged: bool,
    ) -> Result<Copied, Failure> {
        let target = self.blob_file(location)?;
        if skip_unchanged
            && let Some(recorded) = self.recorded(location, &target)
            && recorded.size == size
        {
            let sha256 = hash_file(file, size)?;
            if sha256 == recorded.sha256 {
                return Ok(Copied {
                    bytes: size,
                    sha256,
                    uploaded: false,
                });
            }
        }
        let sha256 = self.write_durably(location, size, |out| {
            if size <= SMALL {
                let data = read_exact_at(file, 0, size as usize)?;
                if grew(file, size)? {
                    return Err(Failure::Changed);
                }
                out.write_all(data.as_ref())?;
                Ok(hex(Sha256::digest(data.as_ref())))
            } else {
                copy_and_hash(file, out, size)
            }
        })?;
        Ok(Copied {
            bytes: size,
            sha256,
            uploaded: true,
        })
    }

    /// Writes the blob with `fill` (which returns the SHA-256 of what it wrote), durably
    /// (see [`LocalDir::replace`]), then records the SHA-256 in the blob's sidecar.
    fn write_durably(
        &self,
        location: &BlobPath,
        size: u64,
        fill: impl FnOnce(&mut File) -> Result<String, Failure>,
    ) -> Result<String, Failure> {
        let target = self.blob_file(location)?;
        let sha256 = self.replace(&target, true, fill)?;
        // Only now that the blob is durable does anything vouch for it.
        self.record(location, &target, size, &sha256)?;
        Ok(sha256)
    }

    /// Puts a file at `target` whole or not at all: `fill` writes a temporary file, which
    /// is renamed over `target` (and removed if anything fails). When `durable`, the file
    /// is fsynced before the rename and its directory after it (new directories
    /// included), so that it survives a power loss.
    fn replace<T>(
        &self,
        target: &Path,
        durable: bool,
        fill: impl FnOnce(&mut File) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let parent = target
            .parent()
            .ok_or_else(|| Failure::Local(format!("{} has no directory", target.display())))?;
        let temp = self.temp_file()?;
        let written = (|| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            let filled = fill(&mut out)?;
            if durable {
                out.sync_all()?;
            }
            drop(out);
            if durable {
                create_dirs_durably(parent)?;
            } else {
                create_dirs(parent)?;
            }
            std::fs::rename(&temp, target)
                .map_err(|e| Failure::Local(format!("cannot put {}: {e}", target.display())))?;
            if durable {
                sync_dir(parent)?;
            }
            Ok::<_, Failure>(filled)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    fn blob_file(&self, location: &BlobPath) -> Result<PathBuf, Failure> {
        Ok(self.store.path_to_filesystem(location)?)
    }

    /// The sidecar of a blob: named by the SHA-256 of the blob's name, so that any two
    /// names have distinct sidecars and no name's sidecar is another blob's directory.
    fn sidecar_file(&self, location: &BlobPath) -> PathBuf {
        let key = hex(Sha256::digest(location.as_ref().as_bytes()));
        self.root
            .join(META_DIR)
            .join(SHA256_KEY)
            .join(&key[..2])
            .join(format!("{key}.json"))
    }

    fn temp_file(&self) -> Result<PathBuf, Failure> {
        let dir = self.root.join(META_DIR).join("tmp");
        create_dirs(&dir)?;
        Ok(dir.join(uuid::Uuid::new_v4().simple().to_string()))
    }

    /// Writes the sidecar of the blob now at `target` (see the module's note on why it
    /// is not synced).
    fn record(
        &self,
        location: &BlobPath,
        target: &Path,
        size: u64,
        sha256: &str,
    ) -> Result<(), Failure> {
        let metadata = std::fs::metadata(target)?;
        let sidecar = Sidecar {
            name: location.as_ref().to_string(),
            size,
            sha256: sha256.to_string(),
            inode: metadata.ino(),
            mtime_ns: mtime_ns(&metadata),
        };
        let json = serde_json::to_vec(&sidecar).map_err(|e| Failure::Local(e.to_string()))?;
        self.replace(&self.sidecar_file(location), false, |out| {
            Ok(out.write_all(&json)?)
        })
    }

    /// The recorded size and SHA-256 of the blob at `target`, if its sidecar still
    /// describes this very file.
    fn recorded(&self, location: &BlobPath, target: &Path) -> Option<Sidecar> {
        let json = std::fs::read(self.sidecar_file(location)).ok()?;
        let sidecar: Sidecar = serde_json::from_slice(&json).ok()?;
        let metadata = std::fs::metadata(target).ok()?;
        (metadata.is_file()
            && sidecar.name == location.as_ref()
            && sidecar.size == metadata.len()
            && sidecar.inode == metadata.ino()
            && sidecar.mtime_ns == mtime_ns(&metadata))
        .then_some(sidecar)
    }
}

fn mtime_ns(metadata: &std::fs::Metadata) -> i128 {
    i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec())
}

/// Copies `source` into `out` in the kernel while this thread's twin hashes it; both
/// must see exactly `size` bytes.
fn copy_and_hash(source: &File, out: &mut File, size: u64) -> Result<String, Failure> {
    // `io::copy` between files uses `copy_file_range` on Linux; it starts at the file's
    // offset, which a try cut short by a full disk left behind (the hashing thread reads
    // with `pread`, which leaves the offset alone).
    let mut reader = source;
    reader.seek(SeekFrom::Start(0))?;
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_file(source, size));
        let copied = std::io::copy(&mut reader, out);
        let sha256 = hashing
            .join()
            .map_err(|_| Failure::Local("the hashing thread panicked".to_string()))??;
        if copied? != size {
            return Err(Failure::Changed);
        }
        Ok(sha256)
    })
}

/// The longest pause between two tries of a write that found the disk full.
const DISK_FULL_PAUSE_MAX: Duration = Duration::from_secs(5);

/// Whether a write failed only because the filesystem (or the user's quota) is full.
fn disk_full(failure: &Failure) -> bool {
    matches!(failure, Failure::Read(error)
        if matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)))
}

/// Runs `write` until it does not fail for a full disk, pausing with back-off in between.
/// A full disk is the host's passing trouble, not the activity's: failing the attempt
/// would spend the retry policy's few attempts in a second or two and fail the backup,
/// while space usually comes back (a log rotated, a temporary file deleted). The wait is
/// bounded by the attempt's deadline and cancelled with its instance, which drop this
/// future; every try starts from scratch (its temporary file is removed on failure).
async fn while_disk_full<T, F, Fut>(location: &BlobPath, mut write: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Err(failure) if disk_full(&failure) => {
                tracing::warn!(blob = %location, "the blob store's disk is full; trying again in {pause:?} ({failure})");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(DISK_FULL_PAUSE_MAX);
            }
            other => return other,
        }
    }
}

/// Creates `dir` and its missing parents, for what need not survive a power loss (the
/// sidecars, the temporary files that a blob's durable rename moves out).
fn create_dirs(dir: &Path) -> Result<(), Failure> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::Local(format!(
            "cannot create the directory {}: {e}",
            dir.display()
        ))
    })
}

fn sync_dir(dir: &Path) -> Result<(), Failure> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates `dir` and its missing parents, fsyncing the parent of each new directory so
/// that the blob's path survives a power loss along with the blob.
fn create_dirs_durably(dir: &Path) -> Result<(), Failure> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.is_dir() {
        missing.push(current);
        current = match current.parent() {
            Some(parent) => parent,
            None => break,
        };
    }
    for created in missing.into_iter().rev() {
        match std::fs::create_dir(created) {
            Ok(()) => {}
            // Another copy made it a moment ago; it fsyncs the parent too.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && created.is_dir() => {}
            Err(e) => {
                return Err(Failure::Local(format!(
                    "cannot create the directory {}: {e}",
                    created.display()
                )));
            }
        }
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}
