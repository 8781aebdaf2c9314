//! `weft bench replay`: how long a restarted host takes to recover an instance whose
//! history holds N completed activities.
//!
//! A first runtime runs `FanOutThenSleep`: N `Echo` activities fanned out and in, then a
//! one-hour `Sleep`. Once the instance waits on that sleep (its custom status says so),
//! the runtime is stopped and dropped, as a process exit would. A second runtime opens the
//! same data dir; `replay_ms` is the time from its `start_workers` until the instance has
//! been replayed up to the sleep and has committed the episode it opened on recovery
//! (one `OrchestratorStarted`, nothing else). That covers reading the history, rebuilding
//! the replay state, instantiating the orchestrator and re-running its code against the
//! history: everything a recovery costs before the instance can make progress again.

use super::host::BenchHost;
use super::{Workdir, async_runtime, finish, millis};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Longer than any measurement, so the sleep is still pending when the host restarts.
const SLEEP_MS: u64 = 3_600_000;
/// A safety net for each wait, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(600);

pub fn run(n: u64, work: &Workdir) -> Result<Value> {
    eprintln!("replay: building an instance with {n} completed activities");
    let runtime = async_runtime()?;
    let built = runtime.block_on(build(n, work));
    finish(runtime);
    let (id, before) = built?;

    let runtime = async_runtime()?;
    let recovered = runtime.block_on(recover(&id, &before, work));
    finish(runtime);
    let (elapsed, events) = recovered?;
    eprintln!(
        "replay: {events} history events replayed and the instance waiting again in {:.1} ms",
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(json!({
        "scenario": "replay",
        "n": n,
        "history_events": events,
        "replay_ms": millis(elapsed),
    }))
}

/// Runs the instance until it waits on its sleep; returns its id and history kinds.
async fn build(n: u64, work: &Workdir) -> Result<(String, Vec<&'static str>)> {
    let host = BenchHost::open(&work.host_options()).await?;
    host.start_workers().await?;
    let input = json!({ "n": n, "sleepMs": SLEEP_MS }).to_string();
    let id = host.start("FanOutThenSleep", &input).await?;
    let started = Instant::now();
    // The status is committed with the episode that schedules the sleep.
    while host.custom_status(&id).await?.as_deref() != Some("\"sleeping\"") {
        ensure!(
            started.elapsed() < PATIENCE,
            "the instance did not reach its sleep"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kinds = host.history_kinds(&id).await?;
    let completed = kinds.iter().filter(|k| **k == "TaskCompleted").count() as u64;
    ensure!(
        completed == n,
        "expected {n} completed activities, found {completed}"
    );
    host.shutdown(Duration::ZERO).await;
    Ok((id, kinds))
}

/// Opens the data dir again and times the recovery of `id`.
async fn recover(id: &str, before: &[&'static str], work: &Workdir) -> Result<(Duration, usize)> {
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
    let updated = host.updated(id).await?;
    let started = Instant::now();
    host.start_workers().await?;
    while host.updated(id).await? == updated {
        if started.elapsed() > PATIENCE {
            bail!("the instance was not recovered");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    // A faithful replay re-issues nothing: the history only gains the recovery episode.
    let after = host.history_kinds(id).await?;
    ensure!(
        after.len() == before.len() + 1
            && after[..before.len()] == *before
            && after.last() == Some(&"OrchestratorStarted"),
        "unexpected history after recovery: {} events before, {} after, last {:?}",
        before.len(),
        after.len(),
        after.last()
    );
    host.shutdown(Duration::ZERO).await;
    Ok((elapsed, before.len()))
}
