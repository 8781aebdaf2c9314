//! The storage thread: it owns the database's only write connection and commits the
//! changes that callers send it in groups (group commit).
//!
//! A caller sends a job and awaits its answer. The thread takes the first job that
//! arrives, opens a transaction, and runs every further job already waiting in the same
//! transaction, each inside its own savepoint, so that one job's failure rolls back only
//! that job. Then it commits once and answers every caller. With `synchronous=FULL` the
//! commit is durable when it returns, so no caller hears "done" before its change would
//! survive a crash or a power loss. While one group's commit waits for the disk, the
//! next group gathers: the busier the store, the larger the groups, and the fewer fsyncs
//! per change.

use super::super::{Error, Result};
use rusqlite::Connection;
use std::sync::mpsc;
use tokio::sync::oneshot;

/// The most jobs committed in one transaction; it bounds how long one caller waits for
/// the others' work.
const MAX_GROUP: usize = 4096;

/// Answers a job's caller once the transaction that held the job has ended.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs on the storage thread, inside the group's transaction (or is refused, with
/// the reason, if the transaction could not begin), and returns how to answer its caller.
type Job = Box<dyn FnOnce(Result<&mut Connection, String>) -> Answer + Send>;

/// The sending side of the storage thread.
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the storage thread on `conn`.
    pub fn start(conn: Connection) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("weft-store".to_string())
            .spawn(move || run(conn, queue))?;
        Ok(Self { jobs })
    }

    /// Runs `change` in a transaction on the storage thread and returns its result once
    /// that transaction is committed. An error from `change` rolls back only its own
    /// changes.
    pub async fn write<T, F>(&self, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = match conn {
                Ok(conn) => in_savepoint(conn, change),
                Err(reason) => Err(Error::Commit(reason)),
            };
            Box::new(move |committed| {
                let _ = reply.send(match committed {
                    Ok(()) => outcome,
                    // The job's own error says more than the rollback it caused.
                    Err(_) if outcome.is_err() => outcome,
                    Err(reason) => Err(Error::Commit(reason)),
                });
            })
        });
        self.jobs.send(job).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

fn in_savepoint<T>(
    conn: &mut Connection,
    change: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let savepoint = conn.savepoint()?;
    let value = change(&savepoint)?;
    savepoint.commit()?;
    Ok(value)
}

/// The storage thread's loop; it ends when every [`Writer`] is dropped.
fn run(mut conn: Connection, queue: mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
            let reason = error.to_string();
            for job in group {
                job(Err(reason.clone()))(Err(reason.clone()));
            }
            continue;
        }
        let answers: Vec<Answer> = group.into_iter().map(|job| job(Ok(&mut conn))).collect();
        let committed = conn.execute_batch("COMMIT").map_err(|e| e.to_string());
        if committed.is_err() {
            // A failed COMMIT can leave the transaction open; end it so the next group
            // starts clean. Nothing of this group was kept.
            let _ = conn.execute_batch("ROLLBACK");
        }
        for answer in answers {
            answer(committed.clone());
        }
    }
}
