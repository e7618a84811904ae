//! Small pieces shared by pages: field errors, times, flash messages.

use maud::{Markup, html};

use crate::domain::{FieldError, FieldErrors};
use crate::i18n::Lang;

/// The translated text of a field error.
pub fn field_message(lang: Lang, e: &FieldError) -> String {
    let args: Vec<(&str, &str)> = e.args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    lang.tf(e.key, &args)
}

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
