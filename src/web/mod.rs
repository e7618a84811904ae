//! HTTP handlers of the admin, guest and system pages. The route table is in [`routes`].

pub mod assets;
pub mod auth;
pub mod checks;
pub mod dashboard;
pub mod errors;
pub mod guest;
pub mod keys;
pub mod lang;
pub mod pages;
pub mod routes;
pub mod session;
pub mod settings;
pub mod throttle;

use actix_web::HttpRequest;

use crate::state::AppState;

/// Whether the request was made by htmx (it then gets fragments and `HX-Redirect`).
pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("hx-request")
}

/// The client's address for throttling: the socket peer, or `X-Forwarded-For` when trusted.
pub fn client_addr(req: &HttpRequest, state: &AppState) -> String {
    if state.config.trust_forwarded_for
        && let Some(ip) = req.connection_info().realip_remote_addr()
    {
        return ip.to_owned();
    }
    req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".to_owned())
}

/// The request's path and query, e.g. to come back after signing in.
pub fn path_and_query(req: &HttpRequest) -> String {
    req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned())
}

/// A local path to go to next, or `fallback` for anything that could leave the site.
pub fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') && !n.contains("://") => {
            n.to_owned()
        }
        _ => fallback.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_site() {
        assert_eq!(safe_next(Some("/admin/keys?page=2"), "/admin"), "/admin/keys?page=2");
        assert_eq!(safe_next(Some("//evil.example"), "/admin"), "/admin");
        assert_eq!(safe_next(Some("https://evil.example"), "/admin"), "/admin");
        assert_eq!(safe_next(Some("/\\evil.example"), "/admin"), "/admin");
        assert_eq!(safe_next(None, "/admin"), "/admin");
    }
}
