//! Sub-orchestrations and continue-as-new with the real binary: a child's output and
//! failure reach its parent, terminating a parent terminates its children, and an
//! eternal orchestration keeps a small history, carries its events over and survives a
//! SIGKILL.

use crate::support::*;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::time::Duration;

const INSTANCES: &str = "runtime/webhooks/durabletask/instances";
const PATIENCE: Duration = Duration::from_secs(120);

fn start(client: &Client, server: &Server, name: &str, id: &str, input: &Value) {
    let response = server.start_json(
        client,
        &format!("orchestrators/{name}/{id}"),
        &input.to_string(),
    );
    assert_eq!(response.status(), 202, "start {name} as {id}");
}

fn wait_status(client: &Client, server: &Server, id: &str, status: &str) -> Value {
    poll(PATIENCE, || {
        std::thread::sleep(Duration::from_millis(50));
        let body = server.instance(client, id);
        (body["runtimeStatus"] == status).then_some(body)
    })
}

fn post(client: &Client, server: &Server, path: &str, body: &str) {
    let response = client
        .post(server.url(&format!("{INSTANCES}/{path}")))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .expect("POST");
    assert_eq!(response.status(), 202, "POST {path}");
}

#[test]
fn a_sub_orchestrations_output_and_failure_reach_its_parent() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = http_client();
    let echo = json!({"name": "CallActivity", "input": {"name": "Echo", "input": 5}, "count": 2});
    start(&client, &server, "CallSubOrchestrator", "ok", &echo);
    let panics = json!({"name": "Panic", "input": null});
    start(&client, &server, "CallSubOrchestrator", "bad", &panics);
    let unknown = json!({"name": "NoSuchOrchestrator", "input": null});
    start(&client, &server, "CallSubOrchestrator", "unknown", &unknown);
    // A child id that a running instance holds (here the parent's own) fails the task.
    let taken = json!({"name": "CallActivity", "input": {}, "instanceId": "taken"});
    start(&client, &server, "CallSubOrchestrator", "taken", &taken);

    let ok = wait_status(&client, &server, "ok", "Completed");
    assert_eq!(ok["output"], json!([{"ok": 5}, {"ok": 5}]));
    // Each child is an instance of its own, with a derived id and its own history.
    for child in ["ok:0", "ok:1"] {
        let body = wait_status(&client, &server, child, "Completed");
        assert_eq!(body["name"], "CallActivity");
        assert_eq!(body["output"], 5);
    }

    let bad = wait_status(&client, &server, "bad", "Completed");
    let error = &bad["output"][0];
    assert_eq!(error["name"], "Panic", "{bad}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|m| m.contains("panics on purpose")),
        "{bad}"
    );
    assert_eq!(server.instance(&client, "bad:0")["runtimeStatus"], "Failed");

    let unknown = wait_status(&client, &server, "unknown", "Completed");
    assert!(
        unknown["output"][0]["error"]
            .as_str()
            .is_some_and(|m| m.contains("unknown orchestrator 'NoSuchOrchestrator'")),
        "{unknown}"
    );

    let taken = wait_status(&client, &server, "taken", "Completed");
    assert!(
        taken["output"][0]["error"]
            .as_str()
            .is_some_and(|m| m.contains("'taken'") && m.contains("exists")),
        "{taken}"
    );

    // The parent's history shows the extension's event names.
    let body: Value = client
        .get(server.url(&format!("{INSTANCES}/ok?showHistory=true")))
        .send()
        .expect("GET status")
        .json()
        .expect("JSON");
    let kinds: Vec<&str> = body["historyEvents"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["EventType"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "SubOrchestrationInstanceCompleted")
            .count(),
        2,
        "{kinds:?}"
    );
}

#[test]
fn terminating_a_parent_terminates_its_sub_orchestrations() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = http_client();
    let forever = json!({
        "name": "CallActivity",
        "input": {"name": "Sleep", "input": 3_600_000},
        "count": 2,
    });
    start(&client, &server, "CallSubOrchestrator", "parent", &forever);
    for child in ["parent:0", "parent:1"] {
        wait_status(&client, &server, child, "Running");
    }
    post(&client, &server, "parent/terminate?reason=enough", "");
    wait_status(&client, &server, "parent", "Terminated");
    for child in ["parent:0", "parent:1"] {
        let body = wait_status(&client, &server, child, "Terminated");
        assert!(
            body["output"]
                .as_str()
                .is_some_and(|reason| reason.contains("'parent'")),
            "{body}"
        );
    }
}

#[test]
fn continue_as_new_keeps_the_history_small_and_carries_events_over() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = http_client();
    start(
        &client,
        &server,
        "Eternal",
        "eternal",
        &json!({"n": 0, "until": 300}),
    );
    start(
        &client,
        &server,
        "CarryEvents",
        "carry",
        &json!({"generation": 0}),
    );
    // `x` is raised while the first execution waits on its timer: it must reach the
    // second execution, in the order raised.
    post(&client, &server, "carry/raiseEvent/start", "true");
    post(&client, &server, "carry/raiseEvent/x", "1");
    post(&client, &server, "carry/raiseEvent/x", "2");

    let carry = wait_status(&client, &server, "carry", "Completed");
    assert_eq!(carry["output"], json!([1, 2]));
    let eternal = wait_status(&client, &server, "eternal", "Completed");
    assert_eq!(eternal["output"], 300);
    assert_eq!(eternal["customStatus"], json!({"n": 300}));
    // 300 executions, one history of a handful of events: the last execution's.
    let rows = scratch.history_rows("eternal");
    assert!((1..=8).contains(&rows), "{rows} history rows");
    assert_eq!(scratch.instance_count(), 2);
}

#[test]
fn an_eternal_orchestration_survives_a_sigkill_between_executions() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = http_client();
    start(
        &client,
        &server,
        "Eternal",
        "eternal",
        &json!({"n": 0, "until": 400}),
    );
    poll(PATIENCE, || {
        std::thread::sleep(Duration::from_millis(20));
        let body = server.instance(&client, "eternal");
        (body["customStatus"]["n"].as_u64() >= Some(50)).then_some(())
    });
    server.kill();

    let server = Server::testing(&scratch);
    let eternal = wait_status(&client, &server, "eternal", "Completed");
    assert_eq!(eternal["output"], 400);
    assert!(scratch.history_rows("eternal") <= 8);
}

#[test]
fn an_orchestrator_that_calls_itself_without_end_fails_at_the_nesting_bound() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = http_client();
    start(&client, &server, "Recurse", "deep", &json!(0));
    let failed = wait_status(&client, &server, "deep", "Failed");
    let output = failed["output"].to_string();
    assert!(
        output.contains("sub-orchestrations may nest at most 64 deep"),
        "{failed}"
    );
    // The chain stopped at the bound: the root and 64 nested instances, no more.
    let listed: Value = client
        .get(server.url(&format!("{INSTANCES}/?top=1000")))
        .send()
        .expect("list")
        .json()
        .expect("JSON");
    let count = listed.as_array().map_or(0, Vec::len);
    assert_eq!(count, 65, "{listed}");
}

#[test]
fn continuing_as_new_cancels_the_activities_the_old_execution_left_running() {
    // Each execution starts an hour-long activity it never waits for. With two activity
    // slots, the third execution's `Echo` would find both taken by the sleepers of the
    // first two, unless continuing as new cancels them.
    let scratch = Scratch::new();
    let child = scratch
        .weft(&[
            "run",
            "AbandonThenContinue",
            "--input",
            r#"{"n": 0, "until": 5}"#,
            "--max-activities",
            "2",
            "--components",
            TESTING_ORCHESTRATOR,
            TESTING_ACTIVITIES,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let output = wait_output(child, PATIENCE);
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(last_line(&output), "5");
}

/// More sub-orchestrations than orchestration slots (256): the rest wait in a queue of
/// ids, not as tasks, and each runs once a slot frees; every result reaches the parent.
#[test]
fn a_fan_out_wider_than_the_orchestration_slots_completes() {
    let scratch = Scratch::new();
    let input =
        json!({"name": "CallActivity", "input": {"name": "Echo", "input": 7}, "count": 600});
    let output = scratch.run(&[
        "run",
        "CallSubOrchestrator",
        "--input",
        &input.to_string(),
        "--components",
        TESTING_ORCHESTRATOR,
        TESTING_ACTIVITIES,
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let results: Value = serde_json::from_str(&last_line(&output)).unwrap_or_default();
    let results = results.as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 600);
    assert!(
        results.iter().all(|r| *r == json!({"ok": 7})),
        "{results:?}"
    );
}
