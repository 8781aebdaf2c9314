//! The orchestrator's deterministic WASI: clocks that read the replayed orchestration
//! time, randomness seeded from the instance id, and nothing else (no files, no
//! environment, no arguments, no network, no stdin). Sleeping traps: a real-time sleep
//! inside a replayed orchestrator would be neither durable nor deterministic.

use crate::guest_output::StderrTail;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// The orchestration time, in milliseconds since the Unix epoch, shared between the
/// replay state and the clocks handed to WASI.
#[derive(Clone, Debug, Default)]
pub struct ReplayedClock(Arc<AtomicI64>);

impl ReplayedClock {
    pub fn set(&self, millis: i64) {
        self.0.store(millis, Ordering::Relaxed);
    }

    fn nanos(&self) -> u64 {
        (self.0.load(Ordering::Relaxed).max(0) as u64).saturating_mul(1_000_000)
    }
}

impl HostWallClock for ReplayedClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos())
    }
}

impl HostMonotonicClock for ReplayedClock {
    fn resolution(&self) -> u64 {
        1_000_000
    }

    fn now(&self) -> u64 {
        self.nanos()
    }
}

/// A 32-byte seed derived from the instance id and a purpose, so that every replay of an
/// instance sees the same "random" values and different instances see different ones.
pub fn seed(instance_id: &str, purpose: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(purpose.as_bytes());
    hasher.update([0]);
    hasher.update(instance_id.as_bytes());
    hasher.finalize().into()
}

/// The WASI context of one orchestrator execution.
pub fn wasi_ctx(instance_id: &str, clock: &ReplayedClock, stderr: &StderrTail) -> WasiCtx {
    use rand::SeedableRng;
    let insecure_seed = seed(instance_id, "insecure-seed");
    let mut builder = WasiCtxBuilder::new();
    builder
        .stderr(stderr.clone())
        .wall_clock(clock.clone())
        .monotonic_clock(clock.clone())
        .secure_random(rand::rngs::StdRng::from_seed(seed(instance_id, "secure")))
        .insecure_random(rand::rngs::StdRng::from_seed(seed(instance_id, "insecure")))
        .insecure_random_seed(u128::from_le_bytes(
            insecure_seed[..16].try_into().unwrap_or_default(),
        ))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

/// What a guest that sleeps is told.
pub const SLEEP_TRAP: &str = "an orchestrator cannot sleep (WASI monotonic-clock subscribe-duration/subscribe-instant, std::thread::sleep): use context.create-timer for durable waits";

/// Replaces the monotonic clock's `subscribe-duration` and `subscribe-instant` (what
/// `std::thread::sleep` and every WASI timeout use) with functions that trap with
/// [`SLEEP_TRAP`]. A guest importing an older 0.2 version of the interface is linked to
/// these by semver, as to the rest of WASI.
pub fn forbid_sleep<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;
    linker.allow_shadowing(true);
    let mut clock = linker.instance("wasi:clocks/monotonic-clock@0.2.12")?;
    for name in ["subscribe-duration", "subscribe-instant"] {
        clock.func_wrap(
            name,
            |_store, (_,): (u64,)| -> wasmtime::Result<(Resource<DynPollable>,)> {
                Err(wasmtime::Error::msg(SLEEP_TRAP))
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}
