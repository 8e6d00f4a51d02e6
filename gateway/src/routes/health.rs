//! Liveness, readiness and the JSON 404.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use soulchat_subjects::proto::common::v1::{HealthReply, HealthRequest};
use soulchat_subjects::{CallContext, Caller, Format, SERVICES, headers};

use crate::error::ApiError;
use crate::state::AppState;
use crate::views::{Liveness, Readiness};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "The process is up.", body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// Every worker of [`SERVICES`] answers its health operation.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Every worker answers.", body = Readiness),
        (status = 503, description = "Some worker does not answer.", body = Readiness),
    ))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let answers = futures::future::join_all(SERVICES.iter().map(|s| answers(&state.caller, s.health))).await;
    let services: Vec<(&str, bool)> = SERVICES.iter().map(|s| s.name).zip(answers).collect();
    let ready = services.iter().all(|(_, up)| *up);
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        services: services.iter().map(|(name, up)| (*name, if *up { "up" } else { "down" })).collect(),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

/// Whether the worker behind a health subject answers it within the call deadline, as the
/// typed `Caller::call` of its `Health` operation would count it: a reply that is not an error
/// and decodes. The subject comes from the list of services, so the call is made by subject.
async fn answers(caller: &Caller, subject: &'static str) -> bool {
    let format = Format::Protobuf;
    let mut h = async_nats::HeaderMap::new();
    h.insert(headers::REQUEST_ID, CallContext::internal().request_id.as_str());
    h.insert(headers::CONTENT_TYPE, format.content_type());
    let request =
        async_nats::Request::new().payload(format.encode(&HealthRequest {})).headers(h).timeout(Some(caller.timeout()));
    match caller.client().send_request(subject, request).await {
        Ok(reply) => {
            let found = reply.headers.as_ref();
            found.and_then(|h| h.get(headers::SERVICE_ERROR_CODE)).is_none()
                && Format::of(found).decode::<HealthReply>(&reply.payload).is_ok()
        }
        Err(e) => {
            tracing::warn!(subject, reason = %e, "call failed");
            false
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError(soulchat_subjects::ServiceError::not_found("route"))
}
