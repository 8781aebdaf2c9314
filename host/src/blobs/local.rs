//! The `file://` fast path: a file is copied by the kernel (`copy_file_range`, through
//! `std::io::copy`) into a staging file beside its blob while another thread hashes
//! what was written (so that the hash is the blob's, even if the source is rewritten
//! meanwhile); the SHA-256 goes in the file's extended attribute `user.sha256` and its
//! modification time becomes the source's; then the file is put in place (linked to the
//! blob's name, or renamed over the blob that has it: see [`staging`]), made durable
//! with its directory entry (small blobs by one sync of their filesystem shared
//! with the copies that finish with them: see [`super::group_sync`]), and unmarked (see
//! [`staging`]), so that a completed copy, hash included, survives a power loss, and no
//! power loss can leave a trusted hash that vouches for other bytes. Every path is
//! resolved beneath a handle of the blob directory, so a symlink in the blob tree never
//! leads outside it.

use super::Copied;
use super::group_sync::{self, NewDirs, Sync, Syncs, Ticket, Writing};
use super::staging::{self, Abandoned, Committed, Renames, Staging, Sweeper};
use super::upload::{
    Failure, HASH_PIECE, grew, hash_file, hash_range, hex, read_exact_at, reserve,
};
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::Semaphore;
use xattr::FileExt;

/// Files up to this size are read into memory and written in one call; larger ones are
/// copied by the kernel while a second thread hashes what was copied.
const SMALL: u64 = 1 << 20;

/// The most copies that may be under way or wait for a sync at once in one blob
/// directory, each blob that waits holding its open file (to unmark it once durable): a
/// copy beyond them waits for room before it starts. Enough for the copies that finish
/// during a few syncs.
const HELD: usize = 1024;

/// How many copies may be under way or wait for a sync at once: [`HELD`], or a quarter
/// of the files this process may open if that is less (the binary raises its limit at
/// start: see `api::server::raise_descriptor_limit`).
fn held() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of the call.
    let soft = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur,
        _ => 1024,
    };
    usize::try_from(soft / 4).unwrap_or(HELD).clamp(16, HELD)
}

/// A blob store in a local directory. Every path beneath it is resolved through a handle
/// of that directory that refuses to leave it, by `..` or by a symlink (as
/// [`crate::activity::confine`] does for sources): someone who can write in the blob
/// tree cannot turn a directory into a symlink and so make a copy write, or a read
/// return, a file elsewhere. The handle is opened afresh for each operation, so a
/// directory mounted there, or made again, after Weft started is the one written to.
#[derive(Clone)]
pub(super) struct LocalDir {
    root: PathBuf,
    store: Arc<LocalFileSystem>,
    sweeper: Arc<Sweeper>,
    renames: Arc<Renames>,
    syncs: Arc<Syncs>,
    new_dirs: Arc<NewDirs>,
    /// Room for the copies under way and the blobs that wait for a sync; see [`held`].
    held: Arc<Semaphore>,
}

/// What a write returns once its blob is in place: `value`, and what is left to make the
/// blob durable, if anything (see [`LocalDir::durable`]).
pub(super) struct Written<T> {
    value: T,
    syncing: Option<Syncing>,
}

/// A blob queued for a sync of its filesystem (see [`LocalDir::queue`]), with the
/// directory (beneath the blob directory) that holds it.
pub(super) struct Queued {
    ticket: Ticket,
    parent: PathBuf,
}

/// A blob in place that waits for a sync of its filesystem, with the directory (beneath
/// the blob directory) that holds it.
struct Syncing {
    blob: Committed,
    failures: u64,
    sync: Arc<Sync>,
    /// Counts the copy as being written until its blob is queued.
    writing: Option<Writing>,
    parent: PathBuf,
}

/// What [`LocalDir::get`] found.
pub(super) enum Got {
    Bytes(Vec<u8>),
    /// The blob's size, over the most a read may return.
    TooBig(u64),
    NotFound,
}

impl LocalDir {
    pub(super) fn new(root: PathBuf, store: Arc<LocalFileSystem>) -> Self {
        Self {
            root,
            store,
            sweeper: Arc::default(),
            renames: Arc::default(),
            syncs: Arc::default(),
            new_dirs: Arc::default(),
            held: Arc::new(Semaphore::new(held())),
        }
    }

    /// Copies the file that `open` opens into the blob, up to its rename into place; see
    /// [`super::Blobs::copy_deferred`]. The file is opened and (on the first try) copied
    /// on one blocking thread; what is left to make the blob durable is returned, to be
    /// queued and awaited (see [`Self::queue`]) without a thread. A full disk is waited
    /// out (see [`while_disk_full`]).
    pub(super) async fn copy<E: Send + 'static>(
        &self,
        open: impl FnOnce() -> Result<(File, u64), E> + Send + 'static,
        location: &BlobPath,
        skip_unchanged: bool,
        budget: &Arc<Semaphore>,
    ) -> Result<Result<Written<Copied>, Failure>, E> {
        // Room for the blob to wait for its sync in (see [`held`]), taken before anything
        // is opened: once the blob is in place, it is queued at once.
        let room = self.held.clone().acquire_owned().await.ok();
        let first = {
            let (this, location, budget) = (self.clone(), location.clone(), budget.clone());
            on_thread("copying", move |abandoned| {
                let (file, size) = match open() {
                    Ok(opened) => opened,
                    Err(error) => return Ok(Err(error)),
                };
                // Memory for a small file, if it is free now; else the copy waits for it.
                let permit = match size <= SMALL {
                    true => budget.try_acquire_many_owned(size as u32).ok(),
                    false => None,
                };
                let tried = (size > SMALL || permit.is_some())
                    .then(|| this.copy_blocking(&file, size, &location, skip_unchanged, abandoned));
                Ok(Ok((file, size, permit, tried)))
            })
            .await
        };
        let (file, size, permit, mut tried) = match first {
            Ok(Ok(opened)) => opened,
            Ok(Err(refused)) => return Err(refused),
            Err(failure) => return Ok(Err(failure)),
        };
        let permit = match permit {
            None if size <= SMALL => match reserve(budget, size as usize).await {
                Ok(permit) => Some(permit),
                Err(failure) => return Ok(Err(failure)),
            },
            permit => permit,
        };
        // Shared with each try's thread, so that the memory stays reserved while a thread
        // that outlived a cancelled copy still holds it.
        let permit = Arc::new(permit);
        let file = Arc::new(file);
        let written = while_disk_full(location, || {
            let tried = tried.take();
            let (this, location) = (self.clone(), location.clone());
            let (file, permit) = (file.clone(), permit.clone());
            async move {
                match tried {
                    Some(tried) => tried,
                    None => {
                        on_thread("copying", move |abandoned| {
                            let _permit = permit;
                            this.copy_blocking(&file, size, &location, skip_unchanged, abandoned)
                        })
                        .await
                    }
                }
            }
        })
        .await;
        Ok(written.map(|mut written| {
            if let (Some(syncing), Some(room)) = (&mut written.syncing, room) {
                syncing.blob.hold(room);
            }
            written
        }))
    }

    /// Writes a small blob whole, waiting out a full disk.
    pub(super) async fn put(&self, location: &BlobPath, data: Vec<u8>) -> Result<(), Failure> {
        let data = Arc::new(data);
        while_disk_full(location, || {
            let (this, location, data) = (self.clone(), location.clone(), data.clone());
            async move {
                let writer = this.clone();
                let written = on_thread("writing", move |abandoned| {
                    writer.write_durably(&location, data.len() as u64, None, abandoned, |out| {
                        out.write_all(&data)?;
                        Ok(hex(Sha256::digest(data.as_slice())))
                    })
                })
                .await?;
                this.durable(written).await.map(|_| ())
            }
        })
        .await
    }

    /// What a write left to do once its blob is in place: waits for the sync that makes
    /// it durable (with the directories made for it), which unmarks it.
    pub(super) async fn durable<T>(&self, written: Written<T>) -> Result<T, Failure> {
        let (value, queued) = self.queue(written)?;
        if let Some(queued) = queued {
            self.synced(queued).await?;
        }
        Ok(value)
    }

    /// Queues a written blob, if it waits for a sync, for its filesystem's next one;
    /// [`Self::synced`] waits for that sync.
    pub(super) fn queue<T>(&self, written: Written<T>) -> Result<(T, Option<Queued>), Failure> {
        let Some(Syncing {
            blob,
            failures,
            sync,
            writing,
            parent,
        }) = written.syncing
        else {
            return Ok((written.value, None));
        };
        let ticket = sync.queue(blob, failures)?;
        drop(writing);
        Ok((written.value, Some(Queued { ticket, parent })))
    }

    /// Waits until a queued blob is durable, with the directories made for it.
    pub(super) async fn synced(&self, queued: Queued) -> Result<(), Failure> {
        queued.ticket.wait().await?;
        self.new_dirs.settle(&queued.parent, None)?;
        Ok(())
    }

    /// Reads the blob at `location` whole, unless it is over `max` bytes.
    pub(super) async fn get(&self, location: &BlobPath, max: u64) -> Result<Got, Failure> {
        let (this, location) = (self.clone(), location.clone());
        on_thread("reading", move |_| {
            let (parent, name) = this.blob_file(&location)?;
            let dir = match this.open_dir(&location, parent, false) {
                Err(Failure::Read(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(Got::NotFound);
                }
                dir => dir?,
            };
            let reading = |e: std::io::Error| Failure::Local(format!("reading the blob: {e}"));
            let (mut blob, metadata) = match open_blob(&dir, name) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Got::NotFound),
                blob => blob.map_err(reading)?,
            };
            let size = metadata.len();
            if size > max {
                return Ok(Got::TooBig(size));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            (&mut blob)
                .take(max + 1)
                .read_to_end(&mut bytes)
                .map_err(reading)?;
            if bytes.len() as u64 > max {
                return Ok(Got::TooBig(size.max(bytes.len() as u64)));
            }
            Ok(Got::Bytes(bytes))
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
    ) -> Result<Written<Copied>, Failure> {
        let modified = file.metadata()?.modified()?;
        if skip_unchanged && let Some((dir, recorded)) = self.recorded(location, size, modified) {
            let sha256 = hash_file(file, size)?;
            if sha256 == recorded {
                let (parent, _) = self.blob_file(location)?;
                self.sweeper.sweep_once(&dir, parent);
                return Ok(Written {
                    value: Copied {
                        bytes: size,
                        sha256,
                        uploaded: false,
                    },
                    syncing: None,
                });
            }
        }
        let written = self.write_durably(location, size, Some(modified), abandoned, |out| {
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
        Ok(Written {
            value: Copied {
                bytes: size,
                sha256: written.value,
                uploaded: true,
            },
            syncing: written.syncing,
        })
    }

    /// Puts the blob at `location` whole or not at all, and durably: `fill` writes `size`
    /// bytes into a staging file beside it (see [`Staging`]) and returns their SHA-256,
    /// which goes in the file's [`SHA256_ATTR`] (and its modification time becomes
    /// `modified`); the file is put in place as the blob (see [`Staging::commit`]), made
    /// durable with its directory entry and the new directories above it, and unmarked:
    /// here if it is fsynced alone, else by the sync that the [`Written`] waits for (see
    /// [`super::group_sync`]). The staging file is removed if anything fails before, and
    /// it is not put in place if its copy was abandoned meanwhile (see [`Abandoned`]).
    /// The first write into a directory sweeps it (see [`Sweeper`]).
    fn write_durably(
        &self,
        location: &BlobPath,
        size: u64,
        modified: Option<SystemTime>,
        abandoned: &Abandoned,
        fill: impl FnOnce(&mut File) -> Result<String, Failure>,
    ) -> Result<Written<String>, Failure> {
        let (parent, name) = self.blob_file(location)?;
        let root = self.open_root(true)?;
        let dir = self.open_dir_in(&root, location, parent, true)?;
        self.sweeper.sweep_once(&dir, parent);
        let mut staging = Staging::create(&dir, name)?;
        let sync = self.syncs.of(staging.device, &dir)?;
        // A copy whose blob will wait for a sync is counted from here until it queues the
        // blob, so that the syncs meanwhile wait for it (see `group_sync`).
        let alone = sync.alone(size);
        let writing = (!alone).then(|| sync.writing());
        let failures = sync.failures();
        let out = &mut staging.file;
        let sha256 = fill(out)?;
        out.set_xattr(SHA256_ATTR, sha256.as_bytes())
            .map_err(|e| self.no_attributes(e))?;
        if let Some(modified) = modified {
            out.set_modified(modified)?;
        }
        // Put in place first, then made durable. Until then, the blob is marked, and a marked
        // blob is never trusted (see [`recorded`]), so a power loss cannot leave a hash
        // that vouches for bytes that never reached the disk.
        let blob = staging.commit(name, location.as_ref(), abandoned, &self.renames)?;
        if alone {
            group_sync::fsync(blob.file(), &dir)?;
            self.new_dirs.settle(parent, Some(&root))?;
            blob.unmark()?;
            return Ok(Written {
                value: sha256,
                syncing: None,
            });
        }
        Ok(Written {
            value: sha256,
            syncing: Some(Syncing {
                blob,
                failures,
                sync,
                writing,
                parent: parent.to_path_buf(),
            }),
        })
    }

    /// The SHA-256 recorded with the blob at `location`, and the handle of its directory,
    /// if the blob is the copy of a source file of `size` bytes last modified at
    /// `modified` (a copy sets the blob's modification time to its source's, so a blob
    /// rewritten in place, or a touched source, does not match and is copied again), and
    /// the blob is durable (not marked: see [`staging::is_marked`]).
    fn recorded(
        &self,
        location: &BlobPath,
        size: u64,
        modified: SystemTime,
    ) -> Option<(Dir, String)> {
        let (parent, name) = self.blob_file(location).ok()?;
        let dir = self.open_dir(location, parent, false).ok()?;
        let (blob, metadata) = open_blob(&dir, name).ok()?;
        if staging::is_marked(&metadata)
            || metadata.len() != size
            || metadata.modified().ok()? != modified
        {
            return None;
        }
        let sha256 = blob.get_xattr(SHA256_ATTR).ok()??;
        Some((dir, String::from_utf8(sha256).ok()?))
    }

    /// The handle of the directory `parent` (beneath the blob root) that holds the blob
    /// at `location`, creating it and its missing parents first if `create` is set.
    fn open_dir(&self, location: &BlobPath, parent: &Path, create: bool) -> Result<Dir, Failure> {
        self.open_dir_in(&self.open_root(create)?, location, parent, create)
    }

    /// [`Self::open_dir`] beneath the handle `root` of the blob directory. New
    /// directories are not durable until [`NewDirs::settle`]d.
    fn open_dir_in(
        &self,
        root: &Dir,
        location: &BlobPath,
        parent: &Path,
        create: bool,
    ) -> Result<Dir, Failure> {
        if parent.as_os_str().is_empty() {
            return Ok(root.try_clone()?);
        }
        match root.open_dir(parent) {
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                self.create_dirs(root, parent)
                    .map_err(|e| self.dir_failure(location, parent, e))?;
                root.open_dir(parent)
                    .map_err(|e| self.dir_failure(location, parent, e))
            }
            opened => opened.map_err(|e| self.dir_failure(location, parent, e)),
        }
    }

    /// The handle of the blob directory, made again (durably) if `create` is set and it
    /// was removed since Weft started.
    fn open_root(&self, create: bool) -> Result<Dir, Failure> {
        let open = || Dir::open_ambient_dir(&self.root, cap_std::ambient_authority());
        match open() {
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.root).map_err(|e| {
                    Failure::Local(format!(
                        "cannot create the blob directory {}: {e}",
                        self.root.display()
                    ))
                })?;
                if let Some(parent) = self.root.parent() {
                    File::open(parent)?.sync_all()?;
                }
                Ok(open()?)
            }
            opened => Ok(opened?),
        }
    }

    /// Creates the directory `path` beneath `root` and its missing parents. Each is
    /// noted in [`NewDirs`] before it is made, so that no copy into it reports success
    /// before its entry is durable, whichever copy made it.
    fn create_dirs(&self, root: &Dir, path: &Path) -> std::io::Result<()> {
        let make = |dir: &Path| {
            self.new_dirs.making(dir);
            match root.create_dir(dir) {
                // There already (perhaps made by another copy a moment ago); a symlink or
                // a file in the way fails the open that follows.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                made => made,
            }
        };
        // The deepest first: most of a new directory's parents are there already.
        match make(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => {
                    self.create_dirs(root, parent)?;
                    make(path)
                }
                _ => Err(e),
            },
            made => made,
        }
    }

    /// What a failure to resolve (or make) the directory `parent` of the blob at
    /// `location` means: one that leads outside the blob directory (through a symlink) is
    /// named as such; a missing directory and a full disk stay I/O errors (for
    /// [`LocalDir::get`] and [`while_disk_full`]); anything else names the directory.
    fn dir_failure(&self, location: &BlobPath, parent: &Path, error: std::io::Error) -> Failure {
        // cap-std reports an escape as permission denied.
        if error.kind() == std::io::ErrorKind::PermissionDenied
            && error.to_string().contains("outside")
        {
            Failure::Local(format!(
                "{location}: its path leads outside the blob directory {} through a \
                 symlink (one that points outside it, or any absolute symlink); Weft \
                 never writes or reads blobs there",
                self.root.display()
            ))
        } else if error.kind() == std::io::ErrorKind::NotFound
            || matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        {
            error.into()
        } else {
            Failure::Local(format!(
                "{location}: cannot use the directory {}: {error}",
                self.root.join(parent).display()
            ))
        }
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

    /// The blob's directory (relative to the blob root) and file name. (object_store
    /// checks the name: it refuses the names it keeps for staging files, as ours are.)
    fn blob_file<'a>(&self, location: &'a BlobPath) -> Result<(&'a Path, &'a OsStr), Failure> {
        self.store.path_to_filesystem(location)?;
        let path = Path::new(location.as_ref());
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => Ok((parent, name)),
            _ => Err(Failure::Local(format!("{location} names no file"))),
        }
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

/// Copies `source` into `out` in the kernel while this thread's twin hashes what was
/// copied, read back from `out` (from the page cache) one piece behind, so that the hash
/// is always that of the blob's bytes, even if the source is rewritten meanwhile; `out`
/// must be open for reading too. The source must have exactly `size` bytes. The copy
/// goes in pieces of [`WRITE_BEHIND`] bytes, and the disk starts writing each piece as
/// soon as it is copied (waiting for the piece before it), so that the fsync after the
/// copy finds little left to write, and dirty memory stays bounded.
fn copy_and_hash(source: &File, out: &mut File, size: u64) -> Result<String, Failure> {
    use std::os::fd::AsRawFd;
    // `io::copy` between files (a `Take` of one included) uses `copy_file_range` on
    // Linux; it starts at the file's offset, which a try cut short by a full disk left
    // behind.
    let mut reader = source;
    reader.seek(SeekFrom::Start(0))?;
    let written = out.try_clone()?;
    let (progress, copied_to) = std::sync::mpsc::channel::<u64>();
    std::thread::scope(|scope| {
        let hashing = scope.spawn(move || {
            let mut hasher = Sha256::new();
            let mut buffer = vec![0u8; HASH_PIECE];
            let mut hashed = 0;
            for copied in copied_to {
                hash_range(&written, hashed..copied, &mut hasher, &mut buffer)?;
                hashed = copied;
            }
            Ok::<_, Failure>(hex(hasher.finalize()))
        });
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
                // The hashing thread ends early only on a failure, which `join` reports.
                let _ = progress.send(copied);
            }
        })();
        drop(progress);
        let sha256 = hashing
            .join()
            .map_err(|_| Failure::Local("the hashing thread panicked".to_string()))??;
        if copied? != size || grew(source, size)? {
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

/// Opens the blob `name` in `dir` to read it, with its metadata: never a symlink, and
/// never waiting (a FIFO planted there opens at once, and is then refused).
fn open_blob(dir: &Dir, name: &OsStr) -> std::io::Result<(File, std::fs::Metadata)> {
    use cap_std::fs::MetadataExt as _;
    use std::os::unix::fs::MetadataExt as _;
    // `O_NOFOLLOW` holds with `openat2`; cap-std's own resolver (kernels before 5.6, or
    // `openat2` filtered out) follows a last symlink that stays in the tree. So the name
    // must still be the file that was opened; a copy that renamed a new blob over it
    // meanwhile makes it open again.
    let mut tries = 0;
    let (blob, metadata) = loop {
        tries += 1;
        let blob = dir
            .open_with(
                name,
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK),
            )?
            .into_std();
        let metadata = blob.metadata()?;
        let named = dir.symlink_metadata(name)?;
        if named.file_type().is_symlink() {
            return Err(std::io::Error::other(format!(
                "{} is a symlink",
                Path::new(name).display()
            )));
        }
        if (named.dev(), named.ino()) == (metadata.dev(), metadata.ino()) {
            break (blob, metadata);
        }
        if tries >= 3 {
            return Err(std::io::Error::other(format!(
                "{} keeps being replaced as it is opened",
                Path::new(name).display()
            )));
        }
    };
    if metadata.is_dir() {
        // A directory is no blob (as in object stores, where it is only a prefix).
        return Err(std::io::ErrorKind::NotFound.into());
    }
    if !metadata.is_file() {
        return Err(std::io::Error::other(format!(
            "{} is not a regular file",
            Path::new(name).display()
        )));
    }
    Ok((blob, metadata))
}

#[cfg(test)]
mod tests {
    use super::super::staging::{is_marked, tests::names};
    use super::super::{Blobs, Options};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deferred_copy_is_in_place_at_once_and_unmarked_once_durable() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        let source = work.path().join("source");
        std::fs::write(&source, b"bytes").unwrap();
        let marked = |blob: &str| is_marked(&std::fs::metadata(root.join(blob)).unwrap());
        let mut waiting = Vec::new();
        for blob in ["new/dirs/a", "new/dirs/b", "new/c"] {
            let source = source.clone();
            let open = move || std::fs::File::open(&source).map(|file| (file, 5));
            let (copied, durability) = blobs.copy_deferred(open, blob).await.unwrap().unwrap();
            assert_eq!((copied.bytes, copied.uploaded), (5, true));
            assert_eq!(std::fs::read(root.join(blob)).unwrap(), b"bytes");
            // Durable at once only where each blob is fsynced alone (a filesystem not
            // synced whole: see `group_sync`), and then unmarked; else it is queued for a
            // sync, which may have unmarked it already.
            if durability.is_durable() {
                assert!(!marked(blob), "{blob}");
            }
            waiting.push((blob, durability));
        }
        for (blob, durability) in waiting {
            durability.wait().await.unwrap();
            assert!(!marked(blob), "{blob} is durable");
        }
        // A copy whose durability nobody waits for is still made durable, by the sync
        // that the next copy waits for (or an earlier one).
        let opener =
            |source: std::path::PathBuf| move || std::fs::File::open(&source).map(|file| (file, 5));
        let (_, dropped) = blobs
            .copy_deferred(opener(source.clone()), "new/dropped")
            .await
            .unwrap()
            .unwrap();
        drop(dropped);
        let copied = blobs
            .copy_from(opener(source), "new/d")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(copied.bytes, 5);
        assert!(!marked("new/d"));
        assert!(!marked("new/dropped"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn copies_take_room_that_their_blobs_give_back_once_durable() {
        use cap_std::fs::MetadataExt as _;
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        let super::super::Backend::Local(local) = &blobs.backend else {
            panic!("a local blob store");
        };
        assert!(local.held.available_permits() >= 16);
        let source = work.path().join("source");
        std::fs::write(&source, b"bytes").unwrap();
        let copy = |name: String| {
            let source = source.clone();
            let open = move || std::fs::File::open(&source).map(|file| (file, 5));
            let blobs = &blobs;
            async move {
                let copied = blobs.copy_deferred(open, &name);
                let copied = tokio::time::timeout(std::time::Duration::from_secs(60), copied);
                let (_, durability) = copied.await.expect("room comes back").unwrap().unwrap();
                durability
            }
        };
        let first = copy("first".to_string()).await;
        let dir = cap_std::fs::Dir::open_ambient_dir(&root, cap_std::ambient_authority()).unwrap();
        let sync = local
            .syncs
            .of(dir.dir_metadata().unwrap().dev(), &dir)
            .unwrap();
        if first.is_durable() {
            // Blobs are fsynced alone here, and never wait for a sync: nothing to test.
            assert!(
                sync.alone(0),
                "only a blob fsynced alone is durable at once"
            );
            return;
        }
        first.wait().await.unwrap();
        // Room for one copy only: each waits until the blob before it is durable and
        // closed, so no two share a sync, though nobody waits for their durability.
        local
            .held
            .forget_permits(local.held.available_permits() - 1);
        let before = sync.synced();
        let copies = (0..6).map(|i| copy(format!("b{i}")));
        let durabilities = futures::future::join_all(copies).await;
        for durability in durabilities {
            durability.wait().await.unwrap();
        }
        assert!(
            sync.synced() - before >= 6,
            "{} syncs",
            sync.synced() - before
        );
        for i in 0..6 {
            assert!(!is_marked(
                &std::fs::metadata(root.join(format!("b{i}"))).unwrap()
            ));
        }
        assert_eq!(local.held.available_permits(), 1, "all room is given back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_rewritten_during_a_large_copy_never_gets_the_hash_of_other_bytes() {
        use sha2::Digest;
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        let source = work.path().join("source");
        let size = 96u64 << 20;
        std::fs::write(&source, vec![7u8; size as usize]).unwrap();
        // Rewrites 4 KiB pieces of the source in place, without end, as a database or a
        // disk image is written while it is backed up.
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, source) = (stop.clone(), source.clone());
            std::thread::spawn(move || {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(source)
                    .unwrap();
                let mut round = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    round = round.wrapping_add(1);
                    let offset = (rand::random::<u64>() % (size >> 12)) << 12;
                    file.write_all_at(&[round; 4096], offset).unwrap();
                }
            })
        };
        for copy in 0..3 {
            let name = format!("big{copy}");
            let file = std::fs::File::open(&source).unwrap();
            let copied = blobs.copy_file(file, size, &name).await.unwrap();
            let stored = std::fs::read(root.join(&name)).unwrap();
            let stored_sha256 = super::hex(sha2::Sha256::digest(&stored));
            assert_eq!(
                copied.sha256, stored_sha256,
                "the copy reports the blob's hash"
            );
            let attribute = xattr::get(root.join(&name), super::SHA256_ATTR).unwrap();
            assert_eq!(attribute.as_deref(), Some(stored_sha256.as_bytes()));
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_symlink_in_the_blob_tree_leads_no_copy_or_read_outside_it() {
        let (work, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        std::fs::write(outside.path().join("secret"), b"not a blob").unwrap();
        let source = work.path().join("source");
        std::fs::write(&source, b"bytes").unwrap();
        let open = || std::fs::File::open(&source).unwrap();

        // A directory of the tree replaced by a symlink to elsewhere.
        std::os::unix::fs::symlink(outside.path(), root.join("backups")).unwrap();
        let copied = blobs.copy_file(open(), 5, "backups/x").await.unwrap_err();
        assert!(
            copied.to_string().contains("outside the blob directory"),
            "{copied}"
        );
        let put = blobs.put("backups/y", b"bytes".to_vec()).await.unwrap_err();
        assert!(
            put.to_string().contains("outside the blob directory"),
            "{put}"
        );
        let read = blobs.get("backups/secret").await.unwrap_err();
        assert!(
            read.to_string().contains("outside the blob directory"),
            "{read}"
        );
        assert_eq!(names(outside.path()), ["secret"]);

        // A blob that is a symlink is not read through; a copy replaces the link itself.
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("z")).unwrap();
        assert!(blobs.get("z").await.is_err());
        blobs.copy_file(open(), 5, "z").await.unwrap();
        assert!(
            !std::fs::symlink_metadata(root.join("z"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(outside.path().join("secret")).unwrap(),
            b"not a blob"
        );

        // A symlink that stays inside the tree is followed.
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("real", root.join("alias")).unwrap();
        blobs.copy_file(open(), 5, "alias/deep/w").await.unwrap();
        assert_eq!(std::fs::read(root.join("real/deep/w")).unwrap(), b"bytes");
        assert_eq!(blobs.get("alias/deep/w").await.unwrap(), b"bytes");
        assert!(matches!(
            blobs.get("real/none").await,
            Err(super::super::BlobError::NotFound(_))
        ));
        assert!(matches!(
            blobs.get("nowhere/none").await,
            Err(super::super::BlobError::NotFound(_))
        ));
        // A directory is no blob.
        assert!(matches!(
            blobs.get("real").await,
            Err(super::super::BlobError::NotFound(_))
        ));
        // A file where a blob's directory goes: the message names it.
        std::fs::write(root.join("plain"), b"a file").unwrap();
        let blocked = blobs.copy_file(open(), 5, "plain/w").await.unwrap_err();
        let expected = format!("cannot use the directory {}", root.join("plain").display());
        assert!(blocked.to_string().contains(&expected), "{blocked}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_put_over_its_limit_is_refused_and_writes_nothing() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        let over = vec![1u8; super::super::MAX_PUT as usize + 1];
        let refused = blobs.put("big", over).await.unwrap_err();
        assert!(refused.to_string().contains("blob.put"), "{refused}");
        assert!(!root.join("big").exists());
        let limit = vec![1u8; super::super::MAX_PUT as usize];
        blobs.put("big", limit).await.unwrap();
        assert_eq!(
            std::fs::metadata(root.join("big")).unwrap().len(),
            super::super::MAX_PUT
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_directory_removed_or_replaced_after_start_is_the_one_written_to() {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("blobs");
        let blobs = Blobs::open_dir(&root, &Options::default()).unwrap();
        blobs.put("a/one", b"1".to_vec()).await.unwrap();
        std::fs::rename(&root, work.path().join("moved")).unwrap();
        assert!(matches!(
            blobs.get("a/one").await,
            Err(super::super::BlobError::NotFound(_))
        ));
        blobs.put("a/two", b"2".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(root.join("a/two")).unwrap(), b"2");
        assert_eq!(names(&root.join("a")), ["two"]);
        assert_eq!(names(&work.path().join("moved/a")), ["one"]);
    }
}
