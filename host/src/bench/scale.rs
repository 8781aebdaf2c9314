//! `weft bench scale`: a backup of many tiny files by the real `weft run` binary, against
//! a smaller baseline backup of the same kind of files. O(N) costs show as a files/s
//! ratio near 1; the peak RSS is the `weft run` child's own (its `VmHWM`), so it counts
//! neither the bench nor the tree generator. Every backup's files stay until the scenario
//! ends (see [`super::backup`] on why a run must not follow a mass deletion).

use super::backup::weft_command;
use super::child;
use super::tree::{self, Shape};
use super::{Workdir, per_sec, remove_dir, round};
use anyhow::{Result, ensure};
use serde_json::{Value, json};

pub struct Options {
    pub files: u64,
    pub baseline_files: u64,
    pub max_payload_kib: Option<u64>,
}

/// One measured backup.
struct Measured {
    files_per_sec: f64,
    wall_ms: f64,
    cpu_ms: f64,
    peak_rss_mib: f64,
}

pub fn run(options: &Options, work: &Workdir) -> Result<Value> {
    // The first backup also compiles the sample into the cache: a small untimed one.
    backup("warm-up", 10, options, work)?;
    let baseline = match options.baseline_files {
        0 => None,
        files => Some(backup("baseline", files, options, work)?),
    };
    let main = backup("scale", options.files, options, work)?;
    for label in ["warm-up", "baseline", "scale"] {
        for dir in dirs(label, work) {
            remove_dir(&dir)?;
        }
    }
    let ratio = baseline
        .as_ref()
        .map(|baseline| round(main.files_per_sec / baseline.files_per_sec.max(1e-9)));
    if let Some(ratio) = ratio {
        eprintln!(
            "scale: {} files go at {ratio} times the files/s of {}",
            options.files, options.baseline_files
        );
    }
    Ok(json!({
        "scenario": "scale",
        "files": options.files,
        "wall_ms": main.wall_ms,
        "cpu_ms": main.cpu_ms,
        "files_per_sec": main.files_per_sec,
        "peak_rss_mib": main.peak_rss_mib,
        "baseline_files": baseline.as_ref().map(|_| options.baseline_files),
        "baseline_files_per_sec": baseline.as_ref().map(|b| b.files_per_sec),
        "baseline_peak_rss_mib": baseline.as_ref().map(|b| b.peak_rss_mib),
        "vs_baseline": ratio,
    }))
}

/// The tree, data dir and blob dir of the backup `label`.
fn dirs(label: &str, work: &Workdir) -> [std::path::PathBuf; 3] {
    ["site", "weft-data", "out-weft"].map(|dir| work.path(&format!("{dir}-{label}")))
}

/// Generates `files` tiny files and backs them up with `weft run`.
fn backup(label: &str, files: u64, options: &Options, work: &Workdir) -> Result<Measured> {
    let [site, data, blobs] = dirs(label, work);
    for dir in [&site, &data, &blobs] {
        remove_dir(dir)?;
    }
    eprintln!("scale: {label}: generating {files} files of 64-1024 bytes");
    let tree = tree::generate(
        &site,
        &Shape {
            files,
            sizes: 64..=1024,
            per_dir: 1000,
            big_files: 0,
            big_bytes: 0,
        },
    )?;
    let mut command = weft_command(&site, &data, &blobs, work);
    if let Some(kib) = options.max_payload_kib {
        command.arg("--max-payload-kib").arg(kib.to_string());
    }
    let finished = child::run(command)?.check(&format!("weft run ({label}, {files} files)"))?;
    ensure!(
        finished.last_line() == tree.bytes.to_string(),
        "weft reported {} bytes copied, expected {}",
        finished.last_line(),
        tree.bytes
    );
    let measured = Measured {
        files_per_sec: per_sec(files, finished.elapsed),
        wall_ms: super::millis(finished.elapsed),
        cpu_ms: super::millis(finished.cpu),
        peak_rss_mib: round(finished.peak_rss_kib as f64 / 1024.0),
    };
    eprintln!(
        "scale: {label}: {files} files in {:.2} s ({:.2} s of CPU time): {} files/s, peak RSS {} MiB",
        finished.elapsed.as_secs_f64(),
        finished.cpu.as_secs_f64(),
        measured.files_per_sec,
        measured.peak_rss_mib
    );
    Ok(measured)
}
