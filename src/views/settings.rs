//! 系统设置 / Settings: the admin account, the system settings and the proxy's access keys. Each
//! section is its own fragment, swapped in place by htmx after a submit.

use std::collections::HashMap;

use maud::{Markup, html};

use super::access_limits::{LimitsFormValues, LimitsItem, limits_form, state_badges, usage_bars};
use super::components::{FlashKind, field_error, flash, time};
use super::layout::{PageContext, page};
use crate::domain::FieldErrors;
use crate::domain::access_limits::{AccessLimits, Counts};
use crate::domain::settings::{Kind, SETTINGS, SecretKind, Section, Setting, Settings};
use crate::i18n::Lang;

pub type Flash = Option<(FlashKind, String)>;

pub struct AccountView<'a> {
    pub username: &'a str,
    pub errors: FieldErrors,
    pub flash: Flash,
}

/// The system form's values as shown (stored values, or what was just submitted).
#[derive(Debug, Clone, Default)]
pub struct SystemValues {
    /// Each declared setting's text as its field shows it (`on`/`off` for a switch); never a secret.
    pub texts: HashMap<&'static str, String>,
    /// The secrets that are set (only that is ever shown).
    pub secrets_set: Vec<&'static str>,
}

impl SystemValues {
    /// The stored settings as the form shows them.
    pub fn stored(s: &Settings) -> Self {
        Self {
            texts: SETTINGS.iter().filter_map(|d| s.text(d.name, true).map(|t| (d.name, t))).collect(),
            secrets_set: SETTINGS.iter().filter(|d| s.secret_is_set(d.name)).map(|d| d.name).collect(),
        }
    }

    fn text(&self, name: &str) -> &str {
        self.texts.get(name).map_or("", String::as_str)
    }
}

pub struct SystemView<'a> {
    pub values: SystemValues,
    /// The `KEYPOOL_UPSTREAM_URL` in force, which wins over the stored URL.
    pub upstream_override: Option<&'a str>,
    pub errors: FieldErrors,
    pub flash: Flash,
}

pub struct AccessKeyItem {
    pub id: i64,
    pub name: String,
    pub hint: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Requests through `/v1` with this key, and those that failed.
    pub request_count: i64,
    pub failure_count: i64,
    /// Requests, tokens and estimated cost today (the upstream's day), in 7 days and in 30 days.
    pub usage: [UsageFigures; 3],
    pub limits: AccessLimits,
    /// What counts against the limits now: this minute, today and this month, with each window's end.
    pub quota: [(Counts, i64); 3],
    /// Whether this is the guest access key.
    pub shared: bool,
}

/// The limits form of one key as just submitted, with its errors.
pub struct LimitsEdit {
    pub id: i64,
    pub values: LimitsFormValues,
    pub errors: FieldErrors,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UsageFigures {
    pub requests: i64,
    pub tokens: i64,
    pub cost: f64,
}

/// Requests · tokens · cost, compact.
fn usage_cell(lang: Lang, u: &UsageFigures) -> Markup {
    html! {
        span.usage {
            span { (lang.tf("access_keys.usage.requests", &[("n", &u.requests.to_string())])) }
            span.sep { " · " }
            span { (lang.tf("access_keys.usage.tokens", &[("n", &compact(u.tokens))])) }
            span.sep { " · " }
            span { "¥" (format!("{:.4}", u.cost)) }
        }
    }
}

/// 1234 → 1.2k, 3456789 → 3.5M.
fn compact(n: i64) -> String {
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

pub struct AccessKeysView {
    pub items: Vec<AccessKeyItem>,
    /// A key just created: (name, token). The only time the token is ever shown.
    pub created: Option<(String, String)>,
    pub name_value: String,
    pub errors: FieldErrors,
    pub flash: Flash,
    /// A limits form refused, shown again with its errors.
    pub editing: Option<LimitsEdit>,
    /// Now and the upstream's time zone (days, months and the times shown).
    pub now: i64,
    pub offset_min: i32,
}

pub fn settings_page(ctx: &PageContext, account: &AccountView, system: &SystemView, keys: &AccessKeysView) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("settings.title"),
        html! {
            h1 { (lang.t("settings.title")) }
            // Access keys first: the part an operator comes back for (create, limit, share, revoke);
            // the long system form after, every part one jump away.
            nav.page-links #settings-jump aria-label=(lang.t("settings.jump")) {
                a href="#access-keys" { (lang.t("access_keys.title")) }
                a href="#system" { (lang.t("settings.system.title")) }
                a href="#account" { (lang.t("settings.account.title")) }
                a href="/admin/settings/prices" { (lang.t("prices.link")) }
            }
            div.settings-grid {
                (access_keys_section(lang, keys))
                (system_section(lang, system))
                (account_section(lang, account))
            }
        },
    )
}

fn section_flash(f: &Flash) -> Markup {
    html! { @if let Some((kind, text)) = f { (flash(*kind, text)) } }
}

fn invalid(errors: &FieldErrors, field: &str) -> Option<&'static str> {
    errors.get(field).map(|_| "true")
}

pub fn account_section(lang: Lang, v: &AccountView) -> Markup {
    html! {
        section.card #account {
            h2 { (lang.t("settings.account.title")) }
            (section_flash(&v.flash))
            form method="post" action="/admin/settings/account" hx-post="/admin/settings/account" hx-target="#account" hx-swap="outerHTML" {
                label for="account-username" { (lang.t("settings.account.username")) }
                input #account-username name="username" type="text" autocomplete="username" required value=(v.username) aria-invalid=[invalid(&v.errors, "username")];
                (field_error(lang, &v.errors, "username"))
                label for="account-new-password" { (lang.t("settings.account.new_password")) }
                input #account-new-password name="new_password" type="password" autocomplete="new-password" placeholder=(lang.t("settings.account.new_password_hint")) aria-invalid=[invalid(&v.errors, "new_password")];
                (field_error(lang, &v.errors, "new_password"))
                label for="account-confirm-password" { (lang.t("settings.account.confirm_password")) }
                input #account-confirm-password name="confirm_password" type="password" autocomplete="new-password" aria-invalid=[invalid(&v.errors, "confirm_password")];
                (field_error(lang, &v.errors, "confirm_password"))
                label for="account-current-password" { (lang.t("settings.account.current_password")) }
                input #account-current-password name="current_password" type="password" autocomplete="current-password" required aria-invalid=[invalid(&v.errors, "current_password")];
                (field_error(lang, &v.errors, "current_password"))
                p.help { (lang.t("settings.account.help")) }
                button.primary type="submit" { (lang.t("settings.account.save")) }
            }
            form.sign-out-everywhere method="post" action="/logout" {
                input type="hidden" name="everywhere" value="1";
                p.help { (lang.t("settings.account.sign_out_everywhere_help")) }
                button type="submit" { (lang.t("settings.account.sign_out_everywhere")) }
            }
        }
    }
}

pub fn system_section(lang: Lang, v: &SystemView) -> Markup {
    html! {
        section.card #system {
            h2 { (lang.t("settings.system.title")) }
            (section_flash(&v.flash))
            form method="post" action="/admin/settings" hx-post="/admin/settings" hx-target="#system" hx-swap="outerHTML" {
                @for section in Section::ALL {
                    fieldset.settings-section.(section.as_str()) id=(section.as_str()) {
                        legend { (lang.t(&format!("settings.section.{}", section.as_str()))) }
                        @for setting in SETTINGS.iter().filter(|s| s.section == section) {
                            div.setting data-setting=(setting.name) {
                                (setting_field(lang, setting, v))
                                @if let (Some(url), "upstream_url") = (v.upstream_override, setting.name) {
                                    p.help.warn { (lang.tf("settings.upstream_url.overridden", &[("url", url)])) }
                                }
                            }
                        }
                    }
                }
                button.primary type="submit" { (lang.t("settings.system.save")) }
            }
        }
    }
}

/// One setting's form field, from its declaration: label, input by kind, error and help.
fn setting_field(lang: Lang, s: &Setting, v: &SystemView) -> Markup {
    let name = s.name;
    let value = v.values.text(name);
    let label_key = format!("settings.{name}.label");
    let label = lang.t(&label_key);
    let (min, max) = match s.kind {
        Kind::Range { min, max } => (min.to_string(), max.to_string()),
        Kind::Text { max, .. } => (String::new(), max.to_string()),
        _ => (String::new(), String::new()),
    };
    let help = lang.tf(&format!("settings.{name}.help"), &[("min", &min), ("max", &max)]);
    match s.kind {
        Kind::Bool => html! {
            label.switch {
                input name=(name) type="checkbox" value="on" checked[value == "on"];
                span { (label) }
            }
            p.help { (help) }
        },
        Kind::Choice { values, radio: true } => html! {
            fieldset.modes {
                legend { (label) }
                @for choice in values {
                    label.mode {
                        input type="radio" name=(name) value=(choice) checked[value == *choice];
                        span.mode-name { (lang.t(&format!("settings.{name}.{choice}"))) }
                        span.help { (lang.t(&format!("settings.{name}.{choice}_help"))) }
                    }
                }
                (field_error(lang, &v.errors, name))
            }
        },
        _ => html! {
            label for=(name.replace('_', "-")) { (label) }
            (field_input(lang, s, v))
            (field_error(lang, &v.errors, name))
            p.help { (help) }
            @if let Kind::Choice { values, radio: false } = s.kind {
                ul.help.choices {
                    @for choice in values {
                        li {
                            strong { (lang.t(&format!("settings.{name}.{choice}"))) }
                            " — "
                            (lang.t(&format!("settings.{name}.{choice}_help")))
                        }
                    }
                }
            }
        },
    }
}

/// The input of a setting shown with a label above it (every kind but switches and radio choices).
fn field_input(lang: Lang, s: &Setting, v: &SystemView) -> Markup {
    let (name, id, value) = (s.name, s.name.replace('_', "-"), v.values.text(s.name));
    let hint_key = format!("settings.{name}.hint");
    let hint = lang.get(&hint_key);
    let bad = invalid(&v.errors, name);
    match s.kind {
        Kind::Choice { values, .. } => html! {
            select id=(id) name=(name) aria-invalid=[bad] {
                @for choice in values {
                    option value=(choice) selected[value == *choice] { (lang.t(&format!("settings.{name}.{choice}"))) }
                }
            }
        },
        Kind::Every(choices) => html! {
            select id=(id) name=(name) aria-invalid=[bad] {
                @for m in choices {
                    option value=(m) selected[value == m.to_string()] {
                        @if *m == 0 { (lang.t("settings.checks.off")) } @else { (lang.tf("settings.checks.every", &[("minutes", &m.to_string())])) }
                    }
                }
            }
        },
        Kind::Range { min, max } => html! {
            input id=(id) name=(name) type="number" min=(min) max=(max) value=(value) aria-invalid=[bad];
        },
        Kind::Number => html! {
            input id=(id) name=(name) type="number" step="any" required value=(value) aria-invalid=[bad];
        },
        Kind::Url { required } => html! {
            input id=(id) name=(name) type="url" required[required] value=(value) placeholder=[hint] aria-invalid=[bad];
        },
        Kind::Text { max, .. } => html! {
            input id=(id) name=(name) type="text" maxlength=(max) value=(value) placeholder=[hint] aria-invalid=[bad];
        },
        Kind::Offset | Kind::Bool => html! {
            input id=(id) name=(name) type="text" value=(value) placeholder=[hint] aria-invalid=[bad];
        },
        Kind::List => html! {
            textarea id=(id) name=(name) rows="6" spellcheck="false" autocomplete="off" aria-invalid=[bad] { (value) }
        },
        Kind::Secret(kind) => {
            let placeholder = match (v.values.secrets_set.contains(&name), kind) {
                (false, _) => lang.t("settings.secret.unset"),
                (true, SecretKind::Password) => lang.t("settings.secret.set"),
                (true, SecretKind::Token) => lang.t("settings.secret.set_removable"),
            };
            html! {
                input id=(id) name=(name) type="password" autocomplete="new-password" placeholder=(placeholder) aria-invalid=[bad];
            }
        }
    }
}

pub fn access_keys_section(lang: Lang, v: &AccessKeysView) -> Markup {
    html! {
        section.card.wide #access-keys {
            h2 { (lang.t("access_keys.title")) }
            p.help { (super::components::code_spans(lang.t("access_keys.help"))) }
            (section_flash(&v.flash))
            @if let Some((name, token)) = &v.created {
                div.new-token role="status" {
                    p { (lang.tf("access_keys.created", &[("name", name)])) }
                    div.token-row {
                        code #new-token { (token) }
                        button type="button" data-copy="#new-token" data-copied=(lang.t("common.copied")) { (lang.t("common.copy")) }
                    }
                }
            }
            @if v.items.is_empty() {
                p.muted { (lang.t("access_keys.empty")) }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr {
                            th { (lang.t("access_keys.name")) }
                            th { (lang.t("access_keys.token")) }
                            th { (lang.t("access_keys.created_at")) }
                            th { (lang.t("access_keys.last_used")) }
                            th.count { (lang.t("access_keys.requests")) }
                            th.count { (lang.t("access_keys.failures")) }
                            th { (lang.t("access_keys.usage.today")) }
                            th { (lang.t("access_keys.usage.week")) }
                            th { (lang.t("access_keys.usage.month")) }
                            th { span.sr-only { (lang.t("access_keys.actions")) } }
                        } }
                        tbody {
                            @for k in &v.items {
                                tr {
                                    td { (k.name) }
                                    td { code { (k.hint) } }
                                    td { (time(k.created_at)) }
                                    td { @match k.last_used_at { Some(t) => (time(t)), None => span.muted { (lang.t("access_keys.never")) } } }
                                    td.count { (k.request_count) }
                                    td.count { (k.failure_count) }
                                    @for u in &k.usage { td.usage-cell { (usage_cell(lang, u)) } }
                                    td.actions {
                                        a href={ "/admin/logs?access_key=" (k.id) } { (lang.t("access_keys.usage.log")) }
                                        form method="post" action={ "/admin/access-keys/" (k.id) "/revoke" }
                                            hx-post={ "/admin/access-keys/" (k.id) "/revoke" } hx-target="#access-keys" hx-swap="outerHTML"
                                            hx-confirm=(lang.tf("access_keys.revoke_confirm", &[("name", &k.name)])) {
                                            button.danger type="submit" { (lang.t("access_keys.revoke")) }
                                        }
                                    }
                                }
                                (limits_row(lang, v, k))
                            }
                        }
                    }
                }
            }
            form.inline method="post" action="/admin/access-keys" hx-post="/admin/access-keys" hx-target="#access-keys" hx-swap="outerHTML" {
                label for="access-key-name" { (lang.t("access_keys.new_name")) }
                input #access-key-name name="name" type="text" maxlength="64" required value=(v.name_value) aria-invalid=[invalid(&v.errors, "name")];
                button.primary type="submit" { (lang.t("access_keys.create")) }
                (field_error(lang, &v.errors, "name"))
            }
        }
    }
}

/// Under a key's row: its state, a bar per quota, reset and share, and the limits form.
fn limits_row(lang: Lang, v: &AccessKeysView, k: &AccessKeyItem) -> Markup {
    let item = LimitsItem { limits: &k.limits, usage: &k.quota, now: v.now, offset_min: v.offset_min };
    let stored;
    let (values, errors) = match &v.editing {
        Some(e) if e.id == k.id => (&e.values, &e.errors),
        _ => {
            stored = (LimitsFormValues::from_limits(&k.limits, v.offset_min), FieldErrors::default());
            (&stored.0, &stored.1)
        }
    };
    html! {
        tr.limits-row data-access-key=(k.id) {
            td colspan="10" {
                div.limits-panel {
                    div.limits-state {
                        @if k.shared { span.badge.shared-tag { (lang.t("access_keys.limits.shared")) } }
                        (state_badges(lang, &item))
                    }
                    (usage_bars(lang, &item))
                    div.limit-actions {
                        @if k.limits.has_quota() {
                            (post_button(&format!("/admin/access-keys/{}/reset", k.id), &lang.tf("access_keys.limits.reset_confirm", &[("name", &k.name)]), lang.t("access_keys.limits.reset")))
                        }
                        @if k.shared {
                            (post_button("/admin/access-keys/unshare", lang.t("access_keys.limits.unshare_confirm"), lang.t("access_keys.limits.unshare")))
                        } @else {
                            (post_button(&format!("/admin/access-keys/{}/share", k.id), &lang.tf("access_keys.limits.share_confirm", &[("name", &k.name)]), lang.t("access_keys.limits.share")))
                        }
                    }
                    (limits_form(lang, k.id, values, errors, v.offset_min))
                }
            }
        }
    }
}

/// A one-button form that swaps the access-keys section after a confirmation.
fn post_button(action: &str, confirm: &str, label: &str) -> Markup {
    html! {
        form.limit-action method="post" action=(action) hx-post=(action) hx-target="#access-keys" hx-swap="outerHTML" hx-confirm=(confirm) {
            button type="submit" { (label) }
        }
    }
}
