//! Statements built from fixed SQL fragments with every value bound: `$n` placeholders are numbered
//! in order of appearance, as SQLite needs, and the same text runs on PostgreSQL.
//!
//! The rule of `db`: a query that diesel's DSL can say on the multi-backend connection is written in
//! the DSL (checked against `schema.rs`, which a test keeps equal to the migrations). Raw SQL stays
//! where it earns its place (batch `VALUES` lists, upserts, which the multi-backend DSL lacks, keyset
//! pages over dynamic filters, one-pass aggregates), each with a `// Raw SQL:` comment saying why.
//! [`Statement::sql`] takes `&'static str` only, so no run-time string ever becomes SQL.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use super::AnyConnection;

pub type AnyBackend = <AnyConnection as Connection>::Backend;

pub enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    OptInt(Option<i64>),
    OptText(Option<String>),
}

/// SQL text with `$n` placeholders numbered in order of appearance (as SQLite needs).
#[derive(Default)]
pub struct Statement {
    text: String,
    values: Vec<Value>,
}

impl Statement {
    pub fn sql(&mut self, s: &'static str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub fn bind(&mut self, v: Value) -> &mut Self {
        self.values.push(v);
        let n = self.values.len();
        self.text.push_str(&format!("${n}"));
        self
    }

    /// Binds `values` separated by commas (the inside of an `IN (…)`).
    pub fn bind_list(&mut self, values: impl IntoIterator<Item = Value>) -> &mut Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.sql(", ");
            }
            self.bind(v);
        }
        self
    }

    pub fn query(self) -> diesel::query_builder::BoxedSqlQuery<'static, AnyBackend, diesel::query_builder::SqlQuery> {
        let mut q = diesel::sql_query(self.text).into_boxed();
        for v in self.values {
            q = match v {
                Value::Text(s) => q.bind::<Text, _>(s),
                Value::Int(i) => q.bind::<BigInt, _>(i),
                Value::Float(f) => q.bind::<Double, _>(f),
                Value::OptInt(i) => q.bind::<Nullable<BigInt>, _>(i),
                Value::OptText(s) => q.bind::<Nullable<Text>, _>(s),
            };
        }
        q
    }

    /// The query with placeholders in the connection's best form: SQLite treats `$n` as a *named*
    /// parameter and finds each by comparing names with every earlier one (quadratic in the number of
    /// values: a 4,000-value insert spent most of its time in `strncmp`), so on SQLite each `$n` becomes
    /// a plain `?`, which takes the next number (the same order, as values are bound in order).
    pub fn query_on(
        mut self,
        conn: &AnyConnection,
    ) -> diesel::query_builder::BoxedSqlQuery<'static, AnyBackend, diesel::query_builder::SqlQuery> {
        if matches!(conn, AnyConnection::Sqlite(_)) {
            self.text = positional(&self.text);
        }
        self.query()
    }

    pub fn execute(self, conn: &mut AnyConnection) -> QueryResult<usize> {
        self.query_on(conn).execute(conn)
    }

    pub fn load<T>(self, conn: &mut AnyConnection) -> QueryResult<Vec<T>>
    where
        T: diesel::deserialize::QueryableByName<AnyBackend> + 'static,
    {
        self.query_on(conn).load(conn)
    }
}

/// `$1 … $n` → `?` (the fragments hold no `$` of their own).
fn positional(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_become_positional() {
        assert_eq!(super::positional("VALUES ($1, $2), ($10, $11) x"), "VALUES (?, ?), (?, ?) x");
        assert_eq!(super::positional("a $ b"), "a $ b");
    }
}
