//! HTTP handlers of the admin, guest and system pages. The route table is in [`routes`].

pub mod access_limits;
pub mod assets;
pub mod auth;
pub mod checks;
pub mod dashboard;
pub mod errors;
pub mod guest;
pub mod keys;
pub mod lang;
pub mod limits;
pub mod logs;
pub mod pages;
pub mod prices;
pub mod routes;
pub mod session;
pub mod settings;

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

/// The gateway's address as clients reach it: the public base URL setting, or this request's own
/// (honouring `X-Forwarded-Proto` / `X-Forwarded-Host`).
pub fn base_url(req: &HttpRequest, settings: &crate::domain::settings::Settings) -> String {
    match &settings.public_base_url {
        Some(url) => url.clone(),
        None => {
            let conn = req.connection_info();
            format!("{}://{}", conn.scheme(), conn.host())
        }
    }
}

/// The request's path and query, e.g. to come back after signing in.
pub fn path_and_query(req: &HttpRequest) -> String {
    req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned())
}

/// A local path to go to next, or `fallback` for anything that could leave the site or is not a
/// plain path: it must start with a single `/` (not `//` or `/\`), be printable ASCII without
/// spaces or backslashes, and keep to that once percent-decoded (no control characters, whitespace,
/// backslash, nor a leading `//`, at any decoding depth).
pub fn safe_next(next: Option<&str>, fallback: &str) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_owned(),
        _ => fallback.to_owned(),
    }
}

fn is_local_path(next: &str) -> bool {
    let mut text = next.as_bytes().to_vec();
    if !text.iter().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    // Percent-decode until nothing changes (a few rounds at most: each one shortens the text).
    for _ in 0..4 {
        let shown = String::from_utf8_lossy(&text);
        if !shown.starts_with('/')
            || shown.starts_with("//")
            || shown.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return false;
        }
        let decoded = crate::domain::percent_decode(&text);
        if decoded == text {
            return true;
        }
        text = decoded;
    }
    false
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

    #[test]
    fn next_refuses_encoded_and_control_characters() {
        for bad in [
            "/%09/evil.example",
            "/\t/evil.example",
            "//evil.example",
            "/\\evil.example",
            "/%5Cevil.example",
            "/%2F/evil",
            "/%2f/evil",
            "/%252F/evil",
            "/a\r\nSet-Cookie: x=1",
            "/a%0D%0ASet-Cookie:x=1",
            "/a\nb",
            "/a b",
            "/a%20b",
            "/a\u{7f}",
            "/a\u{2028}",
            "",
            "admin",
        ] {
            assert_eq!(safe_next(Some(bad), "/admin"), "/admin", "{bad:?}");
        }
        assert_eq!(safe_next(Some("/%09/evil.example"), "/"), "/");
        assert_eq!(safe_next(Some("/admin/keys?page=2&q=sk-%E4%B8%AD"), "/admin"), "/admin/keys?page=2&q=sk-%E4%B8%AD");
        assert_eq!(safe_next(Some("/"), "/admin"), "/");
    }
}
