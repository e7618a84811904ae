//! 请求日志 / Request log: the filters, and the table of requests newest first (a fragment swapped by
//! htmx on every filter change and page), with its CSV export.

use maud::{Markup, html};

use super::components::{FlashKind, field_message, flash, time};
use super::layout::{PageContext, page};
use crate::domain::FieldErrors;
use crate::domain::logs::{AccessKeyRef, LogEntry, LogQuery, SINCE_CHOICES, StatusClass, TimeRange, format_cost};
use crate::i18n::Lang;

/// One page of the log.
pub struct LogTable {
    pub query: LogQuery,
    pub rows: Vec<LogEntry>,
    /// There are older matching rows.
    pub more: bool,
    /// No more matches among the ids looked at: (the lowest id looked at, how many ids were looked
    /// at); older rows were not looked at.
    pub searched: Option<(i64, i64)>,
    /// Parameters that were not understood (left out of the filter).
    pub errors: FieldErrors,
}

/// The choices of the filter's selects.
pub struct LogChoices {
    /// (id, name) of every access key.
    pub access_keys: Vec<(i64, String)>,
    /// Models seen in the log.
    pub models: Vec<String>,
}

fn class_label(lang: Lang, class: StatusClass) -> String {
    lang.t(&format!("logs.class.{}", class.as_str())).to_owned()
}

pub fn logs_page(ctx: &PageContext, table: &LogTable, choices: &LogChoices) -> Markup {
    let lang = ctx.lang;
    let f = &table.query.filter;
    let (since, from, to) = match &f.range {
        TimeRange::All => ("", "", ""),
        TimeRange::Since { text, .. } => (text.as_str(), "", ""),
        TimeRange::Between { from_text, to_text, .. } => ("", from_text.as_str(), to_text.as_str()),
    };
    let selected_key = |id: i64, name: &str| match &f.access_key {
        Some(AccessKeyRef::Id(x)) => *x == id,
        Some(AccessKeyRef::Name(n)) => n == name,
        None => false,
    };
    page(
        ctx,
        lang.t("logs.title"),
        html! {
            h1 { (lang.t("logs.title")) }
            section.card.wide {
                form #log-filters.filters method="get" action="/admin/logs"
                    hx-get="/admin/logs" hx-target="#logs-table" hx-swap="outerHTML" hx-push-url="true"
                    hx-trigger="change, input changed delay:400ms from:#log-search, submit" {
                    label { (lang.t("logs.filter.since"))
                        select #log-since name="since" {
                            option value="" selected[since.is_empty()] { (lang.t("logs.filter.any_time")) }
                            @for s in SINCE_CHOICES {
                                option value=(s) selected[since == s] { (lang.t(&format!("logs.since.{s}"))) }
                            }
                            @if !since.is_empty() && !SINCE_CHOICES.contains(&since) {
                                option value=(since) selected { (since) }
                            }
                        }
                    }
                    label { (lang.t("logs.filter.from"))
                        input #log-from type="datetime-local" name="from" value=(from) title=(lang.t("logs.filter.utc"));
                    }
                    label { (lang.t("logs.filter.to"))
                        input #log-to type="datetime-local" name="to" value=(to) title=(lang.t("logs.filter.utc"));
                    }
                    label { (lang.t("logs.filter.access_key"))
                        select #log-access-key name="access_key" {
                            option value="" selected[f.access_key.is_none()] { (lang.t("logs.filter.any")) }
                            @for (id, name) in &choices.access_keys {
                                option value=(id) selected[selected_key(*id, name)] { (name) }
                            }
                            @if let Some(AccessKeyRef::Name(n)) = &f.access_key {
                                @if !choices.access_keys.iter().any(|(_, name)| name == n) {
                                    option value=(n) selected { (n) }
                                }
                            }
                        }
                    }
                    label { (lang.t("logs.filter.model"))
                        input #log-model type="text" name="model" list="log-models" autocomplete="off"
                            value=(f.model.clone().unwrap_or_default()) placeholder=(lang.t("logs.filter.any"));
                        datalist #log-models { @for m in &choices.models { option value=(m) {} } }
                    }
                    label { (lang.t("logs.filter.status"))
                        select #log-status name="status" {
                            option value="" selected[f.class.is_none()] { (lang.t("logs.filter.any")) }
                            @for c in StatusClass::ALL {
                                option value=(c.as_str()) selected[f.class == Some(c)] { (class_label(lang, c)) }
                            }
                        }
                    }
                    @if let Some(key) = f.key_id {
                        input type="hidden" name="key" value=(key);
                    }
                    label.grow { (lang.t("logs.filter.search"))
                        input #log-search type="search" name="q" value=(f.search.clone().unwrap_or_default())
                            placeholder=(lang.t("logs.filter.search_hint")) autocomplete="off";
                    }
                    noscript { button type="submit" { (lang.t("logs.filter.apply")) } }
                    a.button href="/admin/logs" { (lang.t("logs.filter.reset")) }
                }
                (logs_table(lang, table))
            }
        },
    )
}

/// The table and its pager, swapped as one fragment.
pub fn logs_table(lang: Lang, t: &LogTable) -> Markup {
    let q = &t.query;
    let filter_qs = q.filter.to_query_string();
    let with_qs = |path: &str| if filter_qs.is_empty() { path.to_owned() } else { format!("{path}?{filter_qs}") };
    html! {
        div #logs-table {
            @for e in &t.errors.0 { (flash(FlashKind::Error, &field_message(lang, e))) }
            div.log-tools {
                @if let Some(key) = q.filter.key_id {
                    @let href = format!("/admin/logs?{}", crate::domain::logs::LogFilter { key_id: None, ..q.filter.clone() }.to_query_string());
                    span.badge.log-key {
                        (lang.tf("logs.filter.key_chip", &[("id", &key.to_string())])) " "
                        a href=(href) title=(lang.t("logs.filter.remove")) aria-label=(lang.t("logs.filter.remove")) { "✕" }
                    }
                }
                a.button #log-export href=(with_qs("/admin/logs/export")) download { (lang.t("logs.export")) }
            }
            @if t.rows.is_empty() {
                p.muted.empty { (lang.t("logs.empty")) }
            } @else {
                div.table-wrap.logs-wrap {
                    table.logs {
                        thead { tr {
                            th { (lang.t("logs.col.time")) }
                            th { (lang.t("logs.col.access_key")) }
                            th { (lang.t("logs.col.model")) }
                            th { (lang.t("logs.col.key")) }
                            th { (lang.t("logs.col.status")) }
                            th.num { (lang.t("logs.col.latency")) }
                            th.num { (lang.t("logs.col.ttfb")) }
                            th.num { (lang.t("logs.col.attempts")) }
                            th.num title=(lang.t("logs.col.tokens_hint")) { (lang.t("logs.col.tokens")) }
                            th.num { (lang.t("logs.col.cost")) }
                            th { (lang.t("logs.col.error")) }
                        } }
                        tbody {
                            @for e in &t.rows { (log_row(lang, e)) }
                        }
                    }
                }
            }
            nav.pager aria-label=(lang.t("logs.pager.label")) {
                @if q.before.is_some() {
                    @let href = with_qs("/admin/logs");
                    a #log-newest href=(href) hx-get=(href) hx-target="#logs-table" hx-swap="outerHTML" hx-push-url="true" { (lang.t("logs.pager.newest")) }
                }
                @match (t.more, t.rows.last()) {
                    (true, Some(last)) => {
                        @let href = format!("/admin/logs?{}", q.older_than(last.id));
                        a #log-older rel="next" href=(href) hx-get=(href) hx-target="#logs-table" hx-swap="outerHTML" hx-push-url="true" { (lang.t("logs.pager.older")) }
                    }
                    (false, _) if t.searched.is_some() => {
                        @let (to, n) = t.searched.unwrap_or_default();
                        @let href = format!("/admin/logs?{}", q.older_than(to));
                        span.muted.searched { (lang.tf("logs.pager.searched", &[("n", &n.to_string())])) }
                        " "
                        a #log-search-older rel="next" href=(href) hx-get=(href) hx-target="#logs-table" hx-swap="outerHTML" hx-push-url="true" { (lang.t("logs.pager.search_older")) }
                    }
                    _ => { span.disabled { (lang.t("logs.pager.older")) } }
                }
            }
        }
    }
}

fn ms(lang: Lang, v: Option<i64>) -> Markup {
    html! { @match v { Some(v) => (lang.tf("logs.ms", &[("value", &v.to_string())])), None => span.muted { "—" } } }
}

fn log_row(lang: Lang, e: &LogEntry) -> Markup {
    let class = e.class();
    let tokens = match (e.prompt_tokens, e.completion_tokens, e.total_tokens) {
        (None, None, None) => None,
        (p, c, t) => {
            let n = |v: Option<i64>| v.map_or_else(|| "—".to_owned(), |v| v.to_string());
            Some(format!("{} / {} / {}", n(p), n(c), n(t)))
        }
    };
    html! {
        tr data-id=(e.id) {
            td.time data-label=(lang.t("logs.col.time")) { (time(e.at)) }
            td.access-key data-label=(lang.t("logs.col.access_key")) { (e.access_key_label()) }
            td.model data-label=(lang.t("logs.col.model")) { @match &e.model { Some(m) => (m), None => span.muted { "—" } } }
            td.key data-label=(lang.t("logs.col.key")) {
                @match e.key_id {
                    Some(id) => a href={ "/admin/keys/" (id) } title=(lang.t("keys.details")) { code { (e.key_label()) } },
                    None => span.muted { "—" },
                }
            }
            td data-label=(lang.t("logs.col.status")) { span class={ "badge log-" (class.as_str()) } title=(class_label(lang, class)) { (e.status) } }
            td.num data-label=(lang.t("logs.col.latency")) { (ms(lang, Some(e.latency_ms))) }
            td.num data-label=(lang.t("logs.col.ttfb")) { (ms(lang, e.ttfb_ms)) }
            td.num data-label=(lang.t("logs.col.attempts")) { (e.attempts) }
            td.num.tokens data-label=(lang.t("logs.col.tokens")) { @match tokens { Some(t) => (t), None => span.muted { "—" } } }
            td.num.cost data-label=(lang.t("logs.col.cost")) { @match e.cost { Some(c) => { "¥" (format_cost(c)) }, None => span.muted { "—" } } }
            td.error data-label=(lang.t("logs.col.error")) { @if let Some(err) = &e.error { @let said = crate::i18n::log_error_text(lang, err); span title=(said) { (said) } } }
        }
    }
}
