//! A suspended instance holds a bounded number of the messages that reach it in memory
//! and leaves the rest in its durable inbox; once resumed, it gets every one, in order.

use crate::patterns::{serve, wait_for_events};
use crate::support::*;
use std::time::Duration;

const INSTANCES: &str = "runtime/webhooks/durabletask/instances";

/// Starts `WaitForEvent` as instance `id`, waiting for `count` events named `Go`, and
/// suspends it once it waits; returns how to POST a body to one of its routes.
fn start_suspended<'a>(
    scratch: &Scratch,
    server: &'a Server,
    client: &'a reqwest::blocking::Client,
    id: &'a str,
    count: u32,
) -> impl Fn(&str, String) + 'a {
    let input = serde_json::json!({ "name": "Go", "count": count });
    let started = server.start_json(
        client,
        &format!("orchestrators/WaitForEvent/{id}"),
        &input.to_string(),
    );
    assert_eq!(started.status(), 202);
    wait_for_events(scratch, id, "EventWaitStarted", 1);
    let post = move |path: &str, body: String| {
        let response = client
            .post(server.url(&format!("{INSTANCES}/{id}/{path}")))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .expect("POST");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    };
    post("suspend?reason=hold", String::new());
    poll(Duration::from_secs(120), || {
        (server.instance(client, id)["runtimeStatus"] == "Suspended").then_some(())
    });
    post
}

#[test]
fn a_suspended_instance_flooded_with_events_gets_them_all_in_order_once_resumed() {
    // More than the host holds in memory for a suspended instance (1,024), then more
    // after the resume.
    const WHILE_SUSPENDED: u32 = 1_300;
    const AFTER: u32 = 30;
    let scratch = Scratch::new();
    let server = serve(&scratch);
    let client = http_client();
    let post = start_suspended(&scratch, &server, &client, "flood", WHILE_SUSPENDED + AFTER);
    for i in 0..WHILE_SUSPENDED {
        post("raiseEvent/Go", i.to_string());
    }
    // The instance read past what it holds, and left the rest in its inbox.
    let log = scratch.path().join("serve.log");
    poll(Duration::from_secs(120), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("suspended with more messages than it holds")
            .then_some(())
    });
    assert_eq!(
        server.instance(&client, "flood")["runtimeStatus"],
        "Suspended"
    );
    let waiting: i64 = scratch
        .db()
        .query_row(
            "SELECT COUNT(*) FROM inbox WHERE instance_id = 'flood'",
            [],
            |row| row.get(0),
        )
        .expect("count the inbox");
    assert_eq!(
        waiting,
        i64::from(WHILE_SUSPENDED),
        "nothing was consumed while suspended"
    );

    post("resume?reason=go", String::new());
    for i in WHILE_SUSPENDED..WHILE_SUSPENDED + AFTER {
        post("raiseEvent/Go", i.to_string());
    }
    let done = server.wait_ended(&client, "flood");
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    let expected: Vec<u32> = (0..WHILE_SUSPENDED + AFTER).collect();
    assert_eq!(done["output"], serde_json::json!(expected));
    let raised = scratch
        .history("flood")
        .into_iter()
        .filter(|event| event["eventType"] == "EventRaised")
        .count();
    assert_eq!(raised, (WHILE_SUSPENDED + AFTER) as usize);
}

#[test]
fn a_terminate_behind_more_messages_than_a_suspended_instance_holds_ends_it() {
    let scratch = Scratch::new();
    let server = serve(&scratch);
    let client = http_client();
    let post = start_suspended(&scratch, &server, &client, "stuck", 5);
    for i in 0..1_100 {
        post("raiseEvent/Other", i.to_string());
    }
    post("terminate?reason=enough", String::new());
    let done = poll(Duration::from_secs(120), || {
        let body = server.instance(&client, "stuck");
        (body["runtimeStatus"] != "Suspended").then_some(body)
    });
    assert_eq!(done["runtimeStatus"], "Terminated", "{done}");
    assert_eq!(done["output"], "enough");
}
