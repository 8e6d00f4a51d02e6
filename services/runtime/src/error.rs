//! What a handler fails with. A refusal ([`ServiceError`], or a call to another worker that was
//! refused) goes back to the caller as it is; anything else (the database, an undecodable reply,
//! a bug) is logged in the request's span (subject, request id, caller) and answered as a 500
//! that tells the client nothing. Every source converts by `From`, so handlers use `?`.

use std::fmt;

use soulchat_subjects::{CallError, ServiceError};

/// A handler's error.
#[derive(Debug)]
pub enum Error {
    /// The caller gets this answer.
    Refused(ServiceError),
    /// The caller gets a 500; the detail goes to the log.
    Internal(anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A unique-key violation as `field: ["has already been taken"]` (409); any other database
    /// failure stays internal. The one place a constraint becomes a field error.
    pub fn taken_if_unique(error: sqlx::Error, field: &str) -> Error {
        if crate::Database::is_unique_violation(&error) {
            Error::Refused(ServiceError::taken(field))
        } else {
            Error::Internal(error.into())
        }
    }

    /// What the caller is told. An internal error is logged here, inside the request's span.
    pub fn into_reply(self) -> ServiceError {
        match self {
            Error::Refused(e) => e,
            Error::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "request failed");
                ServiceError::internal()
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Refused(e) => write!(f, "{e}"),
            Error::Internal(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        Error::Refused(e)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Internal(anyhow::Error::new(e).context("database"))
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Internal(e)
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            // Already logged by the caller; the client learns the worker is unavailable.
            CallError::Service(_) | CallError::Unavailable { .. } => Error::Refused(e.into()),
            CallError::Malformed { .. } => Error::Internal(e.into()),
        }
    }
}
