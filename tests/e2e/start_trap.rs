//! Guests whose start function traps, written in the WebAssembly text format: one that
//! always traps is refused when it is loaded, with its reason; one that traps only under
//! the run's limits fails its own instance once, while the host and other instances
//! carry on and a restart does not run it again.

use crate::support::*;

/// An orchestration component that provides `name`, whose core module's start function
/// runs `start` before any export can be called. Its `run` is never reached.
fn orchestrator_wat(name: &str, start: &str) -> String {
    let len = name.len();
    format!(
        r#"(component
  (core module $m
    (memory (export "memory") 1)
    (func $start {start})
    (start $start)
    ;; names(): the list at 0 holds one string, at 16, of {len} bytes.
    (func (export "names") (result i32) (i32.const 0))
    (func (export "run") (param i32 i32) (result i32) unreachable)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
    (data (i32.const 0) "\08\00\00\00\01\00\00\00\10\00\00\00\{len:02x}\00\00\00{name}"))
  (core instance $i (instantiate $m))
  (type $run-error' (variant (case "unknown-name" (list string)) (case "bad-input" string) (case "failed" string)))
  (export $run-error "run-error" (type $run-error'))
  (func $names (result (list string)) (canon lift (core func $i "names") (memory (core memory $i "memory"))))
  (func $run (param "name" string) (result (result string (error $run-error)))
    (canon lift (core func $i "run") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (instance $orchestrator
    (export "run-error" (type $run-error))
    (export "names" (func $names))
    (export "run" (func $run)))
  (export "weft:orchestration/orchestrator@0.2.0" (instance $orchestrator)))"#
    )
}

fn write_component(scratch: &Scratch, file: &str, wat: &str) -> String {
    let binary = wat::parse_str(wat).unwrap_or_else(|e| panic!("{file} does not assemble: {e}"));
    let path = scratch.path().join(file);
    std::fs::write(&path, binary).expect("write the component");
    path.display().to_string()
}

#[test]
fn a_component_whose_start_function_always_traps_is_refused_when_loaded() {
    let scratch = Scratch::new();
    let trap = write_component(
        &scratch,
        "start-trap.wasm",
        &orchestrator_wat("StartTrap", "unreachable"),
    );
    let output = scratch.run(&[
        "run",
        "StartTrap",
        "--components",
        &trap,
        TESTING_ACTIVITIES,
    ]);
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "start-trap.wasm cannot start (its start function failed): wasm `unreachable` executed"
        ),
        "the error names the component and the trap: {}",
        describe(&output)
    );
    // Nothing was started, so nothing is left to resume.
    let listed = scratch.run(&["list", "--json"]);
    assert!(listed.status.success(), "{}", describe(&listed));
    assert!(listed.stdout.is_empty(), "{}", describe(&listed));
}

#[test]
fn a_start_function_that_traps_under_the_limits_fails_its_instance_once() {
    let scratch = Scratch::new();
    // The start function asks for 64 MiB more memory and traps if it does not get it:
    // loading (under the default limits) works, the run (under 32 MiB) does not.
    let grow = write_component(
        &scratch,
        "start-grow.wasm",
        &orchestrator_wat(
            "StartGrow",
            "(if (i32.eq (memory.grow (i32.const 1024)) (i32.const -1)) (then unreachable))",
        ),
    );
    let components = [
        "--components",
        &grow,
        TESTING_ORCHESTRATOR,
        TESTING_ACTIVITIES,
    ];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(components.iter())
            .chain(["--guest-memory-mib", "32"].iter())
            .map(|a| a.to_string())
            .collect()
    };
    let run = |args: &[&str]| {
        let args = with(args);
        scratch.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };

    let failed = run(&["run", "StartGrow", "--instance-id", "grow"]);
    assert!(!failed.status.success(), "{}", describe(&failed));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains(
            "Failed: the orchestrator cannot start: it exceeded its memory limit of 32 MiB"
        ),
        "{}",
        describe(&failed)
    );

    // The host carries on: another instance in the same data dir runs to its end.
    let fan_out = run(&["run", "FanOut", "--input", "4"]);
    assert!(fan_out.status.success(), "{}", describe(&fan_out));
    assert_eq!(last_line(&fan_out), "6");

    // A restart does not run the failed guest again: its instance stays Failed.
    let resumed = run(&["resume"]);
    assert!(
        String::from_utf8_lossy(&resumed.stderr).contains("resuming 0 unfinished instance(s)"),
        "{}",
        describe(&resumed)
    );
    let status = scratch.run(&["status", "grow"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("Failed"),
        "{}",
        describe(&status)
    );
}
