//! Runs a peer or the `weft` binary itself as a child process and measures it: wall time
//! from spawn to exit, CPU time (from `wait4`), and the child's own peak resident set,
//! sampled from its `/proc/PID/status` (`VmHWM`) while it runs. Not `ru_maxrss`: a child
//! spawned by a process holding much memory starts out sharing it, and `ru_maxrss`
//! keeps that, so it would count the bench's own memory as the child's.

use anyhow::{Context, Result, bail};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a child process ended.
pub struct Finished {
    pub elapsed: Duration,
    /// The exit code, `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident set size in KiB.
    pub peak_rss_kib: u64,
    /// CPU time the child spent, user and system.
    pub cpu: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last line of stdout: where `weft run` prints the orchestration's output.
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }

    /// Fails with the child's output unless it exited with 0.
    pub fn check(self, what: &str) -> Result<Self> {
        if !self.success() {
            bail!(
                "{what} failed ({}):\n{}\n{}",
                self.code
                    .map_or("killed by a signal".to_string(), |c| format!("exit {c}")),
                self.stdout.trim_end(),
                self.stderr.trim_end()
            );
        }
        Ok(self)
    }
}

/// Runs `command` to its end with stdin closed, capturing stdout and stderr.
pub fn run(mut command: Command) -> Result<Finished> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().to_string();
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let peak = PeakRss::watch(child.id());
    let (status, usage) = wait4(child.id()).with_context(|| format!("waiting for {program}"))?;
    let elapsed = started.elapsed();
    let peak_rss_kib = peak.finish();
    let text = |reader: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned()
    };
    Ok(Finished {
        elapsed,
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: text(stdout),
        stderr: text(stderr),
        peak_rss_kib,
        cpu: cpu_time(&usage),
    })
}

/// Samples a child's peak resident set (`VmHWM`, which the kernel keeps for the program
/// the child runs since its `exec`) every few milliseconds on a thread of its own.
struct PeakRss {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: std::thread::JoinHandle<u64>,
}

impl PeakRss {
    const EVERY: Duration = Duration::from_millis(2);

    fn watch(pid: u32) -> Self {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = done.clone();
        let sampler = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // The open directory stays that process's: once it has exited, reading
            // through it fails rather than reading a process that reused the pid.
            let Ok(dir) = std::fs::File::open(format!("/proc/{pid}")) else {
                return 0;
            };
            let status = format!("/proc/self/fd/{}/status", dir.as_raw_fd());
            let mut peak = 0;
            loop {
                let finished = stop.load(std::sync::atomic::Ordering::Acquire);
                match std::fs::read_to_string(&status) {
                    Ok(text) => peak = peak.max(vm_hwm_kib(&text)),
                    Err(_) => return peak,
                }
                if finished {
                    return peak;
                }
                std::thread::sleep(Self::EVERY);
            }
        });
        Self { done, sampler }
    }

    /// The highest peak seen, in KiB.
    fn finish(self) -> u64 {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.sampler.join().unwrap_or(0)
    }
}

/// The `VmHWM` line of a `/proc/PID/status` text, in KiB (0 if absent: a zombie's).
fn vm_hwm_kib(status: &str) -> u64 {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reads a pipe to its end on a thread, so that a chatty child never blocks on it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Waits for child `pid` to exit and returns its wait status and resource usage. Std's
/// `Child::wait` does not report resource usage, hence `wait4`. The child is reaped here;
/// its `Child` handle must not be waited on afterwards.
fn wait4(pid: u32) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals of the right types, and
        // `pid` is a child of this process that nothing else waits for.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The CPU time (user and system, all threads) this process has spent so far. Unlike
/// wall time, it hardly changes when other processes compete for the cores.
pub fn cpu_time_self() -> Duration {
    // SAFETY: as in `wait4`, all-zero bytes are a valid `rusage`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer is to a live, writable `rusage`; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    cpu_time(&usage)
}

fn cpu_time(usage: &libc::rusage) -> Duration {
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
