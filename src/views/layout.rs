//! The page frame: header with navigation, language switch and sign-out; vendored htmx and styles.

use maud::{DOCTYPE, Markup, html};

use crate::i18n::Lang;

/// Path of the vendored htmx (pinned; the version is in the file name).
pub const HTMX_PATH: &str = "/assets/vendor/htmx-2.0.11.min.js";

/// htmx swaps 422 (form with errors) as well as 2xx; other errors raise a toast through `app.js`.
const HTMX_CONFIG: &str = r#"{"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"422","swap":true},{"code":"[45]..","swap":false,"error":true}]}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Keys,
    Logs,
    Settings,
    Guest,
    Docs,
    None,
}

/// What the frame needs to know about the request.
pub struct PageContext<'a> {
    pub lang: Lang,
    pub nav: Nav,
    /// The signed-in admin's name, if any.
    pub admin: Option<&'a str>,
    /// The current path and query, for the language switch to come back to.
    pub path: &'a str,
}

const NAV_ITEMS: [(Nav, &str, &str); 6] = [
    (Nav::Dashboard, "/admin", "nav.dashboard"),
    (Nav::Keys, "/admin/keys", "nav.keys"),
    (Nav::Logs, "/admin/logs", "nav.logs"),
    (Nav::Settings, "/admin/settings", "nav.settings"),
    (Nav::Guest, "/", "nav.guest"),
    (Nav::Docs, "/docs", "nav.docs"),
];

pub fn page(ctx: &PageContext, title: &str, body: Markup) -> Markup {
    let lang = ctx.lang;
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · " "keypool" }
                link rel="icon" href="/assets/favicon.svg" type="image/svg+xml";
                link rel="stylesheet" href="/assets/css/app.css";
                // Not deferred: it sets the chosen theme before the first paint (no inline script).
                script src="/assets/js/theme.js" {}
                script src=(HTMX_PATH) defer {}
                script src="/assets/js/app.js" defer {}
                script src="/assets/js/checks.js" defer {}
            }
            body {
                header.topbar {
                    a.brand href="/" { "keypool" }
                    nav.mainnav aria-label=(lang.t("nav.label")) {
                        // Guests see only their pages; admins see everything.
                        @for (item, href, key) in NAV_ITEMS.into_iter().filter(|(item, _, _)| ctx.admin.is_some() || matches!(item, Nav::Guest | Nav::Docs)) {
                            @if item == ctx.nav {
                                a href=(href) aria-current="page" { (lang.t(key)) }
                            } @else {
                                a href=(href) { (lang.t(key)) }
                            }
                        }
                    }
                    div.tools {
                        (theme_toggle(lang))
                        (language_switch(ctx))
                        @if let Some(name) = ctx.admin {
                            form.signout method="post" action="/logout" {
                                span.who title=(lang.t("nav.signed_in_as")) { (name) }
                                button.link type="submit" { (lang.t("nav.logout")) }
                            }
                        } @else {
                            a href="/login" { (lang.t("nav.login")) }
                        }
                    }
                }
                main #main { (body) }
                div #toast role="alert" aria-live="assertive" hidden {}
                template #toast-text { (lang.t("error.request_failed")) }
            }
        }
    }
}

/// The light/dark switch: `theme.js` flips `data-theme` on `<html>` and keeps the choice.
fn theme_toggle(lang: Lang) -> Markup {
    use super::components::{Icon, icon};
    html! {
        button.icon.theme-toggle type="button" data-theme-toggle aria-pressed="false"
            title=(lang.t("theme.toggle")) aria-label=(lang.t("theme.toggle")) {
            span.when-light { (icon(Icon::Moon)) }
            span.when-dark { (icon(Icon::Sun)) }
        }
    }
}

fn language_switch(ctx: &PageContext) -> Markup {
    html! {
        span.langs {
            @for l in Lang::ALL {
                @if l == ctx.lang {
                    strong lang=(l.code()) { (l.native_name()) }
                } @else {
                    a lang=(l.code()) hreflang=(l.code()) href={ "/lang/" (l.code()) "?next=" (urlencode(ctx.path)) } { (l.native_name()) }
                }
            }
        }
    }
}

/// Percent-encodes a path for a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
