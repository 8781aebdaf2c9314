//! End-to-end tests against the real `weft` binary, real SQLite files, real directory
//! trees, real blob directories and real blob servers (Azurite, an S3 server).

mod abuse;
mod api;
mod backup;
mod bench;
mod browser;
mod cancel;
mod clients;
mod cloud;
mod confinement;
mod crash;
mod crash_attempts;
mod dashboard;
mod faults;
mod group_commit;
mod host;
mod names;
mod nondeterminism;
mod patterns;
mod rewind;
mod sandbox;
mod sdk;
mod servers;
mod snapshots;
mod start_trap;
mod storage_faults;
mod sub_orchestrations;
mod support;
mod suspended;
mod torture;
