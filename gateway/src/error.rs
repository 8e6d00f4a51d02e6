//! The gateway's one error type: every failure becomes an HTTP status and a RealWorld-shaped
//! body, `{"errors": {"<field>": ["<problem>"]}}`, never a bare 500 for a client's mistake.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use soulchat_subjects::{CallError, ServiceError};

#[derive(Debug)]
pub struct ApiError(pub ServiceError);

/// The body of every error: each field (or `body`, `path`, `query`, `token`, `rate`...) with its
/// problems, for example `{"errors": {"username": ["has already been taken"]}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub errors: std::collections::BTreeMap<String, Vec<String>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { errors: self.0.fields };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(wait) = self.0.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}
