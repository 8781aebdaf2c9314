//! The wasmtime engine and the compiled-component cache.
//!
//! One [`Engine`] serves the whole process. Components are compiled once per content and
//! engine configuration and the compiled form is kept in the cache directory, so later
//! starts deserialize in a fraction of a millisecond instead of compiling again.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Why the engine could not be built or a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot configure the wasm engine: {0}")]
    Engine(String),
    #[error("cannot read component {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent { path: String, reason: String },
}

/// Limits of the instance pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Component instances alive at once (hot orchestrations plus running activities).
    pub instances: u32,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self { instances: 1000 }
    }
}

/// Bytes of a pooled slot's linear memory kept resident between instances.
const KEEP_RESIDENT: usize = 2 << 20;

/// Builds the process's engine: async support, epoch interruption for deadlines, and a
/// pooling allocator so that each activity call gets a fresh instance cheaply.
pub fn new_engine(limits: PoolLimits) -> Result<Engine, Error> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(limits.instances)
        // A Rust guest is one main module plus a few shims.
        .total_core_instances(limits.instances.saturating_mul(4))
        .total_memories(limits.instances)
        .total_tables(limits.instances.saturating_mul(4))
        // Reset a freed slot's first pages by overwriting them instead of handing them back
        // to the kernel: `madvise` on every activity call costs a TLB shootdown on every
        // core and a page fault per page on the next call. A Rust guest starts with about
        // 1.1 MiB of memory, so this covers a typical call; only slots in use stay resident.
        // Where the kernel can say which pages a call dirtied (Linux 6.7+), only those are
        // reset.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .async_stack_keep_resident(KEEP_RESIDENT / 8);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config).map_err(|e| Error::Engine(format!("{e:#}")))
}

/// Loads the component in `bytes` (read from `origin`), using and filling the compiled
/// cache in `cache_dir` when one is given.
pub fn load_component(
    engine: &Engine,
    bytes: &[u8],
    origin: &str,
    cache_dir: Option<&Path>,
) -> Result<Component, Error> {
    let not_a_component = |reason: String| Error::NotAComponent {
        path: origin.to_string(),
        reason,
    };
    if !wasmparser_is_component(bytes) {
        return Err(not_a_component(
            "it does not start with the component header (a core module or another file?); build it for wasm32-wasip2"
                .to_string(),
        ));
    }
    let Some(cache_dir) = cache_dir else {
        return Component::new(engine, bytes).map_err(|e| not_a_component(format!("{e:#}")));
    };
    let cached = cache_path(engine, bytes, cache_dir);
    if let Ok(stored) = std::fs::read(&cached) {
        match verified(&stored) {
            // SAFETY: the bytes are exactly what `Component::serialize` wrote for this
            // engine configuration (their SHA-256 matches the one stored with them, so a
            // damaged or truncated file is never run); wasmtime also checks the header
            // and the engine's compatibility.
            Some(compiled) => match unsafe { Component::deserialize(engine, compiled) } {
                Ok(component) => return Ok(component),
                Err(error) => {
                    tracing::warn!(path = %cached.display(), "ignoring unusable cached component: {error:#}")
                }
            },
            None => {
                tracing::warn!(path = %cached.display(), "the cached component is damaged (checksum mismatch); compiling it again")
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| not_a_component(format!("{e:#}")))?;
    if let Err(error) = store_compiled(&component, &cached) {
        // The cache only saves time; a read-only data dir must not stop the host.
        tracing::warn!(path = %cached.display(), "cannot cache the compiled component: {error}");
    }
    Ok(component)
}

/// Reads a component file and loads it.
pub fn load_component_file(
    engine: &Engine,
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<Component, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_component(engine, &bytes, &path.display().to_string(), cache_dir)
}

/// The layer-and-version preamble of a component (as opposed to a core module).
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [0x01, 0x00]
}

fn cache_path(engine: &Engine, bytes: &[u8], cache_dir: &Path) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let content = Sha256::digest(bytes);
    let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
    cache_dir.join(format!("{hex}-{:016x}.cwasm", engine_hash.finish()))
}

/// The compiled bytes of a cache file, if the SHA-256 that ends it matches them.
fn verified(stored: &[u8]) -> Option<&[u8]> {
    let split = stored.len().checked_sub(32)?;
    let (compiled, checksum) = stored.split_at(split);
    (Sha256::digest(compiled).as_slice() == checksum).then_some(compiled)
}

fn store_compiled(component: &Component, path: &Path) -> std::io::Result<()> {
    let mut compiled = component
        .serialize()
        .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
    let checksum = Sha256::digest(&compiled);
    compiled.extend_from_slice(&checksum);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write then rename, so a crash never leaves a truncated file under the final name.
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&partial, compiled)?;
    std::fs::rename(&partial, path)
}

/// A trap's message without the wasm backtrace, which users cannot act on.
pub fn describe_trap(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => {
            "wasm `unreachable` executed (a panic in the guest?)".to_string()
        }
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    }
}
