//! The storage thread: it owns the database's only write connection and commits the
//! changes that callers send it in groups (group commit).
//!
//! A caller sends a job and awaits its answer. The thread takes the first job that
//! arrives, opens a transaction, and runs every further job already waiting in the same
//! transaction, each inside its own savepoint, so that one job's failure rolls back only
//! that job (a job alone needs none: its failure rolls back the transaction). Then it
//! commits once and answers every caller. With `synchronous=FULL` the
//! commit is durable when it returns, so no caller hears "done" before its change would
//! survive a crash or a power loss. While one group's commit waits for the disk, the
//! next group gathers: the busier the store, the larger the groups, and the fewer fsyncs
//! per change.

use super::super::{Error, Result};
use rusqlite::Connection;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The most jobs committed in one transaction; it bounds how long one caller waits for
/// the others' work.
const MAX_GROUP: usize = 4096;

/// Answers a job's caller once the transaction that held the job has ended.
type Answer = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs on the storage thread, inside the group's transaction (in a savepoint of
/// its own when `Ok(Shared)`), or is refused, with the reason, if the transaction could
/// not begin. It says whether its change succeeded, and how to answer its caller.
type Job = Box<dyn FnOnce(Result<Share, String>) -> (bool, Answer) + Send>;

/// Whether a job has the group's transaction to itself.
enum Share<'a> {
    /// Alone in it: a failure rolls back the whole transaction.
    Alone(&'a Connection),
    /// With others: it runs in a savepoint, so that its failure rolls back only its own
    /// changes.
    Shared(&'a Connection),
}

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
                Ok(Share::Alone(conn)) => change(conn),
                Ok(Share::Shared(conn)) => in_savepoint(conn, change),
                Err(reason) => Err(Error::Commit(reason)),
            };
            let succeeded = outcome.is_ok();
            let answer: Answer = Box::new(move |committed| {
                let _ = reply.send(match committed {
                    Ok(()) => outcome,
                    // The job's own error says more than the rollback it caused.
                    Err(_) if outcome.is_err() => outcome,
                    Err(reason) => Err(Error::Commit(reason)),
                });
            });
            (succeeded, answer)
        });
        self.jobs.send(job).map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }
}

/// Runs `change` in a savepoint: its failure rolls back its own changes only. The
/// statements are prepared once (as are the transaction's own), not parsed per job.
fn in_savepoint<T>(conn: &Connection, change: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    execute(conn, "SAVEPOINT job")?;
    match change(conn) {
        Ok(value) => {
            execute(conn, "RELEASE job")?;
            Ok(value)
        }
        Err(error) => {
            // Should the rollback fail too, the job's error still says what went wrong;
            // the group's COMMIT then fails and ends the transaction.
            let _ = execute(conn, "ROLLBACK TO job").and_then(|()| execute(conn, "RELEASE job"));
            Err(error)
        }
    }
}

fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

/// The storage thread's loop; it ends when every [`Writer`] is dropped.
fn run(conn: Connection, queue: mpsc::Receiver<Job>) {
    let mut linger = Linger::default();
    while let Some(first) = linger.next_job(&queue) {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        if let Err(error) = execute(&conn, "BEGIN IMMEDIATE") {
            let reason = error.to_string();
            for job in group {
                job(Err(reason.clone())).1(Err(reason.clone()));
            }
            continue;
        }
        let alone = group.len() == 1;
        let mut failed = false;
        let answers: Vec<Answer> = group
            .into_iter()
            .map(|job| {
                let share = if alone {
                    Share::Alone(&conn)
                } else {
                    Share::Shared(&conn)
                };
                let (succeeded, answer) = job(Ok(share));
                failed |= !succeeded;
                answer
            })
            .collect();
        let committed = if alone && failed {
            // The only job failed: nothing of the transaction is to be kept.
            Err("rolled back".to_string())
        } else {
            execute(&conn, "COMMIT").map_err(|e| e.to_string())
        };
        if committed.is_err() {
            // A failed COMMIT can leave the transaction open; end it so the next group
            // starts clean. Nothing of this group was kept.
            let _ = execute(&conn, "ROLLBACK");
        }
        for answer in answers {
            answer(committed.clone());
        }
    }
}

/// How long the thread stays awake after a commit, looking for the next job, before it
/// sleeps. The next job often follows soon (an instance's next episode, a moment after
/// the activity its last commit scheduled), and a sleeping thread must be woken: on a
/// virtual machine, waking an idle CPU costs tens of microseconds, as much as the
/// commit's own work. Between looks it yields its CPU to any thread that wants it.
const LINGER: Duration = Duration::from_micros(300);

/// Whether lingering pays: it rises each time the next job came within [`LINGER`] and
/// falls faster each time a linger ran out, so that a store whose jobs come seldom (or
/// far apart) sleeps at once instead of spending CPU time in vain.
#[derive(Default)]
struct Linger {
    score: u8,
}

impl Linger {
    const MAX: u8 = 8;
    /// The least score at which the thread lingers.
    const ON: u8 = 4;

    /// The next job, waiting for it if none is queued; `None` once every sender is gone.
    fn next_job(&mut self, queue: &mpsc::Receiver<Job>) -> Option<Job> {
        let started = Instant::now();
        if self.score >= Self::ON {
            loop {
                match queue.try_recv() {
                    Ok(job) => {
                        self.score = (self.score + 1).min(Self::MAX);
                        return Some(job);
                    }
                    Err(mpsc::TryRecvError::Disconnected) => return None,
                    Err(mpsc::TryRecvError::Empty) if started.elapsed() < LINGER => {
                        std::thread::yield_now();
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            self.score = self.score.saturating_sub(2);
        }
        let job = queue.recv().ok()?;
        if started.elapsed() < LINGER {
            self.score = (self.score + 1).min(Self::MAX);
        }
        Some(job)
    }
}
