//! Turns `AppError` responses into pages (or htmx fragments) in the visitor's language.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};

use crate::error::AppError;
use crate::views::error::{error_fragment, error_page};

pub async fn render_error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let res = next.call(req).await?.map_into_boxed_body();
    let Some(app_error) = res.response().error().and_then(|e| e.as_error::<AppError>()) else {
        return Ok(res);
    };
    let lang = super::lang::lang_of(res.request());
    let status = res.status();
    let message = match app_error {
        AppError::TooManyRequests { retry_after_secs } => {
            lang.tf("error.too_many_requests_retry", &[("seconds", &retry_after_secs.to_string())])
        }
        other => lang.t(other.message_key()).to_owned(),
    };
    let markup = if super::is_htmx(res.request()) {
        error_fragment(lang, status.as_u16(), &message)
    } else {
        error_page(lang, status.as_u16(), &message)
    };
    let mut page = HttpResponse::build(status);
    if let Some(retry) = res.headers().get(header::RETRY_AFTER) {
        page.insert_header((header::RETRY_AFTER, retry.clone()));
    }
    let page = page.content_type("text/html; charset=utf-8").body(markup.into_string());
    Ok(res.into_response(page))
}
