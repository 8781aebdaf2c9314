//! Activities for the host's tests: echo, sleep and fail on demand.

wit_bindgen::generate!({ world: "activities", path: "../../wit" });

use exports::weft::orchestration::activity::{Guest, RunError};

struct Testing;

impl Guest for Testing {
    fn names() -> Vec<String> {
        ["Echo", "Sleep", "Fail"]
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
            "Fail" => Err(RunError::Failed(format!("failed on purpose with {input}"))),
            _ => Err(RunError::UnknownName(Self::names())),
        }
    }
}

export!(Testing);
