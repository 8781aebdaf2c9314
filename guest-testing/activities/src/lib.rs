//! Activities for the host's tests: echo, sleep, fail, spin, poll the host, allocate and
//! repeat on demand.

wit_bindgen::generate!({ world: "activities", path: "../../wit" });

use exports::weft::orchestration::activity::{Guest, RunError};

struct Testing;

impl Guest for Testing {
    fn names() -> Vec<String> {
        [
            "Echo",
            "Sleep",
            "SleepThenFail",
            "GetBlob",
            "Fail",
            "Spin",
            "PollFileSize",
            "Allocate",
            "Repeat",
        ]
        .iter()
        .map(|name| name.to_string())
        .collect()
    }

    fn run(name: String, input: String) -> Result<String, RunError> {
        match name.as_str() {
            "Echo" => Ok(input),
            "Sleep" => {
                let millis: u64 =
                    serde_json::from_str(&input).map_err(|e| RunError::BadInput(e.to_string()))?;
                std::thread::sleep(std::time::Duration::from_millis(millis));
                Ok(input)
            }
            // Reads a blob whole and returns its length.
            "GetBlob" => {
                let name: String =
                    serde_json::from_str(&input).map_err(|e| RunError::BadInput(e.to_string()))?;
                match weft::orchestration::blob::get(&name) {
                    Ok(bytes) => Ok(bytes.len().to_string()),
                    Err(error) => Err(RunError::Failed(format!("{error:?}"))),
                }
            }
            "SleepThenFail" => {
                let millis: u64 =
                    serde_json::from_str(&input).map_err(|e| RunError::BadInput(e.to_string()))?;
                std::thread::sleep(std::time::Duration::from_millis(millis));
                Err(RunError::Failed(format!(
                    "failed on purpose after {millis} ms"
                )))
            }
            "Spin" => {
                let mut counter = 0u64;
                loop {
                    counter = std::hint::black_box(counter.wrapping_add(1));
                }
            }
            // Asks the host for a file's size forever: host calls must not reset the CPU
            // budget.
            "PollFileSize" => {
                let path: String =
                    serde_json::from_str(&input).map_err(|e| RunError::BadInput(e.to_string()))?;
                loop {
                    std::hint::black_box(weft::orchestration::fs::file_size(&path).ok());
                }
            }
            "Allocate" => {
                let mib: usize =
                    serde_json::from_str(&input).map_err(|e| RunError::BadInput(e.to_string()))?;
                let block = vec![7u8; mib << 20];
                Ok(std::hint::black_box(block).len().to_string())
            }
            "Repeat" => {
                let count: usize =
                    serde_json::from_str(&input).map_err(|e| RunError::BadInput(e.to_string()))?;
                serde_json::to_string(&"x".repeat(count))
                    .map_err(|e| RunError::Failed(e.to_string()))
            }
            "Fail" => Err(RunError::Failed(format!("failed on purpose with {input}"))),
            _ => Err(RunError::UnknownName(Self::names())),
        }
    }
}

export!(Testing);
