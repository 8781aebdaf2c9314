//! The HTTP API of `weft serve`, shaped like Durable Functions' so that its clients work:
//! `POST /orchestrators/{name}` starts an instance, and the management URLs under
//! `/runtime/webhooks/durabletask/instances` query and control it. Every route also
//! answers under an `/api` prefix, and every route requires the key.

mod error;
mod instances;
pub mod key;
mod orchestrators;

use crate::runtime::Runtime;
use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
pub use error::Error;
use std::collections::HashMap;
use std::sync::Arc;

/// What every handler shares.
pub struct Api {
    pub runtime: Arc<Runtime>,
    pub key: String,
}

type Shared = State<Arc<Api>>;

const INSTANCES: &str = "/runtime/webhooks/durabletask/instances";

/// The API's routes, with and without the `/api` prefix.
pub fn router(api: Arc<Api>) -> Router {
    let routes = Router::new()
        .route("/orchestrators/{name}", post(orchestrators::start))
        .route(
            "/orchestrators/{name}/{instance_id}",
            post(orchestrators::start_with_id),
        )
        .route(
            INSTANCES,
            get(instances::list).delete(instances::purge_many),
        )
        .route(
            &format!("{INSTANCES}/{{id}}"),
            get(instances::status).delete(instances::purge),
        )
        .route(
            &format!("{INSTANCES}/{{id}}/terminate"),
            post(instances::terminate),
        )
        .route(
            &format!("{INSTANCES}/{{id}}/suspend"),
            post(instances::suspend),
        )
        .route(
            &format!("{INSTANCES}/{{id}}/resume"),
            post(instances::resume),
        )
        .route(
            &format!("{INSTANCES}/{{id}}/raiseEvent/{{event}}"),
            post(instances::raise_event),
        )
        .route(
            &format!("{INSTANCES}/{{id}}/rewind"),
            post(instances::rewind),
        )
        .fallback(|| async { Error::NotFound("no such route".to_string()) });
    Router::new()
        .nest("/api", routes.clone())
        .merge(routes)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            require_key,
        ))
        .with_state(api)
}

/// Rejects requests without the key, given as the `code` query parameter or the
/// `x-functions-key` header, as Azure Functions does.
async fn require_key(State(api): Shared, request: Request, next: Next) -> Result<Response, Error> {
    let query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map_err(|e| Error::BadRequest(format!("bad query string: {e}")))?;
    let given = query
        .get("code")
        .cloned()
        .or_else(|| header(request.headers(), "x-functions-key"));
    match given {
        Some(given) if key::matches(&api.key, &given) => Ok(next.run(request).await),
        Some(_) => Err(Error::Unauthorized("the key is wrong".to_string())),
        None => Err(Error::Unauthorized(
            "a key is required: pass ?code=KEY or the x-functions-key header".to_string(),
        )),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Where clients reach this server, from the request's `Host` header.
fn base_url(headers: &HeaderMap) -> String {
    format!(
        "http://{}",
        header(headers, "host").unwrap_or_else(|| "localhost".to_string())
    )
}
