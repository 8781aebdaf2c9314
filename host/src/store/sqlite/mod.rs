//! The embedded SQLite store: one database file in WAL mode with `synchronous=FULL`, so a
//! committed transaction survives a process crash and a power loss.

mod migrations;

use super::{
    Checkpoint, Error, Event, HistoryEvent, InboxMessage, Instance, InstanceFilter, Progress,
    Result, RuntimeStatus, WorkItem,
};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A [`super::Store`] in one SQLite file. Transactions are short, so one connection
/// behind a mutex serves every worker of the process.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        Self::setup(Connection::open(path)?)
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrations::migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Changes a leased work item with `change` and posts `message` to its instance's
    /// inbox, in one transaction. False, and nothing changed, if `change` touched no row
    /// (the lease is no longer held).
    fn settle_work(
        &self,
        item: &WorkItem,
        message: &Event,
        now: DateTime<Utc>,
        change: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<usize>,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if change(&tx)? == 0 {
            return Ok(false);
        }
        post(&tx, &item.instance_id, message, now)?;
        tx.commit()?;
        Ok(true)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a transaction half-applied (SQLite
        // rolls back an unfinished one), so a poisoned lock is still safe to use.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn time(millis: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| Error::Corrupt(format!("timestamp {millis} out of range")))
}

fn encode(event: &Event) -> Result<String> {
    serde_json::to_string(event)
        .map_err(|e| Error::Corrupt(format!("cannot encode {}: {e}", event.kind())))
}

fn decode(data: &str) -> Result<Event> {
    serde_json::from_str(data).map_err(|e| Error::Corrupt(format!("undecodable event {data}: {e}")))
}

/// The condition of [`InstanceFilter`] over parameters ?1 (",Status,Status,", or empty
/// for any), ?2 (created from, or NULL) and ?3 (created to, or NULL).
const FILTER: &str = "(?1 = '' OR instr(?1, ',' || status || ',') > 0)
     AND (?2 IS NULL OR created_at >= ?2) AND (?3 IS NULL OR created_at <= ?3)";

fn filter_params(filter: &InstanceFilter) -> (String, Option<i64>, Option<i64>) {
    let statuses = if filter.statuses.is_empty() {
        String::new()
    } else {
        let names: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        format!(",{},", names.join(","))
    };
    (
        statuses,
        filter.created_from.map(millis),
        filter.created_to.map(millis),
    )
}

/// Appends a message to an instance's inbox.
fn post(
    tx: &rusqlite::Transaction<'_>,
    instance_id: &str,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO inbox (instance_id, data, created_at) VALUES (?1, ?2, ?3)",
        params![instance_id, encode(event)?, millis(now)],
    )?;
    Ok(())
}

fn delete_instance(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<()> {
    for table in ["history", "work_items", "inbox"] {
        tx.execute(&format!("DELETE FROM {table} WHERE instance_id = ?1"), [id])?;
    }
    tx.execute("DELETE FROM instances WHERE id = ?1", [id])?;
    Ok(())
}

const INSTANCE_COLUMNS: &str =
    "id, name, status, input, output, custom_status, created_at, updated_at";

/// Reads a row of [`INSTANCE_COLUMNS`]; decoding errors come back in the inner result.
fn instance_row(row: &Row<'_>) -> rusqlite::Result<Result<Instance>> {
    let status: String = row.get(2)?;
    let (created, updated): (i64, i64) = (row.get(6)?, row.get(7)?);
    let (id, name, input, output, custom_status) = (
        row.get(0)?,
        row.get(1)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    );
    Ok((|| {
        Ok(Instance {
            id,
            name,
            status: RuntimeStatus::parse(&status)
                .ok_or_else(|| Error::Corrupt(format!("unknown status {status}")))?,
            input,
            output,
            custom_status,
            created: time(created)?,
            updated: time(updated)?,
        })
    })())
}

impl super::Store for SqliteStore {
    fn create_instance(
        &self,
        id: &str,
        name: &str,
        input: &str,
        now: DateTime<Utc>,
    ) -> Result<Instance> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<String> = tx
            .query_row("SELECT status FROM instances WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?;
        if let Some(status) = existing {
            if !RuntimeStatus::parse(&status).is_some_and(RuntimeStatus::is_terminal) {
                return Err(Error::InstanceExists(id.to_string()));
            }
            delete_instance(&tx, id)?;
        }
        tx.execute(
            "INSERT INTO instances (id, name, status, input, created_at, updated_at)
             VALUES (?1, ?2, 'Pending', ?3, ?4, ?4)",
            params![id, name, input, millis(now)],
        )?;
        let started = Event::ExecutionStarted {
            name: name.to_string(),
            input: input.to_string(),
        };
        tx.execute(
            "INSERT INTO history (instance_id, seq, timestamp, event_type, data) VALUES (?1, 0, ?2, ?3, ?4)",
            params![id, millis(now), started.kind(), encode(&started)?],
        )?;
        tx.commit()?;
        Ok(Instance {
            id: id.to_string(),
            name: name.to_string(),
            status: RuntimeStatus::Pending,
            input: input.to_string(),
            output: None,
            custom_status: None,
            created: time(millis(now))?,
            updated: time(millis(now))?,
        })
    }

    fn instance(&self, id: &str) -> Result<Option<Instance>> {
        self.conn()
            .query_row(
                &format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"),
                [id],
                instance_row,
            )
            .optional()?
            .transpose()
    }

    fn list_instances(
        &self,
        filter: &InstanceFilter,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE {FILTER}
             ORDER BY created_at DESC, id LIMIT ?4 OFFSET ?5"
        ))?;
        let (statuses, from, to) = filter_params(filter);
        let rows = stmt.query_map(
            params![
                statuses,
                from,
                to,
                limit.min(i64::MAX as usize) as i64,
                skip as i64
            ],
            instance_row,
        )?;
        rows.map(|row| row?).collect()
    }

    fn post_message(&self, id: &str, event: &Event, now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let exists = tx
            .query_row("SELECT 1 FROM instances WHERE id = ?1", [id], |_| Ok(()))
            .optional()?;
        if exists.is_none() {
            return Err(Error::UnknownInstance(id.to_string()));
        }
        post(&tx, id, event, now)?;
        tx.commit()?;
        Ok(())
    }

    fn purge(&self, id: &str) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM instances WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()?;
        let Some(status) = status else {
            return Ok(false);
        };
        if !RuntimeStatus::parse(&status).is_some_and(RuntimeStatus::is_terminal) {
            return Err(Error::NotEnded(id.to_string()));
        }
        delete_instance(&tx, id)?;
        tx.commit()?;
        Ok(true)
    }

    fn purge_many(&self, filter: &InstanceFilter) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT id FROM instances WHERE {FILTER}
                 AND status IN ('Completed', 'Failed', 'Terminated')"
            ))?;
            let (statuses, from, to) = filter_params(filter);
            let rows = stmt.query_map(params![statuses, from, to], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for id in &ids {
            delete_instance(&tx, id)?;
        }
        tx.commit()?;
        Ok(ids.len())
    }

    fn unfinished_instances(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM instances WHERE status IN ('Pending', 'Running', 'Suspended')
             ORDER BY created_at, id",
        )?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn history(&self, id: &str) -> Result<Vec<HistoryEvent>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT seq, timestamp, data FROM history WHERE instance_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (seq, timestamp, data) = row?;
            Ok(HistoryEvent {
                seq: seq as u64,
                timestamp: time(timestamp)?,
                event: decode(&data)?,
            })
        })
        .collect()
    }

    fn inbox(&self, id: &str) -> Result<Vec<InboxMessage>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, data FROM inbox WHERE instance_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([id], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?;
        rows.map(|row| {
            let (id, data) = row?;
            Ok(InboxMessage {
                id,
                event: decode(&data)?,
            })
        })
        .collect()
    }

    fn checkpoint(&self, cp: &Checkpoint<'_>) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let found: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE instance_id = ?1",
            [cp.instance_id],
            |row| row.get(0),
        )?;
        if found as u64 != cp.first_seq {
            return Err(Error::Conflict {
                instance: cp.instance_id.to_string(),
                expected: cp.first_seq,
                found: found as u64,
            });
        }
        {
            let mut append = tx.prepare_cached(
                "INSERT INTO history (instance_id, seq, timestamp, event_type, data) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut enqueue = tx.prepare_cached(
                "INSERT INTO work_items (instance_id, task_id, name, input, visible_at, retry)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (offset, (timestamp, event)) in cp.events.iter().enumerate() {
                let seq = cp.first_seq + offset as u64;
                append.execute(params![
                    cp.instance_id,
                    seq as i64,
                    millis(*timestamp),
                    event.kind(),
                    encode(event)?
                ])?;
                if let Event::TaskScheduled {
                    task_id,
                    name,
                    input,
                    retry,
                } = event
                    && !cp.status.is_terminal()
                {
                    let retry = match retry {
                        Some(policy) => Some(serde_json::to_string(policy).map_err(|e| {
                            Error::Corrupt(format!("cannot encode a retry policy: {e}"))
                        })?),
                        None => None,
                    };
                    enqueue.execute(params![
                        cp.instance_id,
                        task_id,
                        name,
                        input,
                        millis(*timestamp),
                        retry
                    ])?;
                }
            }
            let mut ack =
                tx.prepare_cached("DELETE FROM inbox WHERE id = ?1 AND instance_id = ?2")?;
            for id in cp.consumed {
                ack.execute(params![id, cp.instance_id])?;
            }
        }
        tx.execute(
            "UPDATE instances SET status = ?2, output = ?3, custom_status = ?4, updated_at = ?5 WHERE id = ?1",
            params![cp.instance_id, cp.status.as_str(), cp.output, cp.custom_status, millis(cp.now)],
        )?;
        if cp.status.is_terminal() {
            tx.execute(
                "DELETE FROM work_items WHERE instance_id = ?1",
                [cp.instance_id],
            )?;
            tx.execute("DELETE FROM inbox WHERE instance_id = ?1", [cp.instance_id])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn claim_work(
        &self,
        owner: &str,
        max: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WorkItem>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "UPDATE work_items SET lease_owner = ?1, lease_until = ?2, attempt = attempt + 1,
                                   first_attempt_at = COALESCE(first_attempt_at, ?3)
             WHERE id IN (SELECT id FROM work_items
                          WHERE visible_at <= ?3
                            AND (lease_owner IS NULL OR (lease_owner <> ?1 AND lease_until < ?3))
                          ORDER BY visible_at, id LIMIT ?4)
             RETURNING id, instance_id, task_id, name, input, attempt, retry, first_attempt_at",
        )?;
        let rows = stmt.query_map(
            params![owner, millis(lease_until), millis(now), max as i64],
            |row| {
                let retry: Option<String> = row.get(6)?;
                let first_attempt_at: i64 = row.get(7)?;
                let item = WorkItem {
                    id: row.get(0)?,
                    instance_id: row.get(1)?,
                    task_id: row.get(2)?,
                    name: row.get(3)?,
                    input: row.get(4)?,
                    attempt: row.get(5)?,
                    retry: None,
                    first_attempt_at: DateTime::default(),
                };
                Ok((item, retry, first_attempt_at))
            },
        )?;
        let mut items = Vec::new();
        for row in rows {
            let (mut item, retry, first_attempt_at) = row?;
            item.retry = match retry {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    Error::Corrupt(format!("undecodable retry policy {text}: {e}"))
                })?),
                None => None,
            };
            item.first_attempt_at = time(first_attempt_at)?;
            items.push(item);
        }
        // RETURNING yields rows in no particular order; hand them out oldest first.
        items.sort_by_key(|item| item.id);
        Ok(items)
    }

    fn release_leases(&self) -> Result<()> {
        self.conn().execute(
            "UPDATE work_items SET lease_owner = NULL, lease_until = NULL",
            [],
        )?;
        Ok(())
    }

    fn complete_work(
        &self,
        item: &WorkItem,
        owner: &str,
        completion: &Event,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.settle_work(item, completion, now, |tx| {
            tx.execute(
                "DELETE FROM work_items WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3",
                params![item.id, owner, item.attempt],
            )
        })
    }

    fn retry_work(
        &self,
        item: &WorkItem,
        owner: &str,
        retry_at: DateTime<Utc>,
        notice: &Event,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.settle_work(item, notice, now, |tx| {
            tx.execute(
                "UPDATE work_items SET visible_at = ?3, lease_owner = NULL, lease_until = NULL
                 WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?4",
                params![item.id, owner, millis(retry_at), item.attempt],
            )
        })
    }

    fn progress(&self, id: &str) -> Result<Progress> {
        let (scheduled, finished): (i64, i64) = self.conn().query_row(
            "SELECT COUNT(*) FILTER (WHERE event_type = 'TaskScheduled'),
                    COUNT(*) FILTER (WHERE event_type IN ('TaskCompleted', 'TaskFailed'))
             FROM history WHERE instance_id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(Progress {
            scheduled: scheduled as u64,
            finished: finished as u64,
        })
    }
}

#[cfg(test)]
mod tests;
