//! Guest limits: a CPU-time budget per uninterrupted stretch of guest execution (enforced
//! with epoch interruption) and a memory cap (wasmtime `StoreLimits`). A guest over either
//! limit traps with a [`Exceeded`] error that the workers turn into a clear message.

use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

/// How often the engine's epoch advances; the granularity of CPU budgets.
pub const TICK: Duration = Duration::from_millis(10);

/// What one guest execution may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLimits {
    /// Longest stretch of guest execution between two host calls that wait.
    pub cpu: Duration,
    /// Largest linear memory, in bytes.
    pub memory: usize,
    /// Largest JSON payload (input, output, custom status) in bytes.
    pub payload: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            cpu: Duration::from_secs(30),
            memory: 512 << 20,
            // A file list of 100,000 paths of about 100 bytes fits; payloads over 64 KiB
            // are stored once, compressed, out of line.
            payload: 16 << 20,
        }
    }
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

/// The running budget of one store.
#[derive(Debug)]
pub struct Budget {
    limits: GuestLimits,
    since: Instant,
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
            since: Instant::now(),
            memory,
        }
    }

    /// Starts a new stretch: the guest resumes after a wait that does not count.
    pub fn restart(&mut self) {
        self.since = Instant::now();
    }

    pub fn limits(&self) -> &GuestLimits {
        &self.limits
    }
}

/// A store's data that carries a [`Budget`].
pub trait HasBudget: Send + 'static {
    fn budget(&mut self) -> &mut Budget;
}

/// Applies the budget's limits to `store`. Past each tick the guest yields to other
/// tasks, so a busy guest never starves the host.
pub fn apply<T: HasBudget>(store: &mut Store<T>) {
    store.limiter(|data| &mut data.budget().memory);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let budget = ctx.data_mut().budget();
        if budget.since.elapsed() > budget.limits.cpu {
            return Err(wasmtime::Error::new(Exceeded::Cpu(budget.limits.cpu)));
        }
        Ok(UpdateDeadline::Yield(1))
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
