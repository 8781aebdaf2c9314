//! `weft bench fanout`: one instance fans out N no-op activities (`Echo`) and fans them
//! back in. Measures activities per second from the instance's start to its end.

use super::{Workdir, millis, per_sec, timed_sum};
use anyhow::Result;
use serde_json::{Value, json};

pub fn run(n: u64, work: &Workdir) -> Result<Value> {
    eprintln!(
        "fanout: {n} Echo activities, {} at once",
        work.max_activities
    );
    let (elapsed, cpu) = timed_sum("FanOut", n, work)?;
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
