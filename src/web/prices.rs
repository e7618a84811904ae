//! `/admin/settings/prices`: the price table behind each request's estimated cost. Saves reach the
//! proxy at once (and the other instances within the reloader's 5 s).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::auth::html;
use super::lang::RequestLang;
use super::session::CurrentAdmin;
use crate::db;
use crate::domain::tokens::{Price, parse_model, parse_price};
use crate::domain::{FieldError, FieldErrors};
use crate::error::AppError;
use crate::i18n::Lang;
use crate::state::AppState;
use crate::views::components::FlashKind;
use crate::views::layout::{Nav, PageContext};
use crate::views::prices::{PricesView, prices_page};

const PATH: &str = "/admin/settings/prices";

#[derive(Deserialize)]
pub struct Flashed {
    saved: Option<String>,
    removed: Option<String>,
}

pub async fn get_prices(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    query: web::Query<Flashed>,
) -> Result<HttpResponse, AppError> {
    let flash = match (&query.saved, &query.removed) {
        (Some(model), _) => Some((FlashKind::Success, lang.tf("prices.saved", &[("model", model)]))),
        (None, Some(model)) => Some((FlashKind::Success, lang.tf("prices.removed", &[("model", model)]))),
        _ => None,
    };
    let form = PriceForm::default();
    render(lang, &state, &admin, &form, &FieldErrors::default(), flash, StatusCode::OK).await
}

#[derive(Deserialize, Default)]
pub struct PriceForm {
    #[serde(default)]
    model: String,
    #[serde(default)]
    input_per_m: String,
    #[serde(default)]
    output_per_m: String,
}

impl PriceForm {
    fn parse(&self) -> Result<(String, Price), FieldErrors> {
        let mut errors = FieldErrors::default();
        let model = parse_model(&self.model);
        if model.is_none() {
            errors.push(FieldError::new("model", "prices.bad_model"));
        }
        let mut number = |field: &'static str, raw: &str| {
            let parsed = parse_price(raw);
            if parsed.is_none() {
                errors.push(FieldError::new(field, "prices.bad_price"));
            }
            parsed
        };
        let input = number("input_per_m", &self.input_per_m);
        let output = number("output_per_m", &self.output_per_m);
        match (model, input, output) {
            (Some(model), Some(input_per_m), Some(output_per_m)) => Ok((model, Price { input_per_m, output_per_m })),
            _ => Err(errors),
        }
    }
}

pub async fn post_price(
    RequestLang(lang): RequestLang,
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<PriceForm>,
) -> Result<HttpResponse, AppError> {
    let (model, price) = match form.parse() {
        Ok(parsed) => parsed,
        Err(errors) => {
            return render(lang, &state, &admin, &form, &errors, None, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let now = state.now_ms();
    let stored = model.clone();
    db::run(&state.db, move |conn| Ok(db::prices::set(conn, &stored, price, now)?)).await?;
    state.reload_prices().await?;
    tracing::info!(admin = %admin.username, model = %model, input = price.input_per_m, output = price.output_per_m, "price set");
    Ok(see_other(&format!("{PATH}?saved={}", encode(&model))))
}

#[derive(Deserialize)]
pub struct RemoveForm {
    model: String,
}

pub async fn post_remove(
    state: web::Data<AppState>,
    admin: web::ReqData<CurrentAdmin>,
    form: web::Form<RemoveForm>,
) -> Result<HttpResponse, AppError> {
    let model = form.into_inner().model;
    let lookup = model.clone();
    db::run(&state.db, move |conn| Ok(db::prices::remove(conn, &lookup)?)).await?;
    state.reload_prices().await?;
    tracing::info!(admin = %admin.username, model = %model, "price removed");
    Ok(see_other(&format!("{PATH}?removed={}", encode(&model))))
}

async fn render(
    lang: Lang,
    state: &AppState,
    admin: &CurrentAdmin,
    form: &PriceForm,
    errors: &FieldErrors,
    flash: Option<(FlashKind, String)>,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let rows: Vec<(String, Price)> = db::run(&state.db, |conn| Ok(db::prices::list(conn)?))
        .await?
        .into_iter()
        .map(|r| (r.model, Price { input_per_m: r.input_per_m, output_per_m: r.output_per_m }))
        .collect();
    let view = PricesView {
        rows: &rows,
        model: &form.model,
        input: &form.input_per_m,
        output: &form.output_per_m,
        errors,
        flash,
    };
    let ctx = PageContext { lang, nav: Nav::Settings, admin: Some(&admin.username), path: PATH };
    Ok(html(status, prices_page(&ctx, &view)))
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
