//! Small pieces shared by pages: field errors, times, flash messages.

use maud::{Markup, html};

use crate::domain::FieldErrors;
use crate::i18n::Lang;

pub use crate::i18n::field_message;

/// The message under a form field, when it has one.
pub fn field_error(lang: Lang, errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(e) = errors.get(field) {
            p.field-error id={ "error-" (field) } role="alert" { (field_message(lang, e)) }
        }
    }
}

/// A moment as `<time>`: UTC text, turned into the viewer's local time by `app.js`.
pub fn time(ms: i64) -> Markup {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => html! {
            time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) data-local {
                (t.format("%Y-%m-%d %H:%M UTC"))
            }
        },
        None => html! { "—" },
    }
}

/// The "free models only" tag beside a `depleted` state: the key is valid, without money.
pub fn free_only_tag(lang: Lang) -> Markup {
    html! { span.badge.free-only title=(lang.t("keys.free_only_hint")) { (lang.t("keys.free_only")) } }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Success,
    Error,
}

/// A short message at the top of a section.
pub fn flash(kind: FlashKind, text: &str) -> Markup {
    let class = match kind {
        FlashKind::Success => "flash flash-success",
        FlashKind::Error => "flash flash-error",
    };
    html! { div class=(class) role="status" { (text) } }
}

/// The export separator choice: a word, or "custom" with its text (see `domain::export::pick_separator`).
pub fn separator_fields(lang: Lang) -> Markup {
    html! {
        label { (lang.t("keys.export.separator"))
            select name="sep" data-custom-separator {
                @for word in ["newline", "comma", "space", "semicolon", "tab", "custom"] {
                    option value=(word) { (lang.t(&format!("keys.export.sep_{word}"))) }
                }
            }
        }
        label.custom-sep hidden { (lang.t("keys.export.custom"))
            input type="text" name="custom_sep" maxlength="10";
        }
    }
}

/// How long the usable balance lasts, in words: "about 12 days", "about 3–9 days", "not enough data"…
pub fn forecast_text(lang: Lang, f: &crate::domain::forecast::Forecast) -> String {
    use crate::domain::forecast::Forecast;
    let days = |d: f64| if d >= 10.0 { format!("{d:.0}") } else { format!("{d:.1}") };
    match f {
        Forecast::NotEnoughData => lang.t("forecast.not_enough").to_owned(),
        Forecast::NotSpending => lang.t("forecast.not_spending").to_owned(),
        Forecast::Days { low, .. } if *low > 3650.0 => lang.t("forecast.years").to_owned(),
        Forecast::Days { low, high } if (high - low).abs() < f64::EPSILON => {
            lang.tf("forecast.days", &[("days", &days(*low))])
        }
        Forecast::Days { low, high } => lang.tf("forecast.range", &[("low", &days(*low)), ("high", &days(*high))]),
    }
}

/// An inline SVG icon (no emoji font needed). Decorative: the button around it carries the aria-label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    Eye,
    Copy,
    Moon,
    Sun,
}

/// The icon's SVG, drawn in `currentColor` at the text's size.
pub fn icon(which: Icon) -> Markup {
    let paths: &[&str] = match which {
        Icon::Eye => &["M1 12s4-7 11-7 11 7 11 7-4 7-11 7S1 12 1 12z", "M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z"],
        Icon::Copy => &["M9 9h11v11H9z", "M5 15H4V4h11v1"],
        Icon::Moon => &["M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z"],
        Icon::Sun => &[
            "M12 8a4 4 0 1 0 0 8 4 4 0 0 0 0-8z",
            "M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4",
        ],
    };
    html! {
        svg.icon-svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16" fill="none"
            stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"
            aria-hidden="true" focusable="false" {
            @for d in paths { path d=(d) {} }
        }
    }
}

/// A catalogue text with Markdown-style code spans: each `…` becomes a `<code>` element (escaped, like
/// the rest); an unpaired backtick stays as it is.
pub fn code_spans(text: &str) -> Markup {
    let parts: Vec<&str> = text.split('`').collect();
    let paired = parts.len() % 2 == 1;
    html! {
        @for (i, part) in parts.iter().enumerate() {
            @if i % 2 == 1 && (paired || i + 1 < parts.len()) {
                code { (part) }
            } @else {
                @if i > 0 && i % 2 == 1 { "`" }
                (part)
            }
        }
    }
}
