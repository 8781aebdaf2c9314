//! The official Durable Functions clients against the real `weft serve`: the npm
//! `durable-functions` client (through the public listener with the key, and through the
//! rpc listener) and the PyPI `azure-functions-durable` client (through the rpc listener,
//! the only endpoint it speaks to). Each client is built from the durable client binding
//! data a Functions host gives, and drives every call the API supports from a script
//! under `tests/clients/`; this side checks the outcome with its own HTTP client.
//!
//! The clients come from their registries: `.ci/run` installs them. A missing client
//! fails its test with the command that installs it.

use crate::support::*;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients")
}

/// The binding data of a `durableClient` input, as the extension gives it to a function:
/// URL templates with the `INSTANCEID` placeholder and the key, and the rpc base if any.
fn binding(server: &Server, rpc: Option<&str>) -> Value {
    let base = format!("{}/runtime/webhooks/durabletask", server.base);
    let key = &server.key;
    let query = format!("taskHub=weft&connection=Storage&code={key}");
    let instance = format!("{base}/instances/INSTANCEID");
    json!({
        "taskHubName": "weft",
        "connectionName": null,
        "creationUrls": {
            "createNewInstancePostUri": format!("{base}/orchestrators/{{functionName}}[/{{instanceId}}]?code={key}"),
            "createAndWaitOnNewInstancePostUri": format!("{base}/orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&code={key}"),
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": format!("{instance}?{query}"),
            "sendEventPostUri": format!("{instance}/raiseEvent/{{eventName}}?{query}"),
            "terminatePostUri": format!("{instance}/terminate?reason={{text}}&{query}"),
            "rewindPostUri": format!("{instance}/rewind?reason={{text}}&{query}"),
            "purgeHistoryDeleteUri": format!("{instance}?{query}"),
            "restartPostUri": format!("{instance}/restart?{query}"),
            "suspendPostUri": format!("{instance}/suspend?reason={{text}}&{query}"),
            "resumePostUri": format!("{instance}/resume?reason={{text}}&{query}"),
        },
        "baseUrl": base,
        "requiredQueryStringParameters": format!("code={key}"),
        "rpcBaseUrl": rpc,
        "httpBaseUrl": null,
    })
}

fn start_server(scratch: &Scratch) -> Server {
    Server::start(
        scratch,
        "127.0.0.1:0",
        &[
            "--rpc-addr",
            "127.0.0.1:0",
            "--components",
            TESTING_ORCHESTRATOR,
            TESTING_ACTIVITIES,
        ],
    )
}

/// Runs a client script; returns what it printed as done.
fn run_script(mut command: Command, binding: &Value, prefix: &str) -> Value {
    command
        .env("WEFT_BINDING", binding.to_string())
        .env("WEFT_PREFIX", prefix)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let output = wait_output(
        command.spawn().expect("spawn the client"),
        Duration::from_secs(600),
    );
    assert!(
        output.status.success(),
        "the client script failed:\n{}",
        describe(&output)
    );
    serde_json::from_str(&last_line(&output)).expect("the script's JSON line")
}

/// What the scripts did, checked on the server: purged instances are gone; the rewound
/// instance's history records the rewind and it has failed again (its orchestrator
/// always panics).
fn check_outcome(server: &Server, done: &Value) {
    let client = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client");
    let url = |id: &str, query: &str| {
        format!(
            "{}/runtime/webhooks/durabletask/instances/{id}?code={}{query}",
            server.base, server.key
        )
    };
    for id in done["purged"].as_array().expect("purged ids") {
        let id = id.as_str().unwrap_or_default();
        assert_eq!(
            client.get(url(id, "")).send().expect("GET").status(),
            StatusCode::NOT_FOUND,
            "{id} was purged"
        );
    }
    let rewound = done["rewound"].as_str().expect("the rewound id");
    let status: Value = poll(Duration::from_secs(120), || {
        let response = client
            .get(url(rewound, "&showHistory=true"))
            .send()
            .expect("GET");
        let status: Value = response.json().expect("JSON");
        let events = status["historyEvents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let rewound = events
            .iter()
            .position(|e| e["EventType"] == "ExecutionRewound");
        let failed_after = rewound.is_some_and(|at| {
            events[at..]
                .iter()
                .any(|e| e["OrchestrationStatus"] == "Failed")
        });
        (status["runtimeStatus"] == "Failed" && failed_after).then_some(status)
    });
    assert_eq!(status["runtimeStatus"], "Failed");
}

fn node_client(binding: &Value, server: &Server, prefix: &str) -> Value {
    let dir = clients_dir();
    assert!(
        dir.join("node_modules/durable-functions/package.json")
            .exists(),
        "the npm durable-functions client is not installed: run `npm ci --prefix {}` (Node.js 20, as .ci/run does)",
        dir.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|output| output.status.success()),
        "Node.js is not installed: `apt-get install nodejs npm` (Node.js 20 recommended), as .ci/run does"
    );
    let mut command = Command::new("node");
    command
        .arg(dir.join("node/client.js"))
        .current_dir(&dir)
        // Without it, getClient rewrites every URL's origin to localhost:7071.
        .env("WEBSITE_HOSTNAME", &server.addr);
    run_script(command, binding, prefix)
}

#[test]
fn the_official_node_client_drives_weft_through_the_public_listener() {
    let scratch = Scratch::new();
    let server = start_server(&scratch);
    let done = node_client(&binding(&server, None), &server, "node-public");
    check_outcome(&server, &done);
}

#[test]
fn the_official_node_client_drives_weft_through_the_rpc_listener() {
    let scratch = Scratch::new();
    let server = start_server(&scratch);
    let rpc = server.rpc.clone().expect("the rpc listener");
    let done = node_client(&binding(&server, Some(&rpc)), &server, "node-rpc");
    check_outcome(&server, &done);
}

#[test]
fn the_official_python_client_drives_weft_through_the_rpc_listener() {
    let scratch = Scratch::new();
    let server = start_server(&scratch);
    let dir = clients_dir();
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "the PyPI azure-functions-durable client is not installed: run `python3 -m venv {venv} && {venv}/bin/pip install -r {req}` (Python 3.11, as .ci/run does)",
        venv = dir.join(".venv").display(),
        req = dir.join("requirements.txt").display()
    );
    let rpc = server.rpc.clone().expect("the rpc listener");
    let mut command = Command::new(python);
    command.arg(dir.join("python/client.py")).current_dir(&dir);
    let done = run_script(command, &binding(&server, Some(&rpc)), "py");
    check_outcome(&server, &done);
    // The twice-encoded inputs were unwrapped once on the rpc listener: the server holds
    // the object the Python code passed, not a string.
    let client = Client::new();
    let restarted = done["restarted"].as_str().expect("the restarted id");
    let status: Value = client
        .get(format!(
            "{}/runtime/webhooks/durabletask/instances/{restarted}?code={}",
            server.base, server.key
        ))
        .send()
        .expect("GET")
        .json()
        .expect("JSON");
    assert_eq!(status["input"], json!({"name": "Echo", "input": {"a": 1}}));
    assert_eq!(status["output"], json!({"a": 1}));
}
