//! Why the store could not do what was asked, classified by what the caller should do about
//! it: retry later ([`StoreError::Unavailable`]), re-read and write again
//! ([`StoreError::Conflict`]), restore a backup ([`StoreError::Corrupt`]), or fix wenda
//! ([`StoreError::Internal`]). Each backend maps its driver's errors here in one place, so a
//! bug in a query is never reported to clients (and to operators' alerts) as an outage.

use std::panic::Location;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or cannot take the write now (connection refused or
    /// reset, no pooled connection in time, disk full, read-only, busy, a serialization
    /// failure): nothing was written; retrying later may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The disk, or the size the store is allowed (`--max-store-bytes`), is full: nothing was
    /// written; writes succeed again once documents are deleted or room is made.
    #[error("storage full: {0}")]
    Full(String),
    /// The write collided with another one (a constraint a concurrent writer got to first):
    /// nothing was written; the same request may succeed once re-read and sent again.
    #[error("the write conflicts with another: {0}")]
    Conflict(String),
    #[error("{path} is damaged: {problem}; restore it from a backup (`wenda backup`)")]
    Corrupt { path: String, problem: String },
    /// The database refused a statement wenda sent (a syntax error, a missing table or
    /// column, a type it does not accept): a bug, not an outage, so never worth a retry.
    /// `statement` is where the statement is run in wenda's source, for the log.
    #[error("the database refused the statement at {statement}: {message}")]
    Internal {
        statement: &'static Location<'static>,
        message: String,
    },
    #[error("{0} is used by another wenda process; stop it or give another --data-dir")]
    InUse(String),
    #[error("{path} was written by a newer wenda (schema {found}; this one knows up to {known})")]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("{0}")]
    Incompatible(String),
    #[error("no collection is named {0:?}")]
    UnknownCollection(String),
    #[error("passage id {passage:?} already belongs to document {document:?}")]
    PassageTaken { passage: String, document: String },
}

impl StoreError {
    /// A statement refused at the caller's location (the `?` that converts a driver's error
    /// passes its own location through `#[track_caller]` conversions).
    #[track_caller]
    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal {
            statement: Location::caller(),
            message: message.to_string(),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        Self::Unavailable(error.to_string())
    }
}

pub(crate) type Result<T> = std::result::Result<T, StoreError>;
