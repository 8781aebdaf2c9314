//! Group sync for `file://` blobs: the copies that finish together wait for one `syncfs`
//! of their filesystem, which makes all their bytes, attributes and directory entries
//! (and the directories made for them: see [`NewDirs`]) durable at once, instead of
//! fsyncing each blob and its directory (two disk flushes per blob). As a database's
//! group commit: a blob waits for a sync that *started* after its rename; while one
//! runs, the blobs renamed meanwhile wait for the next. Each filesystem's syncs run on a
//! thread of its own, which unmarks the blobs of a sync once it has returned and then
//! tells their copies: a copy's thread is free as soon as its blob is renamed, and its
//! task waits without one.
//!
//! Each sync commits the filesystem's journal, and a commit stalls the copies that touch
//! the blocks it writes (inode tables, bitmaps), so syncs are not run back to back
//! while copies stream in: while copies to the filesystem are being written, a sync
//! waits for them, until [`GAP`] after the last one started at most, which lets the
//! blobs that they are about to rename share it; a blob queued when none is being
//! written is synced at once.
//!
//! Only on filesystems whose `syncfs` is known to write and flush every dirty file
//! (ext2/3/4, XFS, Btrfs, F2FS, bcachefs, ZFS; tmpfs, which keeps nothing anyway): on
//! others, a FUSE or network filesystem above all, `syncfs` may not reach the server, so
//! each blob and its directory are fsynced as before. A blob over [`ALONE`] bytes is
//! fsynced alone too: its own bytes are most of what its flush writes, and a sync of the
//! whole filesystem would also wait for every other process's dirty data there.
//!
//! A failed writeback is reported by `syncfs` once per open file description, so each
//! filesystem has one descriptor, opened before the first blob is written there and kept,
//! and every error it reports fails every copy whose write began before the report (see
//! [`Sync::failures`]): some of them may have lost nothing, and are merely tried again;
//! none that lost bytes is told otherwise. (Keeping the descriptor also keeps the
//! filesystem from being unmounted under it, so its device number keeps naming it.)

use super::staging::Committed;
use super::upload::Failure;
use cap_std::fs::Dir;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Blobs over this size are fsynced alone.
const ALONE: u64 = 1 << 20;

/// While copies are being written, how long after a sync started the next may start.
/// (Measured on a fresh ext4: 10,000 small copies took 1.7 s with syncs back to back,
/// 1.25 to 1.45 s with 20 ms, and no less with 50 or 100 ms.)
const GAP: Duration = Duration::from_millis(20);

/// The sync group of each filesystem that blobs were written to, by device number.
#[derive(Default)]
pub(super) struct Syncs(Mutex<HashMap<u64, Arc<Sync>>>);

impl Syncs {
    /// The sync group of the filesystem `device` that holds `dir`. Call it before writing
    /// there.
    pub(super) fn of(&self, device: u64, dir: &Dir) -> std::io::Result<Arc<Sync>> {
        let mut groups = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(group) = groups.get(&device) {
            return Ok(group.clone());
        }
        // cap-std's directory handles are `O_PATH`, which `syncfs` refuses.
        let file = dir.open(".")?.into_std();
        let group = Arc::new(Sync::new(syncs_whole(&file)?, file));
        groups.insert(device, group.clone());
        Ok(group)
    }
}

/// Whether the filesystem that holds `file` is one whose `syncfs` makes every file durable.
fn syncs_whole(file: &File) -> std::io::Result<bool> {
    // SAFETY: `statfs` is plain data, filled in by the kernel.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a plain syscall on a descriptor that `file` keeps open.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    const EXT: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    const F2FS: i64 = 0xF2F5_2010;
    const BCACHEFS: i64 = 0xCA45_1A4E;
    const ZFS: i64 = 0x2FC1_2FC1;
    const TMPFS: i64 = 0x0102_1994;
    #[allow(clippy::unnecessary_cast)] // `f_type`'s width differs between targets.
    let kind = stat.f_type as i64;
    Ok(matches!(
        kind,
        EXT | XFS | BTRFS | F2FS | BCACHEFS | ZFS | TMPFS
    ))
}

/// One filesystem's group: its descriptor, the blobs waiting for a sync, and the errors
/// its syncs reported. A thread of its own runs its syncs while blobs wait, so that a
/// copy's thread is free once its blob is renamed, and its task waits without a thread.
pub(super) struct Sync {
    /// Whether a `syncfs` makes every file there durable; if not, each is fsynced.
    whole: bool,
    /// See [`GAP`].
    gap: Duration,
    /// See [`IDLE`].
    idle: Duration,
    file: File,
    state: Mutex<State>,
    queued: Condvar,
}

#[derive(Default)]
struct State {
    /// The blobs renamed into place since the running sync (if any) started.
    waiting: Vec<Waiting>,
    /// Whether the sync thread runs.
    syncing: bool,
    /// Copies being written to this filesystem (see [`Sync::writing`]).
    writing: usize,
    /// Syncs finished.
    synced: u64,
    /// Errors reported so far, and the last one's `errno`.
    failures: u64,
    last_failure: Option<i32>,
}

/// A blob waiting for a sync, and the copy to tell once it is durable and unmarked.
struct Waiting {
    blob: Committed,
    failures: u64,
    done: oneshot::Sender<Result<(), Failure>>,
}

/// How long the sync thread waits for more blobs before it ends.
const IDLE: Duration = Duration::from_secs(2);

impl Sync {
    fn new(whole: bool, file: File) -> Self {
        Self {
            whole,
            gap: GAP,
            idle: IDLE,
            file,
            state: Mutex::default(),
            queued: Condvar::new(),
        }
    }

    /// The errors reported so far: take it before writing, and give it to
    /// [`Self::queue`].
    pub(super) fn failures(&self) -> u64 {
        self.lock().failures
    }

    /// Counts a copy whose blob will wait for a sync as being written to this filesystem
    /// until the guard is dropped: once it has queued its blob, or given up.
    pub(super) fn writing(self: &Arc<Self>) -> Writing {
        self.lock().writing += 1;
        Writing(self.clone())
    }

    /// Whether a blob of `size` bytes is made durable alone: by fsyncing it and its
    /// directory ([`fsync`]), not by a sync of the filesystem ([`Self::queue`]).
    pub(super) fn alone(&self, size: u64) -> bool {
        !self.whole || size > ALONE
    }

    /// Makes `blob` (renamed into place) and its directory entry durable, then unmarks
    /// it: returns once a sync that started after this call has finished, and fails if
    /// any sync reported an error since `failures` was taken. (Copies [`Self::queue`]
    /// their blobs, and wait on the [`Ticket`] later.)
    #[cfg(test)]
    pub(super) async fn durable(
        self: &Arc<Self>,
        blob: Committed,
        failures: u64,
    ) -> Result<(), Failure> {
        self.queue(blob, failures)?.wait().await
    }

    /// Queues `blob` (renamed into place; `failures` taken before it was written) for the
    /// next sync; the ticket hears once it is durable and unmarked, or why not. A ticket
    /// dropped unheard leaves the blob to be made durable, unmarked and closed all the
    /// same.
    pub(super) fn queue(
        self: &Arc<Self>,
        blob: Committed,
        failures: u64,
    ) -> Result<Ticket, Failure> {
        let (done, synced) = oneshot::channel();
        let mut state = self.lock();
        if state.syncing {
            self.queued.notify_one();
        } else {
            // Started before the blob is queued: a blob never waits where no thread syncs.
            let this = self.clone();
            std::thread::Builder::new()
                .name("weft-sync".to_string())
                .spawn(move || this.run())
                .map_err(|e| Failure::Local(format!("cannot start a sync thread: {e}")))?;
            state.syncing = true;
        }
        state.waiting.push(Waiting {
            blob,
            failures,
            done,
        });
        Ok(Ticket(synced))
    }

    /// The sync thread: syncs the filesystem for each batch of waiting blobs, then
    /// unmarks them and tells their copies; ends when none came for [`IDLE`].
    fn run(&self) {
        // Should this thread panic, the next blob starts another, and the blobs it held,
        // or that wait, fail (their senders dropped), closing their files.
        struct Panicked<'a>(&'a Sync);
        impl Drop for Panicked<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut state = self.0.lock();
                    state.syncing = false;
                    let stranded = std::mem::take(&mut state.waiting);
                    drop(state);
                    drop(stranded);
                }
            }
        }
        let _panicked = Panicked(self);
        let mut started: Option<Instant> = None;
        loop {
            let batch = {
                let mut state = self.lock();
                while state.waiting.is_empty() {
                    let (waited, timeout) = self
                        .queued
                        .wait_timeout(state, self.idle)
                        .unwrap_or_else(PoisonError::into_inner);
                    state = waited;
                    if timeout.timed_out() && state.waiting.is_empty() {
                        // Under the lock: a blob queued from now on starts a new thread.
                        state.syncing = false;
                        return;
                    }
                }
                // The copies being written will queue their blobs in a moment: let them
                // share this sync, unless it is time for it (see [`GAP`]).
                let due = started.map(|started| started + self.gap);
                while state.writing > 0
                    && let Some(left) =
                        due.and_then(|due| due.checked_duration_since(Instant::now()))
                {
                    state = self
                        .queued
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                started = Some(Instant::now());
                std::mem::take(&mut state.waiting)
            };
            // SAFETY: a plain syscall on a descriptor that `self.file` keeps open.
            let synced = unsafe { libc::syncfs(self.file.as_raw_fd()) };
            let error = std::io::Error::last_os_error().raw_os_error();
            let (failures, last_failure) = {
                let mut state = self.lock();
                state.synced += 1;
                if synced != 0 {
                    state.failures += 1;
                    state.last_failure = Some(error.unwrap_or(libc::EIO));
                }
                (state.failures, state.last_failure)
            };
            for Waiting {
                blob,
                failures: before,
                done,
            } in batch
            {
                let result = match last_failure {
                    Some(errno) if failures != before => {
                        Err(std::io::Error::from_raw_os_error(errno).into())
                    }
                    _ => blob.unmark(),
                };
                // Closed (and its room given back) before its copy hears.
                drop(blob);
                let _ = done.send(result);
            }
        }
    }

    /// Syncs finished so far.
    #[cfg(test)]
    pub(super) fn synced(&self) -> u64 {
        self.lock().synced
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A copy being written to a filesystem: see [`Sync::writing`].
pub(super) struct Writing(Arc<Sync>);

impl Drop for Writing {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.writing -= 1;
        if state.writing == 0 {
            self.0.queued.notify_one();
        }
    }
}

/// What a blob queued for a sync waits on: see [`Sync::queue`].
pub(super) struct Ticket(oneshot::Receiver<Result<(), Failure>>);

impl Ticket {
    /// Waits until the blob is durable and unmarked, or fails with why not.
    pub(super) async fn wait(self) -> Result<(), Failure> {
        self.0
            .await
            .map_err(|_| Failure::Local("the sync thread failed".to_string()))?
    }
}

/// Makes `blob` and its directory `dir` durable by fsyncing both.
pub(super) fn fsync(blob: &File, dir: &Dir) -> std::io::Result<()> {
    blob.sync_all()?;
    dir.open(".")?.sync_all()
}

/// The directories beneath the blob directory (by their paths there) that copies made,
/// or were making, and whose entries may not be durable yet. A copy into one of them
/// settles them all before it reports success: a sync of the whole filesystem after
/// its blob's rename covers them, and otherwise it fsyncs the parent of each. (A
/// directory found there was noted before it was made, so a copy that did not make it
/// still finds it here.)
#[derive(Default)]
pub(super) struct NewDirs(Mutex<HashSet<PathBuf>>);

impl NewDirs {
    /// Notes that `dir` is about to be made.
    pub(super) fn making(&self, dir: &Path) {
        self.lock().insert(dir.to_path_buf());
    }

    /// Makes durable the entries of the new directories among `dir` and its ancestors,
    /// where a blob was just made durable: by fsyncing the parent of each (beneath
    /// `root`) if the blob was fsynced alone, or by nothing more if a sync of the whole
    /// filesystem (`root: None`) did it.
    pub(super) fn settle(&self, dir: &Path, root: Option<&Dir>) -> std::io::Result<()> {
        let new: Vec<&Path> = {
            let made = self.lock();
            dir.ancestors().filter(|d| made.contains(*d)).collect()
        };
        if new.is_empty() {
            return Ok(());
        }
        if let Some(root) = root {
            for made in &new {
                match made.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => root.open(parent),
                    _ => root.open("."),
                }?
                .sync_all()?;
            }
        }
        let mut made = self.lock();
        for dir in new {
            made.remove(dir);
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::staging::{Abandoned, Renames, Staging, is_marked};
    use cap_std::fs::MetadataExt as _;
    use std::ffi::OsStr;

    /// A sync group of a fresh directory: one that syncs the whole filesystem, whatever
    /// filesystem the tests' temporary directory is on.
    fn group() -> (tempfile::TempDir, Dir, Arc<Sync>) {
        let work = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(work.path(), cap_std::ambient_authority()).unwrap();
        let syncs = Syncs::default();
        let device = dir.dir_metadata().unwrap().dev();
        let found = syncs.of(device, &dir).unwrap();
        assert!(Arc::ptr_eq(&found, &syncs.of(device, &dir).unwrap()));
        let group = Arc::new(Sync::new(true, found.file.try_clone().unwrap()));
        (work, dir, group)
    }

    /// The blob `name` in `dir`, written and renamed into place, still marked.
    fn committed(dir: &Dir, name: &str) -> Committed {
        let staging = Staging::create(dir, OsStr::new(name)).unwrap();
        let blob = staging
            .commit(
                OsStr::new(name),
                name,
                &Abandoned::default(),
                &Renames::default(),
            )
            .unwrap();
        assert!(is_marked(&blob.file().metadata().unwrap()));
        blob
    }

    fn marked(work: &tempfile::TempDir, name: &str) -> bool {
        is_marked(&std::fs::metadata(work.path().join(name)).unwrap())
    }

    #[test]
    fn only_known_local_filesystems_are_synced_whole() {
        assert!(!syncs_whole(&File::open("/proc").unwrap()).unwrap());
        if let Ok(shm) = File::open("/dev/shm") {
            assert!(syncs_whole(&shm).unwrap(), "/dev/shm is tmpfs");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_copies_share_syncs_and_each_waits_for_one_that_started_after_it() {
        let (work, dir, group) = group();
        let mut copies = tokio::task::JoinSet::new();
        for copy in 0..8 {
            let names: Vec<String> = (0..20).map(|i| format!("blob{copy}-{i}")).collect();
            let blobs: Vec<Committed> = names.iter().map(|name| committed(&dir, name)).collect();
            let group = group.clone();
            copies.spawn(async move {
                for blob in blobs {
                    let before = group.lock().synced;
                    group.durable(blob, group.failures()).await.unwrap();
                    assert!(group.lock().synced > before);
                }
                names
            });
        }
        for names in copies.join_all().await {
            for name in names {
                assert!(!marked(&work, &name), "{name} is durable, so unmarked");
            }
        }
        let state = group.lock();
        // Each wait needs at most one sync.
        assert!(state.synced <= 160, "{}", state.synced);
        assert_eq!(state.failures, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_fails_every_copy_that_began_before_it_was_reported() {
        let (work, dir, group) = group();
        let before = group.failures();
        {
            let mut state = group.lock();
            state.failures += 1;
            state.last_failure = Some(libc::EIO);
        }
        let failed = group
            .durable(committed(&dir, "a"), before)
            .await
            .unwrap_err();
        assert!(
            matches!(failed, Failure::Read(ref e) if e.raw_os_error() == Some(libc::EIO)),
            "{failed}"
        );
        assert!(
            marked(&work, "a"),
            "a blob that may have lost bytes stays marked"
        );
        group
            .durable(committed(&dir, "b"), group.failures())
            .await
            .unwrap();
        assert!(!marked(&work, "b"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_thread_that_ended_idle_is_started_again() {
        let (work, dir, group) = group();
        group
            .durable(committed(&dir, "a"), group.failures())
            .await
            .unwrap();
        // The thread ends once idle; the next blob must start another, not wait for it.
        while group.lock().syncing {
            tokio::time::sleep(IDLE / 4).await;
        }
        let again = group.durable(committed(&dir, "b"), group.failures());
        tokio::time::timeout(Duration::from_secs(60), again)
            .await
            .expect("a blob queued after the thread ended is synced")
            .unwrap();
        assert!(!marked(&work, "b"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sync_waits_for_the_copies_being_written_and_a_lone_blob_does_not() {
        let (work, dir, group) = group();
        // A gap far longer than the test: only a copy that ends lets a sync start (and
        // the thread never ends idle meanwhile, to start afresh without a gap).
        let group = Arc::new(Sync {
            gap: Duration::from_secs(3600),
            idle: Duration::from_secs(3600),
            ..Arc::into_inner(group).unwrap()
        });
        let lone = |name| {
            let durable = group.durable(committed(&dir, name), group.failures());
            tokio::time::timeout(Duration::from_secs(60), durable)
        };
        // With no copy being written, a blob is synced at once, even right after a sync.
        lone("a")
            .await
            .expect("a lone blob waits for no gap")
            .unwrap();
        lone("b")
            .await
            .expect("a lone blob waits for no gap")
            .unwrap();
        assert_eq!(group.synced(), 2);
        // Blobs queued while a copy is being written wait for it, and share one sync.
        let writing = group.writing();
        let c = group.queue(committed(&dir, "c"), group.failures()).unwrap();
        let d = group.queue(committed(&dir, "d"), group.failures()).unwrap();
        assert!(marked(&work, "c") && marked(&work, "d"));
        drop(writing);
        c.wait().await.unwrap();
        d.wait().await.unwrap();
        assert_eq!(group.synced(), 3);
        assert!(!marked(&work, "c") && !marked(&work, "d"));
    }

    #[test]
    fn large_blobs_and_other_filesystems_are_fsynced_alone() {
        let (_work, _dir, group) = group();
        assert!(!group.alone(ALONE));
        assert!(group.alone(ALONE + 1));
        let other = Sync::new(false, group.file.try_clone().unwrap());
        assert!(other.alone(0));
    }

    #[test]
    fn new_directories_are_settled_by_the_copies_beneath_them() {
        let (work, dir, _group) = group();
        let new_dirs = NewDirs::default();
        for made in ["a", "a/b", "a/b/c", "x"] {
            new_dirs.making(Path::new(made));
            std::fs::create_dir(work.path().join(made)).unwrap();
        }
        // Fsynced alone: the parent of each new directory on the way is fsynced.
        new_dirs.settle(Path::new("a/b"), Some(&dir)).unwrap();
        let left: HashSet<PathBuf> = new_dirs.lock().clone();
        assert_eq!(left, HashSet::from(["a/b/c".into(), "x".into()]));
        // Covered by a sync of the whole filesystem.
        new_dirs.settle(Path::new("a/b/c"), None).unwrap();
        new_dirs.settle(Path::new("y"), None).unwrap();
        assert_eq!(*new_dirs.lock(), HashSet::from(["x".into()]));
    }
}
