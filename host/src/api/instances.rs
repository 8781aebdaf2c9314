//! `instances[/{id}[/{operation}]]`: status, listing, purge, terminate, suspend, resume,
//! rewind, restart and events, with the extension's status codes and bodies.

use super::query::Statuses;
use super::{Call, Error, orchestrators};
use crate::status;
use crate::store::{InstanceFilter, RuntimeStatus};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The paging header of the list route, in both directions.
const CONTINUATION: &str = "x-ms-continuation-token";
/// A page's size when the client gives no `top` (the extension's default).
const DEFAULT_PAGE: usize = 100;
/// The largest page, whatever `top` asks for: a page is held in memory.
const MAX_PAGE: usize = 1000;

fn unknown(id: &str) -> Error {
    Error::NotFound(format!("no instance with id '{id}'"))
}

/// `GET instances/{id}`: 202 with `Location` and `Retry-After` while the instance has
/// not ended; 200 once it has (500 for a failed one only when the client asks with
/// `returnInternalServerErrorOnFailure=true`).
pub async fn status(call: Call, id: &str) -> Result<Response, Error> {
    let store = call.api.runtime.store();
    let instance = store.instance(id).await?.ok_or_else(|| unknown(id))?;
    let show_input = call.query.flag("showInput").unwrap_or(true);
    let mut body = status::instance_json(&instance);
    if !show_input {
        body["input"] = Value::Null;
    }
    if call.query.flag("showHistory").unwrap_or(false) {
        let history = store.history(id).await?;
        let output = call.query.flag("showHistoryOutput").unwrap_or(false);
        body["historyEvents"] = status::history_events(&history, show_input, output);
    }
    let code = match instance.status {
        RuntimeStatus::Pending | RuntimeStatus::Running | RuntimeStatus::Suspended => {
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            let location = format!("{}{}", call.origin(), call.path_and_query);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Ok(response);
        }
        RuntimeStatus::Failed
            if call
                .query
                .flag("returnInternalServerErrorOnFailure")
                .unwrap_or(false) =>
        {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated => {
            StatusCode::OK
        }
    };
    Ok((code, Json(body)).into_response())
}

/// The filter of the list and purge routes, or `None` if it can select nothing.
fn filter(call: &Call) -> Option<InstanceFilter> {
    let statuses = match call.query.statuses() {
        Statuses::Any => Vec::new(),
        Statuses::Only(statuses) if statuses.is_empty() => return None,
        Statuses::Only(statuses) => statuses,
    };
    Some(InstanceFilter {
        statuses,
        created_from: call.query.time("createdTimeFrom"),
        created_to: call.query.time("createdTimeTo"),
    })
}

/// `GET instances`: a page of statuses, newest first, and the token for the next page in
/// `x-ms-continuation-token` when there is one.
pub async fn list(call: Call) -> Result<Response, Error> {
    let skip = match call.headers.get(CONTINUATION) {
        None => 0,
        Some(token) => token
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(|token| token.parse::<u32>())
            .transpose()
            .map_err(|_| {
                Error::BadRequest(format!(
                    "the {CONTINUATION} header is not a token this server handed out"
                ))
            })?
            .unwrap_or(0) as usize,
    };
    let page = match call.query.int("top") {
        Some(top) if top > 0 => (top as usize).min(MAX_PAGE),
        _ => DEFAULT_PAGE,
    };
    let prefix = call.query.get("instanceIdPrefix").unwrap_or_default();
    let show_input = call.query.flag("showInput").unwrap_or(true);
    let Some(filter) = filter(&call) else {
        return Ok(Json(json!([])).into_response());
    };
    let store = call.api.runtime.store();
    // The store filters by status and time; the id prefix is applied here, reading on in
    // pages until this page is full.
    let mut selected = Vec::new();
    let mut offset = skip;
    let mut more = false;
    loop {
        let batch = store
            .list_instances(&filter, offset, page.saturating_add(1))
            .await?;
        let fetched = batch.len();
        for instance in batch {
            offset += 1;
            if !instance.id.starts_with(prefix) {
                continue;
            }
            if selected.len() == page {
                more = true;
                offset -= 1;
                break;
            }
            selected.push(instance);
        }
        if more || fetched <= page {
            break;
        }
    }
    let body: Vec<Value> = selected
        .iter()
        .map(|instance| {
            let mut value = status::instance_json(instance);
            if !show_input {
                value["input"] = Value::Null;
            }
            value
        })
        .collect();
    let mut response = Json(body).into_response();
    if more && let Ok(value) = HeaderValue::from_str(&offset.to_string()) {
        response.headers_mut().insert(CONTINUATION, value);
    }
    Ok(response)
}

/// `POST instances/{id}/terminate|suspend|resume`: 202 once posted; 404 unknown; 410
/// ended.
pub async fn control(call: Call, id: &str, operation: &str) -> Result<Response, Error> {
    let reason = call.query.get("reason").filter(|reason| !reason.is_empty());
    let runtime = &call.api.runtime;
    match operation {
        "terminate" => {
            let reason = reason.unwrap_or("terminated by a client");
            runtime.terminate(id, reason).await?
        }
        "suspend" => {
            let reason = reason.unwrap_or("suspended by a client");
            runtime.suspend(id, reason).await?
        }
        _ => {
            let reason = reason.unwrap_or("resumed by a client");
            runtime.resume(id, reason).await?
        }
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST instances/{id}/rewind`: a Failed instance runs again from its failures. 202;
/// 404 unknown; 412 for any other status.
pub async fn rewind(call: Call, id: &str) -> Result<Response, Error> {
    let reason = call
        .query
        .get("reason")
        .filter(|reason| !reason.is_empty())
        .unwrap_or("rewound by a client")
        .to_string();
    let runtime = &call.api.runtime;
    let instance = runtime.store().instance(id).await?.ok_or_else(|| {
        Error::Text(
            StatusCode::NOT_FOUND,
            format!("No instance with ID '{id}' was found."),
        )
    })?;
    if instance.status != RuntimeStatus::Failed {
        return Err(Error::Text(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "This orchestration has status {}, but only orchestrations in the \"Failed\" state can be rewound.",
                instance.status.as_str()
            ),
        ));
    }
    runtime.rewind(id, &reason).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `POST instances/{id}/restart`: the same orchestrator with the same input, under a new
/// id (`restartWithNewInstanceId`, default true) or the same one. 400 unknown; 409 if
/// the same id has not ended.
pub async fn restart(call: Call, id: &str) -> Result<Response, Error> {
    let new_id = call.query.flag("restartWithNewInstanceId").unwrap_or(true);
    let runtime = &call.api.runtime;
    let Some(instance) = runtime.store().instance(id).await? else {
        return Err(Error::BadRequest(
            "InstanceId does not match a valid orchestration instance.".to_string(),
        ));
    };
    let id = (!new_id).then_some(instance.id.as_str());
    let started = runtime.start(&instance.name, &instance.input, id).await?;
    orchestrators::started(&call, &started).await
}

/// `POST instances/{id}/raiseEvent/{name}`: 404 unknown, 410 ended (as the extension
/// answers), 400 for a body that is not JSON; for a running instance 501, because Weft
/// has no external events yet.
pub async fn raise_event(mut call: Call, id: &str, event: &str) -> Result<Response, Error> {
    let instance = call
        .api
        .runtime
        .store()
        .instance(id)
        .await?
        .ok_or_else(|| unknown(id))?;
    if instance.status.is_terminal() {
        return Err(Error::Gone(format!(
            "instance '{id}' has already ended ({})",
            instance.status.as_str()
        )));
    }
    let is_json = super::header(&call.headers, "content-type").is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(Error::BadRequest(
            "Only application/json request content is supported".to_string(),
        ));
    }
    let body = call.body().await?;
    orchestrators::input(&body, call.listener)?;
    Err(Error::NotImplemented(format!(
        "cannot raise '{event}' on '{id}': external events are not supported yet"
    )))
}

/// `DELETE instances/{id}`: 200 `{"instancesDeleted": 1}`; 404 unknown; 412 for an
/// instance that has not ended.
pub async fn purge(call: Call, id: &str) -> Result<Response, Error> {
    let store = call.api.runtime.store();
    match store.purge(id).await {
        Ok(true) => Ok(Json(json!({ "instancesDeleted": 1 })).into_response()),
        Ok(false) => Err(unknown(id)),
        Err(crate::store::Error::NotEnded(_)) => {
            let status = store
                .instance(id)
                .await?
                .map_or("Running", |instance| instance.status.as_str());
            Err(Error::Text(
                StatusCode::PRECONDITION_FAILED,
                format!(
                    "Only orchestrations in a terminal state can be purged, but {id} has status {status}"
                ),
            ))
        }
        Err(other) => Err(other.into()),
    }
}

/// `DELETE instances`: purges the ended instances the filter selects. `createdTimeFrom`
/// is required, so a bare DELETE never purges everything; 404 when nothing matched.
pub async fn purge_many(call: Call) -> Result<Response, Error> {
    if call.query.time("createdTimeFrom").is_none() {
        return Err(Error::Text(
            StatusCode::BAD_REQUEST,
            "Please provide value for 'createdTimeFrom' parameter.".to_string(),
        ));
    }
    let deleted = match filter(&call) {
        Some(mut filter) => {
            filter.created_to.get_or_insert_with(chrono::Utc::now);
            call.api.runtime.store().purge_many(&filter).await?
        }
        None => 0,
    };
    if deleted == 0 {
        return Err(Error::NotFound(
            "no ended instance matches the filter".to_string(),
        ));
    }
    Ok(Json(json!({ "instancesDeleted": deleted })).into_response())
}
