//! `weft bench <scenario>`: throughput and scale measurements. Each scenario prints
//! readable results to stderr and, as its last stdout line, one JSON object of figures.
//!
//! Scenarios that drive the runtime in-process (`fanout`, `sequential`, `replay`) reach it
//! only through [`host`]; the backup scenarios (`backup`, `scale`) run the real `weft run`
//! binary as a child process, beside the peers they are compared with.

mod backup;
mod child;
mod fanout;
mod host;
mod replay;
mod scale;
mod sequential;
mod tree;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// `weft bench`'s arguments: one scenario.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// A fan-out/fan-in of N no-op activities (the testing guests' FanOut and Echo).
    Fanout {
        /// Activities in the fan-out.
        #[arg(long, default_value_t = 10_000)]
        n: u64,
        #[command(flatten)]
        common: Common,
    },
    /// N activities one after another, each awaited before the next is scheduled.
    Sequential {
        /// Steps, one activity each.
        #[arg(long, default_value_t = 1_000)]
        n: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Recovery after a restart of an instance whose history holds N completed
    /// activities: the time until its replay has caught up and it waits again.
    Replay {
        /// Completed activities in the history to replay.
        #[arg(long, default_value_t = 10_000)]
        n: u64,
        #[command(flatten)]
        common: Common,
    },
    /// The backup sample against a raw object_store copy, `cp -r` and `rclone copy` of a
    /// generated tree, medians of several runs.
    Backup {
        /// Small files (1 to 64 KiB each).
        #[arg(long, default_value_t = 10_000)]
        files: u64,
        /// Big files besides the small ones.
        #[arg(long, default_value_t = 5)]
        big_files: u64,
        /// Size of each big file, in MiB.
        #[arg(long, default_value_t = 50)]
        big_mib: u64,
        /// Timed runs of each tool; the median counts.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
        #[command(flatten)]
        common: Common,
    },
    /// A backup of many tiny files: files/s against a smaller baseline, and peak RSS.
    Scale {
        /// Tiny files to back up.
        #[arg(long, default_value_t = 100_000)]
        files: u64,
        /// Files in the baseline backup whose files/s the big one is compared with; 0
        /// skips it.
        #[arg(long, default_value_t = 10_000)]
        baseline_files: u64,
        /// Passed to `weft run --max-payload-kib`; default: weft's own default.
        #[arg(long)]
        max_payload_kib: Option<u64>,
        #[command(flatten)]
        common: Common,
    },
}

/// Options every scenario takes.
#[derive(Args, Debug)]
struct Common {
    /// Where to put the data dir and generated files; default: a fresh temporary
    /// directory, removed afterwards.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where compiled components are cached; default: inside the data dir.
    #[arg(long, env = "WEFT_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Activities run at once (and the raw copy's concurrency in `backup`).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_activities: u32,
}

/// Runs one scenario.
pub fn run(args: BenchArgs) -> Result<ExitCode> {
    let before = io_pressure();
    if let Some(pressure) = before.filter(|pressure| *pressure >= BUSY_DISK) {
        eprintln!(
            "bench: the disk is busy (/proc/pressure/io: some tasks stalled {pressure:.1}% of the last 10 s); timings will vary"
        );
    }
    let mut figures = match args.scenario {
        Scenario::Fanout { n, common } => fanout::run(n, &Workdir::new(&common)?)?,
        Scenario::Sequential { n, common } => sequential::run(n, &Workdir::new(&common)?)?,
        Scenario::Replay { n, common } => replay::run(n, &Workdir::new(&common)?)?,
        Scenario::Backup {
            files,
            big_files,
            big_mib,
            runs,
            common,
        } => backup::run(
            &backup::Options {
                files,
                big_files,
                big_mib,
                runs,
            },
            &Workdir::new(&common)?,
        )?,
        Scenario::Scale {
            files,
            baseline_files,
            max_payload_kib,
            common,
        } => scale::run(
            &scale::Options {
                files,
                baseline_files,
                max_payload_kib,
            },
            &Workdir::new(&common)?,
        )?,
    };
    // How much other I/O the disk served around the run: a timing taken while it was
    // busy says more about the neighbours than about Weft.
    if let Some(object) = figures.as_object_mut() {
        object.insert(
            "io_pressure".to_string(),
            serde_json::json!({ "before": before, "after": io_pressure() }),
        );
    }
    println!("{}", serde_json::to_string(&figures)?);
    Ok(ExitCode::SUCCESS)
}

/// The share of the last 10 seconds (in %) in which some task waited for I/O, from the
/// kernel's pressure stall information; `None` where the kernel does not report it.
fn io_pressure() -> Option<f64> {
    io_pressure_field("avg10=")?.parse().ok()
}

/// The microseconds in which some task waited for I/O since the machine started (the
/// pressure stall information's `total`); `None` where the kernel does not report it.
fn io_stall_micros() -> Option<u64> {
    io_pressure_field("total=")?.parse().ok()
}

fn io_pressure_field(prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/pressure/io").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("some "))?
        .split_whitespace()
        .find_map(|field| field.strip_prefix(prefix))
        .map(str::to_string)
}

/// From this much I/O pressure on, the bench warns that its timings will vary.
const BUSY_DISK: f64 = 5.0;

/// Where a scenario keeps its files, and the settings every scenario shares.
struct Workdir {
    root: PathBuf,
    /// Removes the root when the scenario ends, if it is temporary.
    _temporary: Option<tempfile::TempDir>,
    /// The runtime's data dir for in-process scenarios.
    data_dir: PathBuf,
    cache_dir: PathBuf,
    max_activities: usize,
}

impl Workdir {
    fn new(common: &Common) -> Result<Self> {
        let (root, temporary) = match &common.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                (std::path::absolute(dir)?, None)
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("weft-bench-")
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
        let cache_dir = match &common.cache_dir {
            Some(dir) => std::path::absolute(dir)?,
            None => root.join("cache"),
        };
        eprintln!("working in {}", root.display());
        Ok(Self {
            data_dir: root.join("data"),
            root,
            _temporary: temporary,
            cache_dir,
            max_activities: common.max_activities as usize,
        })
    }

    fn host_options(&self) -> host::HostOptions<'_> {
        host::HostOptions {
            data_dir: &self.data_dir,
            cache_dir: Some(&self.cache_dir),
            max_activities: self.max_activities,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// A fresh multi-threaded async runtime. Dropping it (see [`finish`]) drops every task
/// it still runs, as a process exit would: what matters is committed already.
/// Runs one instance of the testing orchestrator `name` on input `n` (it returns the sum
/// of 0..n, proof that every activity ran and was delivered) and returns its wall time
/// from start to completion and the process's CPU time meanwhile.
fn timed_sum(name: &str, n: u64, work: &Workdir) -> Result<(Duration, Duration)> {
    let runtime = async_runtime()?;
    let result = runtime.block_on(async {
        let host = host::BenchHost::open(&work.host_options()).await?;
        host.start_workers().await?;
        // A first, untimed instance of a fifth of the size warms what a host that has run
        // a while has warm: the database's write-ahead log grown to its working size (a
        // commit that grows the file costs more than one that overwrites it), the pooled
        // wasm slots touched, the page cache.
        let warm_up = (n / 5).max(1);
        run_sum(&host, name, warm_up).await?;
        let (started, cpu) = (std::time::Instant::now(), child::cpu_time_self());
        run_sum(&host, name, n).await?;
        let (elapsed, cpu) = (
            started.elapsed(),
            child::cpu_time_self().saturating_sub(cpu),
        );
        host.shutdown(Duration::from_secs(1)).await;
        Ok::<_, anyhow::Error>((elapsed, cpu))
    });
    finish(runtime);
    result
}

/// Runs orchestrator `name` (one of the testing guests that sum 0..n) on `n` and checks
/// its output.
async fn run_sum(host: &host::BenchHost, name: &str, n: u64) -> Result<()> {
    let id = host.start(name, &n.to_string()).await?;
    let output = host.wait_completed(&id).await?;
    let expected = n * n.saturating_sub(1) / 2;
    anyhow::ensure!(
        output == expected.to_string(),
        "{name} returned {output}, expected {expected}"
    );
    Ok(())
}

fn async_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Ends an async runtime, giving its remaining tasks a moment to stop.
fn finish(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_timeout(Duration::from_millis(500));
}

/// Per-second rate of `count` things done in `elapsed`.
fn per_sec(count: u64, elapsed: Duration) -> f64 {
    round(count as f64 / elapsed.as_secs_f64().max(1e-9))
}

fn millis(elapsed: Duration) -> f64 {
    round(elapsed.as_secs_f64() * 1000.0)
}

/// Two decimals are plenty for figures measured in milliseconds or per second.
fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The median of some durations (the upper one of an even count).
fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// The bytes free for an unprivileged user on the filesystem of `path`, if it tells.
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain old data, and the call only writes into it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Removes a directory tree if it exists.
fn remove_dir(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot remove {}", path.display())),
    }
}
