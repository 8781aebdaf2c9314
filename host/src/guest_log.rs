//! The lines guests write through their `log` imports: each cut to
//! [`limits::MAX_MESSAGE`], and admitted at a bounded rate for the whole process, so that
//! no guest, nor many short activities, can flood the host's log and its disk. Lines
//! over the rate are dropped, and the next line admitted says how many were.

use crate::limits;
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Instant;
use tracing::Level;

/// Guest log lines admitted per second, and in one burst, for all guests together.
pub const LINES_PER_SEC: f64 = 1000.0;

/// Who wrote a line: its instance, and its activity task if an activity did.
pub struct Writer<'a> {
    pub instance: &'a str,
    pub task: Option<u32>,
}

/// Writes a guest's log line at `level`, if that level is shown and the rate allows.
pub fn write(level: Level, writer: &Writer<'_>, message: String) {
    if !shown(level) {
        return;
    }
    let Some(dropped) = GATE.admit(Instant::now()) else {
        return;
    };
    if dropped > 0 {
        tracing::warn!(
            "{dropped} guest log line(s) dropped: guests wrote more than {LINES_PER_SEC} lines a second"
        );
    }
    let message = limits::truncate_message(message);
    let instance = writer.instance;
    match (level, writer.task) {
        (Level::TRACE, Some(task)) => tracing::trace!(%instance, task, "{message}"),
        (Level::DEBUG, Some(task)) => tracing::debug!(%instance, task, "{message}"),
        (Level::INFO, Some(task)) => tracing::info!(%instance, task, "{message}"),
        (Level::WARN, Some(task)) => tracing::warn!(%instance, task, "{message}"),
        (_, Some(task)) => tracing::error!(%instance, task, "{message}"),
        (Level::TRACE, None) => tracing::trace!(%instance, "{message}"),
        (Level::DEBUG, None) => tracing::debug!(%instance, "{message}"),
        (Level::INFO, None) => tracing::info!(%instance, "{message}"),
        (Level::WARN, None) => tracing::warn!(%instance, "{message}"),
        (_, None) => tracing::error!(%instance, "{message}"),
    }
}

/// Whether lines at `level` are written at all: those that are not cost no rate.
fn shown(level: Level) -> bool {
    match level {
        Level::TRACE => tracing::enabled!(Level::TRACE),
        Level::DEBUG => tracing::enabled!(Level::DEBUG),
        Level::INFO => tracing::enabled!(Level::INFO),
        Level::WARN => tracing::enabled!(Level::WARN),
        _ => tracing::enabled!(Level::ERROR),
    }
}

static GATE: LazyLock<Gate> = LazyLock::new(|| Gate::new(LINES_PER_SEC, Instant::now()));

/// A token bucket of lines.
struct Gate {
    rate: f64,
    state: Mutex<State>,
}

struct State {
    tokens: f64,
    at: Instant,
    dropped: u64,
}

impl Gate {
    fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            state: Mutex::new(State {
                tokens: rate,
                at: now,
                dropped: 0,
            }),
        }
    }

    /// `Some(lines dropped since the last admitted one)` if a line may be written at
    /// `now`; `None` if it is dropped.
    fn admit(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(state.at).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.rate);
        state.at = now.max(state.at);
        if state.tokens < 1.0 {
            state.dropped += 1;
            return None;
        }
        state.tokens -= 1.0;
        Some(std::mem::take(&mut state.dropped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_over_the_rate_is_dropped_and_counted_then_lines_flow_again() {
        let start = Instant::now();
        let gate = Gate::new(10.0, start);
        let admitted = (0..25).filter(|_| gate.admit(start).is_some()).count();
        assert_eq!(admitted, 10, "one burst of the rate");
        // Half a second later, five more lines may go; the first says 15 were dropped.
        let later = start + Duration::from_millis(500);
        assert_eq!(gate.admit(later), Some(15));
        let more = (0..10).filter(|_| gate.admit(later).is_some()).count();
        assert_eq!(more, 4);
        // A long pause refills only one burst.
        let much_later = later + Duration::from_secs(3600);
        let burst = (0..100)
            .filter(|_| gate.admit(much_later).is_some())
            .count();
        assert_eq!(burst, 10);
    }
}
