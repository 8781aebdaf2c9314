//! An instance's relatives in the store: the sub-orchestrations a checkpoint starts, the
//! outcome an ended one reports to its parent, a parent's termination passed on to its
//! children, and the new execution that continue-as-new puts in place of the old.

use super::super::{
    Checkpoint, Committed, ContinueAsNew, Error, Event, MAX_NESTING, Result, RuntimeStatus,
};
use super::{create_instance, encode, millis, payload, post, status_of};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// A sub-orchestration to start.
pub(super) struct Child<'a> {
    parent: &'a str,
    task_id: u32,
    id: &'a str,
    name: &'a str,
    input: &'a str,
}

impl<'a> Child<'a> {
    /// The sub-orchestration that `event` of instance `parent` starts, if it starts one.
    pub(super) fn of(parent: &'a str, event: &'a Event) -> Option<Self> {
        match event {
            Event::SubOrchestrationScheduled {
                task_id,
                name,
                instance_id,
                input,
            } => Some(Self {
                parent,
                task_id: *task_id,
                id: instance_id,
                name,
                input,
            }),
            _ => None,
        }
    }
}

/// How many ancestors `id` has, counting at most up to `MAX_NESTING + 1`.
fn nesting(conn: &Connection, id: &str) -> Result<usize> {
    let mut parent_of = conn.prepare_cached("SELECT parent_id FROM instances WHERE id = ?1")?;
    let (mut depth, mut current) = (0, id.to_string());
    while depth <= MAX_NESTING {
        let parent: Option<String> = parent_of
            .query_row([&current], |row| row.get(0))
            .optional()?
            .flatten();
        match parent {
            Some(parent) => {
                depth += 1;
                current = parent;
            }
            None => break,
        }
    }
    Ok(depth)
}

/// Creates a sub-orchestration's instance, linked to its parent's task; if its id is
/// taken by an instance that has not ended, or it would nest deeper than
/// [`MAX_NESTING`], the parent's task fails instead.
pub(super) fn start_child(
    conn: &Connection,
    child: &Child<'_>,
    now: DateTime<Utc>,
    woken: &mut Vec<String>,
) -> Result<()> {
    let fail_parent = |message: String, woken: &mut Vec<String>| -> Result<()> {
        let failed = Event::SubOrchestrationFailed {
            task_id: child.task_id,
            message,
        };
        post(conn, child.parent, &failed, now)?;
        woken.push(child.parent.to_string());
        Ok(())
    };
    if nesting(conn, child.parent)? + 1 > MAX_NESTING {
        return fail_parent(
            format!(
                "cannot start sub-orchestration '{}': sub-orchestrations may nest at most {MAX_NESTING} deep",
                child.id
            ),
            woken,
        );
    }
    match create_instance(conn, child.id, child.name, child.input, now) {
        Ok(_) => {
            conn.prepare_cached(
                "UPDATE instances SET parent_id = ?2, parent_task = ?3 WHERE id = ?1",
            )?
            .execute(params![child.id, child.parent, child.task_id])?;
            woken.push(child.id.to_string());
        }
        Err(Error::InstanceExists(_)) => fail_parent(
            format!(
                "cannot start sub-orchestration '{}': an instance with that id exists and has not ended",
                child.id
            ),
            woken,
        )?,
        Err(other) => return Err(other),
    }
    Ok(())
}

/// Posts an ended sub-orchestration's outcome to its parent's task, if the parent still
/// waits for it.
pub(super) fn report_to_parent(
    conn: &Connection,
    cp: &Checkpoint,
    woken: &mut Vec<String>,
) -> Result<()> {
    let id = cp.instance_id.as_str();
    let parent: Option<(String, u32)> = conn
        .prepare_cached(
            "SELECT parent_id, parent_task FROM instances WHERE id = ?1 AND parent_id IS NOT NULL",
        )?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((parent, task_id)) = parent else {
        return Ok(());
    };
    if !matches!(status_of(conn, &parent)?, Some(status) if !status.is_terminal()) {
        return Ok(());
    }
    let ending = cp.events.iter().rev().find_map(|(_, event)| match event {
        Event::ExecutionFailed { message } => Some(message.clone()),
        Event::ExecutionTerminated { reason } => Some(format!("terminated: {reason}")),
        _ => None,
    });
    let event = match (cp.status, ending) {
        (RuntimeStatus::Completed, _) => Event::SubOrchestrationCompleted {
            task_id,
            result: cp.output.clone().unwrap_or_else(|| "null".to_string()),
        },
        (_, message) => Event::SubOrchestrationFailed {
            task_id,
            message: message.unwrap_or_else(|| format!("ended {}", cp.status.as_str())),
        },
    };
    post(conn, &parent, &event, cp.now)?;
    woken.push(parent);
    Ok(())
}

/// Passes a parent's termination on to its sub-orchestrations that have not ended.
pub(super) fn terminate_children(
    conn: &Connection,
    cp: &Checkpoint,
    woken: &mut Vec<String>,
) -> Result<()> {
    let id = cp.instance_id.as_str();
    let children: Vec<String> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id FROM instances WHERE parent_id = ?1
             AND status IN ('Pending', 'Running', 'Suspended')",
        )?;
        let rows = stmt.query_map([id], |row| row.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let terminated = Event::ExecutionTerminated {
        reason: format!("its parent orchestration '{id}' was terminated"),
    };
    for child in children {
        post(conn, &child, &terminated, cp.now)?;
        woken.push(child);
    }
    Ok(())
}

/// Ends an execution by starting the instance over (see [`ContinueAsNew`]).
pub(super) fn continue_as_new(
    conn: &Connection,
    cp: &Checkpoint,
    next: &ContinueAsNew,
) -> Result<Committed> {
    let id = cp.instance_id.as_str();
    let name: String = conn
        .prepare_cached("SELECT name FROM instances WHERE id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .ok_or_else(|| Error::UnknownInstance(id.to_string()))?;
    for table in ["history", "work_items", "timers"] {
        conn.execute(&format!("DELETE FROM {table} WHERE instance_id = ?1"), [id])?;
    }
    let mut ack = conn.prepare_cached("DELETE FROM inbox WHERE id = ?1 AND instance_id = ?2")?;
    for message in &cp.consumed {
        ack.execute(params![message, id])?;
    }
    // The old execution's large payloads go with its history; messages still in the
    // inbox keep theirs.
    conn.execute(
        "DELETE FROM payloads WHERE instance_id = ?1
         AND key NOT IN (SELECT data FROM inbox WHERE instance_id = ?1)",
        [id],
    )?;
    let started = Event::ExecutionStarted {
        name,
        input: next.input.clone(),
        first_task: next.first_task,
    };
    let carried = next.carried.iter().map(|(name, input)| Event::EventRaised {
        name: name.clone(),
        input: input.clone(),
    });
    let mut append = conn.prepare_cached(
        "INSERT INTO history (instance_id, seq, timestamp, event_type, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (seq, event) in std::iter::once(started).chain(carried).enumerate() {
        append.execute(params![
            id,
            seq as i64,
            millis(cp.now),
            event.kind(),
            encode(conn, id, &event)?
        ])?;
    }
    conn.prepare_cached(
        "UPDATE instances SET status = 'Running', input = ?2, output = NULL, custom_status = ?3,
                              updated_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        payload::put(conn, id, &next.input)?,
        cp.custom_status
            .as_deref()
            .map(|s| payload::put(conn, id, s))
            .transpose()?,
        millis(cp.now)
    ])?;
    Ok(Committed::default())
}
