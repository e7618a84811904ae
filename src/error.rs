//! One error type for the web layer. Users see a short, translated message; logs get the cause.
//! HTML responses are rendered in the caller's language by `web::errors::render_error_pages`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request body arrived too slowly (`web::limits`).
    #[error("request body too slow")]
    BodyTooSlow,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("too many attempts, retry after {retry_after_secs} s")]
    TooManyRequests { retry_after_secs: u64 },
    /// A store error, its cause kept: 503 when the database cannot be reached, 409 for a unique
    /// violation no handler turned into a field's message, 500 otherwise.
    #[error("database error: {0}")]
    Database(#[from] crate::db::DbError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The catalogue key of the message shown to the user.
    pub fn message_key(&self) -> &'static str {
        match self {
            Self::NotFound => "error.not_found",
            Self::BadRequest(_) => "error.bad_request",
            Self::BodyTooSlow => "error.body_too_slow",
            Self::Forbidden(key) => key,
            Self::TooManyRequests { .. } => "error.too_many_requests",
            Self::Database(e) if e.is_unavailable() => "error.database",
            Self::Database(e) if e.is_unique_violation() => "error.conflict",
            Self::Database(_) => "error.internal",
            Self::Internal(_) => "error.internal",
        }
    }
}

impl AppError {
    /// A form that could not be read: too slow a body, or malformed.
    pub fn from_form(e: actix_web::error::UrlencodedError) -> Self {
        Self::from_body(&e.to_string(), matches!(&e, actix_web::error::UrlencodedError::Payload(p) if is_too_slow(p)))
    }

    /// A body read that failed.
    pub fn from_payload(e: &actix_web::error::PayloadError) -> Self {
        Self::from_body(&e.to_string(), is_too_slow(e))
    }

    fn from_body(message: &str, too_slow: bool) -> Self {
        if too_slow { Self::BodyTooSlow } else { Self::BadRequest(message.to_owned()) }
    }
}

/// Whether a body read failed because the body arrived too slowly (`web::limits` ends such a body
/// with an I/O error of kind `TimedOut`).
pub fn is_too_slow(e: &actix_web::error::PayloadError) -> bool {
    matches!(e, actix_web::error::PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Database(e.into())
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooSlow => StatusCode::REQUEST_TIMEOUT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Database(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(e) if e.is_unique_violation() => StatusCode::CONFLICT,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            tracing::error!(error = %chain(self), "request failed");
        } else if let Self::Database(e) = self {
            tracing::warn!(error = %chain(e), "request conflicted");
        }
        let mut res = HttpResponse::build(self.status_code());
        if let Self::TooManyRequests { retry_after_secs } = self {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        // Replaced by a localised page in `web::errors`; this text is the fallback.
        res.content_type("text/plain; charset=utf-8").body(self.message_key())
    }
}

/// The error and its causes on one line, each cause once (`a: b: c`): a message that already
/// quotes its source is not repeated.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbError;

    #[test]
    fn database_errors_answer_by_what_went_wrong() {
        let unavailable = AppError::from(DbError::from(diesel::ConnectionError::BadConnection("refused".into())));
        assert_eq!(unavailable.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.message_key(), "error.database");
        let closed = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            Box::new("server closed the connection".to_owned()),
        );
        assert_eq!(AppError::from(closed).status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let unique = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new("duplicate key".to_owned()),
        );
        let unique = AppError::from(unique);
        assert_eq!((unique.status_code(), unique.message_key()), (StatusCode::CONFLICT, "error.conflict"));
        let other = AppError::from(diesel::result::Error::NotFound);
        assert_eq!((other.status_code(), other.message_key()), (StatusCode::INTERNAL_SERVER_ERROR, "error.internal"));
    }

    #[test]
    fn the_log_line_keeps_the_cause() {
        let e = AppError::from(DbError::from(diesel::ConnectionError::BadConnection("connection refused".into())));
        let line = chain(&e);
        assert!(
            line.starts_with("database error: the database is unavailable") && line.contains("connection refused"),
            "{line}"
        );
    }
}
