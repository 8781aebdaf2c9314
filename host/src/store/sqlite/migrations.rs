//! Numbered schema migrations, applied in order and tracked in `PRAGMA user_version`.

use super::super::{Error, Result};
use rusqlite::Connection;

/// Migration `i` brings the schema from version `i` to `i + 1`. Append only: a released
/// migration never changes.
const MIGRATIONS: &[&str] = &[
    // 1: instances, history, the activity work queue and the instances' inboxes. Work
    // item and inbox ids are never reused (AUTOINCREMENT), so a late result of an ended
    // instance's activity can never settle another item that got the same id.
    "CREATE TABLE instances (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        status        TEXT NOT NULL,
        input         TEXT NOT NULL,
        output        TEXT,
        custom_status TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE INDEX instances_by_status ON instances (status, created_at);

    CREATE TABLE history (
        instance_id TEXT NOT NULL,
        seq         INTEGER NOT NULL,
        timestamp   INTEGER NOT NULL,
        event_type  TEXT NOT NULL,
        data        TEXT NOT NULL,
        PRIMARY KEY (instance_id, seq)
    ) WITHOUT ROWID;

    CREATE TABLE work_items (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id TEXT NOT NULL,
        task_id     INTEGER NOT NULL,
        name        TEXT NOT NULL,
        input       TEXT NOT NULL,
        attempt     INTEGER NOT NULL DEFAULT 0,
        visible_at  INTEGER NOT NULL,
        lease_owner TEXT,
        lease_until INTEGER,
        retry       TEXT,
        first_attempt_at INTEGER,
        UNIQUE (instance_id, task_id)
    );
    CREATE INDEX work_items_due ON work_items (visible_at);

    CREATE TABLE inbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        instance_id TEXT NOT NULL,
        data        TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX inbox_by_instance ON inbox (instance_id, id);",
    // 2: large payloads, stored once per instance and compressed (see `payload.rs`).
    "CREATE TABLE payloads (
        instance_id TEXT NOT NULL,
        key         TEXT NOT NULL,
        data        BLOB NOT NULL,
        PRIMARY KEY (instance_id, key)
    ) WITHOUT ROWID;",
    // 3: what a host crash did to a work item. `recovered`: it was leased when a host
    // died; `running`: it is running again since (recorded before it starts); `crashes`:
    // how many hosts died while it ran.
    "ALTER TABLE work_items ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE work_items ADD COLUMN running INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE work_items ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;",
    // 4: durable timers, due at `fire_at` (ms since the epoch). The timer service reads
    // the earliest by the index; a timer that fires is deleted as its `TimerFired` is
    // posted to the inbox, in one transaction.
    "CREATE TABLE timers (
        instance_id TEXT NOT NULL,
        task_id     INTEGER NOT NULL,
        fire_at     INTEGER NOT NULL,
        PRIMARY KEY (instance_id, task_id)
    ) WITHOUT ROWID;
    CREATE INDEX timers_due ON timers (fire_at);",
    // 5: sub-orchestrations. A child instance names its parent and the parent's task
    // that waits for it; the index finds a parent's children when it is terminated.
    "ALTER TABLE instances ADD COLUMN parent_id TEXT;
     ALTER TABLE instances ADD COLUMN parent_task INTEGER;
     CREATE INDEX instances_by_parent ON instances (parent_id) WHERE parent_id IS NOT NULL;",
    // 6: listings read instances newest first; in this order a page is read off the
    // index and ends when it is full, instead of sorting every instance per page.
    "CREATE INDEX instances_newest ON instances (created_at DESC, id);",
];

/// The schema version this build writes.
pub const CURRENT: i64 = MIGRATIONS.len() as i64;

pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > CURRENT {
        return Err(Error::SchemaTooNew {
            found,
            supported: CURRENT,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}
