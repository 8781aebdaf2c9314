//! Builds the guest components (the backup sample, the other samples and the test guests) for
//! `wasm32-wasip2` and exposes their paths to the host as `WEFT_GUEST_*` variables.
//!
//! The guests are built in release mode into their own target directory
//! (`target/guests`), shared by every host profile, so a debug and a release host reuse
//! one guest build. Cargo reruns this script when `wit/` or a guest's sources change.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// (package, env var that names the built component) for every guest.
const GUESTS: &[(&str, &str)] = &[
    ("backup-orchestrator", "WEFT_GUEST_BACKUP_ORCHESTRATOR"),
    ("backup-activities", "WEFT_GUEST_BACKUP_ACTIVITIES"),
    ("testing-orchestrator", "WEFT_GUEST_TESTING_ORCHESTRATOR"),
    ("testing-activities", "WEFT_GUEST_TESTING_ACTIVITIES"),
    ("samples-orchestrator", "WEFT_GUEST_SAMPLES_ORCHESTRATOR"),
    ("samples-activities", "WEFT_GUEST_SAMPLES_ACTIVITIES"),
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ lives in the workspace root")
        .to_path_buf();
    for dir in [
        "wit",
        "guest-sdk",
        "guest-backup",
        "guest-testing",
        "guest-samples",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );

    let target_root =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
    let target_dir = target_root.join("guests");

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (package, _) in GUESTS {
        cmd.args(["-p", package]);
    }
    // The outer build's flags, wrappers (clippy) and profile settings are for the host,
    // not for the guests.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME"
            || key.starts_with("RUSTC")
            || key == "RUSTFLAGS"
        {
            cmd.env_remove(key.as_ref());
        }
    }
    // Small components compile faster in the host; the guests need no debug info.
    cmd.env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "true");
    let status = cmd.status().expect("failed to run cargo for the guests");
    assert!(
        status.success(),
        "building the guest components failed; is the target installed? run `rustup target add wasm32-wasip2`"
    );

    let artifacts = GUESTS
        .iter()
        .map(|(package, var)| (package.replace('-', "_"), *var))
        .chain([("wasi-hello".to_string(), "WEFT_GUEST_TESTING_COMMAND")]);
    for (artifact, var) in artifacts {
        let file = target_dir
            .join("wasm32-wasip2")
            .join("release")
            .join(format!("{artifact}.wasm"));
        assert!(file.exists(), "{} was not built", file.display());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}
