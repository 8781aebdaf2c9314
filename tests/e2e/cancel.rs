//! Ending an instance cancels its running activities: terminating an instance whose
//! activities never return frees every activity slot at once, nothing of it runs again
//! after a restart, and the next instance runs.

use crate::support::*;
use reqwest::blocking::Client;
use std::time::Duration;

const INSTANCES: &str = "runtime/webhooks/durabletask/instances";

fn start(client: &Client, server: &Server, name: &str, id: &str, input: &str) {
    let response = server.start_json(client, &format!("orchestrators/{name}/{id}"), input);
    assert_eq!(response.status(), 202, "start {name}");
}

fn started(scratch: &Scratch, name: &str) -> usize {
    std::fs::read_to_string(scratch.path().join("serve.log"))
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&format!("activity started: {name}(")))
        .count()
}

#[test]
fn terminating_an_instance_cancels_its_activities_and_frees_their_slots() {
    let scratch = Scratch::new();
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let args = [
        "--max-activities",
        "16",
        "--components",
        TESTING_ORCHESTRATOR,
        TESTING_ACTIVITIES,
    ];
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    // 16 activities that sleep for an hour: every slot is taken.
    let forever = r#"{"name":"Sleep","input":3600000,"count":16}"#;
    start(&client, &server, "CallActivity", "stuck", forever);
    poll(PATIENCE, || {
        (started(&scratch, "Sleep") == 16).then_some(())
    });

    let response = client
        .post(server.url(&format!("{INSTANCES}/stuck/terminate?reason=enough")))
        .send()
        .expect("terminate");
    assert_eq!(response.status(), 202);
    poll(PATIENCE, || {
        (server.instance(&client, "stuck")["runtimeStatus"] == "Terminated").then_some(())
    });
    // The slots are free: an instance that needs them completes.
    start(&client, &server, "FanOut", "next", "20");
    let done = poll(PATIENCE, || {
        let body = server.instance(&client, "next");
        (body["runtimeStatus"] == "Completed").then_some(body)
    });
    assert_eq!(done["output"], 190);
    let log = std::fs::read_to_string(scratch.path().join("serve.log")).unwrap_or_default();
    assert_eq!(
        log.matches("cancelled: its instance ended").count(),
        16,
        "every running activity was cancelled"
    );

    // Nothing of the terminated instance runs again after a restart.
    server.kill();
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    start(&client, &server, "FanOut", "after", "3");
    poll(PATIENCE, || {
        (server.instance(&client, "after")["runtimeStatus"] == "Completed").then_some(())
    });
    assert_eq!(started(&scratch, "Sleep"), 16, "no sleeper started again");
    drop(server);
}
