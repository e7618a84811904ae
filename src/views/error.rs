//! Error pages and fragments.

use maud::{Markup, html};

use super::layout::{Nav, PageContext, page};
use crate::i18n::Lang;

/// A full page for a browser navigation.
pub fn error_page(lang: Lang, status: u16, message: &str) -> Markup {
    let ctx = PageContext { lang, nav: Nav::None, admin: None, path: "/" };
    page(&ctx, &status.to_string(), error_fragment(lang, status, message))
}

/// The same message for an htmx swap or a toast.
pub fn error_fragment(lang: Lang, status: u16, message: &str) -> Markup {
    html! {
        section.card.narrow.error-card {
            h1 { (status) }
            p { (message) }
            p { a href="/" { (lang.t("error.back_home")) } }
        }
    }
}
