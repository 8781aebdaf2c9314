//! `weft bench backup`: the backup sample (`E2_BackupSiteContent`, run by the real
//! `weft run` binary) against its peers on the same generated tree: a raw object_store
//! copy at the same concurrency (what the sample's activities do, minus Weft), `cp -r`,
//! and `rclone copy`. Each tool copies to a fresh local directory; the page cache holds
//! the tree throughout; runs alternate between the tools, and the median run counts.
//!
//! No copy is deleted before the scenario ends. Deleting thousands of files slows the
//! creation of files on the same filesystem for a while afterwards (ext4 without a
//! journal, as on the machine of BENCHMARKS.md, skips over inodes deleted in the last
//! 60 to 360 seconds when it allocates one, and scans them to do so), so a run that
//! followed the deletion of the previous run's copy measured that scan as much as the tool.

use super::child::{self, Finished, cpu_time_self};
use super::tree::{self, Shape, Tree};
use super::{Workdir, async_runtime, finish, median, millis, remove_dir, round};
use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Options {
    pub files: u64,
    pub big_files: u64,
    pub big_mib: u64,
    pub runs: u32,
}

pub fn run(options: &Options, work: &Workdir) -> Result<Value> {
    let site = work.path("site");
    remove_dir(&site)?;
    eprintln!(
        "backup: generating {} files of 1-64 KiB and {} of {} MiB",
        options.files, options.big_files, options.big_mib
    );
    let tree = tree::generate(
        &site,
        &Shape {
            files: options.files,
            sizes: 1024..=64 * 1024,
            per_dir: 100,
            big_files: options.big_files,
            big_bytes: options.big_mib << 20,
        },
    )?;
    eprintln!(
        "backup: {} files, {:.1} MiB in {}",
        tree.files,
        tree.bytes as f64 / (1 << 20) as f64,
        site.display()
    );

    let rclone = rclone_available();
    if !rclone {
        eprintln!(
            "backup: rclone is not installed, so it is left out (install it with `apt-get install -y rclone`)"
        );
    }
    let outputs = TOOLS.len() as u64 * u64::from(options.runs);
    let needed = outputs * tree.bytes + outputs * tree.files * 4096;
    if let Some(free) = super::free_bytes(&work.root) {
        ensure!(
            free > needed,
            "the copies of {} run(s) of {} tools need about {} MiB and {} has {} MiB free; \
             use fewer --runs, a smaller tree, or a --data-dir on a larger disk",
            options.runs,
            TOOLS.len(),
            needed >> 20,
            work.root.display(),
            free >> 20
        );
    }
    // Compiles the sample into the cache, so that no timed run pays for it.
    warm_up_weft(work)?;

    let copier = async_runtime()?;
    let mut samples: [Vec<Sample>; 5] = Default::default();
    let mut weft_rss_kib = 0;
    for run in 1..=options.runs {
        let weft = weft_backup(&tree, work, run)?;
        weft_rss_kib = weft_rss_kib.max(weft.peak_rss_kib);
        samples[0].push(Sample {
            wall: weft.elapsed,
            cpu: weft.cpu,
        });
        samples[1].push(copier.block_on(raw_copy(&tree, work, run, Durability::None))?);
        samples[2].push(copier.block_on(raw_copy(&tree, work, run, Durability::HashAndSync))?);
        samples[3].push(cp(&tree, work, run)?);
        if rclone {
            samples[4].push(rclone_copy(&tree, work, run)?);
        }
        let line: Vec<String> = TOOLS
            .iter()
            .zip(&samples)
            .filter_map(|(tool, samples)| {
                let last = samples.last()?;
                Some(format!("{tool} {:.2} s", last.wall.as_secs_f64()))
            })
            .collect();
        eprintln!("backup: run {run}: {}", line.join(", "));
    }
    finish(copier);
    for run in 1..=options.runs {
        for tool in OUTPUTS {
            remove_dir(&output(work, tool, run))?;
        }
        remove_dir(&output(work, "weft-data", run))?;
    }

    // Medians of wall and CPU time, each on its own; `None` for a tool not run.
    let [weft, raw, durable, cp, rclone] = samples.map(|samples| {
        (!samples.is_empty()).then(|| Sample {
            wall: median(samples.iter().map(|s| s.wall).collect()),
            cpu: median(samples.iter().map(|s| s.cpu).collect()),
        })
    });
    let (weft, raw, durable, cp) = (
        weft.unwrap_or_default(),
        raw.unwrap_or_default(),
        durable.unwrap_or_default(),
        cp.unwrap_or_default(),
    );
    let ratio = |peer: &Sample| round(weft.wall.as_secs_f64() / peer.wall.as_secs_f64().max(1e-9));
    let mib = tree.bytes as f64 / (1 << 20) as f64;
    eprintln!("backup: medians of {} run(s):", options.runs);
    for (tool, sample) in TOOLS.iter().zip([
        Some(&weft),
        Some(&raw),
        Some(&durable),
        Some(&cp),
        rclone.as_ref(),
    ]) {
        match sample {
            Some(Sample { wall, cpu }) => eprintln!(
                "  {tool:<34} {:>8.3} s  {:>9.1} files/s  {:>7.1} MiB/s  {:>8.3} s of CPU",
                wall.as_secs_f64(),
                tree.files as f64 / wall.as_secs_f64(),
                mib / wall.as_secs_f64(),
                cpu.as_secs_f64()
            ),
            None => eprintln!("  {tool:<34} not installed"),
        }
    }
    Ok(json!({
        "scenario": "backup",
        "files": tree.files,
        "bytes": tree.bytes,
        "runs": options.runs,
        "max_activities": work.max_activities,
        "weft_ms": millis(weft.wall),
        "raw_object_store_ms": millis(raw.wall),
        "raw_hash_sync_ms": millis(durable.wall),
        "cp_ms": millis(cp.wall),
        "rclone_ms": rclone.as_ref().map(|s| millis(s.wall)),
        "overhead_ratio": ratio(&raw),
        "overhead_ratio_same_work": ratio(&durable),
        "vs_rclone": rclone.as_ref().map(ratio),
        "vs_cp": ratio(&cp),
        "weft_cpu_ms": millis(weft.cpu),
        "raw_object_store_cpu_ms": millis(raw.cpu),
        "raw_hash_sync_cpu_ms": millis(durable.cpu),
        "cp_cpu_ms": millis(cp.cpu),
        "rclone_cpu_ms": rclone.as_ref().map(|s| millis(s.cpu)),
        "weft_peak_rss_mib": round(weft_rss_kib as f64 / 1024.0),
    }))
}

const TOOLS: [&str; 5] = [
    "weft (E2_BackupSiteContent)",
    "raw object_store copy",
    "raw copy + SHA-256 + fsync",
    "cp -r",
    "rclone copy",
];

/// The names of the tools' copies (see [`output`]), in the order of [`TOOLS`].
const OUTPUTS: [&str; 5] = [
    "out-weft",
    "out-object-store",
    "out-hash-sync",
    "out-cp",
    "out-rclone",
];

/// Where `tool`'s copy of run `run` goes: a fresh directory for every run.
fn output(work: &Workdir, tool: &str, run: u32) -> PathBuf {
    work.path(&format!("{tool}-{run}"))
}

/// One timed run of a tool: wall time and the CPU time it spent.
#[derive(Clone, Copy, Default)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// `weft run E2_BackupSiteContent` of `site` into the blob directory `blobs`, with its
/// own data dir. Weft's default log level, whatever the caller's.
pub fn weft_command(site: &Path, data_dir: &Path, blobs: &Path, work: &Workdir) -> Command {
    let mut command = Command::new(current_exe());
    command
        .current_dir(&work.root)
        .env_remove("WEFT_LOG")
        .arg("run")
        .arg("E2_BackupSiteContent")
        .arg("--input")
        .arg(Value::String(site.display().to_string()).to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--cache-dir")
        .arg(&work.cache_dir)
        .arg("--blobs")
        .arg(format!("file://{}", blobs.display()))
        .arg("--allow-dir")
        .arg(site)
        .arg("--max-activities")
        .arg(work.max_activities.to_string());
    command
}

/// This very binary: the bench measures the `weft` it belongs to.
fn current_exe() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("weft"))
}

fn warm_up_weft(work: &Workdir) -> Result<()> {
    let empty = work.path("warm-up-site");
    std::fs::create_dir_all(&empty)?;
    let (data, blobs) = (work.path("warm-up-data"), work.path("warm-up-blobs"));
    child::run(weft_command(&empty, &data, &blobs, work))?.check("weft (warm-up)")?;
    for dir in [empty, data, blobs] {
        remove_dir(&dir)?;
    }
    Ok(())
}

/// Flushes what earlier runs wrote, so that a run does not compete with their
/// write-back, and removes what an earlier bench left in `dirs` (with `--data-dir`);
/// then gives the disk a few seconds to calm down (see [`settle`]).
fn clean(dirs: &[&Path]) -> Result<()> {
    for dir in dirs {
        remove_dir(dir)?;
    }
    child::run(Command::new("sync"))?.check("sync")?;
    settle();
    Ok(())
}

/// The share of a [`CALM_WINDOW`] in which tasks may wait for I/O on a calm disk.
const CALM: f64 = 0.02;
/// How long the disk is watched at a time.
const CALM_WINDOW: Duration = Duration::from_millis(500);
/// The longest [`settle`] waits.
const SETTLE_MAX: Duration = Duration::from_secs(10);

/// Waits, for at most [`SETTLE_MAX`], until tasks waited for I/O during less than
/// [`CALM`] of the last [`CALM_WINDOW`]: the fsyncs of one tool's run (or other users of
/// a shared disk) keep it busy for a while after it ends, and the next tool would pay for
/// them. (The kernel's 10-second average would still count the `sync` just done.)
fn settle() {
    let started = Instant::now();
    while let Some(before) = super::io_stall_micros() {
        std::thread::sleep(CALM_WINDOW);
        let Some(after) = super::io_stall_micros() else {
            return;
        };
        let stalled = Duration::from_micros(after.saturating_sub(before));
        if stalled.as_secs_f64() < CALM * CALM_WINDOW.as_secs_f64() {
            return;
        }
        if started.elapsed() >= SETTLE_MAX {
            eprintln!(
                "backup: the disk is still busy after {SETTLE_MAX:?}; going on (timings will vary)"
            );
            return;
        }
    }
}

/// Checks that `copy` holds exactly the tree's files and bytes.
fn verify(tool: &str, tree: &Tree, copy: &Path) -> Result<()> {
    let (files, bytes) = tree::measure(copy)?;
    ensure!(
        (files, bytes) == (tree.files, tree.bytes),
        "{tool} copied {files} files and {bytes} bytes; the tree has {} and {}",
        tree.files,
        tree.bytes
    );
    Ok(())
}

/// Where the sample puts the blobs of `site` under a blob directory.
fn sample_blobs(blobs: &Path, site: &Path) -> PathBuf {
    blobs
        .join("backups")
        .join(site.strip_prefix("/").unwrap_or(site))
}

fn weft_backup(tree: &Tree, work: &Workdir, run: u32) -> Result<Finished> {
    let (data, blobs) = (
        output(work, "weft-data", run),
        output(work, OUTPUTS[0], run),
    );
    clean(&[&data, &blobs])?;
    let finished = child::run(weft_command(&tree.root, &data, &blobs, work))?.check("weft run")?;
    ensure!(
        finished.last_line() == tree.bytes.to_string(),
        "weft reported {} bytes copied, expected {}",
        finished.last_line(),
        tree.bytes
    );
    verify("weft", tree, &sample_blobs(&blobs, &tree.root))?;
    Ok(finished)
}

/// What a raw copy does besides copying.
#[derive(Clone, Copy, PartialEq)]
enum Durability {
    /// Nothing: the bytes are in the page cache when it ends.
    None,
    /// What the sample's `file://` copies do besides recording their results: hash every
    /// file with SHA-256, and fsync every blob and its directory (see [`hash_and_put`]).
    HashAndSync,
}

/// The sample's copies without Weft: list the tree, then stream each file into a blob
/// of the same name through object_store's `BufWriter` (as the `blob` import does), as
/// many at once as Weft runs activities.
async fn raw_copy(tree: &Tree, work: &Workdir, run: u32, durability: Durability) -> Result<Sample> {
    let out = match durability {
        Durability::None => output(work, OUTPUTS[1], run),
        Durability::HashAndSync => output(work, OUTPUTS[2], run),
    };
    clean(&[&out])?;
    let (started, cpu) = (Instant::now(), cpu_time_self());
    std::fs::create_dir_all(&out)?;
    let store: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&out)?);
    let root = tree.root.clone();
    let files = tokio::task::spawn_blocking(move || {
        walkdir::WalkDir::new(root)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|entry| match entry {
                Ok(entry) if entry.file_type().is_file() => Some(Ok(entry.into_path())),
                Ok(_) => None,
                Err(error) => Some(Err(error)),
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let copied: u64 = futures::stream::iter(files)
        .map(|file| copy_one(store.clone(), &out, file, durability))
        .buffer_unordered(work.max_activities)
        .try_fold(0, |total, bytes| async move { Ok(total + bytes) })
        .await?;
    let sample = Sample {
        wall: started.elapsed(),
        cpu: cpu_time_self().saturating_sub(cpu),
    };
    ensure!(
        copied == tree.bytes,
        "the raw copy copied {copied} bytes, expected {}",
        tree.bytes
    );
    verify("the raw copy", tree, &sample_blobs(&out, &tree.root))?;
    Ok(sample)
}

async fn copy_one(
    store: Arc<dyn ObjectStore>,
    out: &Path,
    file: PathBuf,
    durability: Durability,
) -> Result<u64> {
    let relative = file
        .strip_prefix("/")
        .unwrap_or(&file)
        .display()
        .to_string();
    let name = object_store::path::Path::parse(format!("backups/{relative}"))?;
    if durability == Durability::HashAndSync {
        let copied = hash_and_put(store, &name, file).await?;
        // Then the blob and its directory are made durable, as the sample's copies are.
        let blob = out.join("backups").join(&relative);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&blob)?.sync_all()?;
            match blob.parent() {
                Some(dir) => std::fs::File::open(dir)?.sync_all(),
                None => Ok(()),
            }
        })
        .await??;
        return Ok(copied);
    }
    let mut source = tokio::fs::File::open(&file)
        .await
        .with_context(|| format!("cannot open {}", file.display()))?;
    let mut writer = BufWriter::new(store, name);
    let copied = tokio::io::copy(&mut source, &mut writer).await?;
    writer.shutdown().await?;
    Ok(copied)
}

/// Hashes `file` with SHA-256 while it goes into the blob `name`: a file of up to 1 MiB
/// is opened, read and hashed whole in one blocking hand-off and put in one call; a
/// larger one is streamed through `BufWriter` in 1 MiB reads. Memory stays bounded
/// either way.
async fn hash_and_put(
    store: Arc<dyn ObjectStore>,
    name: &object_store::path::Path,
    file: PathBuf,
) -> Result<u64> {
    const CHUNK: usize = 1 << 20;
    enum Opened {
        Whole(Vec<u8>),
        Large(std::fs::File),
    }
    let opened = tokio::task::spawn_blocking(move || -> Result<Opened> {
        let mut source = std::fs::File::open(&file)
            .with_context(|| format!("cannot open {}", file.display()))?;
        if source.metadata()?.len() > CHUNK as u64 {
            return Ok(Opened::Large(source));
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut source, &mut data)?;
        std::hint::black_box(Sha256::digest(&data));
        Ok(Opened::Whole(data))
    })
    .await??;
    let mut source = match opened {
        Opened::Whole(data) => {
            let copied = data.len() as u64;
            store.put(name, data.into()).await?;
            return Ok(copied);
        }
        Opened::Large(source) => tokio::fs::File::from_std(source),
    };
    let (mut hasher, mut buffer, mut copied) = (Sha256::new(), vec![0; CHUNK], 0);
    let mut writer = BufWriter::new(store, name.clone());
    loop {
        let read = source.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        writer.write_all(&buffer[..read]).await?;
        copied += read as u64;
    }
    writer.shutdown().await?;
    std::hint::black_box(hasher.finalize());
    Ok(copied)
}

fn cp(tree: &Tree, work: &Workdir, run: u32) -> Result<Sample> {
    let out = output(work, OUTPUTS[3], run);
    clean(&[&out])?;
    let mut command = Command::new("cp");
    command.arg("-r").arg(&tree.root).arg(&out);
    let finished = child::run(command)?.check("cp -r")?;
    verify("cp -r", tree, &out)?;
    Ok(Sample {
        wall: finished.elapsed,
        cpu: finished.cpu,
    })
}

fn rclone_available() -> bool {
    let mut command = Command::new("rclone");
    command.arg("version");
    child::run(command).is_ok_and(|finished| finished.success())
}

/// `rclone copy` with as many transfers (and checkers) as Weft runs activities.
fn rclone_copy(tree: &Tree, work: &Workdir, run: u32) -> Result<Sample> {
    let out = output(work, OUTPUTS[4], run);
    clean(&[&out])?;
    let mut command = Command::new("rclone");
    let concurrency = work.max_activities.to_string();
    command
        .arg("copy")
        .arg(&tree.root)
        .arg(&out)
        .args(["--transfers", &concurrency, "--checkers", &concurrency])
        .arg("-q");
    let finished = child::run(command)?.check("rclone copy")?;
    verify("rclone copy", tree, &out)?;
    Ok(Sample {
        wall: finished.elapsed,
        cpu: finished.cpu,
    })
}
