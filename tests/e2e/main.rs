//! End-to-end tests against the real `weft` binary, real SQLite files, real directory
//! trees, real blob directories and real blob servers (Azurite, an S3 server).

mod abuse;
mod api;
mod backup;
mod bench;
mod cancel;
mod clients;
mod cloud;
mod confinement;
mod crash;
mod crash_attempts;
mod faults;
mod group_commit;
mod host;
mod names;
mod nondeterminism;
mod patterns;
mod rewind;
mod sandbox;
mod servers;
mod snapshots;
mod storage_faults;
mod support;
mod suspended;
mod torture;
