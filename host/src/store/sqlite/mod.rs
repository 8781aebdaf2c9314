//! The embedded SQLite store: one database file in WAL mode with `synchronous=FULL`, so a
//! committed transaction survives a process crash and a power loss.
//!
//! No query runs on the caller's (async) thread. Changes go to the storage thread
//! ([`writer`]), which commits the changes that arrive together in one transaction;
//! queries run on read connections ([`readers`]) on tokio's blocking pool.

mod lineage;
mod migrations;
mod payload;
mod readers;
mod writer;

use super::{
    Checkpoint, Committed, Error, Event, HistoryEvent, InboxMessage, Instance, InstanceFilter,
    Listed, Listing, Progress, Result, RuntimeStatus, Settlement, WorkItem,
};
use chrono::{DateTime, Utc};
use lineage::{Child, continue_as_new, report_to_parent, start_child, terminate_children};
use readers::Readers;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;
use std::time::Duration;
use writer::Writer;

/// How long a connection waits for a lock held by another process (an operator's
/// `sqlite3` shell, a backup tool) before its operation fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many prepared statements a connection keeps (rusqlite's default is 16).
const STATEMENTS: usize = 128;

/// A [`super::Store`] in one SQLite file.
pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Self> {
        // A damaged or foreign file is a clear error that names it, never a silent reset.
        let unusable = |error: Error| match error {
            Error::Sqlite(reason) => Error::Unusable {
                path: path.display().to_string(),
                reason: reason.to_string(),
            },
            other => other,
        };
        let mut conn = Connection::open(path).map_err(|e| unusable(e.into()))?;
        let setup = |conn: &mut Connection| -> Result<()> {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // Room for every statement the storage thread runs, so that none is parsed
            // again because the cache evicted it.
            conn.set_prepared_statement_cache_capacity(STATEMENTS);
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            migrations::migrate(conn)
        };
        setup(&mut conn).map_err(unusable)?;
        let writer = Writer::start(conn).map_err(|e| Error::Commit(e.to_string()))?;
        Ok(Self {
            writer,
            readers: Readers::new(path.to_path_buf()),
        })
    }
}

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn time(millis: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
        .ok_or_else(|| Error::Corrupt(format!("timestamp {millis} out of range")))
}

/// An event as a row stores it: JSON, out of line if large.
fn encode(conn: &Connection, instance_id: &str, event: &Event) -> Result<String> {
    let text = serde_json::to_string(event)
        .map_err(|e| Error::Corrupt(format!("cannot encode {}: {e}", event.kind())))?;
    payload::put(conn, instance_id, &text)
}

fn decode(conn: &Connection, instance_id: &str, stored: String) -> Result<Event> {
    let data = payload::get(conn, instance_id, stored)?;
    serde_json::from_str(&data)
        .map_err(|e| Error::Corrupt(format!("undecodable event {data}: {e}")))
}

/// The condition of [`InstanceFilter`] over parameters ?1 (",Status,Status,", or empty
/// for any), ?2 (created from, or NULL), ?3 (created to, or NULL), ?4 (an id prefix, or
/// empty) and ?5 (a lowercase part of the name, or empty). SQLite's `lower` folds ASCII
/// letters only, as the filter promises.
const FILTER: &str = "(?1 = '' OR instr(?1, ',' || status || ',') > 0)
     AND (?2 IS NULL OR created_at >= ?2) AND (?3 IS NULL OR created_at <= ?3)
     AND (?4 = '' OR substr(id, 1, length(?4)) = ?4)
     AND (?5 = '' OR instr(lower(name), ?5) > 0)";

type FilterParams = (String, Option<i64>, Option<i64>, String, String);

fn filter_params(filter: &InstanceFilter) -> FilterParams {
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
        filter.id_prefix.clone(),
        filter.name_contains.to_ascii_lowercase(),
    )
}

/// Appends a message to an instance's inbox.
fn post(conn: &Connection, instance_id: &str, event: &Event, now: DateTime<Utc>) -> Result<()> {
    conn.prepare_cached("INSERT INTO inbox (instance_id, data, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![
            instance_id,
            encode(conn, instance_id, event)?,
            millis(now)
        ])?;
    Ok(())
}

fn delete_instance(conn: &Connection, id: &str) -> Result<()> {
    for table in ["history", "work_items", "inbox", "payloads", "timers"] {
        conn.execute(&format!("DELETE FROM {table} WHERE instance_id = ?1"), [id])?;
    }
    conn.execute("DELETE FROM instances WHERE id = ?1", [id])?;
    // Sub-orchestrations of the deleted instance no longer report to anyone: a new
    // instance with its id has tasks of its own.
    conn.prepare_cached("UPDATE instances SET parent_id = NULL WHERE parent_id = ?1")?
        .execute([id])?;
    Ok(())
}

fn status_of(conn: &Connection, id: &str) -> Result<Option<RuntimeStatus>> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM instances WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?;
    status
        .map(|status| {
            RuntimeStatus::parse(&status)
                .ok_or_else(|| Error::Corrupt(format!("unknown status {status}")))
        })
        .transpose()
}

/// The columns [`instance_row`] reads, with every payload.
const INSTANCE_COLUMNS: &str =
    "id, name, status, input, output, custom_status, created_at, updated_at, parent_id";

/// The columns [`instance_row`] reads, with the payloads a listing asks for (NULL for
/// the others, which are then never read from disk).
fn listing_columns(listing: &Listing) -> String {
    let (input, output) = (
        if listing.input { "input" } else { "NULL" },
        if listing.output {
            "output, custom_status"
        } else {
            "NULL, NULL"
        },
    );
    format!("id, name, status, {input}, {output}, created_at, updated_at, parent_id")
}

/// Reads a row of [`INSTANCE_COLUMNS`], loading out-of-line payloads; a NULL input (not
/// selected) reads as empty.
fn instance_row(conn: &Connection, row: &Row<'_>) -> Result<Instance> {
    let status: String = row.get(2)?;
    let (created, updated): (i64, i64) = (row.get(6)?, row.get(7)?);
    let id: String = row.get(0)?;
    Ok(Instance {
        name: row.get(1)?,
        status: RuntimeStatus::parse(&status)
            .ok_or_else(|| Error::Corrupt(format!("unknown status {status}")))?,
        input: payload::get_opt(conn, &id, row.get(3)?)?.unwrap_or_default(),
        output: payload::get_opt(conn, &id, row.get(4)?)?,
        custom_status: payload::get_opt(conn, &id, row.get(5)?)?,
        created: time(created)?,
        updated: time(updated)?,
        parent: row.get(8)?,
        id,
    })
}

fn create_instance(
    conn: &Connection,
    id: &str,
    name: &str,
    input: &str,
    now: DateTime<Utc>,
) -> Result<Instance> {
    if let Some(status) = status_of(conn, id)? {
        if !status.is_terminal() {
            return Err(Error::InstanceExists(id.to_string()));
        }
        delete_instance(conn, id)?;
    }
    conn.execute(
        "INSERT INTO instances (id, name, status, input, created_at, updated_at)
         VALUES (?1, ?2, 'Pending', ?3, ?4, ?4)",
        params![id, name, payload::put(conn, id, input)?, millis(now)],
    )?;
    let started = Event::ExecutionStarted {
        name: name.to_string(),
        input: input.to_string(),
        first_task: 0,
    };
    conn.execute(
        "INSERT INTO history (instance_id, seq, timestamp, event_type, data) VALUES (?1, 0, ?2, ?3, ?4)",
        params![id, millis(now), started.kind(), encode(conn, id, &started)?],
    )?;
    Ok(Instance {
        id: id.to_string(),
        name: name.to_string(),
        status: RuntimeStatus::Pending,
        input: input.to_string(),
        output: None,
        custom_status: None,
        created: time(millis(now))?,
        updated: time(millis(now))?,
        parent: None,
    })
}

/// Fails with [`Error::Conflict`] unless `id`'s history is `first_seq` events long.
fn check_history_length(conn: &Connection, id: &str, first_seq: u64) -> Result<()> {
    let found: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE instance_id = ?1")?
        .query_row([id], |row| row.get(0))?;
    if found as u64 != first_seq {
        return Err(Error::Conflict {
            instance: id.to_string(),
            expected: first_seq,
            found: found as u64,
        });
    }
    Ok(())
}

fn checkpoint(conn: &Connection, cp: &Checkpoint) -> Result<Committed> {
    let id = cp.instance_id.as_str();
    check_history_length(conn, id, cp.first_seq)?;
    if let Some(next) = &cp.continue_as_new {
        return continue_as_new(conn, cp, next);
    }
    let mut woken = Vec::new();
    let mut append = conn.prepare_cached(
        "INSERT INTO history (instance_id, seq, timestamp, event_type, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut enqueue = conn.prepare_cached(
        "INSERT INTO work_items (instance_id, task_id, name, input, visible_at, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut enqueue_leased = conn.prepare_cached(
        "INSERT INTO work_items (instance_id, task_id, name, input, visible_at, retry,
                                 lease_owner, lease_until, attempt, first_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?5) RETURNING id",
    )?;
    let mut set_timer = conn.prepare_cached(
        "INSERT OR REPLACE INTO timers (instance_id, task_id, fire_at) VALUES (?1, ?2, ?3)",
    )?;
    let mut leased = Vec::new();
    for (offset, (timestamp, event)) in cp.events.iter().enumerate() {
        let seq = cp.first_seq + offset as u64;
        append.execute(params![
            id,
            seq as i64,
            millis(*timestamp),
            event.kind(),
            encode(conn, id, event)?
        ])?;
        if let Event::TimerCreated { task_id, fire_at } = event
            && !cp.status.is_terminal()
        {
            set_timer.execute(params![id, task_id, millis(*fire_at)])?;
        }
        if let Some(child) = Child::of(id, event)
            && !cp.status.is_terminal()
        {
            start_child(conn, &child, *timestamp, &mut woken)?;
        }
        if let Event::TaskScheduled {
            task_id,
            name,
            input,
            retry,
        } = event
            && !cp.status.is_terminal()
        {
            let encoded_retry =
                match retry {
                    Some(policy) => Some(serde_json::to_string(policy).map_err(|e| {
                        Error::Corrupt(format!("cannot encode a retry policy: {e}"))
                    })?),
                    None => None,
                };
            let stored_input = payload::put(conn, id, input)?;
            match &cp.lease {
                Some(lease) if leased.len() < lease.max => {
                    let item_id: i64 = enqueue_leased.query_row(
                        params![
                            id,
                            task_id,
                            name,
                            stored_input,
                            millis(*timestamp),
                            encoded_retry,
                            lease.owner,
                            millis(lease.until)
                        ],
                        |row| row.get(0),
                    )?;
                    leased.push(WorkItem {
                        id: item_id,
                        instance_id: id.to_string(),
                        task_id: *task_id,
                        name: name.clone(),
                        input: input.clone(),
                        attempt: 1,
                        retry: retry.clone(),
                        first_attempt_at: time(millis(*timestamp))?,
                        recovered: false,
                        crashes: 0,
                    });
                }
                _ => {
                    enqueue.execute(params![
                        id,
                        task_id,
                        name,
                        stored_input,
                        millis(*timestamp),
                        encoded_retry
                    ])?;
                }
            }
        }
    }
    let mut settle =
        conn.prepare_cached("DELETE FROM work_items WHERE id = ?1 AND instance_id = ?2")?;
    for item in &cp.settled {
        settle.execute(params![item, id])?;
    }
    let mut ack = conn.prepare_cached("DELETE FROM inbox WHERE id = ?1 AND instance_id = ?2")?;
    for message in &cp.consumed {
        ack.execute(params![message, id])?;
    }
    // The status is set apart, and only when it changes, so that the usual episode
    // (Running before and after) leaves the status index's page alone.
    conn.prepare_cached("UPDATE instances SET status = ?2 WHERE id = ?1 AND status <> ?2")?
        .execute(params![id, cp.status.as_str()])?;
    conn.prepare_cached(
        "UPDATE instances SET output = ?2, custom_status = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![
        id,
        cp.output
            .as_deref()
            .map(|o| payload::put(conn, id, o))
            .transpose()?,
        cp.custom_status
            .as_deref()
            .map(|s| payload::put(conn, id, s))
            .transpose()?,
        millis(cp.now)
    ])?;
    if cp.status.is_terminal() {
        conn.execute("DELETE FROM work_items WHERE instance_id = ?1", [id])?;
        conn.execute("DELETE FROM inbox WHERE instance_id = ?1", [id])?;
        conn.execute("DELETE FROM timers WHERE instance_id = ?1", [id])?;
        report_to_parent(conn, cp, &mut woken)?;
        if cp.status == RuntimeStatus::Terminated {
            terminate_children(conn, cp, &mut woken)?;
        }
    }
    Ok(Committed { leased, woken })
}

/// Rewinds a Failed instance (see [`super::Store::rewind`]).
fn rewind(
    conn: &Connection,
    id: &str,
    first_seq: u64,
    event: &Event,
    reschedule: &[Event],
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    match status_of(conn, id)? {
        None => return Err(Error::UnknownInstance(id.to_string())),
        Some(RuntimeStatus::Failed) => {}
        Some(status) => {
            return Err(Error::NotFailed {
                id: id.to_string(),
                status,
            });
        }
    }
    check_history_length(conn, id, first_seq)?;
    conn.prepare_cached(
        "INSERT INTO history (instance_id, seq, timestamp, event_type, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        id,
        first_seq as i64,
        millis(now),
        event.kind(),
        encode(conn, id, event)?
    ])?;
    // A Failed instance has no work left (its last checkpoint dropped it); whatever is
    // there is stale and is replaced.
    conn.execute("DELETE FROM work_items WHERE instance_id = ?1", [id])?;
    let mut enqueue = conn.prepare_cached(
        "INSERT INTO work_items (instance_id, task_id, name, input, visible_at, retry)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    conn.execute("DELETE FROM timers WHERE instance_id = ?1", [id])?;
    let mut woken = Vec::new();
    for task in reschedule {
        if let Event::TimerCreated { task_id, fire_at } = task {
            conn.prepare_cached(
                "INSERT INTO timers (instance_id, task_id, fire_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![id, task_id, millis(*fire_at)])?;
            continue;
        }
        // A sub-orchestration that failed starts over as a new instance with its id.
        if let Some(child) = Child::of(id, task) {
            start_child(conn, &child, now, &mut woken)?;
            continue;
        }
        let Event::TaskScheduled {
            task_id,
            name,
            input,
            retry,
        } = task
        else {
            return Err(Error::Corrupt(format!(
                "a rewind reschedules only TaskScheduled, TimerCreated and SubOrchestrationScheduled events, not {}",
                task.kind()
            )));
        };
        let retry = retry
            .as_ref()
            .map(|policy| {
                serde_json::to_string(policy)
                    .map_err(|e| Error::Corrupt(format!("cannot encode a retry policy: {e}")))
            })
            .transpose()?;
        enqueue.execute(params![
            id,
            task_id,
            name,
            payload::put(conn, id, input)?,
            millis(now),
            retry
        ])?;
    }
    conn.prepare_cached(
        "UPDATE instances SET status = 'Pending', output = NULL, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, millis(now)])?;
    Ok(woken)
}

fn claim_work(
    conn: &Connection,
    owner: &str,
    max: usize,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<WorkItem>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE work_items SET lease_owner = ?1, lease_until = ?2, attempt = attempt + 1,
                               first_attempt_at = COALESCE(first_attempt_at, ?3)
         WHERE id IN (SELECT id FROM work_items
                      WHERE visible_at <= ?3
                        AND (lease_owner IS NULL OR (lease_owner <> ?1 AND lease_until < ?3))
                      ORDER BY visible_at, id LIMIT ?4)
         RETURNING id, instance_id, task_id, name, input, attempt, retry, first_attempt_at,
                   recovered, crashes",
    )?;
    let mut rows = stmt.query(params![owner, millis(lease_until), millis(now), max as i64])?;
    let mut items = Vec::new();
    while let Some(row) = rows.next()? {
        let instance_id: String = row.get(1)?;
        let retry: Option<String> = row.get(6)?;
        items.push(WorkItem {
            id: row.get(0)?,
            task_id: row.get(2)?,
            name: row.get(3)?,
            input: payload::get(conn, &instance_id, row.get(4)?)?,
            attempt: row.get(5)?,
            retry: match retry {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
                    Error::Corrupt(format!("undecodable retry policy {text}: {e}"))
                })?),
                None => None,
            },
            first_attempt_at: time(row.get(7)?)?,
            recovered: row.get(8)?,
            crashes: row.get(9)?,
            instance_id,
        });
    }
    // RETURNING yields rows in no particular order; hand them out oldest first.
    items.sort_by_key(|item| item.id);
    Ok(items)
}

/// Settles a leased work item (see [`super::Store::settle_work`]).
fn settle_work(
    conn: &Connection,
    item: &WorkItem,
    owner: &str,
    settlement: &Settlement,
    now: DateTime<Utc>,
) -> Result<bool> {
    let (changed, message) = match settlement {
        Settlement::Complete { completion } => (
            conn.prepare_cached(
                "DELETE FROM work_items WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3",
            )?
            .execute(params![item.id, owner, item.attempt])?,
            completion,
        ),
        Settlement::Retry { retry_at, notice } => (
            conn.prepare_cached(
                "UPDATE work_items SET visible_at = ?3, lease_owner = NULL, lease_until = NULL,
                                       running = 0
                 WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?4",
            )?
            .execute(params![item.id, owner, millis(*retry_at), item.attempt])?,
            notice,
        ),
    };
    if changed == 0 {
        return Ok(false);
    }
    post(conn, &item.instance_id, message, now)?;
    Ok(true)
}

/// Fires the timers due at `now` (at most `max`): each is deleted and its `TimerFired`
/// posted to its instance's inbox. Returns the instances that got one.
fn fire_due_timers(conn: &Connection, now: DateTime<Utc>, max: usize) -> Result<Vec<String>> {
    let due: Vec<(String, u32, i64)> = {
        let mut stmt = conn.prepare_cached(
            "SELECT instance_id, task_id, fire_at FROM timers WHERE fire_at <= ?1
             ORDER BY fire_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![millis(now), max.min(i64::MAX as usize) as i64],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut fired = Vec::with_capacity(due.len());
    for (instance_id, task_id, fire_at) in due {
        conn.prepare_cached("DELETE FROM timers WHERE instance_id = ?1 AND task_id = ?2")?
            .execute(params![instance_id, task_id])?;
        let event = Event::TimerFired {
            task_id,
            fire_at: time(fire_at)?,
        };
        post(conn, &instance_id, &event, now)?;
        fired.push(instance_id);
    }
    Ok(fired)
}

#[async_trait::async_trait]
impl super::Store for SqliteStore {
    async fn create_instance(
        &self,
        id: &str,
        name: &str,
        input: &str,
        now: DateTime<Utc>,
    ) -> Result<Instance> {
        let (id, name, input) = (id.to_string(), name.to_string(), input.to_string());
        self.writer
            .write(move |conn| create_instance(conn, &id, &name, &input, now))
            .await
    }

    async fn instance(&self, id: &str) -> Result<Option<Instance>> {
        let id = id.to_string();
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {INSTANCE_COLUMNS} FROM instances WHERE id = ?1"
                ))?;
                let mut rows = stmt.query([id])?;
                rows.next()?.map(|row| instance_row(conn, row)).transpose()
            })
            .await
    }

    async fn list_instances(&self, filter: &InstanceFilter, listing: Listing) -> Result<Listed> {
        let (statuses, from, to, prefix, name) = filter_params(filter);
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {} FROM instances WHERE {FILTER}
                     ORDER BY created_at DESC, id LIMIT ?6 OFFSET ?7",
                    listing_columns(&listing)
                ))?;
                // One more than the page, to tell whether instances follow it.
                let limit = listing.limit.saturating_add(1).min(i64::MAX as usize);
                let mut rows = stmt.query(params![
                    statuses,
                    from,
                    to,
                    prefix,
                    name,
                    limit as i64,
                    listing.skip.min(i64::MAX as usize) as i64
                ])?;
                let mut listed = Listed::default();
                let mut bytes = 0usize;
                while let Some(row) = rows.next()? {
                    let full = listed.instances.len() >= listing.limit
                        || (!listed.instances.is_empty() && bytes >= listing.max_bytes);
                    if full {
                        listed.more = true;
                        break;
                    }
                    let instance = instance_row(conn, row)?;
                    bytes = bytes
                        .saturating_add(instance.input.len())
                        .saturating_add(instance.output.as_ref().map_or(0, String::len))
                        .saturating_add(instance.custom_status.as_ref().map_or(0, String::len));
                    listed.instances.push(instance);
                }
                Ok(listed)
            })
            .await
    }

    async fn post_message(&self, id: &str, event: &Event, now: DateTime<Utc>) -> Result<()> {
        let (id, event) = (id.to_string(), event.clone());
        self.writer
            .write(move |conn| match status_of(conn, &id)? {
                None => Err(Error::UnknownInstance(id)),
                Some(status) if status.is_terminal() => Err(Error::Ended { id, status }),
                Some(_) => post(conn, &id, &event, now),
            })
            .await
    }

    async fn purge(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.writer
            .write(move |conn| match status_of(conn, &id)? {
                None => Ok(false),
                Some(status) if !status.is_terminal() => Err(Error::NotEnded(id)),
                Some(_) => delete_instance(conn, &id).map(|()| true),
            })
            .await
    }

    async fn purge_many(&self, filter: &InstanceFilter) -> Result<usize> {
        let (statuses, from, to, prefix, name) = filter_params(filter);
        self.writer
            .write(move |conn| {
                let ids: Vec<String> = {
                    let mut stmt = conn.prepare(&format!(
                        "SELECT id FROM instances WHERE {FILTER}
                         AND status IN ('Completed', 'Failed', 'Terminated')"
                    ))?;
                    let rows = stmt
                        .query_map(params![statuses, from, to, prefix, name], |row| row.get(0))?;
                    rows.collect::<rusqlite::Result<_>>()?
                };
                for id in &ids {
                    delete_instance(conn, id)?;
                }
                Ok(ids.len())
            })
            .await
    }

    async fn unfinished_instances(&self) -> Result<Vec<String>> {
        self.readers
            .read(|conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id FROM instances WHERE status IN ('Pending', 'Running', 'Suspended')
                     ORDER BY created_at, id",
                )?;
                let rows = stmt.query_map([], |row| row.get(0))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
    }

    async fn any_runnable(&self, names: &[String], except: &[String]) -> Result<bool> {
        let encode = |list: &[String]| {
            serde_json::to_string(list).map_err(|e| Error::Corrupt(format!("a name list: {e}")))
        };
        let (names, except) = (encode(names)?, encode(except)?);
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM instances
                     WHERE status IN ('Pending', 'Running')
                       AND name IN (SELECT value FROM json_each(?1))
                       AND id NOT IN (SELECT value FROM json_each(?2)))",
                )?;
                Ok(stmt.query_row((names, except), |row| row.get(0))?)
            })
            .await
    }

    async fn history(&self, id: &str) -> Result<Vec<HistoryEvent>> {
        let id = id.to_string();
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT seq, timestamp, data FROM history WHERE instance_id = ?1 ORDER BY seq",
                )?;
                let mut rows = stmt.query([&id])?;
                let mut events = Vec::new();
                while let Some(row) = rows.next()? {
                    events.push(HistoryEvent {
                        seq: row.get::<_, i64>(0)? as u64,
                        timestamp: time(row.get(1)?)?,
                        event: decode(conn, &id, row.get(2)?)?,
                    });
                }
                Ok(events)
            })
            .await
    }

    async fn history_len(&self, id: &str) -> Result<u64> {
        let id = id.to_string();
        self.readers
            .read(move |conn| {
                let next: i64 = conn
                    .prepare_cached(
                        "SELECT COALESCE(MAX(seq) + 1, 0) FROM history WHERE instance_id = ?1",
                    )?
                    .query_row([&id], |row| row.get(0))?;
                Ok(next.max(0) as u64)
            })
            .await
    }

    async fn inbox(
        &self,
        id: &str,
        after: i64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<InboxMessage>> {
        let id = id.to_string();
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, data FROM inbox WHERE instance_id = ?1 AND id > ?2 ORDER BY id
                     LIMIT ?3",
                )?;
                let mut rows =
                    stmt.query(params![&id, after, max.min(i64::MAX as usize) as i64])?;
                let (mut messages, mut bytes) = (Vec::new(), 0usize);
                while bytes < max_bytes
                    && let Some(row) = rows.next()?
                {
                    let event = decode(conn, &id, row.get(1)?)?;
                    bytes = bytes.saturating_add(event.weight());
                    messages.push(InboxMessage {
                        id: row.get(0)?,
                        event,
                    });
                }
                Ok(messages)
            })
            .await
    }

    async fn checkpoint(&self, cp: Checkpoint) -> Result<Committed> {
        self.writer.write(move |conn| checkpoint(conn, &cp)).await
    }

    async fn claim_work(
        &self,
        owner: &str,
        max: usize,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<WorkItem>> {
        let owner = owner.to_string();
        self.writer
            .write(move |conn| claim_work(conn, &owner, max, now, lease_until))
            .await
    }

    async fn release_leases(&self) -> Result<()> {
        self.writer
            .write(|conn| {
                conn.execute(
                    "UPDATE work_items SET lease_owner = NULL, lease_until = NULL,
                            attempt = MAX(attempt - 1, 0), recovered = 1,
                            crashes = crashes + running, running = 0
                     WHERE lease_owner IS NOT NULL",
                    [],
                )?;
                Ok(())
            })
            .await
    }

    async fn mark_running(&self, item: &WorkItem, owner: &str) -> Result<bool> {
        let (id, attempt, owner) = (item.id, item.attempt, owner.to_string());
        self.writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        "UPDATE work_items SET running = 1
                         WHERE id = ?1 AND lease_owner = ?2 AND attempt = ?3",
                    )?
                    .execute(params![id, owner, attempt])?
                    == 1)
            })
            .await
    }

    async fn release_instance_leases(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE work_items SET lease_owner = NULL, lease_until = NULL
                     WHERE instance_id = ?1",
                    [id],
                )?;
                Ok(())
            })
            .await
    }

    async fn settle_work(
        &self,
        item: &WorkItem,
        owner: &str,
        settlement: Settlement,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (item, owner) = (item.clone(), owner.to_string());
        self.writer
            .write(move |conn| settle_work(conn, &item, &owner, &settlement, now))
            .await
    }

    async fn rewind(
        &self,
        id: &str,
        first_seq: u64,
        event: Event,
        reschedule: Vec<Event>,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let id = id.to_string();
        self.writer
            .write(move |conn| rewind(conn, &id, first_seq, &event, &reschedule, now))
            .await
    }

    async fn fire_due_timers(&self, now: DateTime<Utc>, max: usize) -> Result<Vec<String>> {
        self.writer
            .write(move |conn| fire_due_timers(conn, now, max))
            .await
    }

    async fn next_timer(&self) -> Result<Option<DateTime<Utc>>> {
        self.readers
            .read(|conn| {
                let next: Option<i64> = conn
                    .prepare_cached("SELECT MIN(fire_at) FROM timers")?
                    .query_row([], |row| row.get(0))?;
                next.map(time).transpose()
            })
            .await
    }

    async fn inbox_since(&self, after: i64, max: usize) -> Result<Vec<(i64, String)>> {
        self.readers
            .read(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT id, instance_id FROM inbox WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?;
                let rows = stmt
                    .query_map(params![after, max.min(i64::MAX as usize) as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .await
    }

    async fn work_item_exists(&self, id: i64) -> Result<bool> {
        self.readers
            .read(move |conn| {
                Ok(conn
                    .prepare_cached("SELECT 1 FROM work_items WHERE id = ?1")?
                    .query_row([id], |_| Ok(()))
                    .optional()?
                    .is_some())
            })
            .await
    }

    async fn progress(&self, id: &str) -> Result<Progress> {
        let id = id.to_string();
        self.readers
            .read(move |conn| {
                let (scheduled, finished): (i64, i64) = conn
                    .prepare_cached(
                        // A rewind runs the failed tasks again: only the failures after
                        // the last rewind count as finished.
                        "SELECT COUNT(*) FILTER (WHERE event_type = 'TaskScheduled'),
                            COUNT(*) FILTER (WHERE event_type = 'TaskCompleted'
                                OR event_type = 'TaskFailed' AND seq > COALESCE(
                                    (SELECT MAX(seq) FROM history
                                     WHERE instance_id = ?1 AND event_type = 'ExecutionRewound'),
                                    -1))
                     FROM history WHERE instance_id = ?1",
                    )?
                    .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(Progress {
                    scheduled: scheduled as u64,
                    finished: finished as u64,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests;
