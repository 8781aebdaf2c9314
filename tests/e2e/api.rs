//! The HTTP API with a real client against the real `weft serve` on 127.0.0.1:0: the
//! seed's flow, every error status, keys, paging, terminate, suspend, purge and restart,
//! and the Durable Functions extension's routes, status codes and bodies.

use crate::support::*;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::time::Duration;

const INSTANCES: &str = "runtime/webhooks/durabletask/instances";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

fn json_body(response: Response) -> Value {
    response.json().expect("a JSON body")
}

impl Server {
    /// Polls a status URL until the instance has ended; returns every status code seen
    /// with its body.
    fn poll_until_ended(&self, client: &Client, url: &str) -> Vec<(StatusCode, Value)> {
        poll(Duration::from_secs(300), || {
            let response = client.get(url).send().expect("GET status");
            let code = response.status();
            let body = json_body(response);
            let ended = code != StatusCode::ACCEPTED;
            Some((code, body)).filter(|_| ended).map(|seen| vec![seen])
        })
    }
}

fn testing_components() -> [&'static str; 3] {
    ["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES]
}

#[test]
fn the_seed_flow_starts_polls_and_completes_a_backup() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..20 {
        write(
            &site,
            &format!("logs/{i}.log"),
            &bytes(i, 1000 + i as usize),
        );
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        // 21 activities one at a time, 0.5 s each: the instance is seen Running however
        // slowly the polls below come.
        &["--max-activities", "1", "--test-activity-delay-ms", "500"],
    );
    let client = client();

    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let response = server.start_json(&client, "orchestrators/E2_BackupSiteContent", &root);
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"]
        .to_str()
        .expect("Location")
        .to_string();
    let body = json_body(response);
    let id = body["id"].as_str().expect("id").to_string();
    assert_eq!(body["statusQueryGetUri"], location);
    assert!(
        location.starts_with(&format!("{}/{INSTANCES}/{id}?", server.base)),
        "{location}"
    );
    assert!(
        location.contains(&format!("code={}", server.key)),
        "{location}"
    );
    for field in [
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "rewindPostUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ] {
        let url = body[field].as_str().unwrap_or_default();
        assert!(
            url.contains(&id) && url.contains(&format!("code={}", server.key)),
            "{field}: {url}"
        );
    }

    // While running: 202, runtimeStatus Running, and a Location to poll.
    let running = poll(PATIENCE, || {
        let response = client.get(&location).send().expect("GET status");
        let code = response.status();
        let has_location = response.headers().contains_key("location");
        let body = json_body(response);
        (body["runtimeStatus"] == "Running").then_some((code, has_location, body))
    });
    assert_eq!(running.0, StatusCode::ACCEPTED);
    assert!(
        running.1,
        "a running instance's status answer carries Location"
    );
    assert_eq!(running.2["input"], json!(site.to_str().unwrap_or_default()));

    let ended = server.poll_until_ended(&client, &location);
    let (code, body) = &ended[0];
    assert_eq!(*code, StatusCode::OK);
    assert_eq!(body["runtimeStatus"], "Completed");
    assert_eq!(body["output"], total);
    assert_eq!(body["name"], "E2_BackupSiteContent");
    assert_eq!(body["instanceId"], id.as_str());
    for field in ["createdTime", "lastUpdatedTime", "customStatus"] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }

    // History on request, with outputs only when asked for.
    let with_history = json_body(
        client
            .get(format!("{location}&showHistory=true"))
            .send()
            .expect("GET"),
    );
    let events = with_history["historyEvents"]
        .as_array()
        .expect("historyEvents");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["EventType"] == "TaskCompleted")
            .count(),
        21
    );
    assert!(events.iter().all(|e| e.get("Result").is_none()));
    // The extension's shape: episode markers left out, schedules merged into completions.
    assert!(
        events
            .iter()
            .all(|e| e["EventType"] != "OrchestratorStarted" && e["EventType"] != "TaskScheduled")
    );
    assert_eq!(events[0]["EventType"], "ExecutionStarted");
    assert_eq!(events[0]["FunctionName"], "E2_BackupSiteContent");
    let copy = events
        .iter()
        .find(|e| e["FunctionName"] == "E2_CopyFileToBlob")
        .expect("a copy");
    assert!(copy["ScheduledTime"].is_string() && copy["Input"].is_string());
    let last = events.last().expect("events");
    assert_eq!(
        (&last["EventType"], &last["OrchestrationStatus"]),
        (&json!("ExecutionCompleted"), &json!("Completed"))
    );
    let with_output = json_body(
        client
            .get(format!(
                "{location}&showHistory=true&showHistoryOutput=true"
            ))
            .send()
            .expect("GET"),
    );
    assert!(
        with_output["historyEvents"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e.get("Result").is_some())
    );
    let without_input = json_body(
        client
            .get(format!("{location}&showInput=false"))
            .send()
            .expect("GET"),
    );
    assert_eq!(without_input["input"], Value::Null, "present, and null");
}

#[test]
fn every_error_has_its_status() {
    let scratch = Scratch::new();
    let mut args = vec!["--max-activities", "2"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let client = client();

    // As in the extension, the content type is not checked: the body is JSON or nothing.
    let response = client
        .post(server.url("orchestrators/FanOut"))
        .header("content-type", "text/plain")
        .body("3")
        .send()
        .expect("POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let response = server.start_json(&client, "orchestrators/FanOut", "{nope");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_body(response)["Message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Invalid JSON content"))
    );
    // An unknown orchestrator is a 400 whose ExceptionMessage the Python client shows.
    let response = server.start_json(&client, "orchestrators/Nope", "1");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let message = json_body(response)["ExceptionMessage"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("unknown orchestrator 'Nope'") && message.contains("FanOut"),
        "{message}"
    );

    // A running instance id cannot be started again; an ended one can.
    let sleep = r#"{"name":"Sleep","input":3600000}"#;
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/busy", sleep)
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/busy", sleep)
            .status(),
        StatusCode::CONFLICT
    );

    assert_eq!(
        client
            .get(server.url(&format!("{INSTANCES}/missing")))
            .send()
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND
    );

    // A failed instance: 200, or 500 when asked.
    let response = server.start_json(&client, "api/orchestrators/Panic/failing", "");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the /api prefix works too"
    );
    let status = server.url(&format!("{INSTANCES}/failing"));
    let ended = server.poll_until_ended(&client, &status);
    assert_eq!(ended[0].0, StatusCode::OK);
    assert_eq!(ended[0].1["runtimeStatus"], "Failed");
    let code = client
        .get(format!("{status}&returnInternalServerErrorOnFailure=True"))
        .send()
        .expect("GET")
        .status();
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    // An unknown orchestrator leaves an ended instance with that id alone; a known one
    // replaces it.
    assert_eq!(
        server
            .start_json(&client, "orchestrators/Nope/failing", "2")
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        json_body(client.get(&status).send().expect("GET"))["name"],
        "Panic"
    );
    assert_eq!(
        server
            .start_json(&client, "orchestrators/FanOut/failing", "2")
            .status(),
        StatusCode::ACCEPTED
    );
    let bad_id = server.start_json(&client, "orchestrators/FanOut/has%20space", "2");
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);

    // Events: not JSON is a 400; a running instance takes it (202) and records it in
    // its history; an unknown one 404 and an ended one 410, as the extension does.
    let raise = |id: &str, content_type: &str| {
        client
            .post(server.url(&format!("{INSTANCES}/{id}/raiseEvent/Approval")))
            .header("content-type", content_type)
            .body("true")
            .send()
            .expect("POST")
    };
    assert_eq!(
        raise("busy", "text/plain").status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        raise("busy", "application/json").status(),
        StatusCode::ACCEPTED
    );
    let busy_history = server.url(&format!("{INSTANCES}/busy?showHistory=true"));
    let raised = poll(Duration::from_secs(120), || {
        let body = json_body(client.get(&busy_history).send().expect("GET"));
        body["historyEvents"]
            .as_array()?
            .iter()
            .find(|event| event["EventType"] == "EventRaised")
            .cloned()
    });
    assert_eq!(raised["Name"], "Approval");
    assert_eq!(raised["Input"], "true");
    assert_eq!(
        raise("nobody", "application/json").status(),
        StatusCode::NOT_FOUND
    );
    poll(Duration::from_secs(120), || {
        let response = client.get(&status).send().expect("GET");
        (response.status() == StatusCode::OK).then_some(())
    });
    assert_eq!(
        raise("failing", "application/json").status(),
        StatusCode::GONE
    );
    // An unknown runtimeStatus is dropped, as in the extension: no filter at all.
    let bad_filter = client
        .get(server.url(&format!("{INSTANCES}?runtimeStatus=Sleeping")))
        .send()
        .expect("GET");
    assert_eq!(bad_filter.status(), StatusCode::OK);
    assert!(!json_body(bad_filter).as_array().expect("a list").is_empty());
    let missing = client.get(server.url("no/such/route")).send().expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(
        json_body(missing)["Message"].is_string(),
        "a JSON error body"
    );
}

#[test]
fn every_route_requires_the_key() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch, "127.0.0.1:0", &[]);
    let client = client();
    let list = format!("{}/{INSTANCES}", server.base);
    assert_eq!(
        client.get(&list).send().expect("GET").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(format!("{list}?code=wrong"))
            .send()
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(&list)
            .header("x-functions-key", "wrong")
            .send()
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(format!("{list}?code={}", server.key))
            .send()
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(&list)
            .header("x-functions-key", &server.key)
            .send()
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    let start = format!("{}/orchestrators/E2_BackupSiteContent", server.base);
    assert_eq!(
        client.post(&start).send().expect("POST").status(),
        StatusCode::UNAUTHORIZED
    );
    // Every route of the public listener, known or not, the extension's and the rpc
    // listener's paths included.
    let hook = "runtime/webhooks/durabletask";
    for (method, path) in [
        (
            "POST",
            format!("{hook}/orchestrators/E2_BackupSiteContent/x"),
        ),
        ("POST", "api/orchestrators/E2_BackupSiteContent".to_string()),
        ("GET", format!("{hook}/instances/")),
        ("GET", format!("{hook}/instances/x")),
        ("DELETE", format!("{hook}/instances/x")),
        (
            "DELETE",
            format!("{hook}/instances?createdTimeFrom=2020-01-01"),
        ),
        ("POST", format!("{hook}/instances/x/terminate")),
        ("POST", format!("{hook}/instances/x/suspend")),
        ("POST", format!("{hook}/instances/x/resume")),
        ("POST", format!("{hook}/instances/x/rewind")),
        ("POST", format!("{hook}/instances/x/restart")),
        ("POST", format!("{hook}/instances/x/raiseEvent/E")),
        ("GET", "durabletask/instances/".to_string()),
        ("GET", "no/such/route".to_string()),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let response = client
            .request(method.clone(), format!("{}/{path}", server.base))
            .send()
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path}"
        );
        assert!(
            json_body(response)["Message"].is_string(),
            "a JSON error body"
        );
    }

    // The generated key is kept, owner-only, and reused by the next start.
    use std::os::unix::fs::PermissionsExt;
    let file = scratch.data_dir().join("api-key");
    let mode = std::fs::metadata(&file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = server.key.clone();
    server.kill();
    let again = Server::start(&scratch, "127.0.0.1:0", &[]);
    assert_eq!(again.key, key);
    again.kill();
    let chosen = Server::start(
        &scratch,
        "127.0.0.1:0",
        &["--key", "my-own-key-of-16-chars"],
    );
    assert_eq!(chosen.key, "my-own-key-of-16-chars");
}

/// Every page of the list route for `query`, following the continuation tokens.
fn list_pages(client: &Client, server: &Server, query: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = client.get(server.url(&format!("{INSTANCES}{query}")));
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = request.send().expect("GET list");
        assert_eq!(response.status(), StatusCode::OK);
        token = response
            .headers()
            .get("x-ms-continuation-token")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        pages.push(json_body(response).as_array().cloned().unwrap_or_default());
        if token.is_none() {
            return pages;
        }
    }
}

fn instance_id(instance: &Value) -> String {
    instance["instanceId"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn lists_page_with_the_continuation_header_and_filter() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch, "127.0.0.1:0", &testing_components());
    let client = client();
    for i in 0..5 {
        let response = server.start_json(&client, &format!("orchestrators/FanOut/fan-{i}"), "3");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    for i in 0..5 {
        server.poll_until_ended(&client, &server.url(&format!("{INSTANCES}/fan-{i}")));
    }
    let pages = list_pages(&client, &server, "?top=2&runtimeStatus=Completed");
    assert!(pages.iter().all(|page| page.len() <= 2));
    let mut seen: Vec<String> = pages.iter().flatten().map(instance_id).collect();
    assert_eq!(pages.len(), 3);
    seen.sort();
    assert_eq!(seen, (0..5).map(|i| format!("fan-{i}")).collect::<Vec<_>>());
    let none = json_body(
        client
            .get(server.url(&format!("{INSTANCES}?runtimeStatus=Failed,Terminated")))
            .send()
            .expect("GET"),
    );
    assert_eq!(none, json!([]));
    let future = json_body(
        client
            .get(server.url(&format!("{INSTANCES}?createdTimeFrom=2999-01-01T00:00:00Z")))
            .send()
            .expect("GET"),
    );
    assert_eq!(future, json!([]));
}

/// A page of the list route stops at a memory budget (16 MiB of payloads) whatever `top`
/// asks for, and its continuation token leads on to the rest.
#[test]
fn a_page_of_large_instances_ends_early_and_the_token_leads_on() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch, "127.0.0.1:0", &testing_components());
    let client = client();
    // Each instance holds 9 MiB of input and 9 MiB of output: one fills a page.
    let big = "x".repeat(9 << 20);
    for i in 0..3 {
        let body = json!({"name": "Echo", "input": big}).to_string();
        let response = server.start_json(
            &client,
            &format!("orchestrators/CallActivity/big-{i}"),
            &body,
        );
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        server.poll_until_ended(&client, &server.url(&format!("{INSTANCES}/big-{i}")));
    }
    let pages = list_pages(&client, &server, "?top=100");
    for page in &pages {
        assert_eq!(page.len(), 1, "one instance fills a page's budget");
        assert_eq!(page[0]["output"].as_str().map(str::len), Some(9 << 20));
    }
    let seen: Vec<String> = pages.iter().flatten().map(instance_id).collect();
    assert_eq!(seen, ["big-2", "big-1", "big-0"], "newest first, each once");
}

#[test]
fn terminate_suspend_resume_and_purge() {
    let scratch = Scratch::new();
    // Instances idle for 100 ms are evicted, so terminate, suspend and resume also reach
    // instances that are not in memory.
    let mut args = vec!["--evict-after-ms", "100"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let client = client();

    // Terminate a long sleep.
    let sleep = r#"{"name":"Sleep","input":3600000}"#;
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/long", sleep)
            .status(),
        StatusCode::ACCEPTED
    );
    poll(PATIENCE, || {
        (count_events(&scratch, "TaskScheduled") >= 1).then_some(())
    });
    let status = server.url(&format!("{INSTANCES}/long"));
    let purge_running = client.delete(&status).send().expect("DELETE");
    assert_eq!(
        purge_running.status(),
        StatusCode::PRECONDITION_FAILED,
        "a running instance is not purged"
    );
    assert!(
        json_body(purge_running)
            .as_str()
            .is_some_and(|m| m.contains("has status Running")),
        "the extension's JSON string body"
    );
    let terminate = client
        .post(server.url(&format!("{INSTANCES}/long/terminate?reason=enough")))
        .send()
        .expect("POST");
    assert_eq!(terminate.status(), StatusCode::ACCEPTED);
    let ended = server.poll_until_ended(&client, &status);
    assert_eq!(ended[0].0, StatusCode::OK);
    assert_eq!(ended[0].1["runtimeStatus"], "Terminated");
    assert_eq!(ended[0].1["output"], "enough");
    let again = client
        .post(server.url(&format!("{INSTANCES}/long/terminate")))
        .send()
        .expect("POST");
    assert_eq!(again.status(), StatusCode::GONE);
    assert_eq!(
        client
            .post(server.url(&format!("{INSTANCES}/nobody/terminate")))
            .send()
            .expect("POST")
            .status(),
        StatusCode::NOT_FOUND
    );

    // Suspend while a short sleep runs: its completion waits until the instance is resumed.
    // (Five seconds leave a loaded machine time to suspend it before the sleep ends.)
    let short = r#"{"name":"Sleep","input":5000}"#;
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/nap", short)
            .status(),
        StatusCode::ACCEPTED
    );
    let nap = server.url(&format!("{INSTANCES}/nap"));
    poll(PATIENCE, || {
        (json_body(client.get(&nap).send().expect("GET"))["runtimeStatus"] == "Running")
            .then_some(())
    });
    assert_eq!(
        client
            .post(server.url(&format!("{INSTANCES}/nap/suspend?reason=hold")))
            .send()
            .expect("POST")
            .status(),
        StatusCode::ACCEPTED
    );
    poll(PATIENCE, || {
        let response = client.get(&nap).send().expect("GET");
        (response.status() == StatusCode::ACCEPTED
            && json_body(response)["runtimeStatus"] == "Suspended")
            .then_some(())
    });
    // The sleep finishes during the suspension; the instance stays suspended.
    poll(PATIENCE, || {
        let db = scratch.db();
        db.query_row(
            "SELECT COUNT(*) FROM inbox WHERE data LIKE '%TaskCompleted%'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .ok()
        .filter(|count| *count == 1)
    });
    assert_eq!(
        json_body(client.get(&nap).send().expect("GET"))["runtimeStatus"],
        "Suspended"
    );
    assert_eq!(
        client
            .post(server.url(&format!("{INSTANCES}/nap/resume?reason=go")))
            .send()
            .expect("POST")
            .status(),
        StatusCode::ACCEPTED
    );
    let ended = server.poll_until_ended(&client, &nap);
    assert_eq!(
        (ended[0].0, ended[0].1["output"].clone()),
        (StatusCode::OK, json!(5000))
    );
    // Suspended and resumed instances show it in their history, in the extension's shape.
    let shown = json_body(
        client
            .get(format!("{nap}&showHistory=True"))
            .send()
            .expect("GET"),
    );
    assert!(
        shown["historyEvents"]
            .as_array()
            .expect("historyEvents")
            .iter()
            .any(|e| e["EventType"] == "ExecutionSuspended" && e["Reason"] == "hold")
    );
    let history = scratch.history("nap");
    let kinds: Vec<_> = history
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
        .collect();
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap_or(usize::MAX);
    assert!(position("ExecutionSuspended") < position("ExecutionResumed"));
    assert!(
        position("ExecutionResumed") < position("TaskCompleted"),
        "{kinds:?}"
    );

    // Purge one, then many.
    let purge = client.delete(&nap).send().expect("DELETE");
    assert_eq!(purge.status(), StatusCode::OK);
    assert_eq!(json_body(purge)["instancesDeleted"], 1);
    assert_eq!(
        client.get(&nap).send().expect("GET").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.delete(&nap).send().expect("DELETE").status(),
        StatusCode::NOT_FOUND
    );
    // Purge by filter: never without createdTimeFrom.
    let bare = client
        .delete(server.url(&format!("{INSTANCES}?runtimeStatus=Terminated")))
        .send()
        .expect("DELETE");
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_body(bare),
        json!("Please provide value for 'createdTimeFrom' parameter.")
    );
    assert_eq!(scratch.instance_ids().len(), 1, "nothing was purged");
    let many = client
        .delete(server.url(&format!(
            "{INSTANCES}/?runtimeStatus=Terminated&createdTimeFrom=2020-01-01T00:00:00.000Z"
        )))
        .send()
        .expect("DELETE");
    assert_eq!(many.status(), StatusCode::OK);
    assert_eq!(json_body(many)["instancesDeleted"], 1);
    assert!(scratch.instance_ids().is_empty());
}

#[test]
fn a_restarted_server_finishes_the_backup_behind_the_same_status_url() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..60 {
        write(&site, &format!("f{i}.txt"), &bytes(i, 500));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let slow = ["--max-activities", "2", "--test-activity-delay-ms", "50"];
    let server = Server::start(&scratch, "127.0.0.1:0", &slow);
    let client = client();
    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let response = server.start_json(&client, "orchestrators/E2_BackupSiteContent", &root);
    let location = response.headers()["location"]
        .to_str()
        .expect("Location")
        .to_string();
    poll(Duration::from_secs(120), || {
        (count_events(&scratch, "TaskCompleted") >= 10).then_some(())
    });
    let addr = server.addr.clone();
    server.kill();
    assert!(
        count_events(&scratch, "TaskCompleted") < 61,
        "the kill came before the end"
    );

    let restarted = Server::start(&scratch, &addr, &slow);
    assert_ne!(restarted.pid(), 0);
    let ended = restarted.poll_until_ended(&client, &location);
    assert_eq!(ended[0].0, StatusCode::OK);
    assert_eq!(ended[0].1["runtimeStatus"], "Completed");
    assert_eq!(ended[0].1["output"], total);
}

/// The extension's paths: its base with and without `/api`, any case, trailing slashes;
/// flags read as .NET reads them; URLs handed out from `--public-url`.
#[test]
fn the_extension_routes_answer_with_its_codes_headers_and_bodies() {
    let scratch = Scratch::new();
    let mut args = vec!["--public-url", "https://weft.example.test/"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let client = client();
    let hook = "runtime/webhooks/durabletask";

    // The extension's start route, with an id and a trailing slash; the check-status body
    // is built on the public URL, whatever Host the request carried.
    let response = client
        .post(server.url(&format!("{hook}/Orchestrators/CallActivity/nap/")))
        .header("host", "evil.example")
        .body(r#"{"name":"Sleep","input":3600000}"#)
        .send()
        .expect("POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["retry-after"], "10");
    let body = json_body(response);
    let status_url = body["statusQueryGetUri"]
        .as_str()
        .expect("a URL")
        .to_string();
    let public =
        format!("https://weft.example.test/{INSTANCES}/nap?taskHub=weft&connection=Storage&code=");
    assert!(status_url.starts_with(&public), "{status_url}");
    assert_eq!(
        body.as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(
            [
                "id",
                "statusQueryGetUri",
                "sendEventPostUri",
                "terminatePostUri",
                "rewindPostUri",
                "purgeHistoryDeleteUri",
                "restartPostUri",
                "suspendPostUri",
                "resumePostUri"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    // A running instance: 202, Location is this request's URL on the public base.
    let status = client
        .get(server.url(&format!("api/{hook}/instances/nap/?showInput=False")))
        .send()
        .expect("GET");
    assert_eq!(status.status(), StatusCode::ACCEPTED);
    assert_eq!(status.headers()["retry-after"], "5");
    let location = status.headers()["location"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        location.starts_with(&format!(
            "https://weft.example.test/api/{hook}/instances/nap/?showInput=False"
        )),
        "{location}"
    );
    assert_eq!(json_body(status)["input"], Value::Null);
    // A flag that is not a boolean is ignored (input shown), never a plain-text 400.
    let status = client
        .get(server.url(&format!("{INSTANCES}/nap?showInput=maybe&showHistory=1")))
        .send()
        .expect("GET");
    assert_eq!(status.status(), StatusCode::ACCEPTED);
    let status = json_body(status);
    assert_eq!(status["input"]["name"], "Sleep");
    assert!(status.get("historyEvents").is_none());

    // Suspended is 202 too; a pending task shows as TaskScheduled in the history.
    let post = |path: &str| {
        client
            .post(server.url(&format!("{hook}/{path}")))
            .send()
            .expect("POST")
            .status()
    };
    poll(PATIENCE, || {
        (count_events(&scratch, "TaskScheduled") >= 1).then_some(())
    });
    assert_eq!(
        post("instances/nap/SUSPEND/?reason=wait"),
        StatusCode::ACCEPTED
    );
    let suspended = poll(PATIENCE, || {
        let response = client
            .get(server.url(&format!("{INSTANCES}/nap?showHistory=true")))
            .send()
            .expect("GET");
        let code = response.status();
        let body = json_body(response);
        (body["runtimeStatus"] == "Suspended").then_some((code, body))
    });
    assert_eq!(suspended.0, StatusCode::ACCEPTED);
    let events = suspended.1["historyEvents"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events
            .iter()
            .any(|e| e["EventType"] == "TaskScheduled" && e["Name"] == "Sleep"),
        "{events:?}"
    );
    // Rewind needs a Failed instance; restart of the same id needs an ended one.
    assert_eq!(
        post("instances/nap/rewind"),
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(post("instances/nobody/rewind"), StatusCode::NOT_FOUND);
    assert_eq!(
        post("instances/nap/restart?restartWithNewInstanceId=false"),
        StatusCode::CONFLICT
    );
    assert_eq!(post("instances/nobody/restart"), StatusCode::BAD_REQUEST);
    assert_eq!(post("instances/nap/terminate/"), StatusCode::ACCEPTED);
    assert_eq!(post("instances/nap/frobnicate"), StatusCode::NOT_FOUND);
    let get_op = client
        .get(server.url(&format!("{INSTANCES}/nap/terminate")))
        .send()
        .expect("GET");
    assert_eq!(get_op.status(), StatusCode::NOT_FOUND, "only POST");
    assert_eq!(
        client
            .put(server.url(&format!("{INSTANCES}/nap")))
            .send()
            .expect("PUT")
            .status(),
        StatusCode::NOT_FOUND,
        "an unknown method is a 404, as in the extension"
    );
    let terminated = server.poll_until_ended(&client, &server.url(&format!("{INSTANCES}/nap")));
    assert_eq!(terminated[0].0, StatusCode::OK);
    assert_eq!(post("instances/nap/resume"), StatusCode::GONE);
    let terminated = client
        .get(server.url(&format!(
            "{INSTANCES}/nap?returnInternalServerErrorOnFailure=true"
        )))
        .send()
        .expect("GET");
    assert_eq!(
        terminated.status(),
        StatusCode::OK,
        "Terminated is never 500"
    );

    // Restart: the same orchestrator and input, under a new id by default.
    let restarted = client
        .post(server.url(&format!("{hook}/instances/nap/restart")))
        .send()
        .expect("POST");
    assert_eq!(restarted.status(), StatusCode::ACCEPTED);
    let new_id = json_body(restarted)["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!new_id.is_empty() && new_id != "nap");
    let again = json_body(
        client
            .get(server.url(&format!("{INSTANCES}/{new_id}")))
            .send()
            .expect("GET"),
    );
    assert_eq!(
        (&again["name"], &again["input"]["name"]),
        (&json!("CallActivity"), &json!("Sleep"))
    );
    assert_eq!(
        post(&format!("instances/{new_id}/terminate")),
        StatusCode::ACCEPTED
    );
    // Restart under the same id, waiting for it: a quick echo completes in time.
    let echo = client
        .post(server.url(&format!("{hook}/orchestrators/CallActivity/echo")))
        .body(r#"{"name":"Echo","input":"hi"}"#)
        .send()
        .expect("POST");
    assert_eq!(echo.status(), StatusCode::ACCEPTED);
    server.poll_until_ended(&client, &server.url(&format!("{INSTANCES}/echo")));
    let waited = client
        .post(server.url(&format!(
            "{hook}/instances/echo/restart?restartWithNewInstanceId=False&timeout=120&pollingInterval=1"
        )))
        .send()
        .expect("POST");
    assert_eq!(waited.status(), StatusCode::OK);
    assert_eq!(
        json_body(waited),
        json!("hi"),
        "the output is the whole body"
    );

    // Start and wait: 200 with the output; without pollingInterval it does not wait.
    let waited = client
        .post(server.url(&format!(
            "{hook}/orchestrators/FanOut?timeout=120&pollingInterval=0.5"
        )))
        .body("4")
        .send()
        .expect("POST");
    assert_eq!(waited.status(), StatusCode::OK);
    assert_eq!(json_body(waited), json!(6), "0 + 1 + 2 + 3");
    let not_waited = client
        .post(server.url(&format!("{hook}/orchestrators/FanOut?timeout=120")))
        .body("4")
        .send()
        .expect("POST");
    assert_eq!(not_waited.status(), StatusCode::ACCEPTED);
    // A wait that times out answers 202 with the check-status body.
    let timed_out = client
        .post(server.url(&format!(
            "{hook}/orchestrators/CallActivity/slow?timeout=0.2&pollingInterval=0.1"
        )))
        .body(r#"{"name":"Sleep","input":3600000}"#)
        .send()
        .expect("POST");
    assert_eq!(timed_out.status(), StatusCode::ACCEPTED);
    assert_eq!(json_body(timed_out)["id"], "slow");

    // Lists: trailing slash, prefix, showInput, case-insensitive flags, paging checks.
    let list = |query: &str| {
        let response = client
            .get(server.url(&format!("{hook}/instances/{query}")))
            .send()
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{query}");
        json_body(response).as_array().cloned().unwrap_or_default()
    };
    let echoes = list("?instanceIdPrefix=ech&showInput=FALSE");
    assert_eq!(echoes.len(), 1);
    assert_eq!(echoes[0]["instanceId"], "echo");
    assert_eq!(echoes[0]["input"], Value::Null);
    assert!(
        list("?runtimeStatus=Canceled").is_empty(),
        "a status Weft never has"
    );
    assert!(list("?createdTimeTo=2000-01-01").is_empty());
    assert_eq!(list("?top=1").len(), 1);
    let bad_token = client
        .get(server.url(&format!("{INSTANCES}/")))
        .header("x-ms-continuation-token", "not-a-token")
        .send()
        .expect("GET");
    assert_eq!(bad_token.status(), StatusCode::BAD_REQUEST);
    assert!(json_body(bad_token)["Message"].is_string());

    // Purge: 412 while running, 404 unknown, and `..` is no instance id.
    assert_eq!(
        client
            .delete(server.url(&format!("{INSTANCES}/slow/")))
            .send()
            .expect("DELETE")
            .status(),
        StatusCode::PRECONDITION_FAILED
    );
    // HTTP clients resolve `.` and `..` segments away, so these go out raw.
    for id in ["..", ".", "%2E%2E", "%2e"] {
        let path = format!("/{hook}/orchestrators/FanOut/{id}?code={}", server.key);
        assert_eq!(raw_post(&server.addr, &path, "1"), 404, "{id}");
    }
    assert!(
        !scratch
            .instance_ids()
            .iter()
            .any(|id| id == "." || id == "..")
    );
}

/// Request bodies over the payload limit are refused with 413 before they are read.
#[test]
fn oversized_bodies_are_refused_before_they_are_buffered() {
    let scratch = Scratch::new();
    let mut args = vec!["--max-payload-kib", "1"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let client = client();
    let big = format!("\"{}\"", "x".repeat(4096));
    let response = server.start_json(&client, "orchestrators/FanOut", &big);
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_body(response)["Message"].is_string());
    // Declared small, sent large (chunked, no Content-Length): still refused.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 1024])).collect();
    let response = client
        .post(server.url("orchestrators/FanOut"))
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(
            chunks
                .into_iter()
                .flat_map(|c| c.unwrap_or_default())
                .collect::<Vec<u8>>(),
        )))
        .send();
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert!(scratch.instance_ids().is_empty());
}

/// The rpc listener: loopback only, no key, the `/durabletask/` base, and Python's
/// twice-encoded inputs unwrapped once.
#[test]
fn the_rpc_listener_is_keyless_on_loopback_only_and_unwraps_twice_encoded_inputs() {
    let scratch = Scratch::new();
    let refused = scratch.run(&["serve", "--addr", "127.0.0.1:0", "--rpc-addr", "0.0.0.0:0"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a loopback address"),
        "{}",
        describe(&refused)
    );

    let mut args = vec!["--rpc-addr", "127.0.0.1:0"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let rpc = server.rpc.clone().expect("the rpc line");
    assert!(rpc.ends_with("/durabletask/"), "{rpc}");
    let client = client();
    let started = client
        .post(format!("{rpc}orchestrators/CallActivity/twice"))
        .header("content-type", "application/json")
        .body(r#""{\"name\": \"Echo\", \"input\": 7}""#)
        .send()
        .expect("POST");
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    // A web page that a browser on this machine shows reaches loopback too: a form posted
    // from another site, and a page whose name was rebound to 127.0.0.1, are refused,
    // and start nothing.
    let forged = [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("host", "rebind.evil.example"),
    ];
    for (name, value) in forged {
        let refused = client
            .post(format!("{rpc}orchestrators/CallActivity/forged"))
            .header("content-type", "text/plain")
            .header(name, value)
            .body(r#""{\"name\": \"Echo\", \"input\": 7}""#)
            .send()
            .expect("POST");
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    let status = client
        .get(format!("{rpc}instances/forged"))
        .send()
        .expect("GET");
    assert_eq!(status.status(), StatusCode::NOT_FOUND);
    let body = json_body(started);
    assert!(
        body["statusQueryGetUri"].as_str().is_some_and(|url| url
            .starts_with(&format!("{rpc}instances/twice?"))
            && !url.contains("code=")),
        "{body}"
    );
    let ended = poll(Duration::from_secs(120), || {
        let response = client
            .get(format!("{rpc}instances/twice?showHistory=True"))
            .send()
            .expect("GET");
        (response.status() == StatusCode::OK).then(|| json_body(response))
    });
    assert_eq!(ended["input"], json!({"name": "Echo", "input": 7}));
    assert_eq!(ended["output"], json!(7));
    // The public listener keeps the input as sent, and still wants its key there.
    let kept = server.start_json(
        &client,
        "orchestrators/CallActivity/once",
        r#""{\"name\": \"Echo\", \"input\": 7}""#,
    );
    assert_eq!(kept.status(), StatusCode::ACCEPTED);
    let kept = json_body(
        client
            .get(server.url(&format!("{INSTANCES}/once")))
            .send()
            .expect("GET"),
    );
    assert_eq!(kept["input"], json!(r#"{"name": "Echo", "input": 7}"#));
    assert_eq!(
        client
            .get(format!("{}/{INSTANCES}/once", server.base))
            .send()
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(format!(
                "{}/durabletask/instances/once?code={}",
                server.base, server.key
            ))
            .send()
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND,
        "the rpc base is not served on the public listener"
    );
}

/// POSTs `body` to `path` over a plain TCP connection, exactly as written; returns the
/// status code.
fn raw_post(addr: &str, path: &str, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}
