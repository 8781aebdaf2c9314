//! The `file://` fast path: a file is copied by the kernel (`copy_file_range`, through
//! `std::io::copy`) into a staging file beside its blob while another thread hashes
//! it; the SHA-256 goes in the file's extended attribute `user.sha256` and its
//! modification time becomes the source's; then the file is renamed over the blob,
//! fsynced, unmarked (see [`staging`]) and its directory fsynced, so that a completed
//! copy, hash included, survives a power loss, and no power loss can leave a trusted hash
//! that vouches for other bytes.

use super::Copied;
use super::staging::{self, Abandoned, Renames, Staging, Sweeper};
use super::upload::{Failure, grew, hash_file, hex, read_exact_at, reserve};
use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use xattr::FileExt;

/// Files up to this size are read into memory and written in one call; larger ones are
/// copied by the kernel while a second thread hashes them.
const SMALL: u64 = 1 << 20;

/// A blob store in a local directory.
#[derive(Clone)]
pub(super) struct LocalDir {
    root: PathBuf,
    store: Arc<LocalFileSystem>,
    sweeper: Arc<Sweeper>,
    renames: Arc<Renames>,
}

impl LocalDir {
    pub(super) fn new(root: PathBuf, store: Arc<LocalFileSystem>) -> Self {
        Self {
            root,
            store,
            sweeper: Arc::default(),
            renames: Arc::default(),
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
            on_thread("copying", move |abandoned| {
                let _permit = permit;
                this.copy_blocking(&file, size, &location, skip_unchanged, abandoned)
            })
        })
        .await
    }

    /// Writes a small blob whole, waiting out a full disk.
    pub(super) async fn put(&self, location: &BlobPath, data: Vec<u8>) -> Result<(), Failure> {
        let data = Arc::new(data);
        while_disk_full(location, || {
            let (this, location, data) = (self.clone(), location.clone(), data.clone());
            on_thread("writing", move |abandoned| {
                let target = this.blob_file(&location)?;
                this.write_durably(&target, None, abandoned, |out| {
                    out.write_all(&data)?;
                    Ok(hex(Sha256::digest(data.as_slice())))
                })
                .map(|_| ())
            })
        })
        .await
    }

    fn copy_blocking(
        &self,
        file: &File,
        size: u64,
        location: &BlobPath,
        skip_unchanged: bool,
        abandoned: &Abandoned,
    ) -> Result<Copied, Failure> {
        let target = self.blob_file(location)?;
        let modified = file.metadata()?.modified()?;
        if skip_unchanged && let Some(recorded) = recorded(&target, size, modified) {
            let sha256 = hash_file(file, size)?;
            if sha256 == recorded {
                if let Some(parent) = target.parent() {
                    self.sweeper.sweep_once(parent);
                }
                return Ok(Copied {
                    bytes: size,
                    sha256,
                    uploaded: false,
                });
            }
        }
        let sha256 = self.write_durably(&target, Some(modified), abandoned, |out| {
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

    /// Puts a blob at `target` whole or not at all, and durably: `fill` writes a staging
    /// file beside it (see [`Staging`]) and returns the SHA-256 of what it wrote, which
    /// goes in the file's [`SHA256_ATTR`] (and its modification time becomes `modified`);
    /// the file is renamed over `target`, fsynced and unmarked, and its directory
    /// fsynced (new directories included). The staging file is removed if anything fails
    /// before the rename, and it is not renamed if its copy was abandoned meanwhile (see
    /// [`Abandoned`]). The first write into a directory sweeps it (see [`Sweeper`]).
    fn write_durably(
        &self,
        target: &Path,
        modified: Option<SystemTime>,
        abandoned: &Abandoned,
        fill: impl FnOnce(&mut File) -> Result<String, Failure>,
    ) -> Result<String, Failure> {
        let parent = target
            .parent()
            .ok_or_else(|| Failure::Local(format!("{} has no directory", target.display())))?;
        create_dirs_durably(parent)?;
        self.sweeper.sweep_once(parent);
        let mut staging = Staging::create(target)?;
        let out = &mut staging.file;
        let sha256 = fill(out)?;
        out.set_xattr(SHA256_ATTR, sha256.as_bytes())
            .map_err(|e| self.no_attributes(e))?;
        if let Some(modified) = modified {
            out.set_modified(modified)?;
        }
        // Renamed first, then fsynced: the file's fsync then writes its new directory
        // entry too on most filesystems, and the directory's fsync has little left to
        // do. Until the fsync has returned, the blob is marked, and a marked blob is
        // never trusted (see [`recorded`]), so a power loss cannot leave a hash that
        // vouches for bytes that never reached the disk.
        staging.commit(target, abandoned, &self.renames)?;
        staging.settle()?;
        sync_dir(parent)?;
        Ok(sha256)
    }

    /// What a failed [`SHA256_ATTR`] write means: a filesystem without extended
    /// attributes is named as such, since retrying will not help.
    fn no_attributes(&self, error: std::io::Error) -> Failure {
        if error.raw_os_error() == Some(libc::EOPNOTSUPP) {
            Failure::Local(format!(
                "the filesystem of {} does not keep extended attributes, where Weft stores \
                 each blob's SHA-256 ({SHA256_ATTR}); back up to a directory on ext4, XFS, \
                 Btrfs or tmpfs",
                self.root.display()
            ))
        } else {
            error.into()
        }
    }

    fn blob_file(&self, location: &BlobPath) -> Result<PathBuf, Failure> {
        Ok(self.store.path_to_filesystem(location)?)
    }
}

/// Runs `work` on a blocking thread (the `what` thread, in the error should it panic). If
/// this future is dropped while the thread runs (its attempt timed out, or its instance
/// ended), the thread finds its copy [`Abandoned`].
async fn on_thread<T: Send + 'static>(
    what: &str,
    work: impl FnOnce(&Abandoned) -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let abandoned = Abandoned::default();
    let _abandon = abandoned.on_drop();
    tokio::task::spawn_blocking(move || work(&abandoned))
        .await
        .map_err(|e| Failure::Local(format!("the {what} thread failed: {e}")))?
}

/// The extended attribute that holds a `file://` blob's SHA-256 (lowercase hex), as the
/// user metadata `sha256` does in Azure and S3.
const SHA256_ATTR: &str = "user.sha256";

/// The SHA-256 recorded with the blob at `target`, if the blob is the copy of a source
/// file of `size` bytes last modified at `modified` (a copy sets the blob's modification
/// time to its source's, so a blob rewritten in place, or a touched source, does not
/// match and is copied again), and the blob is durable (not marked: see
/// [`staging::is_marked`]).
/// (Looked up by path, not opened: opening a FIFO planted at `target` would block.)
fn recorded(target: &Path, size: u64, modified: SystemTime) -> Option<String> {
    let metadata = std::fs::metadata(target).ok()?;
    if !metadata.is_file()
        || staging::is_marked(&metadata)
        || metadata.len() != size
        || metadata.modified().ok()? != modified
    {
        return None;
    }
    let sha256 = xattr::get(target, SHA256_ATTR).ok()??;
    String::from_utf8(sha256).ok()
}

/// Copies `source` into `out` in the kernel while this thread's twin hashes it; both
/// must see exactly `size` bytes. The copy goes in pieces of [`WRITE_BEHIND`] bytes, and
/// the disk starts writing each piece as soon as it is copied (waiting for the piece
/// before it), so that the fsync after the copy finds little left to write, and dirty
/// memory stays bounded.
fn copy_and_hash(source: &File, out: &mut File, size: u64) -> Result<String, Failure> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    // `io::copy` between files (a `Take` of one included) uses `copy_file_range` on
    // Linux; it starts at the file's offset, which a try cut short by a full disk left
    // behind (the hashing thread reads with `pread`, which leaves the offset alone).
    let mut reader = source;
    reader.seek(SeekFrom::Start(0))?;
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| hash_file(source, size));
        let copied = (|| {
            let mut copied = 0u64;
            loop {
                let piece = std::io::copy(&mut reader.take(WRITE_BEHIND), out)?;
                if piece == 0 {
                    return Ok::<_, std::io::Error>(copied);
                }
                // Start writing this piece, and wait for the one before it. Only a hint:
                // the fsync after the copy is what makes the blob durable.
                let fd = out.as_raw_fd();
                // SAFETY: plain syscalls on a file descriptor that `out` keeps open.
                unsafe {
                    libc::sync_file_range(
                        fd,
                        copied as libc::off64_t,
                        piece as libc::off64_t,
                        libc::SYNC_FILE_RANGE_WRITE,
                    );
                    if copied > 0 {
                        let before = copied.saturating_sub(WRITE_BEHIND);
                        libc::sync_file_range(
                            fd,
                            before as libc::off64_t,
                            (copied - before) as libc::off64_t,
                            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                                | libc::SYNC_FILE_RANGE_WRITE
                                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                        );
                    }
                }
                copied += piece;
            }
        })();
        let sha256 = hashing
            .join()
            .map_err(|_| Failure::Local("the hashing thread panicked".to_string()))??;
        if copied? != size {
            return Err(Failure::Changed);
        }
        Ok(sha256)
    })
}

/// The piece of a large copy that the disk is asked to write while the next is copied.
const WRITE_BEHIND: u64 = 32 << 20;

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
/// future; every try starts from scratch (its staging file is removed on failure).
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
