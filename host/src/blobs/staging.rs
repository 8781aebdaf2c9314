//! Where a `file://` blob is written before it is renamed over the blob: a staging file
//! beside it, named by the blob's file name up to its first `#` (200 bytes of it at
//! most), then `#` and random digits; the sweep that removes the staging files of copies
//! that died half-way; and the order of renames over one blob in this process (an
//! abandoned copy's thread never renames after a later copy has).
//!
//! Such a name can never be a blob's: object_store's `LocalFileSystem` refuses a file
//! name whose text after its first `#` is all digits (it keeps those for its own staging
//! files, and leaves them out of its listings). A staging file is also born marked: its
//! mode has the sticky bit ([`MARK`], meaningless on a regular file). Its copy holds an
//! exclusive `flock` on it, renames it over the blob, makes it durable and only then clears
//! the mark, or removes it if anything failed before the rename. The kernel drops the lock
//! when the process dies, so a marked staging file that nobody holds is a leftover. The
//! file is made unnamed (`O_TMPFILE`) and locked, and gets a name only once written: a
//! new blob's own name (one link, no rename), or, over a blob that exists, a staging name
//! that is then renamed over it. So no sweep ever sees it unheld, its inode is found
//! without the directory's lock (a named create holds the lock throughout, and on a disk
//! slow to find free inodes the copies into one directory queue behind each other), and
//! a new blob costs the directory one change instead of two. Where that is not possible
//! (a filesystem without `O_TMPFILE`, no `/proc`), it is created by name: a sweep that
//! inspects it the instant it is made, before its copy holds it, makes that copy take
//! another name. A crash before the link leaves no name; the inode is freed by the
//! journal's recovery (or, on ext4 without a journal, by the next `fsck`). Leftovers
//! are swept from a directory the first time this process writes a blob there (or finds
//! one up to date): a retried copy, after a restart, sweeps what its killed attempt
//! left. Nothing else is touched: not a blob (never so named), nor anything but a marked
//! regular file of one link owned by this user, so a file planted there cannot make a
//! sweep remove another. (The lock must be coherent: a local filesystem, or NFS with its
//! default locking.)

use super::upload::Failure;
// A copy abandoned while its thread runs does not put its blob in place, so a later
// copy of the same blob, done meanwhile in this process, is never overwritten with older
// bytes.
pub(super) use crate::abandoned::Abandoned;
use cap_std::fs::{Dir, MetadataExt as _, OpenOptions, OpenOptionsExt};
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Permissions};
use std::hash::{Hash, Hasher};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::OwnedSemaphorePermit;

/// The mode bit that marks a staging file: the sticky bit, which Linux ignores on
/// regular files.
const MARK: u32 = 0o1000;

/// A staging file this copy writes in the blob's directory: removed when dropped, unless
/// committed.
pub(super) struct Staging<'a> {
    /// Dropped first: the name is removed while the file is still held. `None` while
    /// the file has no name (see [`Self::create_unnamed`]).
    named: Option<Named<'a>>,
    /// The directory it is written in, beside its blob.
    dir: &'a Dir,
    pub(super) file: File,
    /// Its mode, mark included.
    mode: u32,
    /// The device of its filesystem.
    pub(super) device: u64,
}

/// The staging file's name in its directory, removed when dropped unless committed.
struct Named<'a> {
    dir: &'a Dir,
    name: OsString,
    committed: bool,
}

/// A blob renamed into place and still marked, with its file still held (and, while it
/// waits for a sync, the permit that counts the held file: see [`Self::hold`]).
pub(super) struct Committed {
    file: File,
    mode: u32,
    held: Option<OwnedSemaphorePermit>,
}

impl<'a> Staging<'a> {
    /// Creates a fresh staging file in `dir` beside its blob `blob`, marked and locked, and
    /// open for reading as well as writing (a large copy hashes what it wrote).
    pub(super) fn create(dir: &'a Dir, blob: &OsStr) -> Result<Self, Failure> {
        match Self::create_unnamed(dir)? {
            Some(staging) => Ok(staging),
            None => Self::create_named(dir, blob),
        }
    }

    /// The staging file's name beside its blob `blob`, given it now if it has none yet
    /// (see [`link`]).
    fn name(&mut self, blob: &OsStr) -> Result<&mut Named<'a>, Failure> {
        let named = match self.named.take() {
            Some(named) => named,
            None => {
                let mut tries = 0;
                let name = loop {
                    tries += 1;
                    let name = staging_name(blob);
                    match link(&self.file, self.dir, &name) {
                        Ok(()) => break name,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 4 => {}
                        Err(e) => return Err(e.into()),
                    }
                };
                Named {
                    dir: self.dir,
                    name,
                    committed: false,
                }
            }
        };
        Ok(self.named.insert(named))
    }

    /// [`Self::create`] by name, where a file cannot be made unnamed.
    fn create_named(dir: &'a Dir, blob: &OsStr) -> Result<Self, Failure> {
        let mut tries = 0;
        loop {
            tries += 1;
            let name = staging_name(blob);
            let file = match dir.open_with(
                &name,
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o666 | MARK),
            ) {
                Ok(file) => file.into_std(),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && tries < 4 => {
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            let mut staging = Self::new(dir, Some(name), file);
            // A sweep may have opened it the instant it was made, and may even have
            // removed it: then take another name. (After a few tries, go on unlocked: a
            // sweep could then fail this copy, which is retried.)
            let locked = lock(&staging.file);
            let metadata = staging.stat()?;
            let named = metadata.nlink() == 1;
            if named && (locked || tries >= 4) {
                return Ok(staging);
            }
            if tries >= 4 {
                return Err(Failure::Local(format!(
                    "the staging files of {} keep disappearing",
                    Path::new(OsStr::from_bytes(prefix(blob))).display()
                )));
            }
        }
    }

    /// The staging file `file` in `dir`, named `name` there if any (removed when
    /// dropped, unless committed); see [`Self::stat`].
    fn new(dir: &'a Dir, name: Option<OsString>, file: File) -> Self {
        Self {
            named: name.map(|name| Named {
                dir,
                name,
                committed: false,
            }),
            dir,
            file,
            mode: 0,
            device: 0,
        }
    }

    /// Notes the file's mode and device, and returns its metadata.
    fn stat(&mut self) -> std::io::Result<std::fs::Metadata> {
        let metadata = self.file.metadata()?;
        self.mode = metadata.mode();
        self.device = metadata.dev();
        Ok(metadata)
    }

    /// [`Self::create`] by an unnamed file (`O_TMPFILE`), locked; it is linked to a name
    /// only when committed (or, to be renamed over its blob, by [`Self::name`]). `None`
    /// where the filesystem does not allow it, or no name could be given to it later
    /// (see [`link`]).
    fn create_unnamed(dir: &'a Dir) -> Result<Option<Self>, Failure> {
        if !can_link_unnamed() {
            return Ok(None);
        }
        // SAFETY: a plain syscall on a descriptor that `dir` keeps open, with a
        // NUL-terminated string that outlives the call.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c".".as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                (0o666 | MARK) as libc::c_uint,
            )
        };
        if fd < 0 {
            return Ok(None);
        }
        // SAFETY: `fd` was just opened, and nothing else owns it.
        let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        if !lock(&file) {
            return Ok(None);
        }
        let mut staging = Self::new(dir, None, file);
        staging.stat()?;
        Ok(Some(staging))
    }

    /// Puts the staging file in place as its blob `blob` (still holding it), unless its
    /// copy was abandoned: an unnamed file is linked to the blob's name if that is free,
    /// else renamed over the blob under a staging name. `location` names the blob for
    /// [`Renames`] and messages. The blob keeps the mark until [`Committed::unmark`].
    pub(super) fn commit(
        mut self,
        blob: &OsStr,
        location: &str,
        abandoned: &Abandoned,
        renames: &Renames,
    ) -> Result<Committed, Failure> {
        let _renaming = renames.lock(location);
        if abandoned.is_set() {
            return Err(Failure::Local(format!(
                "the copy to {location} was abandoned (its attempt timed out or its instance ended)"
            )));
        }
        let cannot_put = |e: std::io::Error| Failure::Local(format!("cannot put {location}: {e}"));
        if self.named.is_none() {
            match link(&self.file, self.dir, blob) {
                Ok(()) => {
                    return Ok(Committed {
                        file: self.file,
                        mode: self.mode,
                        held: None,
                    });
                }
                // The blob exists: it is replaced by a rename, below.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(cannot_put(e)),
            }
        }
        let named = self.name(blob)?;
        named
            .dir
            .rename(&named.name, named.dir, blob)
            .map_err(cannot_put)?;
        named.committed = true;
        Ok(Committed {
            file: self.file,
            mode: self.mode,
            held: None,
        })
    }
}

impl Committed {
    /// Keeps `permit` (one of a bounded number of blob files that may be held open at
    /// once) until the blob's file is closed.
    pub(super) fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self.held = Some(permit);
    }

    /// The blob's file.
    pub(super) fn file(&self) -> &File {
        &self.file
    }

    /// Clears the blob's mark, once its bytes and attributes are durable: a blob without
    /// the mark is durable, whatever a power loss keeps (see [`is_marked`]).
    pub(super) fn unmark(&self) -> Result<(), Failure> {
        let mode = self.mode & 0o7777 & !MARK;
        self.file.set_permissions(Permissions::from_mode(mode))?;
        Ok(())
    }
}

impl Drop for Named<'_> {
    /// A copy that failed, or panicked, removes its staging file (still holding it).
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.dir.remove_file(&self.name);
        }
    }
}

/// Orders the renames over one blob path in this process: a copy checks that it was not
/// abandoned and renames under the same lock, so an abandoned copy's rename either comes
/// before a later copy's or never happens. (Striped by the path's hash.)
pub(super) struct Renames([Mutex<()>; 64]);

impl Default for Renames {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Mutex::new(())))
    }
}

impl Renames {
    fn lock(&self, location: &str) -> MutexGuard<'_, ()> {
        let mut hasher = std::hash::DefaultHasher::new();
        location.hash(&mut hasher);
        let stripe = (hasher.finish() % self.0.len() as u64) as usize;
        self.0[stripe]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a file carries the staging mark: a staging file, or a blob whose bytes may
/// not be durable yet (renamed into place, its sync not yet returned; a power loss can
/// leave one).
pub(super) fn is_marked(metadata: &impl MetadataExt) -> bool {
    metadata.mode() & MARK != 0
}

/// Whether `name` is a staging file's: its text after its first `#` is all digits.
fn is_staging_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name.iter().position(|&b| b == b'#').is_some_and(|hash| {
        let digits = &name[hash + 1..];
        !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
    })
}

/// How many swept directories [`Sweeper`] remembers; it forgets them all past that, and
/// sweeps them again (harmless) when next written to.
const REMEMBERED: usize = 1 << 16;

/// Sweeps each directory once per process, the first time a blob is written there.
#[derive(Default)]
pub(super) struct Sweeper {
    swept: Mutex<HashSet<PathBuf>>,
}

impl Sweeper {
    /// Removes the leftover staging files in `dir` (at `path` under the blob root), if
    /// this process has not yet.
    pub(super) fn sweep_once(&self, dir: &Dir, path: &Path) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(PoisonError::into_inner);
            if swept.contains(path) {
                return;
            }
            if swept.len() >= REMEMBERED {
                swept.clear();
            }
            swept.insert(path.to_path_buf());
        }
        let Ok(entries) = dir.entries() else {
            // Perhaps for want of file descriptors: the next write tries again.
            let mut swept = self.swept.lock().unwrap_or_else(PoisonError::into_inner);
            swept.remove(path);
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if is_staging_name(&name) {
                remove_if_left_over(dir, &name);
            }
        }
    }
}

/// Removes the file `name` in `dir` if it is a staging file whose copy is dead: marked,
/// held by no one, and a regular file of one link owned by this user. Never waits: a
/// symlink is not followed, and nothing but a regular file is opened.
fn remove_if_left_over(dir: &Dir, name: &OsStr) {
    if !dir
        .symlink_metadata(name)
        .is_ok_and(|found| found.is_file())
    {
        return;
    }
    let Ok(file) = dir.open_with(
        name,
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK),
    ) else {
        return;
    };
    let file = file.into_std();
    if !lock(&file) {
        return;
    }
    let (Ok(held), Ok(named)) = (file.metadata(), dir.symlink_metadata(name)) else {
        return;
    };
    // SAFETY: `geteuid` cannot fail.
    let mine = held.uid() == unsafe { libc::geteuid() };
    if (held.dev(), held.ino()) == (named.dev(), named.ino())
        && mine
        && held.is_file()
        && held.nlink() == 1
        && held.mode() & MARK != 0
    {
        // Removed while locked: a live copy's file is never removed.
        let _ = dir.remove_file(name);
    }
}

/// The longest prefix a staging name keeps of its blob's name, in bytes: with `#` and up
/// to 20 digits, it stays within the 255 bytes a file name may have, whatever the blob's.
const PREFIX_MAX: usize = 200;

/// What the staging names of the blob `blob` begin with: its file name up to its first `#`.
fn prefix(blob: &OsStr) -> &[u8] {
    blob.as_bytes()
        .split(|&b| b == b'#')
        .next()
        .unwrap_or_default()
}

/// A fresh staging name for the blob `blob`: its [`prefix`] (the first [`PREFIX_MAX`]
/// bytes at most, not cutting a UTF-8 character), `#` and random digits.
fn staging_name(blob: &OsStr) -> OsString {
    let prefix = prefix(blob);
    let mut end = prefix.len().min(PREFIX_MAX);
    // A UTF-8 continuation byte (`0b10xxxxxx`) does not begin a character.
    while end < prefix.len() && end > 0 && prefix[end] & 0xC0 == 0x80 {
        end -= 1;
    }
    let mut name = OsStr::from_bytes(&prefix[..end]).to_os_string();
    name.push(format!("#{}", rand::random::<u64>()));
    name
}

/// Whether an unnamed file can be given a name here, whatever the kernel: by
/// `linkat(AT_EMPTY_PATH)` where the kernel allows it, else through its `/proc/self/fd`
/// link.
fn can_link_unnamed() -> bool {
    static PROC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Links the unnamed `file` to `name` in `dir`; fails with `AlreadyExists` if the name is
/// taken (never replacing what has it).
fn link(file: &File, dir: &Dir, name: &OsStr) -> std::io::Result<()> {
    let name = std::ffi::CString::new(name.as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in a name"))?;
    // SAFETY: plain syscalls on descriptors that `file` and `dir` keep open, with
    // NUL-terminated strings that outlive the calls.
    let linked = unsafe {
        libc::linkat(
            file.as_raw_fd(),
            c"".as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if linked == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    // A kernel that refuses `AT_EMPTY_PATH` to this process (before Linux 6.10, one
    // without `CAP_DAC_READ_SEARCH`) fails it as if the file had no path.
    match error.raw_os_error() {
        Some(libc::ENOENT | libc::EPERM) => link_through_proc(file, dir, &name),
        _ => Err(error),
    }
}

/// [`link`] through the file's `/proc/self/fd` link, which needs no capability.
fn link_through_proc(file: &File, dir: &Dir, name: &std::ffi::CStr) -> std::io::Result<()> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL in a path"))?;
    // SAFETY: as above.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            path.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    match linked {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Takes `file`'s exclusive lock without waiting; false if anyone else holds it.
fn lock(file: &File) -> bool {
    // SAFETY: a plain syscall on a file descriptor that `file` keeps open.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::Write;
    use std::process::Command;

    fn open(dir: &Path) -> Dir {
        Dir::open_ambient_dir(dir, cap_std::ambient_authority()).unwrap()
    }

    /// A staging file of `blob` in `dir` that nobody holds, as a killed copy leaves it.
    fn leftover(dir: &Path, blob: &str) -> PathBuf {
        let handle = open(dir);
        let mut staging = Staging::create(&handle, OsStr::new(blob)).unwrap();
        let named = staging.name(OsStr::new(blob)).unwrap();
        named.committed = true;
        dir.join(&named.name)
    }

    /// The names in `dir`, sorted.
    pub(in crate::blobs) fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_committed_blob_is_unmarked_and_a_failed_copy_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, blob) = (open(dir.path()), OsStr::new("blob"));
        let target = dir.path().join("blob");
        let renames = Renames::default();
        // A new blob, then the same blob again: the second copy replaces the first.
        for bytes in [&b"new"[..], b"newer"] {
            let mut staging = Staging::create(&handle, blob).unwrap();
            assert_ne!(staging.file.metadata().unwrap().mode() & MARK, 0);
            staging.file.write_all(bytes).unwrap();
            let committed = staging
                .commit(blob, "blob", &Abandoned::default(), &renames)
                .unwrap();
            assert!(is_marked(&std::fs::metadata(&target).unwrap()));
            committed.unmark().unwrap();
            drop(committed);
            assert_eq!(std::fs::read(&target).unwrap(), bytes);
            assert!(!is_marked(&std::fs::metadata(&target).unwrap()));
            assert_eq!(std::fs::metadata(&target).unwrap().nlink(), 1);
            assert_eq!(names(dir.path()), ["blob"]);
        }
        drop(Staging::create(&handle, blob).unwrap());
        let mut named = Staging::create(&handle, blob).unwrap();
        named.name(blob).unwrap();
        drop(named);
        assert_eq!(names(dir.path()), ["blob"]);
    }

    #[test]
    fn an_unnamed_file_is_linked_without_a_capability_too() {
        let dir = tempfile::tempdir().unwrap();
        let handle = open(dir.path());
        let Some(staging) = Staging::create_unnamed(&handle).unwrap() else {
            return;
        };
        link_through_proc(&staging.file, &handle, c"blob").unwrap();
        let taken = link_through_proc(&staging.file, &handle, c"blob").unwrap_err();
        assert_eq!(taken.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::metadata(dir.path().join("blob")).unwrap().nlink(),
            1
        );
    }

    #[test]
    fn a_staging_file_has_no_name_until_it_is_put_in_place_where_the_filesystem_allows() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, blob) = (open(dir.path()), OsStr::new("blob"));
        let Some(mut staging) = Staging::create_unnamed(&handle).unwrap() else {
            return;
        };
        staging.file.write_all(b"bytes").unwrap();
        assert!(names(dir.path()).is_empty());
        let committed = staging
            .commit(blob, "blob", &Abandoned::default(), &Renames::default())
            .unwrap();
        let (held, named) = (
            committed.file().metadata().unwrap(),
            std::fs::metadata(dir.path().join("blob")).unwrap(),
        );
        assert_eq!((held.dev(), held.ino()), (named.dev(), named.ino()));
        assert_eq!(names(dir.path()), ["blob"]);
    }

    #[test]
    fn a_staging_file_is_held_and_marked_as_soon_as_it_has_a_name() {
        let dir = tempfile::tempdir().unwrap();
        let handle = open(dir.path());
        // Both ways: unnamed where the filesystem allows it (ext4, XFS, Btrfs, tmpfs), and
        // by name.
        let unnamed = Staging::create_unnamed(&handle).unwrap();
        let named = Staging::create_named(&handle, OsStr::new("blob")).unwrap();
        for mut staging in unnamed.into_iter().chain([named]) {
            let name = staging.name(OsStr::new("blob")).unwrap().name.clone();
            assert!(is_staging_name(&name));
            let path = dir.path().join(&name);
            let other = File::open(&path).unwrap();
            assert!(!lock(&other), "its copy holds it");
            let metadata = other.metadata().unwrap();
            assert_eq!(metadata.nlink(), 1);
            assert_ne!(metadata.mode() & MARK, 0);
            assert_eq!(staging.mode, metadata.mode());
            let same = staging.file.metadata().unwrap();
            assert_eq!((same.dev(), same.ino()), (metadata.dev(), metadata.ino()));
        }
        assert!(
            names(dir.path()).is_empty(),
            "a dropped staging file is removed"
        );
    }

    #[test]
    fn an_abandoned_copy_does_not_put_its_blob_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let (handle, blob) = (open(dir.path()), OsStr::new("blob"));
        let target = dir.path().join("blob");
        std::fs::write(&target, b"a later copy's bytes").unwrap();
        let abandoned = Abandoned::default();
        let mut staging = Staging::create(&handle, blob).unwrap();
        staging.file.write_all(b"older bytes").unwrap();
        drop(abandoned.on_drop());
        assert!(
            staging
                .commit(blob, "blob", &abandoned, &Renames::default())
                .is_err()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"a later copy's bytes");
        assert_eq!(names(dir.path()), ["blob"]);
    }

    #[test]
    fn a_sweep_removes_leftovers_once_per_directory_and_never_live_files() {
        let dir = tempfile::tempdir().unwrap();
        let handle = open(dir.path());
        leftover(dir.path(), "a");
        leftover(dir.path(), "b.txt");
        let mut live = Staging::create(&handle, OsStr::new("c")).unwrap();
        let live_name = live
            .name(OsStr::new("c"))
            .unwrap()
            .name
            .to_string_lossy()
            .into_owned();
        let sweeper = Sweeper::default();
        sweeper.sweep_once(&handle, Path::new(""));
        assert_eq!(names(dir.path()), std::slice::from_ref(&live_name));
        // Once swept, a directory is not read again by the same process.
        let again = leftover(dir.path(), "d");
        sweeper.sweep_once(&handle, Path::new(""));
        assert!(again.exists());
        // Another process sweeps it.
        Sweeper::default().sweep_once(&handle, Path::new(""));
        assert!(!again.exists());
    }

    #[test]
    fn a_sweep_leaves_blobs_and_planted_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let precious = dir.path().join("precious");
        std::fs::write(&precious, b"keep me").unwrap();
        std::fs::set_permissions(&precious, Permissions::from_mode(0o1644)).unwrap();
        // A blob whose name has `#` and digits in it, marked as if a power loss kept it.
        let blob = dir.path().join("notes#v2#12345");
        std::fs::write(&blob, b"the blob of a file named notes#v2#12345").unwrap();
        std::fs::set_permissions(&blob, Permissions::from_mode(0o1644)).unwrap();
        // Links and a FIFO with staging names, and a directory.
        let named = |prefix: &str| dir.path().join(format!("{prefix}#7"));
        std::os::unix::fs::symlink(&precious, named("s")).unwrap();
        std::fs::hard_link(&precious, named("h")).unwrap();
        let fifo = Command::new("mkfifo").arg(named("f")).status().unwrap();
        assert!(fifo.success());
        std::fs::create_dir(named("d")).unwrap();
        let before = names(dir.path());
        Sweeper::default().sweep_once(&open(dir.path()), Path::new(""));
        assert_eq!(names(dir.path()), before);
        assert_eq!(std::fs::read(&precious).unwrap(), b"keep me");
    }

    #[test]
    fn staging_names_are_never_blob_names() {
        let dir = tempfile::tempdir().unwrap();
        let handle = open(dir.path());
        // 255 bytes, the longest a file name may be, of 3-byte characters.
        let long = "€".repeat(85);
        for blob in ["a", "a#b", "a#b#1", "#x", &long] {
            let mut staging = Staging::create(&handle, OsStr::new(blob)).unwrap();
            let name = &staging.name(OsStr::new(blob)).unwrap().name;
            assert!(is_staging_name(name), "{name:?}");
            let location = object_store::path::Path::parse(name.to_str().unwrap()).unwrap();
            let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
            assert!(store.path_to_filesystem(&location).is_err(), "{name:?}");
        }
        assert!(!is_staging_name(OsStr::new("a#")));
        assert!(!is_staging_name(OsStr::new("a#1b")));
        assert!(!is_staging_name(OsStr::new("a#b#1")));
        assert!(!is_staging_name(OsStr::new("a1")));
    }
}
