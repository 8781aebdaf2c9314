//! Generated directory trees for the backup scenarios: deterministic pseudo-random names,
//! sizes and contents, so that every run of a scenario backs up the same bytes.

use anyhow::{Context, Result};
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// What to generate.
pub struct Shape {
    /// Small files, and the range of their sizes in bytes.
    pub files: u64,
    pub sizes: RangeInclusive<u64>,
    /// Small files per directory.
    pub per_dir: u64,
    /// Big files besides, each `big_bytes` long, in `big/`.
    pub big_files: u64,
    pub big_bytes: u64,
}

/// A generated tree.
pub struct Tree {
    pub root: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

/// Writes a tree of `shape` at `root`, which must not exist yet.
pub fn generate(root: &Path, shape: &Shape) -> Result<Tree> {
    let mut bytes = 0;
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut buffer = Vec::new();
    let span = shape.sizes.end().saturating_sub(*shape.sizes.start()) + 1;
    for i in 0..shape.files {
        let dir = root.join(format!("d{:04}", i / shape.per_dir.max(1)));
        if i % shape.per_dir.max(1) == 0 {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let size = shape.sizes.start() + noise.next() % span;
        noise.fill(&mut buffer, size as usize);
        let path = dir.join(format!("f{i:06}.bin"));
        std::fs::write(&path, &buffer)
            .with_context(|| format!("cannot write {}", path.display()))?;
        bytes += size;
    }
    if shape.big_files > 0 {
        let dir = root.join("big");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for i in 0..shape.big_files {
            let path = dir.join(format!("big{i}.bin"));
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            );
            let mut left = shape.big_bytes;
            while left > 0 {
                let chunk = left.min(1 << 20);
                noise.fill(&mut buffer, chunk as usize);
                file.write_all(&buffer)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                left -= chunk;
            }
            file.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
            bytes += shape.big_bytes;
        }
    }
    if shape.files == 0 && shape.big_files == 0 {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
    }
    Ok(Tree {
        root: root.to_path_buf(),
        files: shape.files + shape.big_files,
        bytes,
    })
}

/// Regular files under `root` and their total size: how a copy is checked.
pub fn measure(root: &Path) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.with_context(|| format!("cannot list {}", root.display()))?;
        if entry.file_type().is_file() {
            files += 1;
            bytes += entry
                .metadata()
                .with_context(|| format!("cannot stat {}", entry.path().display()))?
                .len();
        }
    }
    Ok((files, bytes))
}

/// xorshift64: fast, deterministic filler that does not compress to nothing.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, buffer: &mut Vec<u8>, len: usize) {
        buffer.clear();
        while buffer.len() < len {
            let word = self.next().to_le_bytes();
            buffer.extend_from_slice(&word[..(len - buffer.len()).min(8)]);
        }
    }
}
