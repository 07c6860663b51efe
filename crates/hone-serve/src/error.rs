//! Errors in OpenAI's JSON shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP
//! status clients branch on (400 bad request, 401 no key, 403 refused origin, 404 unknown model,
//! 413 body too large, 429 queue full, 504 time limit).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a client.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `rate_limit_error`, ...
    pub kind: &'static str,
    /// The request field at fault, when there is one.
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is malformed or out of bounds; `param` names the field.
    pub fn invalid(param: impl Into<Option<String>>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.into(),
            code: None,
        }
    }

    /// 400 on field `param`.
    pub fn field(param: &str, message: impl Into<String>) -> ApiError {
        ApiError::invalid(Some(param.to_string()), message)
    }

    pub fn with_code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// 404: no such model.
    pub fn unknown_model(id: &str, known: &[String]) -> ApiError {
        ApiError::field("model", format!("The model `{id}` does not exist here; served models: {}.", known.join(", ")))
            .with_status(StatusCode::NOT_FOUND)
            .with_code("model_not_found")
    }

    /// 401: the API key is missing or wrong.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: "Missing or incorrect API key: send `Authorization: Bearer KEY` with the key the server was started with."
                .into(),
            kind: "authentication_error",
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    /// 403: a request from another site, or to a host name this server does not answer to.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
            kind: "permission_error",
            param: None,
            code: Some("forbidden"),
        }
    }

    /// 429: the model's queue is full.
    pub fn busy(model: &str, queue: usize) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("The model `{model}` has {queue} requests waiting, its limit: retry shortly."),
            kind: "rate_limit_error",
            param: None,
            code: Some("queue_full"),
        }
    }

    /// 500: the server failed (a model error); the message says what happened.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            code: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

/// A JSON body parse error as a 400 naming the field and position serde reports.
pub fn parse_error(e: &serde_json::Error) -> ApiError {
    let msg = e.to_string();
    // serde names the field in messages like "unknown field `x`" or "invalid type: ... for `x`";
    // the path of a nested error is not kept, so the message carries line and column instead.
    let param = msg.split('`').nth(1).filter(|_| msg.contains("field")).map(str::to_string);
    ApiError::invalid(param, format!("Could not parse the JSON body: {msg}."))
}
