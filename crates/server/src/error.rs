//! The one error shape every endpoint answers with: a status and `{"error": "..."}` that says
//! what is wrong and, where it can, how to fix it.

use axum::Json;
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use footfall_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for `Retry-After`, where it is known.
    retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }

    /// Tells the client when to try again.
    pub fn retry_after(self, seconds: i64) -> ApiError {
        ApiError { retry_after: Some(seconds), ..self }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        // Storage trouble passes, and clients that honour this back off rather than hammer.
        let unavailable = self.status == StatusCode::SERVICE_UNAVAILABLE;
        if let Some(seconds) = self.retry_after.or(unavailable.then_some(5)) {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("storage is failing: {e}"))
    }
}
