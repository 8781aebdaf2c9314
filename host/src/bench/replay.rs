//! `weft bench replay`: how long a restarted host takes to recover an instance whose
//! history holds N completed activities.
//!
//! A first runtime runs `FanOutThenRetry`: N `Echo` activities fanned out and in, then a
//! `Fail` activity whose one retry is due a second later. Once the history records the
//! retry notice, the runtime is stopped and dropped, as a process exit would be, and the
//! retry falls due. A second runtime opens the same data dir; `replay_ms` is the time from
//! its `start_workers` until the instance has completed: reading the history, rebuilding
//! the replay state, instantiating the orchestrator and re-running its code against the
//! N completions, then one episode that delivers the retried `Fail` (which runs in
//! parallel with the replay and takes a millisecond) and the final commit. A replay
//! always precedes any progress after a restart, so this is what recovery costs.

use super::child::cpu_time_self;
use super::host::BenchHost;
use super::{Workdir, async_runtime, finish, millis};
use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// When the retry falls due after the first attempt failed: long enough for the first
/// runtime to be stopped before it could run the retry itself.
const RETRY_MS: u64 = 1_000;
/// A safety net for each wait, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(300);

pub fn run(n: u64, work: &Workdir) -> Result<Value> {
    eprintln!("replay: building an instance with {n} completed activities");
    let runtime = async_runtime()?;
    let built = runtime.block_on(build(n, work));
    finish(runtime);
    let (id, before) = built?;
    // Let the retry fall due, so that the recovery need not wait for it.
    std::thread::sleep(Duration::from_millis(RETRY_MS));

    let runtime = async_runtime()?;
    let recovered = runtime.block_on(recover(n, &id, &before, work));
    finish(runtime);
    let (elapsed, cpu) = recovered?;
    eprintln!(
        "replay: {} history events replayed and the instance completed in {:.1} ms ({:.1} ms of CPU time)",
        before.len(),
        elapsed.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0
    );
    Ok(json!({
        "scenario": "replay",
        "n": n,
        "history_events": before.len(),
        "replay_ms": millis(elapsed),
        "cpu_ms": millis(cpu),
    }))
}

/// Runs the instance until its history records the retry notice; returns its id and
/// its history's event kinds then.
async fn build(n: u64, work: &Workdir) -> Result<(String, Vec<&'static str>)> {
    let host = BenchHost::open(&work.host_options()).await?;
    host.start_workers().await?;
    let input = json!({ "n": n, "retryMs": RETRY_MS }).to_string();
    let id = host.start("FanOutThenRetry", &input).await?;
    let started = Instant::now();
    let kinds = loop {
        let kinds = host.history_kinds(&id).await?;
        if kinds.contains(&"TaskRetrying") {
            break kinds;
        }
        ensure!(
            started.elapsed() < PATIENCE,
            "the instance did not reach its retry"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    host.shutdown(Duration::ZERO).await;
    let completed = count(&kinds, "TaskCompleted");
    ensure!(
        completed == n as usize,
        "expected {n} completed activities, found {completed}"
    );
    Ok((id, kinds))
}

/// Opens the data dir again and times the recovery of `id` to its completion.
async fn recover(
    n: u64,
    id: &str,
    before: &[&'static str],
    work: &Workdir,
) -> Result<(Duration, Duration)> {
    // The first runtime's data-dir lock is released once its last task is dropped.
    let mut attempts = 0;
    let host = loop {
        match BenchHost::open(&work.host_options()).await {
            Ok(host) => break host,
            Err(error) if attempts < 100 => {
                attempts += 1;
                tracing::debug!("reopening: {error:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error).context("cannot reopen the data dir"),
        }
    };
    // Had the first runtime run the retry before it stopped, there would be less to
    // recover than claimed.
    ensure!(
        host.history_kinds(id).await? == before,
        "the instance moved on before the restart; run the scenario again"
    );
    let (started, cpu) = (Instant::now(), cpu_time_self());
    host.start_workers().await?;
    let output = tokio::time::timeout(PATIENCE, host.wait_completed(id))
        .await
        .context("the instance was not recovered")??;
    let (elapsed, cpu) = (started.elapsed(), cpu_time_self().saturating_sub(cpu));
    let expected = n * n.saturating_sub(1) / 2;
    ensure!(
        output == expected.to_string(),
        "FanOutThenRetry returned {output}, expected {expected}"
    );
    // A faithful replay re-issues nothing: the history only gains the recovery.
    let after = host.history_kinds(id).await?;
    ensure!(
        after.starts_with(before)
            && count(&after, "TaskScheduled") == count(before, "TaskScheduled")
            && count(&after, "TaskFailed") == 1,
        "unexpected history after recovery: {:?}",
        &after[before.len().min(after.len())..]
    );
    host.shutdown(Duration::ZERO).await;
    Ok((elapsed, cpu))
}

fn count(kinds: &[&str], kind: &str) -> usize {
    kinds.iter().filter(|k| **k == kind).count()
}
