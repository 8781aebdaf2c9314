//! Serving the API to clients that may be slow, idle or hostile: every connection must
//! send its request headers within [`HEADER_TIMEOUT`] and take the response's bytes as
//! they come (a write that waits [`WRITE_TIMEOUT`] for a client that reads nothing ends
//! its connection), at most a bounded number of connections are open at once (further
//! ones wait in the listen backlog until one closes), and a failed `accept` (descriptors
//! exhausted) backs off instead of spinning. So idle connections, and clients that send
//! requests but never read the answers, cannot starve the API of descriptors, nor the
//! activities that need them.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a write to a client may wait for it to read: a client that takes no byte of
/// its response for this long loses its connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `router` on `listener`, each open connection holding one of `slots`. Listeners
/// that share the slots share one bound (see [`raise_descriptor_limit`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    slots: Arc<Semaphore>,
) -> std::io::Result<()> {
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!("cannot accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
            stream.set_write_timeout(Some(WRITE_TIMEOUT));
            let stream = TokioIo::new(Box::pin(stream));
            if let Err(error) = http.serve_connection(stream, service).await {
                tracing::debug!("connection ended: {error}");
            }
            drop(slot);
        });
    }
}

/// Raises this process's open-file limit to its hard limit, and says how many
/// connections the API may hold, on all its listeners together: half of the descriptors,
/// so that activities, blobs and the database keep the other half.
pub fn raise_descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the duration of both calls.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 512;
        }
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            limit.rlim_max
        } else {
            limit.rlim_cur
        }
    };
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(64, 16_384)
}
