//! Read connections for queries, used off the async threads. In WAL mode readers never
//! wait for the writer: each query sees the last committed state, and since writers are
//! answered only after their commit, a caller always reads its own writes.

use super::super::{Error, Result};
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Idle connections kept open for the next query.
const KEEP_IDLE: usize = 4;

/// A small pool of read-only connections to one database file.
#[derive(Clone)]
pub struct Readers {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::default(),
        }
    }

    /// Runs `query` on a read connection on tokio's blocking pool.
    pub async fn read<T, F>(&self, query: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.take() {
                Some(conn) => conn,
                None => readers.open()?,
            };
            let result = query(&conn);
            readers.put_back(conn);
            result
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    fn open(&self) -> Result<Connection> {
        let conn = Connection::open_with_flags(
            &*self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(super::BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(super::STATEMENTS);
        Ok(conn)
    }

    fn take(&self) -> Option<Connection> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .pop()
    }

    fn put_back(&self, conn: Connection) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
    }
}
