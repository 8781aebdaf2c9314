//! The dashboard's controls: each a POST of a confirmation form, carried out by the same
//! functions the HTTP API's handlers call (`api::instances::request_*`), so both apply the
//! same checks and answer the same refusals.

use super::{SMALL_FORM, Visit, error_page, instance_path, redirect};
use crate::api::Listener;
use crate::api::instances::{self, Control};
use axum::body::Body;
use axum::response::Response;

/// A control on one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Terminate,
    Suspend,
    Resume,
    Rewind,
    Restart,
    RaiseEvent,
    Purge,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Self::Terminate,
        Self::Suspend,
        Self::Resume,
        Self::Rewind,
        Self::Restart,
        Self::RaiseEvent,
        Self::Purge,
    ];

    /// The action's segment in the dashboard's paths.
    pub fn slug(self) -> &'static str {
        match self {
            Self::Terminate => "terminate",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Rewind => "rewind",
            Self::Restart => "restart",
            Self::RaiseEvent => "raise-event",
            Self::Purge => "purge",
        }
    }

    pub fn parse(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.slug() == slug)
    }

    /// The button's text.
    pub fn label(self) -> &'static str {
        match self {
            Self::Terminate => "Terminate",
            Self::Suspend => "Suspend",
            Self::Resume => "Resume",
            Self::Rewind => "Rewind",
            Self::Restart => "Restart",
            Self::RaiseEvent => "Raise event",
            Self::Purge => "Purge",
        }
    }

    /// What the confirmation page says the action does.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::Terminate => {
                "The instance ends now as Terminated; its running activities are cancelled. This cannot be undone."
            }
            Self::Suspend => {
                "The instance pauses: results that arrive are kept but not acted on until it is resumed."
            }
            Self::Resume => "The suspended instance goes on.",
            Self::Rewind => {
                "The failed instance runs again from its failures: failed activities run again, completed ones are not re-run."
            }
            Self::Restart => {
                "The same orchestrator starts again with the same input, as a new instance unless you clear the box."
            }
            Self::RaiseEvent => {
                "The event is delivered to the instance and kept until its orchestrator waits for it."
            }
            Self::Purge => {
                "The ended instance and its whole history are deleted. This cannot be undone."
            }
        }
    }

    /// Whether the action applies to an instance in `status`; the API refuses it
    /// otherwise, so the page only offers the ones that apply.
    pub fn applies(self, status: crate::store::RuntimeStatus) -> bool {
        use crate::store::RuntimeStatus::*;
        match self {
            Self::Terminate | Self::RaiseEvent => !status.is_terminal(),
            Self::Suspend => matches!(status, Pending | Running),
            Self::Resume => status == Suspended,
            Self::Rewind => status == Failed,
            Self::Restart => true,
            Self::Purge => status.is_terminal(),
        }
    }
}

/// Carries out `action` on instance `id` with the confirmation form's fields, then goes
/// to the instance's page (the new one after a restart, the list after a purge). A
/// refusal is a page with the API's status code and message.
pub async fn perform(visit: Visit, body: Body, id: &str, action: Action) -> Response {
    let runtime = visit.api.runtime.clone();
    let limit = match action {
        Action::RaiseEvent => runtime.payload_limit().saturating_add(SMALL_FORM),
        _ => SMALL_FORM,
    };
    let form = match super::form(body, limit).await {
        Ok(form) => form,
        Err(error) => return error_page(&error),
    };
    let reason = form.get("reason");
    let done = |slug: &str| format!("{}?done={slug}", instance_path(id));
    let result = match action {
        Action::Terminate | Action::Suspend | Action::Resume => {
            let control = match action {
                Action::Terminate => Control::Terminate,
                Action::Suspend => Control::Suspend,
                _ => Control::Resume,
            };
            instances::request_control(&runtime, id, control, reason)
                .await
                .map(|()| done(action.slug()))
        }
        Action::Rewind => instances::request_rewind(&visit.api, id, reason)
            .await
            .map(|()| done(action.slug())),
        Action::Restart => {
            let new_id = form.get("new_id").is_some();
            instances::request_restart(&runtime, id, new_id)
                .await
                .map(|started| format!("{}?done=restart", instance_path(&started.id)))
        }
        Action::RaiseEvent => {
            let name = form.get("event").unwrap_or_default();
            let data = form.get("data").unwrap_or_default();
            match instances::check_raise(&runtime, id).await {
                Ok(()) => {
                    instances::request_raise(&runtime, id, name, data.as_bytes(), Listener::Public)
                        .await
                        .map(|()| done(action.slug()))
                }
                Err(error) => Err(error),
            }
        }
        Action::Purge => instances::request_purge(&runtime, id)
            .await
            .map(|()| "/?done=purge".to_string()),
    };
    match result {
        Ok(location) => redirect(&location),
        Err(error) => error_page(&error),
    }
}
