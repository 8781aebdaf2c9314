//! `instances[/{id}[/{operation}]]`: status, listing, purge, terminate, suspend, resume,
//! rewind, restart and events, with the extension's status codes and bodies.

use super::query::Statuses;
use super::{Call, Error, Listener, orchestrators};
use crate::runtime::Runtime;
use crate::status;
use crate::store::{Instance, InstanceFilter, Listing, RuntimeStatus};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// The paging header of the list route, in both directions.
const CONTINUATION: &str = "x-ms-continuation-token";
/// A page's size when the client gives no `top` (the extension's default).
const DEFAULT_PAGE: usize = 100;
/// The largest page, whatever `top` asks for: a page is held in memory.
const MAX_PAGE: usize = 1000;
/// The payload bytes (inputs, outputs, custom statuses) a page reads before it ends
/// early, so that a page of large instances cannot take the server's memory.
const PAGE_BYTES: usize = 16 << 20;

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
    let _turn;
    if call.query.flag("showHistory").unwrap_or(false) {
        _turn = call.api.history_turn().await?;
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
        ..InstanceFilter::default()
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
    let Some(mut filter) = filter(&call) else {
        return Ok(Json(json!([])).into_response());
    };
    filter.id_prefix = prefix.to_string();
    let payloads = if show_input {
        Payloads::All
    } else {
        Payloads::NoInput
    };
    let (selected, next) = page_of(&call.api.runtime, &filter, skip, page, payloads).await?;
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
    if let Some(next) = next
        && let Ok(value) = HeaderValue::from_str(&next.to_string())
    {
        response.headers_mut().insert(CONTINUATION, value);
    }
    Ok(response)
}

/// One page of the instances `filter` selects, newest first, from offset `skip`: at most
/// `page` of them, fewer if their payloads reach [`PAGE_BYTES`], and the offset of the
/// next page if there is one. `payloads` says whether to read each instance's input
/// (output and custom status are read then too); without them, a page is summaries only.
/// The list route and the dashboard's instances page share it.
pub(crate) async fn page_of(
    runtime: &Runtime,
    filter: &InstanceFilter,
    skip: usize,
    page: usize,
    payloads: Payloads,
) -> Result<(Vec<Instance>, Option<usize>), Error> {
    let listing = Listing {
        skip,
        limit: page.clamp(1, MAX_PAGE),
        input: payloads == Payloads::All,
        output: payloads != Payloads::None,
        max_bytes: PAGE_BYTES,
    };
    let listed = runtime.store().list_instances(filter, listing).await?;
    let next = skip.saturating_add(listed.instances.len());
    Ok((listed.instances, listed.more.then_some(next)))
}

/// Which payloads a page of instances reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Payloads {
    /// Input, output and custom status.
    All,
    /// Output and custom status (the list route with `showInput=false`).
    NoInput,
    /// None: the instances' summaries.
    None,
}

/// A control request on one instance, as the API and the dashboard name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Terminate,
    Suspend,
    Resume,
}

impl Control {
    pub(crate) fn parse(operation: &str) -> Option<Self> {
        match operation.to_ascii_lowercase().as_str() {
            "terminate" => Some(Self::Terminate),
            "suspend" => Some(Self::Suspend),
            "resume" => Some(Self::Resume),
            _ => None,
        }
    }
}

/// Posts a terminate, suspend or resume request, with `reason` or a default one.
/// [`Error::NotFound`] unknown; [`Error::Gone`] ended.
pub(crate) async fn request_control(
    runtime: &Arc<Runtime>,
    id: &str,
    control: Control,
    reason: Option<&str>,
) -> Result<(), Error> {
    let reason = reason.filter(|reason| !reason.is_empty());
    match control {
        Control::Terminate => {
            let reason = reason.unwrap_or("terminated by a client");
            runtime.terminate(id, reason).await?
        }
        Control::Suspend => {
            let reason = reason.unwrap_or("suspended by a client");
            runtime.suspend(id, reason).await?
        }
        Control::Resume => {
            let reason = reason.unwrap_or("resumed by a client");
            runtime.resume(id, reason).await?
        }
    }
    Ok(())
}

/// `POST instances/{id}/terminate|suspend|resume`: 202 once posted; 404 unknown; 410
/// ended.
pub async fn control(call: Call, id: &str, operation: &str) -> Result<Response, Error> {
    let control = Control::parse(operation).ok_or_else(super::no_route)?;
    request_control(&call.api.runtime, id, control, call.query.get("reason")).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Rewinds a Failed instance, with `reason` or a default one. 404 unknown; 412 for any
/// other status (both with the extension's bare-string bodies).
pub(crate) async fn request_rewind(
    api: &super::Api,
    id: &str,
    reason: Option<&str>,
) -> Result<(), Error> {
    let runtime = &api.runtime;
    let reason = reason
        .filter(|reason| !reason.is_empty())
        .unwrap_or("rewound by a client");
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
    // A rewind reads the whole history to plan what runs again.
    let _turn = api.history_turn().await?;
    runtime.rewind(id, reason).await?;
    Ok(())
}

/// `POST instances/{id}/rewind`: a Failed instance runs again from its failures. 202;
/// 404 unknown; 412 for any other status.
pub async fn rewind(call: Call, id: &str) -> Result<Response, Error> {
    request_rewind(&call.api, id, call.query.get("reason")).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Starts the same orchestrator with the same input, under a new id or the same one.
/// 400 unknown; 409 if the same id has not ended.
pub(crate) async fn request_restart(
    runtime: &Arc<Runtime>,
    id: &str,
    new_id: bool,
) -> Result<Instance, Error> {
    let Some(instance) = runtime.store().instance(id).await? else {
        return Err(Error::BadRequest(
            "InstanceId does not match a valid orchestration instance.".to_string(),
        ));
    };
    let id = (!new_id).then_some(instance.id.as_str());
    Ok(runtime.start(&instance.name, &instance.input, id).await?)
}

/// `POST instances/{id}/restart`: the same orchestrator with the same input, under a new
/// id (`restartWithNewInstanceId`, default true) or the same one. 400 unknown; 409 if
/// the same id has not ended.
pub async fn restart(call: Call, id: &str) -> Result<Response, Error> {
    let new_id = call.query.flag("restartWithNewInstanceId").unwrap_or(true);
    let started = request_restart(&call.api.runtime, id, new_id).await?;
    orchestrators::started(&call, &started).await
}

/// Checks that an event may be raised on instance `id`: 404 unknown, 410 ended (as the
/// extension answers).
pub(crate) async fn check_raise(runtime: &Runtime, id: &str) -> Result<(), Error> {
    let instance = runtime
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
    Ok(())
}

/// Raises event `event` with `body` (JSON text; an empty body is `null`) on a running
/// instance, as read on `listener`.
pub(crate) async fn request_raise(
    runtime: &Arc<Runtime>,
    id: &str,
    event: &str,
    body: &[u8],
    listener: Listener,
) -> Result<(), Error> {
    let data = orchestrators::input(body, listener)?;
    runtime.raise_event(id, event, &data).await?;
    Ok(())
}

/// `POST instances/{id}/raiseEvent/{name}`: 202 once the event is in the instance's
/// inbox (it is kept until the orchestrator waits for it); 404 unknown, 410 ended (as the
/// extension answers), 400 for a body that is not JSON.
pub async fn raise_event(mut call: Call, id: &str, event: &str) -> Result<Response, Error> {
    check_raise(&call.api.runtime, id).await?;
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
    request_raise(&call.api.runtime, id, event, &body, call.listener).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Purges an ended instance. 404 unknown; 412 for an instance that has not ended.
pub(crate) async fn request_purge(runtime: &Runtime, id: &str) -> Result<(), Error> {
    let store = runtime.store();
    match store.purge(id).await {
        Ok(true) => Ok(()),
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

/// `DELETE instances/{id}`: 200 `{"instancesDeleted": 1}`; 404 unknown; 412 for an
/// instance that has not ended.
pub async fn purge(call: Call, id: &str) -> Result<Response, Error> {
    request_purge(&call.api.runtime, id).await?;
    Ok(Json(json!({ "instancesDeleted": 1 })).into_response())
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
