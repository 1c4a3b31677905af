//! API errors and their wire form, the metav1 Status object.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request the API server refuses, with the reason the real server gives.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {cause}")]
    Conflict {
        resource: String,
        name: String,
        cause: String,
    },
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("{0}")]
    BadRequest(String),
    #[error("{kind} \"{name}\" is invalid: {cause}")]
    Invalid {
        kind: String,
        name: String,
        cause: String,
    },
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Internal(String),
    #[error("the server could not find the requested resource")]
    UnknownPath,
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {accepted}"
    )]
    UnsupportedMediaType { accepted: String },
}

impl ApiError {
    pub fn conflict_modified(resource: String, name: String) -> Self {
        ApiError::Conflict {
            resource,
            name,
            cause: "the object has been modified; please apply your changes to the latest version and try again".into(),
        }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Expired { .. } => StatusCode::GONE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::UnknownPath => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Expired { .. } => "Expired",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::Unauthorized => "Unauthorized",
            ApiError::Internal(_) => "InternalError",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
        }
    }

    /// The metav1 Status object the real server sends for this error.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        let details = match self {
            ApiError::NotFound { resource, name }
            | ApiError::AlreadyExists { resource, name }
            | ApiError::Conflict { resource, name, .. } => Some(details(resource, name)),
            ApiError::Invalid { kind, name, cause } => {
                Some(json!({"name": name, "kind": kind, "causes": causes(cause)}))
            }
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

/// The field errors of an Invalid error's text (one `FIELD: TYPE: DETAIL`, or several in
/// brackets joined by ", ") as details.causes, which kubectl prints.
fn causes(text: &str) -> Vec<Value> {
    let list = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let mut errors: Vec<String> = Vec::new();
    for part in list.split(", ") {
        // A new error starts with its field path and error type; anything else continues the
        // message of the one before.
        match errors.last_mut() {
            Some(last) if !starts_field_error(part) => {
                last.push_str(", ");
                last.push_str(part);
            }
            _ => errors.push(part.to_string()),
        }
    }
    errors
        .iter()
        .map(|e| {
            let (field, message) = e.split_once(": ").unwrap_or(("", e));
            let kind = message.split(':').next().unwrap_or_default();
            let reason = match kind {
                "Forbidden" => "FieldValueForbidden",
                "Required value" => "FieldValueRequired",
                "Duplicate value" => "FieldValueDuplicate",
                "Not found" => "FieldValueNotFound",
                "Unsupported value" => "FieldValueNotSupported",
                "Too long" => "FieldValueTooLong",
                _ => "FieldValueInvalid",
            };
            let mut cause = json!({"reason": reason, "message": message});
            if !field.is_empty() {
                cause["field"] = field.into();
            }
            cause
        })
        .collect()
}

fn starts_field_error(part: &str) -> bool {
    part.split_once(": ").is_some_and(|(field, rest)| {
        !field.contains(' ')
            && [
                "Forbidden",
                "Required value",
                "Duplicate value",
                "Not found",
                "Unsupported value",
                "Too long",
                "Invalid value",
            ]
            .iter()
            .any(|t| rest.starts_with(t))
    })
}

/// Status details name the resource by plural and group separately, as upstream does.
fn details(qualified: &str, name: &str) -> Value {
    match qualified.split_once('.') {
        Some((plural, group)) => json!({"name": name, "group": group, "kind": plural}),
        None => json!({"name": name, "kind": qualified}),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code(), axum::Json(self.status())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_errors_carry_their_causes() {
        let e = ApiError::Invalid {
            kind: "Pod".into(),
            name: "web".into(),
            cause: "[spec.ephemeralContainers[0].name: Duplicate value: \"app\", \
                    spec.ephemeralContainers: Forbidden: existing ephemeral containers \"d\" may not be removed\n]"
                .into(),
        };
        assert_eq!(
            e.status()["details"]["causes"],
            json!([
                {"reason": "FieldValueDuplicate", "message": "Duplicate value: \"app\"",
                 "field": "spec.ephemeralContainers[0].name"},
                {"reason": "FieldValueForbidden",
                 "message": "Forbidden: existing ephemeral containers \"d\" may not be removed\n",
                 "field": "spec.ephemeralContainers"}
            ])
        );
    }
}
