//! Runs activity components: each call gets a fresh instance from a pre-linked
//! [`ActivitiesPre`], with no WASI filesystem or network, and does its file and blob I/O
//! through the host's confined `fs` and `blob` imports.

pub mod confine;
mod durability;
mod imports;

pub use durability::Pending;

use crate::bindings::activities::{
    Activities, ActivitiesPre, exports::weft::orchestration::activity::RunError,
};
use crate::guest_output::StderrTail;
use crate::limits::{self, Budget, GuestLimits, HasBudget};
use crate::registry::Provider;
use std::sync::Arc;
use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Why an activity component could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{origin} is not an activity component (world weft:orchestration/activities): {reason}"
    )]
    WrongWorld { origin: String, reason: String },
    #[error("{origin} cannot start (its start function failed): {reason}")]
    Start { origin: String, reason: String },
    #[error("{origin}: listing its activities failed: {reason}")]
    Names { origin: String, reason: String },
}

/// What activities may touch: the allowed directories and the blob store.
pub struct Io {
    pub confinement: confine::Confinement,
    pub blobs: crate::blobs::Blobs,
}

/// The host side of one activity call.
pub struct ActivityState {
    io: Arc<Io>,
    instance_id: String,
    task_id: u32,
    wasi: WasiCtx,
    table: ResourceTable,
    budget: Budget,
    /// What the guest last wrote to stderr.
    stderr: StderrTail,
    /// Its copies whose blobs are not durable yet.
    pending: Pending,
}

impl ActivityState {
    fn new(io: Arc<Io>, instance_id: &str, task_id: u32, limits: GuestLimits) -> Self {
        // Real clocks and randomness, but no preopened directories, no environment and
        // no network: files and blobs are reached only through the host imports.
        let stderr = StderrTail::default();
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            io,
            instance_id: instance_id.to_string(),
            task_id,
            wasi,
            table: ResourceTable::new(),
            budget: Budget::new(limits),
            stderr,
            pending: Pending::default(),
        }
    }
}

impl HasBudget for ActivityState {
    fn budget(&mut self) -> &mut Budget {
        &mut self.budget
    }
}

impl WasiView for ActivityState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A loaded activity component, ready to instantiate.
pub struct ActivityComponent {
    pre: ActivitiesPre<ActivityState>,
    origin: String,
    names: Vec<String>,
}

impl Provider for ActivityComponent {
    fn origin(&self) -> &str {
        &self.origin
    }

    fn names(&self) -> &[String] {
        &self.names
    }
}

impl ActivityComponent {
    /// Links `component` against the host imports and asks it which activities it provides.
    pub async fn new(
        engine: &Engine,
        component: &Component,
        origin: &str,
        io: Arc<Io>,
    ) -> Result<Self, Error> {
        let wrong_world = |e: wasmtime::Error| Error::WrongWorld {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        };
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wrong_world)?;
        Activities::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(wrong_world)?;
        let pre = ActivitiesPre::new(linker.instantiate_pre(component).map_err(wrong_world)?)
            .map_err(wrong_world)?;

        let names_failed = |e: wasmtime::Error| Error::Names {
            origin: origin.to_string(),
            reason: format!("{e:#}"),
        };
        let mut store = wasmtime::Store::new(
            engine,
            ActivityState::new(io, "", 0, GuestLimits::default()),
        );
        limits::apply(&mut store);
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| Error::Start {
                origin: origin.to_string(),
                reason: crate::engine::describe_trap(&e),
            })?;
        let names = instance
            .weft_orchestration_activity()
            .call_names(&mut store)
            .await
            .map_err(names_failed)?;
        Ok(Self {
            pre,
            origin: origin.to_string(),
            names,
        })
    }

    /// Runs activity `name` once on `input` in a fresh instance. The error is a message
    /// for the orchestrator: the activity's own failure or a trap. Returned with it: the
    /// activity's copies whose blobs are not durable yet, which its result must wait for.
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site; a struct would only rename them"
    )]
    pub async fn run(
        &self,
        engine: &Engine,
        io: Arc<Io>,
        guest_limits: GuestLimits,
        instance_id: &str,
        task_id: u32,
        name: &str,
        input: &str,
    ) -> (Result<String, String>, Pending) {
        let mut store = wasmtime::Store::new(
            engine,
            ActivityState::new(io, instance_id, task_id, guest_limits),
        );
        limits::apply(&mut store);
        let instance = match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => {
                let failed = format!("cannot instantiate activity {name}: {e:#}");
                return (Err(failed), Pending::default());
            }
        };
        let result = match instance
            .weft_orchestration_activity()
            .call_run(&mut store, name, &input.to_owned())
            .await
        {
            Ok(Ok(output)) if output.len() > guest_limits.payload => Err(guest_limits
                .check_payload(|| format!("the output of activity {name}"), &output)
                .err()
                .map_or_else(String::new, |e| e.to_string())),
            Ok(Ok(output)) => match serde_json::from_str::<serde::de::IgnoredAny>(&output) {
                Ok(_) => Ok(output),
                Err(e) => Err(format!("activity {name} returned invalid JSON: {e}")),
            },
            Ok(Err(RunError::UnknownName(known))) => Err(limits::truncate_message(format!(
                "unknown activity '{name}'; this component provides: {}",
                known.join(", ")
            ))),
            Ok(Err(RunError::BadInput(message))) => Err(format!(
                "activity {name}: bad input: {}",
                limits::truncate_message(message)
            )),
            Ok(Err(RunError::Failed(message))) => Err(limits::truncate_message(message)),
            Err(trap) => match limits::exceeded(&trap, guest_limits.memory) {
                Some(exceeded) => Err(format!("activity {name} {exceeded}")),
                None => Err(store.data().stderr.describe(format!(
                    "activity {name} trapped: {}",
                    crate::engine::describe_trap(&trap)
                ))),
            },
        };
        (result, std::mem::take(&mut store.data_mut().pending))
    }
}
