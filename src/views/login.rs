//! 登录 / Sign in.

use maud::{Markup, html};

use super::layout::{Nav, PageContext, page};
use crate::i18n::Lang;

pub struct LoginView<'a> {
    pub username: &'a str,
    /// Where to go after signing in (a local path).
    pub next: &'a str,
    /// An already translated message (wrong password, throttled, session ended …).
    pub message: Option<String>,
    /// Why signing in cannot work from here (plain http with `Secure` cookies).
    pub warning: Option<String>,
}

pub fn login_page(lang: Lang, path: &str, view: &LoginView) -> Markup {
    let ctx = PageContext { lang, nav: Nav::None, admin: None, path };
    page(
        &ctx,
        lang.t("login.title"),
        html! {
            section.card.narrow {
                h1 { (lang.t("login.title")) }
                @if let Some(msg) = &view.warning {
                    div.flash.flash-error role="alert" { (msg) }
                }
                @if let Some(msg) = &view.message {
                    div.flash.flash-error role="alert" { (msg) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(view.next);
                    label for="username" { (lang.t("login.username")) }
                    input #username name="username" type="text" autocomplete="username" required value=(view.username);
                    label for="password" { (lang.t("login.password")) }
                    input #password name="password" type="password" autocomplete="current-password" required;
                    button.primary type="submit" { (lang.t("login.submit")) }
                }
            }
        },
    )
}
