//! `weft bench sequential`: one instance calls `Echo` N times, each call awaited before
//! the next is scheduled, so every step is a full round trip: an episode committed, the
//! work item claimed, run and its result committed, the instance woken.

use super::child::cpu_time_self;
use super::host::BenchHost;
use super::{Workdir, async_runtime, finish, millis, per_sec};
use anyhow::{Result, ensure};
use serde_json::{Value, json};
use std::time::Instant;

pub fn run(n: u64, work: &Workdir) -> Result<Value> {
    let runtime = async_runtime()?;
    let result = runtime.block_on(async {
        let host = BenchHost::open(&work.host_options()).await?;
        host.start_workers().await?;
        eprintln!("sequential: {n} Echo activities, one after another");
        let (started, cpu) = (Instant::now(), cpu_time_self());
        let id = host.start("Sequential", &n.to_string()).await?;
        let output = host.wait_completed(&id).await?;
        let (elapsed, cpu) = (started.elapsed(), cpu_time_self().saturating_sub(cpu));
        let expected = n * n.saturating_sub(1) / 2;
        ensure!(
            output == expected.to_string(),
            "Sequential returned {output}, expected {expected}"
        );
        host.shutdown(std::time::Duration::from_secs(1)).await;
        Ok::<_, anyhow::Error>((elapsed, cpu))
    });
    finish(runtime);
    let (elapsed, cpu) = result?;
    let rate = per_sec(n, elapsed);
    eprintln!(
        "sequential: {n} steps in {:.3} s: {rate} steps/s, {:.3} ms per step",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / n.max(1) as f64
    );
    eprintln!("sequential: {:.3} s of CPU time", cpu.as_secs_f64());
    Ok(json!({
        "scenario": "sequential",
        "n": n,
        "wall_ms": millis(elapsed),
        "cpu_ms": millis(cpu),
        "steps_per_sec": rate,
    }))
}
