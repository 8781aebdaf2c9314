//! `/runtime/webhooks/durabletask/instances`: status, listing, terminate, suspend,
//! resume, events and purge, with Durable Functions' status codes.

use super::{Error, INSTANCES, Shared, base_url};
use crate::status;
use crate::store::{Event, InstanceFilter, RuntimeStatus};
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header as headers};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// The paging header of the list and purge routes.
const CONTINUATION: &str = "x-ms-continuation-token";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    #[serde(default)]
    show_history: bool,
    #[serde(default)]
    show_history_output: bool,
    show_input: Option<bool>,
    #[serde(default)]
    return_internal_server_error_on_failure: bool,
    code: Option<String>,
}

pub async fn status(
    state: Shared,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
    request: HeaderMap,
) -> Result<Response, Error> {
    let api = state.0;
    let store = api.runtime.store();
    let instance = store
        .instance(&id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no instance with id '{id}'")))?;
    let mut body = status::instance_json(&instance);
    if query.show_input == Some(false)
        && let Value::Object(fields) = &mut body
    {
        fields.remove("input");
    }
    if query.show_history {
        let events: Vec<Value> = store
            .history(&id)
            .await?
            .iter()
            .map(|event| {
                let mut value = status::event_json(event);
                if !query.show_history_output
                    && let Value::Object(fields) = &mut value
                {
                    fields.remove("result");
                }
                value
            })
            .collect();
        body["historyEvents"] = Value::Array(events);
    }
    let code = match instance.status {
        RuntimeStatus::Completed => StatusCode::OK,
        RuntimeStatus::Failed | RuntimeStatus::Terminated
            if query.return_internal_server_error_on_failure =>
        {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        RuntimeStatus::Failed | RuntimeStatus::Terminated => StatusCode::BAD_REQUEST,
        RuntimeStatus::Pending | RuntimeStatus::Running | RuntimeStatus::Suspended => {
            let location = format!(
                "{}{INSTANCES}/{id}?code={}",
                base_url(&request),
                query.code.unwrap_or_else(|| api.key.clone())
            );
            let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(headers::LOCATION, value);
            }
            return Ok(response);
        }
    };
    Ok((code, Json(body)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    runtime_status: Option<String>,
    created_time_from: Option<String>,
    created_time_to: Option<String>,
    top: Option<usize>,
}

impl ListQuery {
    fn filter(&self) -> Result<InstanceFilter, Error> {
        let statuses = match &self.runtime_status {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(|name| {
                    RuntimeStatus::parse(name).ok_or_else(|| {
                        let known: Vec<_> = RuntimeStatus::ALL.iter().map(|s| s.as_str()).collect();
                        Error::BadRequest(format!(
                            "unknown runtimeStatus '{name}'; use {}",
                            known.join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(InstanceFilter {
            statuses,
            created_from: self.created_time_from.as_deref().map(time).transpose()?,
            created_to: self.created_time_to.as_deref().map(time).transpose()?,
        })
    }
}

fn time(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|e| Error::BadRequest(format!("'{text}' is not an RFC 3339 time: {e}")))
}

pub async fn list(
    state: Shared,
    Query(query): Query<ListQuery>,
    request: HeaderMap,
) -> Result<Response, Error> {
    let filter = query.filter()?;
    let skip = match request
        .get(CONTINUATION)
        .map(|value| value.to_str().map(str::parse::<usize>))
    {
        None => 0,
        Some(Ok(Ok(skip))) => skip,
        Some(_) => return Err(Error::BadRequest(format!("bad {CONTINUATION} header"))),
    };
    let page = query.top.unwrap_or(usize::MAX);
    if page == 0 {
        return Err(Error::BadRequest("top must be at least 1".to_string()));
    }
    let mut instances = state
        .0
        .runtime
        .store()
        .list_instances(&filter, skip, page.saturating_add(1))
        .await?;
    let more = instances.len() > page;
    instances.truncate(page);
    let body: Vec<Value> = instances.iter().map(status::instance_json).collect();
    let mut response = Json(body).into_response();
    if more && let Ok(value) = HeaderValue::from_str(&(skip + page).to_string()) {
        response.headers_mut().insert(CONTINUATION, value);
    }
    Ok(response)
}

#[derive(Debug, Default, Deserialize)]
pub struct ReasonQuery {
    reason: Option<String>,
}

/// A control request: 202 once the message is posted.
async fn control(
    state: Shared,
    id: &str,
    reason: Option<String>,
    default_reason: &str,
    event: fn(String) -> Event,
) -> Result<Response, Error> {
    let reason = reason.unwrap_or_else(|| default_reason.to_string());
    state.0.runtime.control(id, event(reason)).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

pub async fn terminate(
    state: Shared,
    Path(id): Path<String>,
    Query(query): Query<ReasonQuery>,
) -> Result<Response, Error> {
    let event = |reason| Event::ExecutionTerminated { reason };
    control(state, &id, query.reason, "terminated by a client", event).await
}

pub async fn suspend(
    state: Shared,
    Path(id): Path<String>,
    Query(query): Query<ReasonQuery>,
) -> Result<Response, Error> {
    let event = |reason| Event::ExecutionSuspended { reason };
    control(state, &id, query.reason, "suspended by a client", event).await
}

pub async fn resume(
    state: Shared,
    Path(id): Path<String>,
    Query(query): Query<ReasonQuery>,
) -> Result<Response, Error> {
    let event = |reason| Event::ExecutionResumed { reason };
    control(state, &id, query.reason, "resumed by a client", event).await
}

pub async fn raise_event(_state: Shared, Path((_id, event)): Path<(String, String)>) -> Error {
    Error::NotImplemented(format!(
        "cannot raise '{event}': external events are not supported yet"
    ))
}

pub async fn rewind(_state: Shared, Path(_id): Path<String>) -> Error {
    Error::NotImplemented("rewind is not supported".to_string())
}

pub async fn purge(state: Shared, Path(id): Path<String>) -> Result<Response, Error> {
    if state.0.runtime.store().purge(&id).await? {
        Ok(Json(json!({ "instancesDeleted": 1 })).into_response())
    } else {
        Err(Error::NotFound(format!("no instance with id '{id}'")))
    }
}

pub async fn purge_many(state: Shared, Query(query): Query<ListQuery>) -> Result<Response, Error> {
    let deleted = state.0.runtime.store().purge_many(&query.filter()?).await?;
    if deleted == 0 {
        return Err(Error::NotFound(
            "no ended instance matches the filter".to_string(),
        ));
    }
    Ok(Json(json!({ "instancesDeleted": deleted })).into_response())
}
