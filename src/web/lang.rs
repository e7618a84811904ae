//! The visitor's language: the `keypool_lang` cookie, else `Accept-Language`, else Chinese.

use std::future::{Ready, ready};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

use crate::i18n::{LANG_COOKIE, Lang};

/// Extractor of the request's language.
pub struct RequestLang(pub Lang);

pub fn lang_of(req: &HttpRequest) -> Lang {
    if let Some(lang) = req.cookie(LANG_COOKIE).and_then(|c| Lang::parse(c.value())) {
        return lang;
    }
    req.headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or_default()
}

impl FromRequest for RequestLang {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self(lang_of(req))))
    }
}

#[derive(serde::Deserialize)]
pub struct SwitchQuery {
    next: Option<String>,
}

/// `GET /lang/{code}?next=PATH`: keeps the choice in a cookie for a year and goes back.
pub async fn get_lang(code: web::Path<String>, q: web::Query<SwitchQuery>) -> HttpResponse {
    let next = super::safe_next(q.next.as_deref(), "/");
    let Some(lang) = Lang::parse(&code) else {
        return HttpResponse::SeeOther().insert_header((header::LOCATION, next)).finish();
    };
    let cookie = Cookie::build(LANG_COOKIE, lang.code())
        .path("/")
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish();
    HttpResponse::SeeOther().cookie(cookie).insert_header((header::LOCATION, next)).finish()
}
