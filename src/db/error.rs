//! What went wrong in the store, with the cause kept: the web edge turns it into a status (503 only
//! when the database cannot be reached, 409 for a unique violation nobody handled, 500 otherwise).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// An error of the store. Each variant keeps its cause as its `source`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection: the pool timed out, a connection could not be opened, or it closed mid-query.
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] Unavailable),
    /// A row with the same value of a unique column exists (`constraint` when the driver names it).
    #[error("unique constraint violated{}: {source}", constraint.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    UniqueViolation {
        constraint: Option<String>,
        #[source]
        source: DieselError,
    },
    /// Any other failed query.
    #[error("query failed: {0}")]
    Query(#[source] DieselError),
    /// The blocking task running the work did not finish (it panicked or was cancelled).
    #[error("database task failed: {0}")]
    Task(#[source] actix_web::error::BlockingError),
}

/// Why the database could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error(transparent)]
    Pool(#[from] r2d2::Error),
    #[error(transparent)]
    Connection(#[from] diesel::ConnectionError),
    #[error(transparent)]
    Query(#[from] DieselError),
}

impl DbError {
    /// Whether the database could not be reached at all (a retry later may succeed).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::UniqueViolation { .. })
    }
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                Self::UniqueViolation { constraint: info.constraint_name().map(str::to_owned), source: e }
            }
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Self::Unavailable(e.into()),
            // SQLite's "database is locked" (busy beyond `busy_timeout`): the store is there but not now.
            DieselError::DatabaseError(_, info) if info.message().contains("database is locked") => {
                Self::Unavailable(e.into())
            }
            _ => Self::Query(e),
        }
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<diesel::ConnectionError> for DbError {
    fn from(e: diesel::ConnectionError) -> Self {
        Self::Unavailable(e.into())
    }
}

impl From<actix_web::error::BlockingError> for DbError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::Task(e)
    }
}

/// Whether a diesel error is a unique violation (for functions still returning `QueryResult`).
pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(e, DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            Some("access_keys_name_key")
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn database(kind: DatabaseErrorKind, message: &'static str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(Info(message)))
    }

    #[test]
    fn diesel_errors_are_sorted_by_what_the_caller_can_do() {
        let unique = DbError::from(database(DatabaseErrorKind::UniqueViolation, "duplicate key"));
        assert!(unique.is_unique_violation());
        assert_eq!(unique.to_string(), "unique constraint violated (access_keys_name_key): duplicate key");
        assert!(DbError::from(database(DatabaseErrorKind::ClosedConnection, "server closed")).is_unavailable());
        assert!(DbError::from(database(DatabaseErrorKind::UnableToSendCommand, "no connection")).is_unavailable());
        assert!(DbError::from(database(DatabaseErrorKind::Unknown, "database is locked")).is_unavailable());
        let other = DbError::from(database(DatabaseErrorKind::Unknown, "no such table: keys"));
        assert!(matches!(other, DbError::Query(_)));
        assert!(matches!(DbError::from(DieselError::NotFound), DbError::Query(_)));
    }

    #[test]
    fn the_chain_names_each_cause_once() {
        let e = DbError::from(database(DatabaseErrorKind::Unknown, "no such table: keys"));
        assert_eq!(crate::error::chain(&e), "query failed: no such table: keys");
        #[derive(Debug, thiserror::Error)]
        #[error("loading the keys")]
        struct Outer(#[source] DbError);
        assert_eq!(crate::error::chain(&Outer(e)), "loading the keys: query failed: no such table: keys");
    }
}
