//! End-to-end tests against the real `weft` binary, real SQLite files, real directory
//! trees and real blob directories.

mod api;
mod backup;
mod bench;
mod confinement;
mod crash;
mod faults;
mod host;
mod nondeterminism;
mod sandbox;
mod snapshots;
mod support;
mod torture;
