//! The Rust guest SDK for Weft: orchestrators and activities as typed Rust functions,
//! in the manner of Durable Functions' C# API, over the WIT package `weft:orchestration`.
//!
//! An **orchestration component** registers its orchestrators with [`orchestrators!`];
//! each is a function of a [`Context`] and its decoded input. It schedules work
//! ([`Context::call_activity`], [`Context::create_timer`],
//! [`Context::wait_for_external_event`], [`Context::call_sub_orchestrator`]), which
//! returns typed [`Task`] handles, and waits for them ([`Task::get`],
//! [`Context::when_all`], [`Context::when_any`]). It never does I/O: the host replays it
//! against its history, so everything it decides on comes through the `Context`.
//!
//! ```no_run
//! use std::time::Duration;
//! use weft_sdk::{Context, Error, RetryOptions};
//!
//! weft_sdk::orchestrators! {
//!     "E2_BackupSiteContent" => backup_site_content,
//! }
//!
//! const COPY_RETRY: RetryOptions =
//!     RetryOptions::new(Duration::from_millis(500), 3).with_backoff_coefficient(2.0);
//!
//! fn backup_site_content(ctx: &Context, root_directory: String) -> Result<u64, Error> {
//!     let files: Vec<String> = ctx.call_activity("E2_GetFileList", &root_directory).get()?;
//!     let tasks: Vec<_> = files
//!         .iter()
//!         .map(|file| ctx.call_activity_with_retry::<u64>("E2_CopyFileToBlob", file, COPY_RETRY))
//!         .collect();
//!     let mut total_bytes = 0;
//!     for bytes in ctx.when_all(&tasks) {
//!         total_bytes += bytes?;
//!     }
//!     Ok(total_bytes)
//! }
//! # fn main() {}
//! ```
//!
//! An **activity component** registers its activities with [`activities!`]; each is a
//! function of its decoded input, and does its I/O through the host's imports in
//! [`activity`] ([`activity::fs`], [`activity::blob`], [`activity::log`]):
//!
//! ```no_run
//! use weft_sdk::{Error, activity};
//!
//! weft_sdk::activities! {
//!     "E2_GetFileList" => get_file_list,
//! }
//!
//! fn get_file_list(root_directory: String) -> Result<Vec<String>, Error> {
//!     activity::info(&format!("Searching for files under '{root_directory}'..."));
//!     let files = activity::fs::list_files(&root_directory)?;
//!     Ok(files.into_iter().map(|entry| entry.path).collect())
//! }
//! # fn main() {}
//! ```
//!
//! A component is one `cdylib` crate built for `wasm32-wasip2`, and provides one world:
//! its orchestrators or its activities, never both (a crate that invokes both macros
//! exports both worlds, and no host world accepts that). The SDK generates the
//! bindings of both worlds but embeds a world's exports only where its macro is
//! expanded, so linking the SDK adds nothing a component does not use.
//!
//! Payloads are JSON: inputs are decoded with serde into the function's parameter type,
//! and outputs encoded from its return type. An input that does not decode is
//! reported as `bad input`, an unknown name with the names the component provides.

#![warn(missing_docs)]

pub mod activity;
mod error;
mod macros;
pub mod orchestration;

pub use error::{Error, TaskError};
pub use orchestration::{AnyTask, Context, Orchestrator, RetryOptions, Task};

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Step-by-step detail.
    Trace,
    /// Detail for whoever debugs the guest.
    Debug,
    /// What happened, for the operator.
    Info,
    /// Something unexpected that the guest handled.
    Warn,
    /// A failure.
    Error,
}
