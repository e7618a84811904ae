//! The per-model price table (`model_prices`): input and output price per million tokens.

use diesel::prelude::*;

use super::AnyConnection;
use super::schema::model_prices;
use crate::domain::tokens::{Price, Prices};

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = model_prices)]
pub struct PriceRow {
    pub model: String,
    pub input_per_m: f64,
    pub output_per_m: f64,
    pub updated_at: i64,
}

/// Every price, by model name.
pub fn list(conn: &mut AnyConnection) -> QueryResult<Vec<PriceRow>> {
    model_prices::table.order(model_prices::model.asc()).select(PriceRow::as_select()).load(conn)
}

/// The table as the proxy keeps it in memory.
pub fn load(conn: &mut AnyConnection) -> QueryResult<Prices> {
    Ok(Prices::new(
        list(conn)?.into_iter().map(|r| (r.model, Price { input_per_m: r.input_per_m, output_per_m: r.output_per_m })),
    ))
}

/// Sets (or adds) one model's price.
pub fn set(conn: &mut AnyConnection, model: &str, price: Price, now: i64) -> QueryResult<()> {
    use diesel::sql_types::{BigInt, Double, Text};
    // Raw SQL: diesel's upsert DSL is not available on the multi-backend connection.
    diesel::sql_query(
        "INSERT INTO model_prices (model, input_per_m, output_per_m, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (model) DO UPDATE SET input_per_m = excluded.input_per_m, \
         output_per_m = excluded.output_per_m, updated_at = excluded.updated_at",
    )
    .bind::<Text, _>(model)
    .bind::<Double, _>(price.input_per_m)
    .bind::<Double, _>(price.output_per_m)
    .bind::<BigInt, _>(now)
    .execute(conn)
    .map(|_| ())
}

/// Removes one model's price (it then has no price); whether there was one.
pub fn remove(conn: &mut AnyConnection, model: &str) -> QueryResult<bool> {
    diesel::delete(model_prices::table.filter(model_prices::model.eq(model))).execute(conn).map(|n| n > 0)
}
