//! Confinement of activity file access to the directories the operator allowed.
//!
//! Files are opened through `cap-std` directory handles, which refuse any path that
//! leaves the directory, whether by `..` or by a symlink, at the moment of opening (no
//! check-then-open race). Paths are reported to guests as absolute paths.

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("access denied: {0} is outside the allowed directories")]
    Denied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
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
}

struct Root {
    path: PathBuf,
    dir: Dir,
}

/// The allowed directories.
pub struct Confinement {
    roots: Vec<Root>,
    cwd: PathBuf,
}

/// A regular file found under an allowed directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
}

impl Confinement {
    /// Allows `roots` (each must be an existing directory). Relative paths that guests
    /// pass are resolved against the current directory.
    pub fn new(roots: &[PathBuf]) -> Result<Self, Error> {
        let cwd = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
        let mut resolved = Vec::new();
        for root in roots {
            let path = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
            let dir = Dir::open_ambient_dir(&path, ambient_authority())
                .map_err(|e| Error::io(&path, e))?;
            resolved.push(Root { path, dir });
        }
        Ok(Self {
            roots: resolved,
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

    fn inside(&self, canonical: &Path) -> bool {
        self.roots
            .iter()
            .any(|root| canonical.starts_with(&root.path))
    }

    /// Opens a regular file for reading, refusing every escape from the allowed roots.
    pub fn open_file(&self, path: &str) -> Result<(std::fs::File, u64), Error> {
        let (root, relative, absolute) = self.locate(path)?;
        let file = if relative.as_os_str().is_empty() {
            return Err(Error::Io {
                path: path.to_string(),
                source: io::Error::other("is a directory, not a file"),
            });
        } else {
            root.dir
                .open(&relative)
                .map_err(|e| match Error::io(&absolute, e) {
                    Error::Denied(_) => Error::Denied(path.to_string()),
                    other => other,
                })?
        };
        let metadata = file.metadata().map_err(|e| Error::io(&absolute, e))?;
        if !metadata.is_file() {
            return Err(Error::Io {
                path: path.to_string(),
                source: io::Error::other("not a regular file"),
            });
        }
        Ok((file.into_std(), metadata.len()))
    }

    /// Every regular file under `root`, recursively, sorted by path. Symlinks are listed
    /// only when they point at a file inside the allowed directories; directory symlinks
    /// are not followed.
    pub fn list_files(&self, root: &str) -> Result<Vec<FileEntry>, Error> {
        let (_, _, absolute) = self.locate(root)?;
        let canonical = std::fs::canonicalize(&absolute).map_err(|e| Error::io(&absolute, e))?;
        if !self.inside(&canonical) {
            return Err(Error::Denied(root.to_string()));
        }
        if !canonical.is_dir() {
            return Err(Error::Io {
                path: root.to_string(),
                source: io::Error::other("not a directory"),
            });
        }
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(&absolute).follow_links(false) {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(&absolute).to_path_buf();
                Error::io(&path, e.into())
            })?;
            let file_type = entry.file_type();
            let size = if file_type.is_file() {
                entry
                    .metadata()
                    .map_err(|e| Error::io(entry.path(), e.into()))?
                    .len()
            } else if file_type.is_symlink() {
                match std::fs::canonicalize(entry.path()) {
                    Ok(target) if self.inside(&target) && target.is_file() => {
                        std::fs::metadata(&target)
                            .map_err(|e| Error::io(&target, e))?
                            .len()
                    }
                    _ => {
                        tracing::warn!(path = %entry.path().display(), "skipping a symlink that does not point at an allowed file");
                        continue;
                    }
                }
            } else {
                continue;
            };
            match entry.path().to_str() {
                Some(path) => files.push(FileEntry {
                    path: path.to_string(),
                    size,
                }),
                None => {
                    tracing::warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8")
                }
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Confinement) {
        let top = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let allowed = top.path().join("allowed");
        std::fs::create_dir_all(allowed.join("sub")).unwrap_or_default();
        std::fs::write(allowed.join("sub/a.txt"), "abc").unwrap_or_default();
        std::fs::write(top.path().join("secret"), "s3cret").unwrap_or_default();
        let confinement = Confinement::new(&[allowed]).unwrap_or_else(|e| panic!("{e}"));
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
    fn listing_skips_symlinks_that_point_out() {
        let (top, confinement) = setup();
        let allowed = top.path().join("allowed");
        #[cfg(unix)]
        std::os::unix::fs::symlink(top.path().join("secret"), allowed.join("link"))
            .unwrap_or_default();
        let files = confinement
            .list_files(allowed.to_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![allowed.join("sub/a.txt").to_str().unwrap_or_default()]
        );
        assert!(matches!(
            confinement.list_files(top.path().to_str().unwrap_or_default()),
            Err(Error::Denied(_))
        ));
    }
}
