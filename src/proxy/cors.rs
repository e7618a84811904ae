//! CORS for browser clients of `/v1/*`: the allowed origins come from the `cors_origins` setting
//! (default `*`); credentials are never allowed (access keys travel in `Authorization`).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};

use crate::domain::proxy::CorsOrigins;

fn allowed(req: &HttpRequest, origins: &CorsOrigins) -> Option<HeaderValue> {
    let origin = req.headers().get(header::ORIGIN)?.to_str().ok()?;
    HeaderValue::from_str(origins.allow(origin)?).ok()
}

/// Adds `Access-Control-Allow-Origin` (and `Vary`) to an answer for an allowed origin.
pub fn decorate(req: &HttpRequest, origins: &CorsOrigins, res: &mut HttpResponse) {
    let Some(allow) = allowed(req, origins) else { return };
    let h = res.headers_mut();
    if allow != "*" {
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("*"));
}

/// The answer to a preflight: 204 with the allowed origin, methods and the headers asked for; 403
/// for an origin that is not allowed.
pub fn preflight(req: &HttpRequest, origins: &CorsOrigins) -> HttpResponse {
    let Some(allow) = allowed(req, origins) else {
        return HttpResponse::Forbidden().finish();
    };
    let mut res = HttpResponse::NoContent();
    res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow.clone()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PUT, PATCH, DELETE, OPTIONS"))
        .insert_header((header::ACCESS_CONTROL_MAX_AGE, "86400"));
    if allow != "*" {
        res.insert_header((header::VARY, "Origin"));
    }
    if let Some(asked) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone()));
    }
    res.finish()
}
