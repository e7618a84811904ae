//! 仪表盘 / Dashboard: the pool at a glance (cards, charts, recent keys) and a key's detail page.

use charming::Chart;
use maud::{Markup, html};

use super::components::{free_only_tag, time};
use super::layout::{PageContext, page};
use crate::charts;
use crate::domain::key_state::BlockKind;
use crate::domain::keys::{KeyStatus, format_balance, mask};
use crate::i18n::Lang;

pub const ECHARTS_PATH: &str = "/assets/vendor/echarts-5.6.0.min.js";

/// The scripts that draw charts (only on pages that have some).
fn chart_scripts() -> Markup {
    html! {
        script src=(ECHARTS_PATH) defer {}
        script src="/assets/js/charts.js" defer {}
    }
}

pub struct Figures {
    pub per_status: Vec<(KeyStatus, i64)>,
    pub total: i64,
    pub active_balance: Option<f64>,
    pub average: Option<f64>,
    pub highest: Option<f64>,
    pub lowest: Option<f64>,
    pub median: Option<f64>,
}

pub struct RecentKey {
    pub id: i64,
    pub key: String,
    pub status: KeyStatus,
    pub balance: Option<f64>,
    pub added_at: i64,
}

/// A chart panel's state, kept in its fragment's URL.
pub struct Panel {
    /// `distribution`, `status`, `trend` or `top`.
    pub name: &'static str,
    pub chart: Chart,
    /// Links by data index (top keys open their detail).
    pub links: Option<Vec<String>>,
    /// Choices shown above the chart.
    pub choices: Vec<Choice>,
    pub note: Option<String>,
}

/// A choice above a chart (a period, how many top keys…).
pub struct Choice {
    /// Its catalogue key.
    pub label: String,
    /// Every chart choice of the dashboard with this one applied, as a query string.
    pub query: String,
    /// This choice alone (`top=20`): the page's script applies it to the address's current choices.
    pub own: String,
    pub active: bool,
}

/// The chart panels, each loaded as its own fragment once the page is there.
pub const PANELS: [&str; 8] = ["traffic", "latency", "tokens", "spend", "distribution", "status", "trend", "top"];

/// An upstream incident in progress: many keys failing the same way at once.
pub struct IncidentBanner {
    pub since: i64,
    /// When it is expected to clear (unless more failures extend it, or a success ends it sooner).
    pub until: i64,
    /// Seconds from now until `until`.
    pub clears_in_s: i64,
    /// The last failure, a stored reason (`domain::reason`), e.g. an upstream 429 and its message.
    pub cause: String,
    /// Distinct keys that failed together.
    pub keys: usize,
    /// The model it is about (`None`: every model).
    pub model: Option<String>,
}

/// A model asked for lately, and how many keys can serve it right now.
pub struct ModelServing {
    pub model: String,
    /// Keys with money that can take a request for it now.
    pub paid: usize,
    /// Keys without money that can take a request for it now (a free model only).
    pub free: usize,
    /// Whether it is one of the free models (keys without money serve it).
    pub free_model: bool,
}

impl ModelServing {
    pub fn total(&self) -> usize {
        self.paid + self.free
    }
}

/// What a new install still lacks, for the first-run checklist (shown while the pool is empty or no
/// access key exists) and the nudge to change a generated admin password.
#[derive(Debug, Default)]
pub struct FirstRun {
    pub has_keys: bool,
    /// Some key was checked at least once.
    pub checked: bool,
    pub has_access_key: bool,
    /// The signed-in admin still uses the password generated at first start.
    pub generated_password: bool,
    /// The gateway's address as clients reach it, for the snippet.
    pub base_url: String,
}

impl FirstRun {
    pub fn shown(&self) -> bool {
        !self.has_keys || !self.has_access_key
    }
}

/// The "check all keys" button: how many keys it checks and roughly how long that takes.
#[derive(Debug, Default)]
pub struct CheckAll {
    pub keys: i64,
    pub estimate_s: i64,
}

pub struct Dashboard {
    pub first_run: FirstRun,
    pub check_all: CheckAll,
    /// The check job's panel (empty when no job ran since the start).
    pub check_panel: Markup,
    pub figures: Figures,
    /// How long the usable balance lasts at the last 7 days' rate.
    pub lasts: crate::domain::forecast::Forecast,
    pub recent: Vec<RecentKey>,
    /// Seconds between automatic refreshes (0 = off).
    pub refresh: u32,
    /// The chart choices (and refresh) as a query string, from the address: the panels load with them.
    pub chart_query: String,
    pub incident: Option<IncidentBanner>,
    /// The models asked for in the last 24 hours (none: no card).
    pub models: Vec<ModelServing>,
}

fn money(v: Option<f64>) -> String {
    v.map(|b| format!("{b:.2}")).unwrap_or_else(|| "—".to_owned())
}

pub fn dashboard_page(ctx: &PageContext, d: &Dashboard) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("dashboard.title"),
        html! {
            div.page-head {
                h1 { (lang.t("dashboard.title")) }
                div.refresh {
                    button type="button" hx-get="/admin" hx-target="#dashboard" hx-swap="outerHTML" { (lang.t("dashboard.refresh")) }
                    label { (lang.t("dashboard.auto_refresh"))
                        select name="refresh" hx-get="/admin" hx-target="#dashboard" hx-swap="outerHTML" hx-push-url="true" {
                            @for s in [0u32, 30, 60, 300] {
                                option value=(s) selected[d.refresh == s] {
                                    @if s == 0 { (lang.t("dashboard.refresh_off")) } @else { (lang.tf("dashboard.refresh_every", &[("seconds", &s.to_string())])) }
                                }
                            }
                        }
                    }
                }
            }
            (dashboard(lang, d))
            (chart_scripts())
        },
    )
}

/// Everything below the heading; swapped on refresh.
pub fn dashboard(lang: Lang, d: &Dashboard) -> Markup {
    let f = &d.figures;
    let here = if d.chart_query.is_empty() { "/admin".to_owned() } else { format!("/admin?{}", d.chart_query) };
    let refresh = (d.refresh > 0).then_some(here.as_str());
    let every = (d.refresh > 0).then(|| format!("every {}s", d.refresh));
    let sep = if d.chart_query.is_empty() { "" } else { "?" };
    html! {
        div #dashboard hx-get=[refresh] hx-trigger=[every] hx-swap="outerHTML" {
            // Refreshed when a check job ends (its panel triggers `keys-changed`), so the checklist ticks.
            div hidden hx-get=(here) hx-trigger="keys-changed from:body"
                hx-target="#dashboard" hx-swap="outerHTML" {}
            @if let Some(i) = &d.incident { (incident_banner(lang, i)) }
            (first_run(lang, &d.first_run))
            (check_all(lang, &d.check_all, &d.check_panel))
            div.metric-cards {
                div.metric { span.value #metric-total { (f.total) } span.label { (lang.t("dashboard.cards.total")) } }
                @for (status, n) in &f.per_status {
                    div class={ "metric metric-" (status.as_str()) } {
                        span.value id={ "metric-" (status.as_str()) } { (n) }
                        span.label { (lang.t(&format!("keys.status.{}", status.as_str()))) }
                    }
                }
                div.metric { span.value #metric-balance { (money(f.active_balance)) } span.label { (lang.t("dashboard.cards.balance")) } }
                div.metric { span.value { (money(f.average)) } span.label { (lang.t("dashboard.cards.average")) } }
                div.metric { span.value { (money(f.median)) } span.label { (lang.t("dashboard.cards.median")) } }
                div.metric { span.value { (money(f.highest)) } span.label { (lang.t("dashboard.cards.highest")) } }
                div.metric { span.value { (money(f.lowest)) } span.label { (lang.t("dashboard.cards.lowest")) } }
                div.metric.metric-lasts title=(lang.t("forecast.help")) {
                    span.value #metric-lasts { (super::components::forecast_text(lang, &d.lasts)) }
                    span.label { (lang.t("forecast.label")) }
                }
            }
            @if !d.models.is_empty() { (models_card(lang, &d.models)) }
            div.chart-grid {
                @for name in PANELS {
                    section.card.chart-panel id={ "chart-" (name) } hx-get={ "/admin/charts/" (name) (sep) (d.chart_query) } hx-trigger="load" hx-swap="outerHTML" {
                        h2 { (lang.t(&format!("dashboard.chart.{name}"))) }
                        p.muted { (lang.t("dashboard.loading")) }
                    }
                }
            }
            section.card.wide {
                h2 { (lang.t("dashboard.recent")) }
                @if d.recent.is_empty() {
                    p.muted { (lang.t("first_run.no_keys")) " " a href="/admin/keys" { (lang.t("first_run.keys.link")) } }
                } @else {
                    div.table-wrap { table { tbody {
                        @for k in &d.recent {
                            tr {
                                td { a href={ "/admin/keys/" (k.id) } { code { (mask(&k.key)) } } }
                                td { span class={ "badge status-" (k.status.as_str()) } { (lang.t(&format!("keys.status.{}", k.status.as_str()))) } }
                                td.balance { (k.balance.map(format_balance).unwrap_or_else(|| "—".to_owned())) }
                                td { (time(k.added_at)) }
                            }
                        }
                    } } }
                }
            }
        }
    }
}

/// The nudge to change a generated admin password, and the first-run checklist while it is needed:
/// add keys → check them → create an access key → point an SDK at the base URL.
fn first_run(lang: Lang, f: &FirstRun) -> Markup {
    html! {
        @if f.generated_password {
            div.flash.flash-warn #password-nudge role="status" {
                (lang.t("first_run.password")) " "
                a href="/admin/settings#account" { (lang.t("first_run.password_link")) }
            }
        }
        @if f.shown() {
            section.card.wide.first-run #first-run {
                h2 { (lang.t("first_run.title")) }
                p.help { (lang.t("first_run.intro")) }
                ol.checklist {
                    (step(lang, "keys", f.has_keys, "/admin/keys"))
                    (step(lang, "check", f.checked, "/admin/keys"))
                    (step(lang, "access", f.has_access_key, "/admin/settings#access-keys"))
                    li.step #step-sdk data-done="false" {
                        span.tick aria-hidden="true" {}
                        div.step-body {
                            a href="/docs" { (lang.t("first_run.sdk.link")) }
                            p.help { (lang.tf("first_run.sdk.help", &[("base", &f.base_url)])) }
                            pre.snippet { code { (python_snippet(&f.base_url)) } }
                            pre.snippet { code { (curl_snippet(&f.base_url)) } }
                        }
                    }
                }
            }
        }
    }
}

/// One step of the checklist: a link, ticked when done.
fn step(lang: Lang, name: &str, done: bool, href: &str) -> Markup {
    html! {
        li.step.done[done] id={ "step-" (name) } data-done=(done) {
            span.tick aria-hidden="true" { @if done { (tick_icon()) } }
            div.step-body {
                a href=(href) { (lang.t(&format!("first_run.{name}.link"))) }
                " " span.sr-only { (lang.t(if done { "first_run.done" } else { "first_run.todo" })) }
                p.help { (lang.t(&format!("first_run.{name}.help"))) }
            }
        }
    }
}

fn tick_icon() -> Markup {
    html! {
        svg viewBox="0 0 16 16" width="14" height="14" {
            path d="M3 8.5l3.2 3L13 4.5" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round" {}
        }
    }
}

fn python_snippet(base: &str) -> String {
    let model = super::docs::MODEL;
    format!(
        "from openai import OpenAI\n\nclient = OpenAI(base_url=\"{base}/v1\", api_key=\"YOUR_ACCESS_KEY\")\n\
         reply = client.chat.completions.create(\n    model=\"{model}\",\n    \
         messages=[{{\"role\": \"user\", \"content\": \"hi\"}}],\n)\nprint(reply.choices[0].message.content)"
    )
}

fn curl_snippet(base: &str) -> String {
    let model = super::docs::MODEL;
    format!(
        "curl {base}/v1/chat/completions \\\n  -H \"Authorization: Bearer YOUR_ACCESS_KEY\" \\\n  \
         -H \"Content-Type: application/json\" \\\n  \
         -d '{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": \"hi\"}}]}}'"
    )
}

/// The "check all keys" button (confirmed with the count and a time estimate) and the job's panel.
fn check_all(lang: Lang, c: &CheckAll, panel: &Markup) -> Markup {
    let keys = c.keys.to_string();
    let time = if c.estimate_s < 60 {
        lang.tf("dashboard.check_all.seconds", &[("n", &c.estimate_s.to_string())])
    } else {
        lang.tf("dashboard.check_all.minutes", &[("n", &((c.estimate_s + 59) / 60).to_string())])
    };
    let confirm = lang.tf("dashboard.check_all.confirm", &[("keys", &keys), ("time", &time)]);
    // The templates let the page's script say the time for the parameters remembered in this browser
    // (`checkAllEstimate` in app.js; this estimate is for the defaults).
    html! {
        div.check-all-bar {
            button #check-all type="button" hx-post="/admin/checks" hx-vals=r#"{"scope":"all"}"#
                hx-target="#check-panel" hx-swap="outerHTML" hx-confirm=(confirm) disabled[c.keys == 0]
                data-keys=(c.keys)
                data-confirm-template=(lang.tf("dashboard.check_all.confirm", &[("keys", &keys)]))
                data-hint-template=(lang.tf("dashboard.check_all.hint", &[("keys", &keys)]))
                data-seconds=(lang.t("dashboard.check_all.seconds")) data-minutes=(lang.t("dashboard.check_all.minutes")) {
                (lang.t("dashboard.check_all.button"))
            }
            @if c.keys > 0 { span.muted #check-all-hint { (lang.tf("dashboard.check_all.hint", &[("keys", &keys), ("time", &time)])) } }
        }
        (panel)
    }
}

/// The models asked for lately, with how many keys can serve each now; a model none can serve stands out.
fn models_card(lang: Lang, models: &[ModelServing]) -> Markup {
    html! {
        section.card.wide #models-in-use {
            h2 { (lang.t("dashboard.models.title")) }
            p.help { (lang.t("dashboard.models.help")) }
            div.table-wrap { table.models {
                thead { tr {
                    th { (lang.t("dashboard.models.model")) }
                    th.num { (lang.t("dashboard.models.total")) }
                    th.num { (lang.t("dashboard.models.paid")) }
                    th.num { (lang.t("dashboard.models.free")) }
                } }
                tbody {
                    @for m in models {
                        @let none = m.total() == 0;
                        tr.unservable[none] data-model=(m.model) {
                            td.model {
                                (model_name(lang, &m.model))
                                @if m.free_model { " " span.badge.free-tag { (lang.t("dashboard.models.free_tag")) } }
                                @if none { " " span.badge.warn-tag { (lang.t("dashboard.models.none")) } }
                            }
                            td.num { strong.servable { (m.total()) } }
                            td.num { (m.paid) }
                            td.num { @if m.free_model { (m.free) } @else { span.muted { "—" } } }
                        }
                    }
                }
            } }
        }
    }
}

/// A model's name, breakable after its slashes; "(no model)" for requests without one.
fn model_name(lang: Lang, model: &str) -> Markup {
    html! {
        @if model.is_empty() {
            span.muted { (lang.t("dashboard.no_model")) }
        } @else {
            code.model-name {
                @for (i, part) in model.split('/').enumerate() {
                    @if i > 0 { "/" wbr; }
                    (part)
                }
            }
        }
    }
}

fn incident_banner(lang: Lang, i: &IncidentBanner) -> Markup {
    let keys = i.keys.to_string();
    html! {
        div.incident-banner #incident role="alert" {
            @match &i.model {
                Some(model) => {
                    strong { (lang.tf("dashboard.incident.model_title", &[("model", model)])) }
                    p { (lang.tf("dashboard.incident.model_body", &[("keys", &keys), ("model", model)])) }
                }
                None => {
                    strong { (lang.t("dashboard.incident.title")) }
                    p { (lang.tf("dashboard.incident.body", &[("keys", &keys)])) }
                }
            }
            dl.facts {
                dt { (lang.t("dashboard.incident.cause")) } dd { (crate::i18n::stored_reason_text(lang, &i.cause)) }
                dt { (lang.t("dashboard.incident.since")) } dd { (time(i.since)) }
                dt { (lang.t("dashboard.incident.until")) }
                dd { (time(i.until)) " " (lang.tf("dashboard.incident.clears_in", &[("seconds", &i.clears_in_s.to_string())])) }
            }
        }
    }
}

/// One chart with its choices; its own fragment.
pub fn panel(lang: Lang, p: &Panel) -> Markup {
    let links = p.links.as_ref().map(|l| serde_json::to_string(l).unwrap_or_default());
    html! {
        section.card.chart-panel id={ "chart-" (p.name) } {
            div.chart-head {
                h2 { (lang.t(&format!("dashboard.chart.{}", p.name))) }
                @if !p.choices.is_empty() {
                    div.choices {
                        @for c in &p.choices {
                            @let fragment = format!("/admin/charts/{}?{}", p.name, c.query);
                            @if c.active {
                                strong aria-current="true" { (lang.t(&c.label)) }
                            } @else {
                                a href={ "/admin?" (c.query) } hx-get=(fragment) data-choice=(c.own)
                                    hx-headers=r#"{"X-Chart-Choice":"1"}"# hx-target={ "#chart-" (p.name) } hx-swap="outerHTML" { (lang.t(&c.label)) }
                            }
                        }
                    }
                }
            }
            @if let Some(note) = &p.note { p.muted.chart-note { (note) } }
            div.chart data-chart=(charts::to_json(&p.chart)) data-chart-links=[links] {}
        }
    }
}

/// A (key, model) block in force, as a key's page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockView {
    /// The model (`""`: requests without a model).
    pub model: String,
    pub kind: BlockKind,
    /// When it ends (epoch ms).
    pub until: i64,
    /// The upstream's message.
    pub reason: String,
}

pub struct KeyView {
    pub detail: crate::domain::keys::KeyDetail,
    pub history: Chart,
    pub events: Vec<crate::domain::keys::KeyEvent>,
    /// The blocks in force, the database's and this server's merged.
    pub blocks: Vec<BlockView>,
}

/// The key's (key, model) blocks, or a line saying what it serves when there is none.
fn blocks_section(lang: Lang, status: KeyStatus, blocks: &[BlockView]) -> Markup {
    let none = match status {
        KeyStatus::Active | KeyStatus::Cooling => "dashboard.key.blocks_none_all",
        KeyStatus::Depleted => "dashboard.key.blocks_none_free",
        _ => "dashboard.key.blocks_none",
    };
    html! {
        section.card #model-blocks {
            h2 { (lang.t("dashboard.key.blocks")) }
            @if blocks.is_empty() {
                p.muted { (lang.t(none)) }
            } @else {
                div.table-wrap { table.blocks {
                    thead { tr {
                        th { (lang.t("dashboard.key.blocks_model")) }
                        th { (lang.t("dashboard.key.blocks_kind")) }
                        th { (lang.t("dashboard.key.blocks_reason")) }
                        th { (lang.t("dashboard.key.blocks_until")) }
                    } }
                    tbody {
                        @for b in blocks {
                            tr data-kind=(b.kind.as_str()) data-model=(b.model) {
                                td.model { (model_name(lang, &b.model)) }
                                td.kind { span class={ "badge block-" (b.kind.as_str()) } { (lang.t(&format!("dashboard.block.{}", b.kind.as_str()))) } }
                                td.reason { (crate::i18n::stored_reason_text(lang, &b.reason)) }
                                td.until data-label=(lang.t("dashboard.key.blocks_until")) { (time(b.until)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

pub fn key_page(ctx: &PageContext, v: &KeyView) -> Markup {
    let lang = ctx.lang;
    let k = &v.detail;
    let status = |s: KeyStatus| lang.t(&format!("keys.status.{}", s.as_str())).to_owned();
    page(
        ctx,
        lang.t("dashboard.key.title"),
        html! {
            h1 { (lang.t("dashboard.key.title")) }
            (super::keys::key_actions(lang, k, ctx.path))
            section.card {
                div.token-row {
                    code #key-text data-key=(k.key) data-masked=(mask(&k.key)) { (mask(&k.key)) }
                    button type="button" data-reveal { (lang.t("keys.reveal")) }
                    button type="button" data-copy-text=(k.key) data-copied=(lang.t("common.copied")) { (lang.t("common.copy")) }
                }
                dl.facts {
                    dt { (lang.t("keys.col.status")) } dd { span class={ "badge status-" (k.status.as_str()) } { (status(k.status)) } @if k.status == KeyStatus::Depleted { " " (free_only_tag(lang)) } @if let Some(r) = &k.status_reason { " " span.muted { (crate::i18n::stored_reason_text(lang, r)) } } }
                    dt { (lang.t("keys.col.balance")) } dd { (money(k.total_balance)) " (" (money(k.charge_balance)) " + " (money(k.gift_balance)) ")" }
                    dt { (lang.t("keys.col.checked")) } dd { @match k.checked_at { Some(t) => (time(t)), None => (lang.t("keys.never_checked")) } }
                    dt { (lang.t("keys.col.added")) } dd { (time(k.added_at)) }
                    @if let Some(s) = &k.source { dt { (lang.t("keys.import.source")) } dd { (s) } }
                    @if let Some(e) = &k.last_error { dt { (lang.t("dashboard.key.last_error")) } dd { (crate::i18n::stored_reason_text(lang, e)) } }
                    dt { (lang.t("dashboard.key.usage")) } dd { (lang.tf("dashboard.key.usage_value", &[("requests", &k.request_count.to_string()), ("failures", &k.failure_count.to_string())])) }
                    dt { (lang.t("access_keys.last_used")) } dd { @match k.last_used_at { Some(t) => (time(t)), None => (lang.t("access_keys.never")) } }
                }
                p { a #key-requests href={ "/admin/logs?key=" (k.id) } { (lang.t("logs.of_key")) } }
            }
            (blocks_section(lang, k.status, &v.blocks))
            section.card.chart-panel #chart-history {
                h2 { (lang.t("dashboard.key.history")) }
                div.chart data-chart=(charts::to_json(&v.history)) {}
            }
            section.card {
                h2 { (lang.t("dashboard.key.events")) }
                @if v.events.is_empty() {
                    p.muted { (lang.t("dashboard.key.no_events")) }
                } @else {
                    div.table-wrap { table { tbody {
                        @for e in &v.events {
                            tr {
                                td { (time(e.at)) }
                                td { (status(e.from_status)) " → " (status(e.to_status)) }
                                td.muted { @if let Some(r) = &e.reason { (crate::i18n::stored_reason_text(lang, r)) } }
                            }
                        }
                    } } }
                }
            }
            (chart_scripts())
        },
    )
}
