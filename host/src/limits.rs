//! Guest limits: a CPU-time budget per stretch of guest execution between two real waits
//! (enforced with epoch interruption) and a memory cap (wasmtime `StoreLimits`). A guest
//! over either limit traps with a [`Exceeded`] error that the workers turn into a clear
//! message.
//!
//! The budget counts the CPU time of the guest's own thread while the guest runs, not wall
//! time: a guest that is descheduled on a busy machine is not charged for it, and time the
//! host spends in its imports is not the guest's. Only a real wait (an orchestrator blocked
//! on tasks that have not finished) starts a new stretch; a wait that is already satisfied,
//! or a host call, does not, so a guest cannot reset its own limit.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

/// How often the engine's epoch advances; the granularity of CPU budgets.
pub const TICK: Duration = Duration::from_millis(10);

/// What one guest execution may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLimits {
    /// Most CPU time a guest may use between two real waits.
    pub cpu: Duration,
    /// Largest linear memory, in bytes.
    pub memory: usize,
    /// Largest JSON payload (input, output, custom status) in bytes.
    pub payload: usize,
    /// Largest history of one execution, in [`crate::store::Event::weight`] bytes: the
    /// host holds an instance's history in memory to replay it, so a history that grew
    /// without end would take the host's memory on every start. An instance whose history
    /// passes it fails at its next wait (continue-as-new starts a fresh history).
    pub history: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            cpu: Duration::from_secs(30),
            memory: 512 << 20,
            // A file list of 100,000 paths of about 100 bytes fits; payloads over 64 KiB
            // are stored once, compressed, out of line.
            payload: 16 << 20,
            // A backup of 100,000 files records about 50 MiB.
            history: 512 << 20,
        }
    }
}

/// The longest error message a guest can have recorded; longer ones are cut.
pub const MAX_MESSAGE: usize = 4 << 10;
/// The largest custom status: it is rewritten at every checkpoint, so it stays small
/// enough to be stored in its row (Durable Functions allows 16 KB).
pub const MAX_CUSTOM_STATUS: usize = 64 << 10;
/// The longest activity name an orchestrator may call.
pub const MAX_NAME: usize = 256;
/// The most activities an orchestrator may schedule between two waits, and the most bytes
/// of names and inputs they may carry: what the host holds for it until the next commit.
pub const MAX_EPISODE_COMMANDS: usize = 250_000;
pub const MAX_EPISODE_BYTES: usize = 128 << 20;
/// The latest time a durable timer may be set for (the year 9999): later ones are a
/// guest's mistake, and stay far from the edges of the time types.
pub static MAX_TIMER: std::sync::LazyLock<chrono::DateTime<chrono::Utc>> =
    std::sync::LazyLock::new(|| {
        chrono::DateTime::from_timestamp_millis(253_402_300_799_999).unwrap_or_default()
    });

/// Cuts a guest's message to [`MAX_MESSAGE`] bytes (at a character boundary), saying so.
pub fn truncate_message(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let total = message.len();
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(&format!("... [message cut: {total} bytes in all]"));
    message
}

/// An instance's history grew past [`GuestLimits::history`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the history reached {} MiB, over the limit of {} MiB (--max-history-mib): continue as new to start a fresh history, or raise the limit",
    .size >> 20,
    .limit >> 20
)]
pub struct HistoryTooLarge {
    pub size: usize,
    pub limit: usize,
}

/// A guest went over a limit.
#[derive(Debug, thiserror::Error)]
pub enum Exceeded {
    #[error("exceeded its CPU time ({0:?} without waiting)")]
    Cpu(Duration),
    #[error("exceeded its memory limit of {} MiB", .0 >> 20)]
    Memory(usize),
}

/// A JSON payload is over the size limit.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} is {size} bytes, over the payload limit of {limit} bytes; large data belongs in blobs"
)]
pub struct PayloadTooLarge {
    pub what: String,
    pub size: usize,
    pub limit: usize,
}

impl GuestLimits {
    /// Checks a payload against the size limit.
    pub fn check_payload(
        &self,
        what: impl FnOnce() -> String,
        payload: &str,
    ) -> Result<(), PayloadTooLarge> {
        if payload.len() > self.payload {
            return Err(PayloadTooLarge {
                what: what(),
                size: payload.len(),
                limit: self.payload,
            });
        }
        Ok(())
    }
}

/// Where the guest last started running: its thread and that thread's CPU clock.
#[derive(Clone, Copy, Debug)]
struct Mark {
    thread: ThreadId,
    cpu: Duration,
}

impl Mark {
    fn now() -> Self {
        Self {
            thread: std::thread::current().id(),
            cpu: thread_cpu_time(),
        }
    }
}

/// The CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec and CLOCK_THREAD_CPUTIME_ID is supported
    // on every Linux and macOS; on failure it stays zero, which only under-counts.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(
        now.tv_sec.max(0) as u64,
        now.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The running budget of one store.
#[derive(Debug)]
pub struct Budget {
    limits: GuestLimits,
    /// Guest CPU time used in this stretch, up to `mark`.
    used: Duration,
    /// Set while the guest runs; shared with the future that resumes it after a yield.
    mark: Arc<Mutex<Option<Mark>>>,
    memory: StoreLimits,
}

impl Budget {
    pub fn new(limits: GuestLimits) -> Self {
        let memory = StoreLimitsBuilder::new()
            .memory_size(limits.memory)
            .trap_on_grow_failure(true)
            .build();
        Self {
            limits,
            used: Duration::ZERO,
            mark: Arc::new(Mutex::new(Some(Mark::now()))),
            memory,
        }
    }

    /// Charges the guest for the CPU time since its mark (if it is still on the thread
    /// where it was marked) and clears the mark.
    fn charge(&mut self) {
        let mark = self
            .mark
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(mark) = mark
            && mark.thread == std::thread::current().id()
        {
            self.used += thread_cpu_time().saturating_sub(mark.cpu);
        }
    }

    fn set_mark(&self) {
        *self
            .mark
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Mark::now());
    }

    /// The guest calls into the host: what follows is not the guest's time.
    pub fn enter_host(&mut self) {
        self.charge();
    }

    /// The host returns to the guest, which runs on from here.
    pub fn leave_host(&mut self) {
        self.set_mark();
    }

    /// The guest really waited (for tasks that had not finished): a new stretch starts.
    pub fn waited(&mut self) {
        self.used = Duration::ZERO;
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.limits
    }
}

/// A store's data that carries a [`Budget`].
pub trait HasBudget: Send + 'static {
    fn budget(&mut self) -> &mut Budget;
}

/// Applies the budget's limits to `store`. At each tick the guest is charged for the CPU
/// time it used and yields to other tasks, so a busy guest never starves the host; the
/// yield marks the guest again where it resumes.
pub fn apply<T: HasBudget>(store: &mut Store<T>) {
    store.limiter(|data| &mut data.budget().memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let budget = ctx.data_mut().budget();
        budget.charge();
        if budget.used > budget.limits.cpu {
            return Err(wasmtime::Error::new(Exceeded::Cpu(budget.limits.cpu)));
        }
        let mark = budget.mark.clone();
        Ok(UpdateDeadline::YieldCustom(
            1,
            Box::pin(async move {
                tokio::task::yield_now().await;
                // The guest resumes on this thread as soon as this future is ready.
                *mark.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Mark::now());
            }),
        ))
    });
}

/// Advances `engine`'s epoch every [`TICK`] on a thread of its own: a ticker on the async
/// runtime would never run while a guest spins on the same thread.
pub fn start_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("weft-epoch".to_string())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| {
            tracing::error!("cannot start the epoch ticker; guest CPU limits are off: {e}")
        });
}

/// Describes a limit violation inside `error`, if that is what it is.
pub fn exceeded(error: &wasmtime::Error, memory: usize) -> Option<String> {
    if let Some(exceeded) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Exceeded>())
    {
        return Some(exceeded.to_string());
    }
    error
        .chain()
        .any(|cause| {
            cause
                .to_string()
                .contains("forcing trap when growing memory")
        })
        .then(|| Exceeded::Memory(memory).to_string())
}

#[cfg(test)]
mod tests {
    use super::{MAX_MESSAGE, truncate_message};

    #[test]
    fn long_messages_are_cut_at_a_character_boundary_with_a_marker() {
        assert_eq!(truncate_message("short".to_string()), "short");
        let long = "é".repeat(MAX_MESSAGE);
        let cut = truncate_message(long.clone());
        assert!(cut.len() < MAX_MESSAGE + 64);
        assert!(cut.ends_with(&format!("[message cut: {} bytes in all]", long.len())));
        assert!(cut.starts_with("éé"));
    }
}
