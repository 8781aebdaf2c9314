//! Confinement of activity file access to the directories the operator allowed.
//!
//! Files are opened, and trees listed, through `cap-std` directory handles, which refuse
//! any path that leaves the directory, whether by `..` or by a symlink, at the moment of
//! use (no check-then-use race): a symlink swapped in during a listing cannot lead it
//! outside. Some places inside an allowed directory stay closed as well: Weft's own data
//! dir (its database, API key and blobs) is never readable by activities. Only regular
//! files are read: a FIFO, socket or device is skipped by listings and refused by opens,
//! without blocking. Paths are reported to guests as absolute paths.
//!
//! A name that is not UTF-8 cannot cross the WIT boundary as it is. Listings report such a
//! file under its lossy name (U+FFFD for the bad bytes), so that it is counted and named
//! rather than silently left out; opening a lossy name that stands for such a file is
//! refused with [`Error::NotUtf8`] (never resolved to another file that happens to carry
//! U+FFFD in its real name), which guests see as `not-found` with a message that says why.

use crate::abandoned::Abandoned;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Why a path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("access denied: {0} is outside the allowed directories")]
    Denied(String),
    #[error("access denied: {0} belongs to Weft itself")]
    Private(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The path names a file whose real name is not UTF-8 (as a listing reports it,
    /// lossily), or is ambiguous with one: it cannot be opened by this name.
    #[error("not backed up: {0}: the name is not UTF-8 (shown with U+FFFD for its invalid bytes)")]
    NotUtf8(String),
    #[error(
        "{root}: the listing holds more than {} MiB of names, more than a guest could receive; \
         list a smaller directory, or raise --guest-memory-mib",
        .limit >> 20
    )]
    TooLarge { root: String, limit: usize },
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("the listing of {0} was abandoned: its activity ended")]
    Abandoned(String),
}

impl Error {
    fn io(path: &Path, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound => Self::NotFound(path.display().to_string()),
            // cap-std reports an escape attempt as permission denied.
            io::ErrorKind::PermissionDenied if source.to_string().contains("outside") => {
                Self::Denied(path.display().to_string())
            }
            _ => Self::Io {
                path: path.display().to_string(),
                source,
            },
        }
    }

    fn other(path: &str, message: &str) -> Self {
        Self::Io {
            path: path.to_string(),
            source: io::Error::other(message.to_string()),
        }
    }
}

struct Root {
    path: PathBuf,
    dir: Dir,
    /// Whether a private path lies beneath this root (or the root beneath one): only then
    /// can a file opened beneath it be private.
    holds_private: bool,
}

/// The allowed directories, and the places inside them that stay closed.
pub struct Confinement {
    roots: Vec<Root>,
    /// Canonical paths activities may never read, even inside an allowed root.
    private: Vec<PathBuf>,
    cwd: PathBuf,
}

/// A regular file found under an allowed directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
}

impl Confinement {
    /// Allows `roots` (each must be an existing directory) except for `private` (Weft's
    /// own directories, closed also if they are made later). Relative paths that guests
    /// pass are resolved against the current directory.
    pub fn new(roots: &[PathBuf], private: &[PathBuf]) -> Result<Self, Error> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
        let private: Vec<PathBuf> = private
            .iter()
            .filter_map(|path| canonical_or_future(&cwd.join(path)))
            .collect();
        let mut resolved = Vec::new();
        for root in roots {
            let path = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
            let dir = Dir::open_ambient_dir(&path, ambient_authority())
                .map_err(|e| Error::io(&path, e))?;
            let holds_private = private
                .iter()
                .any(|p| p.starts_with(&path) || path.starts_with(p));
            resolved.push(Root {
                path,
                dir,
                holds_private,
            });
        }
        Ok(Self {
            roots: resolved,
            private,
            cwd,
        })
    }

    fn absolute(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        };
        // Drop `.` segments; `..` stays for the directory handle to judge.
        joined
            .components()
            .filter(|c| !matches!(c, Component::CurDir))
            .collect()
    }

    /// The allowed root that holds `path`, and the path relative to it.
    fn locate(&self, path: &str) -> Result<(&Root, PathBuf, PathBuf), Error> {
        let absolute = self.absolute(path);
        let denied = || Error::Denied(path.to_string());
        for root in &self.roots {
            if let Ok(relative) = absolute.strip_prefix(&root.path) {
                return Ok((root, relative.to_path_buf(), absolute.clone()));
            }
        }
        // The path may name an allowed directory through a symlinked prefix.
        let canonical = std::fs::canonicalize(&absolute).map_err(|_| denied())?;
        for root in &self.roots {
            if let Ok(relative) = canonical.strip_prefix(&root.path) {
                return Ok((root, relative.to_path_buf(), absolute.clone()));
            }
        }
        Err(denied())
    }

    fn is_private(&self, canonical: &Path) -> bool {
        self.private.iter().any(|p| canonical.starts_with(p))
    }

    /// Opens a regular file for reading, refusing every escape from the allowed roots,
    /// Weft's own files, and anything that is not a regular file. The open never blocks
    /// (a FIFO is refused, not waited on).
    pub fn open_file(&self, path: &str) -> Result<(std::fs::File, u64), Error> {
        let (root, relative, absolute) = self.locate(path)?;
        if relative.as_os_str().is_empty() {
            return Err(Error::other(path, "is a directory, not a file"));
        }
        if stands_for_a_name_that_is_not_utf8(&root.dir, &relative) {
            return Err(Error::NotUtf8(path.to_string()));
        }
        let file = root
            .dir
            .open_with(
                &relative,
                OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK),
            )
            .map_err(|e| match Error::io(&absolute, e) {
                Error::Denied(_) => Error::Denied(path.to_string()),
                other => other,
            })?
            .into_std();
        let metadata = file.metadata().map_err(|e| Error::io(&absolute, e))?;
        if !metadata.is_file() {
            return Err(Error::other(
                path,
                "not a regular file (a directory, FIFO, socket or device)",
            ));
        }
        // Where the opened file really is, whatever symlinks led there (the handle kept
        // it beneath its root, so where no private path is, there is nothing to ask).
        if root.holds_private {
            // Without /proc there is no telling, so the file is refused.
            let opened = std::fs::read_link(format!("/proc/self/fd/{}", fd_of(&file)))
                .map_err(|e| {
                    Error::other(
                        path,
                        &format!(
                            "cannot tell whether it is one of Weft's own files ({e}; is /proc mounted?); \
                             allow a directory that does not hold Weft's data, cache or blob directory"
                        ),
                    )
                })?;
            if self.is_private(&opened) {
                return Err(Error::Private(path.to_string()));
            }
        }
        Ok((file, metadata.len()))
    }

    /// Every regular file under `root`, recursively, sorted by path. The walk goes through
    /// directory handles: directories are entered only as real directories (symlinks to
    /// directories are not followed), symlinks to files are listed only when they resolve
    /// inside the same allowed root, and Weft's own directories are left out.
    ///
    /// The walk holds open only the directories on its current path, however wide the
    /// tree, and it stops with [`Error::TooLarge`] once the paths it holds (the files
    /// found and the directories still to enter) would take more than `limit` bytes,
    /// each counted as a guest receives a listed file: its path and [`ENTRY_BYTES`]. So a
    /// huge tree costs the host a bounded amount. It stops with [`Error::Abandoned`] as
    /// soon as `abandoned` is set (its activity ended: it timed out, or its instance did),
    /// so that no walk outlives the attempt that asked for it.
    pub fn list_files(
        &self,
        root: &str,
        limit: usize,
        abandoned: &Abandoned,
    ) -> Result<Vec<FileEntry>, Error> {
        let (allowed, relative, absolute) = self.locate(root)?;
        let canonical = std::fs::canonicalize(&absolute).map_err(|e| Error::io(&absolute, e))?;
        if !canonical.starts_with(&allowed.path) {
            return Err(Error::Denied(root.to_string()));
        }
        if self.is_private(&canonical) {
            return Err(Error::Private(root.to_string()));
        }
        let top = if relative.as_os_str().is_empty() {
            allowed
                .dir
                .try_clone()
                .map_err(|e| Error::io(&absolute, e))?
        } else {
            allowed
                .dir
                .open_dir(&relative)
                .map_err(|e| match Error::io(&absolute, e) {
                    Error::Denied(_) => Error::Denied(root.to_string()),
                    Error::Io { .. } => Error::other(root, "not a directory"),
                    other => other,
                })?
        };
        let mut files = Vec::new();
        let mut held = 0usize;
        let mut hold = |path: &Path| {
            held = held.saturating_add(path.as_os_str().len() + ENTRY_BYTES);
            if held > limit {
                return Err(Error::TooLarge {
                    root: root.to_string(),
                    limit,
                });
            }
            Ok(())
        };
        // A file removed between the directory read and its stat has vanished, as it would
        // have a moment earlier: it is left out, not an error for the rest.
        let vanished = |path: &Path| {
            tracing::info!(path = %path.display(), "skipping a file that vanished while listing");
        };
        let mut pending = Vec::new();
        let mut next = Some((Arc::new(top), absolute, canonical));
        while let Some((dir, shown, real)) = match next.take() {
            Some(listing) => Some(listing),
            None => open_next(&mut pending)?,
        } {
            let entries = dir.entries().map_err(|e| Error::io(&shown, e))?;
            for entry in entries {
                if abandoned.is_set() {
                    return Err(Error::Abandoned(root.to_string()));
                }
                let entry = entry.map_err(|e| Error::io(&shown, e))?;
                let name = entry.file_name();
                let (shown_path, real_path) = (shown.join(&name), real.join(&name));
                if self.is_private(&real_path) {
                    continue;
                }
                let file_type = match entry.file_type() {
                    Ok(file_type) => file_type,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        vanished(&shown_path);
                        continue;
                    }
                    Err(e) => return Err(Error::io(&shown_path, e)),
                };
                let size = if file_type.is_dir() {
                    hold(&shown_path)?;
                    pending.push(Subdir {
                        parent: dir.clone(),
                        name,
                        shown: shown_path,
                        real: real_path,
                    });
                    continue;
                } else if file_type.is_file() {
                    match entry.metadata() {
                        Ok(metadata) => metadata.len(),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            vanished(&shown_path);
                            continue;
                        }
                        Err(e) => return Err(Error::io(&shown_path, e)),
                    }
                } else if file_type.is_symlink() {
                    // Followed through the handle: a target outside the root is an error.
                    match dir.metadata(&name) {
                        Ok(target)
                            if target.is_file()
                                && !std::fs::canonicalize(&real_path)
                                    .is_ok_and(|t| self.is_private(&t)) =>
                        {
                            target.len()
                        }
                        _ => {
                            tracing::warn!(path = %shown_path.display(), "skipping a symlink that does not point at an allowed file");
                            continue;
                        }
                    }
                } else {
                    tracing::info!(path = %shown_path.display(), "skipping a special file (FIFO, socket or device)");
                    continue;
                };
                // A name that is not UTF-8 is listed lossily, so that the caller counts and
                // reports it; opening that lossy name is refused (see `open_file`).
                let path = match shown_path.to_str() {
                    Some(path) => path.to_string(),
                    None => {
                        let lossy = shown_path.to_string_lossy().into_owned();
                        tracing::warn!(path = %lossy, "listing a file whose name is not UTF-8 under a lossy name; it cannot be copied");
                        lossy
                    }
                };
                hold(&shown_path)?;
                files.push(FileEntry { path, size });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

/// What one listed entry costs a guest besides its path: the string's pointer and length,
/// and the size (the `file-entry` record as the canonical ABI lays it out).
pub const ENTRY_BYTES: usize = 16;

/// A directory a listing found and has not entered yet. It is opened, through its
/// parent's handle, only when its turn comes.
struct Subdir {
    parent: Arc<Dir>,
    name: std::ffi::OsString,
    shown: PathBuf,
    real: PathBuf,
}

/// A directory being listed: its handle, the path shown for it, and its real path.
type Listing = (Arc<Dir>, PathBuf, PathBuf);

/// Opens the next pending directory; `None` once none is left. One that is gone, or no
/// longer a directory, has vanished and is skipped. One that cannot be opened for another
/// reason (no permission, no descriptor left) fails the listing, which would otherwise
/// leave its files out unseen.
fn open_next(pending: &mut Vec<Subdir>) -> Result<Option<Listing>, Error> {
    while let Some(subdir) = pending.pop() {
        match subdir.parent.open_dir(&subdir.name) {
            Ok(dir) => return Ok(Some((Arc::new(dir), subdir.shown, subdir.real))),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                tracing::info!(path = %subdir.shown.display(), "skipping a directory that vanished while listing");
            }
            Err(e) => return Err(Error::io(&subdir.shown, e)),
        }
    }
    Ok(None)
}

/// Whether `relative` (under `root`) is, or runs through, the lossy form of a name that is
/// not UTF-8: some component holding U+FFFD has a sibling whose real name is not UTF-8 and
/// reads the same lossily. Only paths with U+FFFD pay for the directory reads, and a
/// real file named with U+FFFD that such a sibling shadows is refused too, since the two
/// cannot be told apart by name.
fn stands_for_a_name_that_is_not_utf8(root: &Dir, relative: &Path) -> bool {
    if !relative
        .to_string_lossy()
        .contains(char::REPLACEMENT_CHARACTER)
    {
        return false;
    }
    let mut parent = PathBuf::new();
    for component in relative.components() {
        let name = component.as_os_str();
        let suspicious = name
            .to_str()
            .is_some_and(|name| name.contains(char::REPLACEMENT_CHARACTER));
        if suspicious {
            let dir = if parent.as_os_str().is_empty() {
                root.try_clone()
            } else {
                root.open_dir(&parent)
            };
            let Ok(entries) = dir.and_then(|dir| dir.entries()) else {
                // The open that follows reports why the path cannot be used.
                return false;
            };
            let shadowed = entries.flatten().any(|entry| {
                let sibling = entry.file_name();
                sibling.to_str().is_none() && sibling.to_string_lossy() == name.to_string_lossy()
            });
            if shadowed {
                return true;
            }
        }
        parent.push(name);
    }
    false
}

/// The canonical form of `path` (absolute), or, if it does not exist yet, the canonical
/// form of its nearest existing ancestor with the rest of it appended (a `..` there taken
/// lexically: a directory that does not exist is no symlink): where it will be once made.
/// `None` if no ancestor resolves.
fn canonical_or_future(path: &Path) -> Option<PathBuf> {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(mut found) = std::fs::canonicalize(at) {
            for part in rest.iter().rev() {
                match part {
                    Component::ParentDir => {
                        found.pop();
                    }
                    Component::Normal(name) => found.push(name),
                    _ => {}
                }
            }
            return Some(found);
        }
        rest.push(at.components().next_back()?);
        at = at.parent()?;
    }
}

fn fd_of(file: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    file.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything under `root`, without a limit, never abandoned.
    fn list_all(confinement: &Confinement, root: &Path) -> Result<Vec<FileEntry>, Error> {
        confinement.list_files(
            root.to_str().unwrap_or_default(),
            usize::MAX,
            &Abandoned::default(),
        )
    }

    fn setup() -> (tempfile::TempDir, Confinement) {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        std::fs::create_dir_all(allowed.join("sub")).unwrap_or_default();
        std::fs::write(allowed.join("sub/a.txt"), "abc").unwrap_or_default();
        std::fs::write(top.path().join("secret"), "s3cret").unwrap_or_default();
        let confinement = Confinement::new(&[allowed], &[]).unwrap_or_else(|e| panic!("{e}"));
        (top, confinement)
    }

    #[test]
    fn files_inside_open_and_escapes_are_denied() {
        let (top, confinement) = setup();
        let allowed = top.path().join("allowed");
        let inside = allowed.join("sub/a.txt");
        assert_eq!(
            confinement
                .open_file(inside.to_str().unwrap_or_default())
                .map(|(_, size)| size)
                .ok(),
            Some(3)
        );

        #[cfg(unix)]
        std::os::unix::fs::symlink(top.path().join("secret"), allowed.join("link"))
            .unwrap_or_default();
        for path in [
            "/etc/passwd".to_string(),
            format!("{}/sub/../../secret", allowed.display()),
            format!("{}/link", allowed.display()),
        ] {
            match confinement.open_file(&path) {
                Err(Error::Denied(p)) => assert_eq!(p, path),
                other => panic!(
                    "{path}: expected access denied, got {:?}",
                    other.map(|(_, size)| size)
                ),
            }
        }
    }

    #[test]
    fn listing_never_follows_a_directory_symlink_and_leaves_private_dirs_out() {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        let outside = top.path().join("outside");
        for dir in [allowed.join("data"), outside.clone()] {
            std::fs::create_dir_all(dir).unwrap_or_default();
        }
        std::fs::write(allowed.join("a.txt"), "a").unwrap_or_default();
        std::fs::write(allowed.join("data/weft.db"), "db").unwrap_or_default();
        std::fs::write(outside.join("secret"), "s").unwrap_or_default();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, allowed.join("door")).unwrap_or_default();
        let confinement = Confinement::new(std::slice::from_ref(&allowed), &[allowed.join("data")])
            .unwrap_or_else(|e| panic!("{e}"));
        let files = list_all(&confinement, &allowed).unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(paths, vec![allowed.join("a.txt").display().to_string()]);
        let private = allowed.join("data/weft.db");
        assert!(matches!(
            confinement.open_file(private.to_str().unwrap_or_default()),
            Err(Error::Private(_))
        ));
        // Nor through a symlink that stays inside the root.
        #[cfg(unix)]
        std::os::unix::fs::symlink("data/weft.db", allowed.join("db-link")).unwrap_or_default();
        assert!(matches!(
            confinement.open_file(allowed.join("db-link").to_str().unwrap_or_default()),
            Err(Error::Private(_))
        ));
    }

    #[test]
    fn a_private_dir_made_after_the_start_is_closed_too() {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        std::fs::create_dir_all(&allowed).unwrap_or_default();
        let blobs = allowed.join("later/blobs");
        // Named through a directory that does not exist either, and `..`.
        let cache = allowed.join("new/../cache");
        let confinement = Confinement::new(std::slice::from_ref(&allowed), &[blobs.clone(), cache])
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&blobs).unwrap_or_default();
        std::fs::write(blobs.join("copy.txt"), "c").unwrap_or_default();
        std::fs::write(allowed.join("later/mine.txt"), "m").unwrap_or_default();
        std::fs::create_dir_all(allowed.join("cache")).unwrap_or_default();
        std::fs::write(allowed.join("cache/code"), "c").unwrap_or_default();
        assert!(matches!(
            confinement.open_file(allowed.join("cache/code").to_str().unwrap_or_default()),
            Err(Error::Private(_))
        ));
        assert!(matches!(
            confinement.open_file(blobs.join("copy.txt").to_str().unwrap_or_default()),
            Err(Error::Private(_))
        ));
        assert!(
            confinement
                .open_file(allowed.join("later/mine.txt").to_str().unwrap_or_default())
                .is_ok()
        );
        let files = list_all(&confinement, &allowed).unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(
            paths,
            vec![allowed.join("later/mine.txt").display().to_string()]
        );
    }

    #[test]
    fn an_abandoned_listing_stops() {
        let (dir, confinement) = setup();
        let allowed = dir.path().join("allowed");
        let root = allowed.to_str().unwrap_or_default();
        let gone = Abandoned::default();
        drop(gone.on_drop());
        assert!(matches!(
            confinement.list_files(root, usize::MAX, &gone),
            Err(Error::Abandoned(_))
        ));
        assert!(list_all(&confinement, &allowed).is_ok_and(|files| !files.is_empty()));
    }

    #[test]
    fn listing_skips_symlinks_that_point_out() {
        let (top, confinement) = setup();
        let allowed = top.path().join("allowed");
        #[cfg(unix)]
        std::os::unix::fs::symlink(top.path().join("secret"), allowed.join("link"))
            .unwrap_or_default();
        let files = list_all(&confinement, &allowed).unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![allowed.join("sub/a.txt").to_str().unwrap_or_default()]
        );
        assert!(matches!(
            list_all(&confinement, top.path()),
            Err(Error::Denied(_))
        ));
    }

    #[test]
    fn a_listing_larger_than_its_limit_stops_with_a_clear_error() {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        std::fs::create_dir_all(allowed.join("sub")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(allowed.join("a.txt"), "a").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(allowed.join("sub/b.txt"), "b").unwrap_or_else(|e| panic!("{e}"));
        let confinement =
            Confinement::new(std::slice::from_ref(&allowed), &[]).unwrap_or_else(|e| panic!("{e}"));
        let root = allowed.to_str().unwrap_or_default();
        // Two files and a directory, each its path and ENTRY_BYTES.
        let needed: usize = ["a.txt", "sub", "sub/b.txt"]
            .iter()
            .map(|name| allowed.join(name).as_os_str().len() + ENTRY_BYTES)
            .sum();
        let listed = confinement
            .list_files(root, needed, &Abandoned::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(listed.len(), 2);
        match confinement.list_files(root, needed - 1, &Abandoned::default()) {
            Err(error @ Error::TooLarge { .. }) => {
                let message = error.to_string();
                assert!(
                    message.contains(root) && message.contains("--guest-memory-mib"),
                    "{message}"
                );
            }
            other => panic!(
                "expected a listing too large, got {:?}",
                other.map(|f| f.len())
            ),
        }
    }

    #[test]
    fn files_removed_while_a_directory_is_listed_are_left_out_not_an_error() {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        std::fs::create_dir_all(&allowed).unwrap_or_else(|e| panic!("{e}"));
        let confinement =
            Confinement::new(std::slice::from_ref(&allowed), &[]).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = (0..2000).map(|i| format!("{i:04}.txt")).collect();
        // Rounds of listing while another thread removes the files: a stat that finds a
        // listed name gone must skip it. Each round lists what was there at some moment.
        for _ in 0..3 {
            for name in &names {
                std::fs::write(allowed.join(name), "x").unwrap_or_else(|e| panic!("{e}"));
            }
            let remover = {
                let (allowed, names) = (allowed.clone(), names.clone());
                std::thread::spawn(move || {
                    for name in names.iter().rev() {
                        std::fs::remove_file(allowed.join(name)).unwrap_or_default();
                    }
                })
            };
            let listed = list_all(&confinement, &allowed)
                .unwrap_or_else(|e| panic!("a listing failed on a vanished file: {e}"));
            remover
                .join()
                .unwrap_or_else(|_| panic!("the remover panicked"));
            for file in &listed {
                let name = Path::new(&file.path).file_name().and_then(|n| n.to_str());
                assert!(
                    name.is_some_and(|n| names.iter().any(|m| m == n)),
                    "{} was never written",
                    file.path
                );
                assert_eq!(file.size, 1, "{}", file.path);
            }
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_listed_lossily_and_refused_by_that_name() {
        use std::os::unix::ffi::OsStrExt;
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        let bad_dir = allowed.join(std::ffi::OsStr::from_bytes(b"dir\xfe"));
        std::fs::create_dir_all(&bad_dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            allowed.join(std::ffi::OsStr::from_bytes(b"a\xff.txt")),
            "bad",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // A real file whose name reads the same as the lossy form of the one above.
        std::fs::write(allowed.join("a\u{FFFD}.txt"), "real").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(bad_dir.join("in.txt"), "in").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(allowed.join("ok\u{FFFD}.txt"), "ok").unwrap_or_else(|e| panic!("{e}"));
        let confinement =
            Confinement::new(std::slice::from_ref(&allowed), &[]).unwrap_or_else(|e| panic!("{e}"));
        let files = list_all(&confinement, &allowed).unwrap_or_else(|e| panic!("{e}"));
        let base = allowed.display().to_string();
        let mut listed: Vec<_> = files.iter().map(|f| (f.path.clone(), f.size)).collect();
        // Two entries share the lossy path; their order is the directory's.
        listed.sort();
        assert_eq!(
            listed,
            vec![
                (format!("{base}/a\u{FFFD}.txt"), 3),
                (format!("{base}/a\u{FFFD}.txt"), 4),
                (format!("{base}/dir\u{FFFD}/in.txt"), 2),
                (format!("{base}/ok\u{FFFD}.txt"), 2),
            ],
        );
        // Neither the lossy name nor the real file it shadows is opened by that name, and
        // a file inside a directory whose name is not UTF-8 is refused the same way.
        for path in [
            format!("{base}/a\u{FFFD}.txt"),
            format!("{base}/dir\u{FFFD}/in.txt"),
        ] {
            match confinement.open_file(&path) {
                Err(Error::NotUtf8(p)) => assert_eq!(p, path),
                other => panic!("{path}: expected NotUtf8, got {:?}", other.map(|(_, s)| s)),
            }
        }
        // A real name with U+FFFD that nothing shadows opens as usual.
        let ok = format!("{base}/ok\u{FFFD}.txt");
        assert_eq!(
            confinement.open_file(&ok).map(|(_, size)| size).ok(),
            Some(2)
        );
    }
}
