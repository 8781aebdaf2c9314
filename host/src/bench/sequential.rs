//! `weft bench sequential`: one instance calls `Echo` N times, each call awaited before
//! the next is scheduled, so every step is a full round trip: an episode committed (it
//! records the last result and schedules the next call), the activity run, and its result
//! handed back to the instance. Its peer, in the same run and on the same disk:
//! SQLite's own rate of one-row commits with Weft's settings (WAL, `synchronous=FULL`),
//! the floor for a durable step.

use super::{Workdir, millis, per_sec, round, timed_sum};
use anyhow::Result;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub fn run(n: u64, work: &Workdir) -> Result<Value> {
    eprintln!("sequential: {n} Echo activities, one after another");
    let (elapsed, cpu) = timed_sum("Sequential", n, work)?;
    let rate = per_sec(n, elapsed);
    eprintln!(
        "sequential: {n} steps in {:.3} s: {rate} steps/s, {:.3} ms per step",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / n.max(1) as f64
    );
    eprintln!("sequential: {:.3} s of CPU time", cpu.as_secs_f64());
    let commits = per_sec(n, sqlite_commits(n, work)?);
    eprintln!(
        "sequential: SQLite alone, {n} one-row commits (WAL, synchronous=FULL): {commits} commits/s"
    );
    Ok(json!({
        "scenario": "sequential",
        "n": n,
        "wall_ms": millis(elapsed),
        "cpu_ms": millis(cpu),
        "steps_per_sec": rate,
        "sqlite_commits_per_sec": commits,
        "vs_sqlite_commits": round(rate / commits.max(1e-9)),
    }))
}

/// Times `n` transactions that each insert one row into a fresh database next to the
/// scenario's, with the settings Weft's store uses, after an untimed fifth as many (the
/// warm-up that Weft's run gets too).
fn sqlite_commits(n: u64, work: &Workdir) -> Result<Duration> {
    let path = work.path("commits.db");
    let _ = std::fs::remove_file(&path);
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE steps (n INTEGER PRIMARY KEY, data TEXT NOT NULL)")?;
    // Every statement prepared once, as Weft's storage thread does.
    let commit = |step: u64| -> rusqlite::Result<()> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        conn.prepare_cached("INSERT INTO steps (n, data) VALUES (?1, 'a step')")?
            .execute([step as i64])?;
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(())
    };
    let warm_up = (n / 5).max(1);
    for step in 0..warm_up {
        commit(step)?;
    }
    let started = Instant::now();
    for step in warm_up..warm_up + n {
        commit(step)?;
    }
    Ok(started.elapsed())
}
