//! Where a `file://` blob is written before it is renamed over the blob: a staging file
//! beside it, named `<name>#0`, which a copy that died half-way leaves for the next copy
//! of the same blob to take over, so that a crash leaves no stray partial file behind
//! once the copy is retried.
//!
//! A copy holds an exclusive `flock` on its staging file until it has renamed or removed
//! it; the kernel drops the lock when its process dies. A staging file nobody holds is
//! therefore left over, and is emptied and reused. Two copies of one blob at once are
//! rare (two backups of one tree into one directory): the second gets a name of its own,
//! `<name>#<random digits>`. Either way the suffix is digits after `#`, the staging
//! suffix that object_store's `LocalFileSystem` uses too and leaves out of its listings.

use super::upload::Failure;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// A staging file this copy holds, locked, and empty when taken.
pub(super) struct Staging {
    pub(super) file: File,
    pub(super) path: PathBuf,
}

impl Staging {
    /// Takes the staging file of the blob at `target`: its own name if no other copy
    /// holds it (a leftover is emptied), a fresh name otherwise.
    pub(super) fn take(target: &Path) -> Result<Self, Failure> {
        let own = beside(target, 0)?;
        // The name may be renamed away under a copy that has just opened it; then try
        // again, a few times at most.
        for _ in 0..3 {
            match claim(&own, true) {
                Claimed::Ours(file, len) => {
                    if len > 0 {
                        file.set_len(0)?;
                    }
                    return Ok(Self { file, path: own });
                }
                Claimed::Moved => continue,
                Claimed::Held | Claimed::Absent => break,
            }
        }
        let path = beside(target, rand::random::<u64>().max(1))?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(Self { file, path })
    }

    /// Removes the staging file (after a failed copy); the lock goes with the file.
    pub(super) fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes the staging file that a dead copy left beside `target`, if any (a copy that
/// finds its blob already up to date writes nothing, and would otherwise leave it).
pub(super) fn sweep(target: &Path) {
    if let Ok(own) = beside(target, 0)
        && let Claimed::Ours(_locked, _) = claim(&own, false)
    {
        let _ = std::fs::remove_file(&own);
    }
}

enum Claimed {
    /// Opened, locked, and still under its name: a regular file with no other link, of
    /// this length.
    Ours(File, u64),
    /// Another copy holds it, or something other than a staging file is there.
    Held,
    /// It was renamed or removed between the open and the lock.
    Moved,
    /// There is none (and none was to be created).
    Absent,
}

/// Opens (creating it if `create`) and locks the staging file at `path`, never waiting:
/// a symlink is not followed, a FIFO not waited on, and anything that is not a regular
/// file of one link is left alone, so a file planted there cannot make a copy truncate
/// or remove another file.
fn claim(path: &Path, create: bool) -> Claimed {
    let mut options = OpenOptions::new();
    if create {
        options.write(true).create(true);
    } else {
        options.read(true);
    }
    let file = match options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Claimed::Absent,
        Err(_) => return Claimed::Held,
    };
    // SAFETY: a plain syscall on a file descriptor that `file` keeps open.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Claimed::Held;
    }
    let (Ok(held), Ok(named)) = (file.metadata(), std::fs::symlink_metadata(path)) else {
        return Claimed::Moved;
    };
    if (held.dev(), held.ino()) != (named.dev(), named.ino()) {
        return Claimed::Moved;
    }
    if !held.is_file() || held.nlink() != 1 {
        return Claimed::Held;
    }
    Claimed::Ours(file, held.len())
}

/// `target`'s name with `#<n>` after it.
fn beside(target: &Path, n: u64) -> Result<PathBuf, Failure> {
    let name = target
        .file_name()
        .ok_or_else(|| Failure::Local(format!("{} has no file name", target.display())))?;
    let mut staged = name.to_os_string();
    staged.push(format!("#{n}"));
    Ok(target.with_file_name(staged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_leftover_is_emptied_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        std::fs::write(dir.path().join("blob#0"), b"half a copy").unwrap();
        let mut staging = Staging::take(&target).unwrap();
        assert_eq!(staging.path, dir.path().join("blob#0"));
        staging.file.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&staging.path).unwrap(), b"new");
    }

    #[test]
    fn a_held_name_is_left_to_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("blob");
        let first = Staging::take(&target).unwrap();
        let second = Staging::take(&target).unwrap();
        assert_ne!(first.path, second.path);
        assert!(
            second
                .path
                .to_string_lossy()
                .rsplit_once('#')
                .is_some_and(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
        );
        // The holder's file is not swept either.
        sweep(&target);
        assert!(first.path.exists());
        second.discard();
        drop(first);
        sweep(&target);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn planted_links_and_fifos_are_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("precious");
        std::fs::write(&elsewhere, b"keep me").unwrap();
        for (i, plant) in ["symlink", "hardlink", "fifo"].into_iter().enumerate() {
            let target = dir.path().join(format!("blob{i}"));
            let own = beside(&target, 0).unwrap();
            match plant {
                "symlink" => std::os::unix::fs::symlink(&elsewhere, &own).unwrap(),
                "hardlink" => std::fs::hard_link(&elsewhere, &own).unwrap(),
                _ => assert!(
                    std::process::Command::new("mkfifo")
                        .arg(&own)
                        .status()
                        .unwrap()
                        .success()
                ),
            }
            let staging = Staging::take(&target).unwrap();
            assert_ne!(staging.path, own, "{plant}");
            sweep(&target);
            assert!(std::fs::symlink_metadata(&own).is_ok(), "{plant} removed");
            staging.discard();
        }
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"keep me");
    }
}
