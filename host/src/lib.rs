//! Weft: a host that runs durable orchestrations written as WebAssembly components.
//!
//! An orchestrator component is replayed deterministically against its event history
//! ([`replay`]) kept in a [`store`]; its activities run as separate components
//! ([`activity`]) that reach files and blobs only through confined host imports. The
//! [`runtime::Runtime`] ties them together; [`cli`] is the `weft` command line.

mod abandoned;
pub mod activity;
pub mod api;
mod bench;
mod bindings;
pub mod blobs;
pub mod cli;
pub mod dashboard;
pub mod engine;
mod guest_log;
mod guest_output;
pub mod limits;
pub mod orchestrator;
mod registry;
pub mod replay;
pub mod runtime;
pub mod status;
pub mod store;
