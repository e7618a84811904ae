//! 系统设置 / Settings: the admin account, the system settings and the proxy's access keys. Each
//! section is its own fragment, swapped in place by htmx after a submit.

use maud::{Markup, html};

use super::access_limits::{LimitsFormValues, LimitsItem, limits_form, state_badges, usage_bars};
use super::components::{FlashKind, field_error, flash, time};
use super::layout::{PageContext, page};
use crate::domain::FieldErrors;
use crate::domain::access_limits::{AccessLimits, Counts};
use crate::domain::proxy::SelectionStrategy;
use crate::domain::settings::{AccessMode, PROXY_RANGES};
use crate::i18n::Lang;

pub type Flash = Option<(FlashKind, String)>;

pub struct AccountView<'a> {
    pub username: &'a str,
    pub errors: FieldErrors,
    pub flash: Flash,
}

/// The system form's values as shown (stored values, or what was just submitted).
pub struct SystemValues {
    pub access_mode: String,
    pub guest_password_set: bool,
    pub guest_page_size: String,
    pub upstream_url: String,
    pub client_request_mode: bool,
    pub guest_full_keys: bool,
    pub public_base_url: String,
    pub contact: String,
    pub auto_check_minutes: String,
    pub min_balance: String,
    pub check_probe_model: String,
    pub check_timeout_secs: String,
    pub history_retention_days: String,
    pub selection_strategy: String,
    /// The numeric gateway settings by their names in [`PROXY_RANGES`].
    pub proxy_numbers: Vec<(&'static str, String)>,
    pub cors_origins: String,
    /// One model per line.
    pub free_models: String,
    /// Like `UTC+8`.
    pub upstream_utc_offset: String,
    pub metrics_public: bool,
    /// Whether a metrics token is stored; the token itself is never shown.
    pub metrics_token_set: bool,
}

impl SystemValues {
    fn proxy_number(&self, name: &str) -> &str {
        self.proxy_numbers.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v.as_str())
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
            p.page-links { a href="/admin/settings/prices" { (lang.t("prices.link")) } }
            div.settings-grid {
                (system_section(lang, system))
                (account_section(lang, account))
                (access_keys_section(lang, keys))
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
    let vals = &v.values;
    html! {
        section.card #system {
            h2 { (lang.t("settings.system.title")) }
            (section_flash(&v.flash))
            form method="post" action="/admin/settings" hx-post="/admin/settings" hx-target="#system" hx-swap="outerHTML" {
                fieldset.modes {
                    legend { (lang.t("settings.access_mode.label")) }
                    @for mode in AccessMode::ALL {
                        label.mode {
                            input type="radio" name="access_mode" value=(mode.as_str()) checked[vals.access_mode == mode.as_str()];
                            span.mode-name { (lang.t(&format!("settings.access_mode.{}", mode.as_str()))) }
                            span.help { (lang.t(&format!("settings.access_mode.{}_help", mode.as_str()))) }
                        }
                    }
                    (field_error(lang, &v.errors, "access_mode"))
                }
                label for="guest-password" { (lang.t("settings.guest_password.label")) }
                input #guest-password name="guest_password" type="password" autocomplete="new-password"
                    placeholder=(if vals.guest_password_set { lang.t("settings.guest_password.set") } else { lang.t("settings.guest_password.unset") })
                    aria-invalid=[invalid(&v.errors, "guest_password")];
                (field_error(lang, &v.errors, "guest_password"))
                p.help { (lang.t("settings.guest_password.help")) }
                label for="guest-page-size" { (lang.t("settings.guest_page_size.label")) }
                input #guest-page-size name="guest_page_size" type="number" min="1" max="100" required value=(vals.guest_page_size) aria-invalid=[invalid(&v.errors, "guest_page_size")];
                (field_error(lang, &v.errors, "guest_page_size"))
                label.switch {
                    input name="guest_full_keys" type="checkbox" value="on" checked[vals.guest_full_keys];
                    span { (lang.t("settings.guest_full_keys.label")) }
                }
                p.help { (lang.t("settings.guest_full_keys.help")) }
                label for="upstream-url" { (lang.t("settings.upstream_url.label")) }
                input #upstream-url name="upstream_url" type="url" required value=(vals.upstream_url) aria-invalid=[invalid(&v.errors, "upstream_url")];
                (field_error(lang, &v.errors, "upstream_url"))
                @if let Some(url) = v.upstream_override {
                    p.help.warn { (lang.tf("settings.upstream_url.overridden", &[("url", url)])) }
                }
                label.switch {
                    input name="client_request_mode" type="checkbox" value="on" checked[vals.client_request_mode];
                    span { (lang.t("settings.client_request_mode.label")) }
                }
                p.help { (lang.t("settings.client_request_mode.help")) }
                label for="public-base-url" { (lang.t("settings.public_base_url.label")) }
                input #public-base-url name="public_base_url" type="url" value=(vals.public_base_url)
                    placeholder=(lang.t("settings.public_base_url.hint")) aria-invalid=[invalid(&v.errors, "public_base_url")];
                (field_error(lang, &v.errors, "public_base_url"))
                label for="contact" { (lang.t("settings.contact.label")) }
                input #contact name="contact" type="text" maxlength="200" value=(vals.contact)
                    placeholder=(lang.t("settings.contact.hint")) aria-invalid=[invalid(&v.errors, "contact")];
                (field_error(lang, &v.errors, "contact"))
                h3 { (lang.t("settings.checks.title")) }
                label for="auto-check" { (lang.t("settings.checks.auto")) }
                select #auto-check name="auto_check_minutes" {
                    @for m in crate::domain::settings::AUTO_CHECK_CHOICES {
                        option value=(m) selected[vals.auto_check_minutes == m.to_string()] {
                            @if m == 0 { (lang.t("settings.checks.off")) } @else { (lang.tf("settings.checks.every", &[("minutes", &m.to_string())])) }
                        }
                    }
                }
                (field_error(lang, &v.errors, "auto_check_minutes"))
                label for="min-balance" { (lang.t("settings.checks.min_balance")) }
                input #min-balance name="min_balance" type="number" step="0.01" value=(vals.min_balance) aria-invalid=[invalid(&v.errors, "min_balance")];
                (field_error(lang, &v.errors, "min_balance"))
                label for="probe-model" { (lang.t("settings.checks.probe_model")) }
                input #probe-model name="check_probe_model" type="text" value=(vals.check_probe_model) placeholder=(lang.t("settings.checks.probe_hint"));
                (field_error(lang, &v.errors, "check_probe_model"))
                label for="check-timeout" { (lang.t("settings.checks.timeout")) }
                input #check-timeout name="check_timeout_secs" type="number" min="1" max="300" value=(vals.check_timeout_secs);
                (field_error(lang, &v.errors, "check_timeout_secs"))
                label for="retention" { (lang.t("settings.checks.retention")) }
                input #retention name="history_retention_days" type="number" min="1" max="3650" value=(vals.history_retention_days);
                (field_error(lang, &v.errors, "history_retention_days"))
                (gateway_fieldset(lang, v))
                button.primary type="submit" { (lang.t("settings.system.save")) }
            }
        }
    }
}

/// 网关: how the `/v1` proxy picks keys, fails over and times out, its CORS and `/metrics` access.
fn gateway_fieldset(lang: Lang, v: &SystemView) -> Markup {
    let vals = &v.values;
    html! {
        fieldset.gateway #gateway {
            legend { (lang.t("settings.gateway.title")) }
            label for="selection-strategy" { (lang.t("settings.gateway.selection_strategy")) }
            select #selection-strategy name="selection_strategy" aria-invalid=[invalid(&v.errors, "selection_strategy")] {
                @for s in SelectionStrategy::ALL {
                    option value=(s.as_str()) selected[vals.selection_strategy == s.as_str()] {
                        (lang.t(&format!("settings.strategy.{}", s.as_str())))
                    }
                }
            }
            (field_error(lang, &v.errors, "selection_strategy"))
            ul.help.strategies {
                @for s in SelectionStrategy::ALL {
                    li {
                        strong { (lang.t(&format!("settings.strategy.{}", s.as_str()))) }
                        " — "
                        (lang.t(&format!("settings.strategy.{}_help", s.as_str())))
                    }
                }
            }
            @for (name, min, max) in PROXY_RANGES {
                @let id = name.replace('_', "-");
                label for=(id) { (lang.t(&format!("settings.gateway.{name}"))) }
                input id=(id) name=(name) type="number" min=(min) max=(max) value=(vals.proxy_number(name))
                    aria-invalid=[invalid(&v.errors, name)];
                (field_error(lang, &v.errors, name))
                p.help { (lang.tf(&format!("settings.gateway.{name}_help"), &[("min", &min.to_string()), ("max", &max.to_string())])) }
            }
            label for="free-models" { (lang.t("settings.gateway.free_models")) }
            textarea #free-models name="free_models" rows="6" spellcheck="false" autocomplete="off"
                aria-invalid=[invalid(&v.errors, "free_models")] { (vals.free_models) }
            (field_error(lang, &v.errors, "free_models"))
            p.help { (lang.t("settings.gateway.free_models_help")) }
            label for="upstream-utc-offset" { (lang.t("settings.gateway.upstream_utc_offset")) }
            input #upstream-utc-offset name="upstream_utc_offset" type="text" value=(vals.upstream_utc_offset)
                placeholder=(lang.t("settings.gateway.upstream_utc_offset_hint")) aria-invalid=[invalid(&v.errors, "upstream_utc_offset")];
            (field_error(lang, &v.errors, "upstream_utc_offset"))
            p.help { (lang.t("settings.gateway.upstream_utc_offset_help")) }
            label for="cors-origins" { (lang.t("settings.gateway.cors_origins")) }
            input #cors-origins name="cors_origins" type="text" value=(vals.cors_origins)
                placeholder=(lang.t("settings.gateway.cors_origins_hint")) aria-invalid=[invalid(&v.errors, "cors_origins")];
            (field_error(lang, &v.errors, "cors_origins"))
            p.help { (lang.t("settings.gateway.cors_origins_help")) }
            label.switch {
                input name="metrics_public" type="checkbox" value="on" checked[vals.metrics_public];
                span { (lang.t("settings.gateway.metrics_public")) }
            }
            p.help { (lang.t("settings.gateway.metrics_public_help")) }
            label for="metrics-token" { (lang.t("settings.gateway.metrics_token")) }
            input #metrics-token name="metrics_token" type="password" autocomplete="new-password"
                placeholder=(if vals.metrics_token_set { lang.t("settings.gateway.metrics_token_set") } else { lang.t("settings.gateway.metrics_token_unset") })
                aria-invalid=[invalid(&v.errors, "metrics_token")];
            (field_error(lang, &v.errors, "metrics_token"))
            p.help { (lang.t("settings.gateway.metrics_token_help")) }
        }
    }
}

pub fn access_keys_section(lang: Lang, v: &AccessKeysView) -> Markup {
    html! {
        section.card.wide #access-keys {
            h2 { (lang.t("access_keys.title")) }
            p.help { (lang.t("access_keys.help")) }
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
