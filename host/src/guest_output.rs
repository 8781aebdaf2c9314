//! The tail of a guest's stderr, kept so that a failure can say what the guest printed
//! last: a panic message, typically. Output beyond the tail is dropped, never an error.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// How many bytes of a guest's stderr are kept.
const TAIL: usize = 4096;

/// A guest's stderr: shared between the WASI context that writes and the host that reads.
#[derive(Clone, Debug, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

impl StderrTail {
    /// The last lines the guest wrote, on one line, without Rust's backtrace hint.
    pub fn summary(&self) -> Option<String> {
        let bytes: Vec<u8> = self
            .0
            .lock()
            .map(|tail| tail.iter().copied().collect())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        (!lines.is_empty()).then(|| lines.join(" "))
    }

    /// A trap's description, followed by what the guest printed, if anything.
    pub fn describe(&self, trap: String) -> String {
        match self.summary() {
            Some(printed) => format!("{trap}; the guest printed: {printed}"),
            None => trap,
        }
    }
}

impl IsTerminal for StderrTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrTail {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for StderrTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Ok(mut tail) = self.0.lock() {
            tail.extend(bytes);
            let excess = tail.len().saturating_sub(TAIL);
            tail.drain(..excess);
        }
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn keeps_the_last_lines_and_drops_the_backtrace_hint() {
        let tail = StderrTail::default();
        let mut writer = tail.clone();
        writer.write_all(&vec![b'x'; 10_000]).await.unwrap();
        writer.write_all(b"\nthread '<unnamed>' panicked at src/lib.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1`\n").await.unwrap();
        let summary = tail.summary().unwrap();
        assert!(
            summary.ends_with("panicked at src/lib.rs:3:5: boom"),
            "{summary}"
        );
        assert!(summary.len() <= TAIL);
        assert_eq!(StderrTail::default().describe("trap".into()), "trap");
    }
}
