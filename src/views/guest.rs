//! 访客页 / Guest page: the shared pool as cards, the guest-password form and the admin-only notice.

use maud::{Markup, html};

use super::access_limits::{SharedKeyView, shared_key_card};
use super::components::{FlashKind, flash, free_only_tag, time};
use super::layout::{PageContext, page};
use crate::domain::keys::{KeyStatus, format_balance, mask};
use crate::i18n::Lang;

/// A key as a card.
pub struct Card {
    pub key: String,
    pub status: KeyStatus,
    pub balance: Option<f64>,
    pub checked_at: Option<i64>,
}

pub struct GuestView {
    pub cards: Vec<Card>,
    /// Whole keys (copy on click) or masked ones.
    pub full_keys: bool,
    pub total: i64,
    pub usable: i64,
    pub total_balance: f64,
    /// How long the usable balance lasts at the last 7 days' rate.
    pub lasts: crate::domain::forecast::Forecast,
    /// 1-based.
    pub page: u32,
    pub pages: u32,
}

/// The balance badge tier (class suffix) and its text. A key without money is still valid: it serves
/// the free models.
pub fn tier(lang: Lang, status: KeyStatus, balance: Option<f64>) -> (&'static str, String) {
    match balance {
        _ if status == KeyStatus::Invalid => ("invalid", lang.t("guest.tier.invalid").to_owned()),
        Some(b) if b <= 0.0 && status == KeyStatus::Depleted => ("depleted", lang.t("keys.status.depleted").to_owned()),
        Some(b) if b <= 0.0 => ("invalid", lang.t("guest.tier.invalid").to_owned()),
        None => ("unchecked", lang.t("guest.tier.unchecked").to_owned()),
        Some(b) if b <= 7.0 => ("low", format_balance(b)),
        Some(b) if b <= 14.0 => ("normal", format_balance(b)),
        Some(b) if b <= 100.0 => ("medium", format_balance(b)),
        Some(b) => ("high", format_balance(b)),
    }
}

/// The page; `shared` is the guest access key's card (restricted mode, to those let in).
pub fn guest_page(ctx: &PageContext, v: &GuestView, shared: Option<&SharedKeyView>) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("guest.title"),
        html! {
            h1 { (lang.t("guest.title")) }
            div.counters {
                div.counter { span.value #count-total { (v.total) } span.label { (lang.t("guest.counters.total")) } }
                div.counter { span.value #count-usable { (v.usable) } span.label { (lang.t("guest.counters.usable")) } }
                div.counter { span.value #count-balance { "¥" (format!("{:.2}", v.total_balance)) } span.label { (lang.t("guest.counters.balance")) } }
                div.counter title=(lang.t("forecast.help")) {
                    span.value #count-lasts { (super::components::forecast_text(lang, &v.lasts)) }
                    span.label { (lang.t("forecast.label")) }
                }
            }
            @if let Some(shared) = shared { (shared_key_card(lang, shared)) }
            @if v.full_keys {
                form.card.guest-export method="get" action="/guest/export" {
                    (super::components::separator_fields(lang))
                    button.primary type="submit" { (lang.t("guest.export")) }
                }
            }
            (cards(lang, v))
        },
    )
}

/// The cards and their pager: the fragment htmx swaps when paging.
pub fn cards(lang: Lang, v: &GuestView) -> Markup {
    let pager_link = |p: u32, label: &str, enabled: bool| {
        let href = if p <= 1 { "/".to_owned() } else { format!("/?page={p}") };
        let fragment = format!("/guest/keys?page={p}");
        html! {
            @if enabled {
                a href=(href) hx-get=(fragment) hx-target="#guest-cards" hx-swap="outerHTML" hx-push-url=(href) { (label) }
            } @else { span.disabled { (label) } }
        }
    };
    html! {
        section #guest-cards {
            @if v.cards.is_empty() {
                p.muted.empty { (lang.t("guest.empty")) }
            } @else {
                div.cards {
                    @for c in &v.cards {
                        @let (tier_class, tier_text) = tier(lang, c.status, c.balance);
                        @let badges = Badges { tier_class, tier_text: &tier_text, free_only: c.status == KeyStatus::Depleted };
                        @if v.full_keys {
                            button.key-card type="button" title=(lang.t("guest.copy_hint")) data-copy-text=(c.key) data-tier=(tier_class)
                                data-copied-toast=(lang.t("guest.copied")) {
                                (card_body(lang, &c.key, &badges, c.checked_at))
                            }
                        } @else {
                            div.key-card data-tier=(tier_class) { (card_body(lang, &mask(&c.key), &badges, c.checked_at)) }
                        }
                    }
                }
                nav.pager aria-label=(lang.t("keys.pager.label")) {
                    (pager_link(v.page.saturating_sub(1).max(1), lang.t("keys.pager.prev"), v.page > 1))
                    span.where { (lang.tf("guest.position", &[("page", &v.page.to_string()), ("pages", &v.pages.to_string())])) }
                    (pager_link((v.page + 1).min(v.pages), lang.t("keys.pager.next"), v.page < v.pages))
                }
            }
        }
    }
}

/// What a card says about its key's balance and state.
struct Badges<'a> {
    tier_class: &'a str,
    tier_text: &'a str,
    /// Valid without money: the free models only.
    free_only: bool,
}

fn card_body(lang: Lang, shown: &str, b: &Badges<'_>, checked_at: Option<i64>) -> Markup {
    html! {
        code.card-key { (shown) }
        span.card-badges {
            span class={ "tier tier-" (b.tier_class) } { (b.tier_text) }
            @if b.free_only { (free_only_tag(lang)) }
        }
        span.card-time {
            @match checked_at {
                Some(t) => { (lang.t("guest.checked")) " " (time(t)) },
                None => (lang.t("guest.not_checked")),
            }
        }
    }
}

/// Restricted mode, not yet let in: the guest password form (with a message after a wrong guess).
pub fn password_page(ctx: &PageContext, message: Option<&str>) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("guest.title"),
        html! {
            section.card.narrow {
                h1 { (lang.t("guest.password.title")) }
                p { (lang.t("guest.password.intro")) }
                @if let Some(m) = message { (flash(FlashKind::Error, m)) }
                form method="post" action="/guest/login" {
                    label for="guest-password" { (lang.t("guest.password.label")) }
                    input #guest-password name="password" type="password" autocomplete="current-password" required autofocus;
                    button.primary type="submit" { (lang.t("guest.password.submit")) }
                }
            }
        },
    )
}

/// Private mode: only admins see the keys.
pub fn admin_only_page(ctx: &PageContext) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("guest.title"),
        html! {
            section.card.narrow {
                h1 { (lang.t("guest.private.title")) }
                p { (lang.t("guest.private.text")) }
                p { a.button href="/login?next=%2F" { (lang.t("guest.private.login")) } }
            }
        },
    )
}

/// What a fragment or export answers when the visitor may not see the keys.
pub fn refused(lang: Lang, key: &str) -> Markup {
    html! { section #guest-cards { (flash(FlashKind::Error, lang.t(key))) p { a href="/" { (lang.t("error.back_home")) } } } }
}
