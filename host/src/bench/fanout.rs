//! `weft bench fanout`: one instance fans out N no-op activities (`Echo`) and fans them
//! back in. Measures activities per second from the instance's start to its end.

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
        eprintln!(
            "fanout: {n} Echo activities, {} at once",
            work.max_activities
        );
        let (started, cpu) = (Instant::now(), cpu_time_self());
        let id = host.start("FanOut", &n.to_string()).await?;
        let output = host.wait_completed(&id).await?;
        let (elapsed, cpu) = (started.elapsed(), cpu_time_self().saturating_sub(cpu));
        // FanOut returns the sum of 0..n: proof that every activity ran and was delivered.
        let expected = n * n.saturating_sub(1) / 2;
        ensure!(
            output == expected.to_string(),
            "FanOut returned {output}, expected {expected}"
        );
        host.shutdown(std::time::Duration::from_secs(1)).await;
        Ok::<_, anyhow::Error>((elapsed, cpu))
    });
    finish(runtime);
    let (elapsed, cpu) = result?;
    let rate = per_sec(n, elapsed);
    eprintln!(
        "fanout: {n} activities in {:.3} s: {rate} activities/s",
        elapsed.as_secs_f64()
    );
    eprintln!("fanout: {:.3} s of CPU time", cpu.as_secs_f64());
    Ok(json!({
        "scenario": "fanout",
        "n": n,
        "max_activities": work.max_activities,
        "wall_ms": millis(elapsed),
        "cpu_ms": millis(cpu),
        "activities_per_sec": rate,
    }))
}
