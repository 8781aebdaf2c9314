//! Group sync for `file://` blobs: the copies that finish together wait for one `syncfs`
//! of their filesystem, which makes all their bytes, attributes and directory entries
//! durable at once, instead of fsyncing each blob and its directory (two disk flushes per
//! blob). As a database's group commit: a copy waits for a sync that *started* after its
//! rename; while one runs, the copies that finish meanwhile wait for the next, which the
//! first of them starts as soon as the running one returns.
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

use cap_std::fs::Dir;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Blobs over this size are fsynced alone.
const ALONE: u64 = 1 << 20;

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

/// One filesystem's group: its descriptor, and the syncs started and finished.
pub(super) struct Sync {
    /// Whether a `syncfs` makes every file there durable; if not, each is fsynced.
    whole: bool,
    file: File,
    state: Mutex<State>,
    finished: Condvar,
}

#[derive(Default)]
struct State {
    /// Syncs started, and finished; one runs when they differ.
    started: u64,
    finished: u64,
    /// Errors reported so far, and the last one's `errno`.
    failures: u64,
    last_failure: Option<i32>,
}

impl Sync {
    fn new(whole: bool, file: File) -> Self {
        Self {
            whole,
            file,
            state: Mutex::default(),
            finished: Condvar::new(),
        }
    }

    /// The errors reported so far: take it before writing, and give it to [`Self::wait`].
    pub(super) fn failures(&self) -> u64 {
        self.lock().failures
    }

    /// Makes `blob` (a file of `size` bytes in `dir`) and its directory entry durable:
    /// returns once a sync that started after this call has finished, and fails if any
    /// sync reported an error since `failures` was taken.
    pub(super) fn wait(
        &self,
        failures: u64,
        blob: &File,
        size: u64,
        dir: &Dir,
    ) -> std::io::Result<()> {
        if !self.whole || size > ALONE {
            blob.sync_all()?;
            return dir.open(".")?.sync_all();
        }
        let mut state = self.lock();
        // The running sync, if any, may have started before the caller's write.
        let needed = state.started + 1;
        while state.finished < needed {
            if state.started == state.finished {
                state.started += 1;
                let this = state.started;
                drop(state);
                // SAFETY: a plain syscall on a descriptor that `self.file` keeps open.
                let synced = unsafe { libc::syncfs(self.file.as_raw_fd()) };
                let error = std::io::Error::last_os_error().raw_os_error();
                state = self.lock();
                state.finished = this;
                if synced != 0 {
                    state.failures += 1;
                    state.last_failure = Some(error.unwrap_or(libc::EIO));
                }
                self.finished.notify_all();
            } else {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        match state.last_failure {
            Some(errno) if state.failures != failures => {
                Err(std::io::Error::from_raw_os_error(errno))
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::fs::MetadataExt as _;

    /// A sync group of a fresh directory, with a file in it: one that syncs the whole
    /// filesystem, whatever filesystem the tests' temporary directory is on.
    fn group() -> (tempfile::TempDir, Dir, File, Arc<Sync>) {
        let work = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(work.path(), cap_std::ambient_authority()).unwrap();
        let blob = File::create(work.path().join("blob")).unwrap();
        let syncs = Syncs::default();
        let device = dir.dir_metadata().unwrap().dev();
        let found = syncs.of(device, &dir).unwrap();
        assert!(Arc::ptr_eq(&found, &syncs.of(device, &dir).unwrap()));
        let group = Arc::new(Sync::new(true, found.file.try_clone().unwrap()));
        (work, dir, blob, group)
    }

    #[test]
    fn only_known_local_filesystems_are_synced_whole() {
        assert!(!syncs_whole(&File::open("/proc").unwrap()).unwrap());
        if let Ok(shm) = File::open("/dev/shm") {
            assert!(syncs_whole(&shm).unwrap(), "/dev/shm is tmpfs");
        }
    }

    #[test]
    fn concurrent_waiters_share_syncs_and_each_sees_one_that_started_after_it() {
        let (_work, dir, blob, group) = group();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..20 {
                        let before = group.lock().started;
                        group.wait(group.failures(), &blob, 0, &dir).unwrap();
                        assert!(group.lock().finished > before);
                    }
                });
            }
        });
        let state = group.lock();
        assert_eq!(state.started, state.finished);
        // Each wait starts at most one sync.
        assert!(state.finished <= 160, "{}", state.finished);
        assert_eq!(state.failures, 0);
    }

    #[test]
    fn an_error_fails_every_copy_that_began_before_it_was_reported() {
        let (_work, dir, blob, group) = group();
        let before = group.failures();
        {
            let mut state = group.lock();
            state.failures += 1;
            state.last_failure = Some(libc::EIO);
        }
        let error = group.wait(before, &blob, 0, &dir).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EIO));
        group.wait(group.failures(), &blob, 0, &dir).unwrap();
    }

    #[test]
    fn large_blobs_and_other_filesystems_fsync_each_blob_and_its_directory() {
        let (_work, dir, blob, group) = group();
        let fsyncing = Sync::new(false, group.file.try_clone().unwrap());
        fsyncing.wait(0, &blob, 0, &dir).unwrap();
        assert_eq!(fsyncing.lock().started, 0);
        group.wait(0, &blob, ALONE + 1, &dir).unwrap();
        assert_eq!(group.lock().started, 0);
    }
}
