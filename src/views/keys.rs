//! 密钥管理 / Keys: import, export, and the keys table (a fragment swapped by htmx on every sort,
//! filter, page, selection and bulk action).

use maud::{Markup, html};

use super::components::{FlashKind, flash, free_only_tag, time};
use super::layout::{PageContext, page};
use crate::domain::keys::{
    CHECK_FAILED, ImportOutcome, KeyFilter, KeyListQuery, KeyRow, KeyStatus, PAGE_SIZES, SortField, format_balance,
    mask,
};
use crate::i18n::Lang;

/// Everything the table fragment shows.
pub struct KeyTable {
    pub query: KeyListQuery,
    pub rows: Vec<KeyRow>,
    /// Keys matching the filter.
    pub matching: i64,
    pub total: i64,
    pub per_status: Vec<(KeyStatus, i64)>,
    /// Unchecked keys whose last check failed transiently (counted in `per_status` too).
    pub check_failed: i64,
    pub selected: i64,
    pub flash: Option<(FlashKind, String)>,
}

/// Rejected lines listed at most; the rest are counted.
const REJECTED_SHOWN: usize = 200;

fn status_label(lang: Lang, status: KeyStatus) -> String {
    lang.t(&format!("keys.status.{}", status.as_str())).to_owned()
}

pub fn keys_page(ctx: &PageContext, table: &KeyTable, check: Option<&crate::domain::checks::Progress>) -> Markup {
    let lang = ctx.lang;
    let q = &table.query;
    page(
        ctx,
        lang.t("keys.title"),
        html! {
            h1 { (lang.t("keys.title")) }
            div.keys-tools {
                (import_form(lang))
                (export_form(lang))
            }
            section.card.wide.checks {
                (super::checks::params_form(lang, &crate::domain::FieldErrors::default()))
                (super::checks::panel(lang, check, None, false))
            }
            section.card.wide {
                form #key-filters.filters method="get" action="/admin/keys"
                    hx-get="/admin/keys" hx-target="#keys-table" hx-swap="outerHTML" hx-push-url="true"
                    hx-trigger="change, input changed delay:400ms from:#key-search, submit" {
                    (sort_fields(q, false))
                    label { (lang.t("keys.filter.status")) (status_select(lang, q, false)) }
                    label.grow { (lang.t("keys.filter.search"))
                        input #key-search type="search" name="q" value=(q.filter.search.clone().unwrap_or_default())
                            placeholder=(lang.t("keys.filter.search_hint")) autocomplete="off";
                    }
                    label { (lang.t("keys.filter.page_size")) (size_select(q, false)) }
                    noscript { button type="submit" { (lang.t("keys.filter.apply")) } }
                }
                (keys_table(lang, table))
            }
        },
    )
}

// The filter form sits outside the swapped table; after a sort, chip or page change the response
// carries these controls again as out-of-band swaps so the form never sends a stale state.

fn sort_fields(q: &KeyListQuery, oob: bool) -> Markup {
    let oob = oob.then_some("true");
    html! {
        input #filter-sort type="hidden" name="sort" value=(q.sort.as_str()) hx-swap-oob=[oob];
        input #filter-dir type="hidden" name="dir" value=(if q.descending { "desc" } else { "asc" }) hx-swap-oob=[oob];
    }
}

fn status_select(lang: Lang, q: &KeyListQuery, oob: bool) -> Markup {
    html! {
        select #filter-status name="status" hx-swap-oob=[oob.then_some("true")] {
            option value="" selected[q.filter.status.is_none()] { (lang.t("keys.filter.any")) }
            @for s in KeyStatus::ALL {
                option value=(s.as_str()) selected[q.filter.status_word() == Some(s.as_str())] { (status_label(lang, s)) }
                @if s == KeyStatus::Unchecked {
                    option value=(CHECK_FAILED) selected[q.filter.status_word() == Some(CHECK_FAILED)] { (lang.t("keys.ux.check_failed")) }
                }
            }
        }
    }
}

fn size_select(q: &KeyListQuery, oob: bool) -> Markup {
    html! {
        select #filter-size name="size" hx-swap-oob=[oob.then_some("true")] {
            @for n in PAGE_SIZES { option value=(n) selected[q.size == n] { (n) } }
        }
    }
}

/// The table as an htmx response: the fragment plus the filter controls, out of band.
pub fn keys_table_swap(lang: Lang, t: &KeyTable) -> Markup {
    html! {
        (keys_table(lang, t))
        (sort_fields(&t.query, true))
        (status_select(lang, &t.query, true))
        (size_select(&t.query, true))
    }
}

fn import_form(lang: Lang) -> Markup {
    html! {
        section.card #import {
            h2 { (lang.t("keys.import.title")) }
            form method="post" action="/admin/keys/import" hx-post="/admin/keys/import" hx-target="#import-result" hx-swap="innerHTML"
                hx-include="#check-params"
                hx-disabled-elt="find button[type=submit]" {
                label for="import-keys" { (lang.t("keys.import.label")) }
                textarea #import-keys name="keys" rows="6" spellcheck="false" placeholder=(lang.t("keys.import.placeholder")) {}
                p.help { (lang.t("keys.import.help")) }
                div.row {
                    label.file { (lang.t("keys.import.file"))
                        input type="file" accept=".txt,text/plain" data-load-into="#import-keys";
                    }
                    label.grow { (lang.t("keys.import.source"))
                        input type="text" name="source" maxlength="64" placeholder=(lang.t("keys.import.source_hint"));
                    }
                }
                label.switch {
                    input type="checkbox" name="check_now" value="on" checked;
                    span { (lang.t("keys.import.check_now")) }
                }
                button.primary type="submit" { (lang.t("keys.import.submit")) }
            }
            div #import-result aria-live="polite" {}
        }
    }
}

pub fn import_result(lang: Lang, s: &ImportOutcome) -> Markup {
    let args = [
        ("added", s.added.to_string()),
        ("present", s.present.to_string()),
        ("duplicates", s.duplicates.to_string()),
        ("rejected", s.rejected.len().to_string()),
    ];
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let kind = if s.rejected.is_empty() { FlashKind::Success } else { FlashKind::Error };
    html! {
        // Nothing refused: the page's script empties the box (a refused line stays there to fix).
        @if s.rejected.is_empty() { span hidden data-clear="#import-keys" {} }
        (flash(kind, &lang.tf("keys.import.summary", &args)))
        @if !s.rejected.is_empty() {
            details.rejected open {
                summary { (lang.t("keys.import.rejected_title")) }
                ol.rejected-lines {
                    @for r in s.rejected.iter().take(REJECTED_SHOWN) {
                        li {
                            span.line { (lang.tf("keys.import.line", &[("line", &r.line.to_string())])) }
                            code { (r.text) }
                            span.reason { (super::components::code_spans(lang.t(r.reason.message_key()))) }
                        }
                    }
                }
                @if s.rejected.len() > REJECTED_SHOWN {
                    p.muted { (lang.tf("keys.import.more_rejected", &[("count", &(s.rejected.len() - REJECTED_SHOWN).to_string())])) }
                }
            }
        }
    }
}

/// The import error for input over the size limit.
pub fn import_too_large(lang: Lang) -> Markup {
    html! { div class="flash flash-error" role="status" { (super::components::code_spans(lang.t("keys.import.too_large"))) } }
}

fn export_form(lang: Lang) -> Markup {
    html! {
        section.card #export {
            h2 { (lang.t("keys.export.title")) }
            form #export-form method="get" action="/admin/keys/export" data-export-check="/admin/keys/export/count"
                data-exporting=(lang.t("keys.ux.exporting")) {
                label { (lang.t("keys.export.scope"))
                    select name="scope" {
                        option value="selection" { (lang.t("keys.export.scope_selection")) }
                        option value="valid" { (lang.t("keys.export.scope_valid")) }
                        option value="all" { (lang.t("keys.export.scope_all")) }
                        option value="min_balance" { (lang.t("keys.export.scope_min_balance")) }
                    }
                }
                label { (lang.t("keys.export.min_balance"))
                    input type="number" name="min_balance" value="10" step="0.01";
                }
                (super::components::separator_fields(lang))
                label.switch {
                    input type="checkbox" name="with_balance" value="1";
                    span { (lang.t("keys.export.with_balance")) }
                }
                div.row {
                    button.primary type="submit" { (lang.t("keys.export.download")) }
                    button type="button" data-copy-export="#export-form" data-copied=(lang.t("keys.ux.copied")) data-failed=(lang.t("error.request_failed")) { (lang.t("keys.export.copy")) }
                }
            }
        }
    }
}

fn sort_header(lang: Lang, q: &KeyListQuery, field: SortField, label_key: &str) -> Markup {
    let next = q.toggled(field);
    let href = format!("/admin/keys?{}", next.to_query_string());
    let arrow = match (q.sort == field, q.descending) {
        (true, true) => " ↓",
        (true, false) => " ↑",
        _ => "",
    };
    let aria = match (q.sort == field, q.descending) {
        (true, true) => "descending",
        (true, false) => "ascending",
        _ => "none",
    };
    html! {
        th aria-sort=(aria) {
            a.sort href=(href) hx-get=(href) hx-target="#keys-table" hx-swap="outerHTML" hx-push-url="true" {
                (lang.t(label_key)) (arrow)
            }
        }
    }
}

fn state_fields(q: &KeyListQuery) -> Markup {
    html! {
        form #keys-state hidden {
            @if let Some(s) = q.filter.status_word() { input type="hidden" name="status" value=(s); }
            @if let Some(search) = &q.filter.search { input type="hidden" name="q" value=(search); }
            input type="hidden" name="sort" value=(q.sort.as_str());
            input type="hidden" name="dir" value=(if q.descending { "desc" } else { "asc" });
            input type="hidden" name="page" value=(q.page);
            input type="hidden" name="size" value=(q.size);
        }
    }
}

/// A button posting an action with the table's state.
fn action_button(path: &str, vals: &str, label: &str, class: &str, confirm: Option<&str>, disabled: bool) -> Markup {
    html! {
        button type="button" class=(class) hx-post=(path) hx-vals=(vals) hx-include="#keys-state"
            hx-target="#keys-table" hx-swap="outerHTML" hx-confirm=[confirm] disabled[disabled] { (label) }
    }
}

pub fn keys_table(lang: Lang, t: &KeyTable) -> Markup {
    let q = &t.query;
    let refresh = format!("/admin/keys?{}", q.to_query_string());
    html! {
        div #keys-table hx-get=(refresh) hx-trigger="keys-changed from:body" hx-swap="outerHTML" {
            (state_fields(q))
            (status_counts(lang, t))
            (bulk_bar(lang, t))
            @if let Some((kind, text)) = &t.flash { (flash(*kind, text)) }
            @if t.rows.is_empty() {
                p.muted.empty { (if t.total == 0 { lang.t("keys.empty") } else { lang.t("keys.no_match") }) }
            } @else {
                (rows_table(lang, t))
                (pager(lang, t))
            }
        }
    }
}

/// The total, a filter link per state, and how many keys are selected.
fn status_counts(lang: Lang, t: &KeyTable) -> Markup {
    let q = &t.query;
    html! {
        div.counts {
            span.count-total { (lang.tf("keys.counts.total", &[("count", &t.total.to_string())])) }
            @for (status, count) in &t.per_status {
                @if *status == KeyStatus::Unchecked {
                    (status_badge(q, status.as_str(), &status_label(lang, *status), count - t.check_failed))
                    (status_badge(q, CHECK_FAILED, lang.t("keys.ux.check_failed"), t.check_failed))
                } @else {
                    (status_badge(q, status.as_str(), &status_label(lang, *status), *count))
                }
            }
            span #selected-count.count-selected { (lang.tf("keys.counts.selected", &[("count", &t.selected.to_string())])) }
        }
    }
}

/// A state's filter link with its count (nothing when no key is in it).
fn status_badge(q: &KeyListQuery, word: &str, label: &str, count: i64) -> Markup {
    let filter = KeyFilter::for_status_word(word, None);
    let href = format!("/admin/keys?{}", KeyListQuery { filter, ..q.with_page(1) }.to_query_string());
    html! {
        @if count > 0 {
            a class={ "badge status-" (word) } href=(href) hx-get=(href) hx-target="#keys-table" hx-swap="outerHTML" hx-push-url="true" {
                (label) " " (count)
            }
        }
    }
}

/// Selection, bulk actions, export/copy and checks of the selection, the filter or every key.
fn bulk_bar(lang: Lang, t: &KeyTable) -> Markup {
    let invalid = t.per_status.iter().find(|(s, _)| *s == KeyStatus::Invalid).map_or(0, |(_, n)| *n);
    let n = |v: i64| v.to_string();
    html! {
        div.bulk {
            (action_button("/admin/keys/selection", r#"{"action":"select_all"}"#, &lang.tf("keys.select.all_matching", &[("count", &n(t.matching))]), "", None, t.matching == 0))
            (action_button("/admin/keys/selection", r#"{"action":"clear"}"#, lang.t("keys.select.clear"), "", None, t.selected == 0))
            (action_button("/admin/keys/bulk", r#"{"action":"enable"}"#, lang.t("keys.bulk.enable"), "", None, t.selected == 0))
            (action_button("/admin/keys/bulk", r#"{"action":"disable"}"#, lang.t("keys.bulk.disable"), "", None, t.selected == 0))
            (action_button("/admin/keys/bulk", r#"{"action":"delete"}"#, lang.t("keys.bulk.delete"), "danger",
                Some(&lang.tf("keys.bulk.delete_confirm", &[("count", &n(t.selected))])), t.selected == 0))
            (action_button("/admin/keys/bulk", r#"{"action":"delete_invalid"}"#, &lang.tf("keys.bulk.delete_invalid", &[("count", &n(invalid))]), "danger",
                Some(&lang.tf("keys.bulk.delete_invalid_confirm", &[("count", &n(invalid))])), invalid == 0))
            a.button href="/admin/keys/export?scope=selection" download data-export-check="/admin/keys/export/count?scope=selection"
                data-exporting=(lang.t("keys.ux.exporting")) aria-disabled=[(t.selected == 0).then_some("true")] { (lang.t("keys.bulk.export")) }
            button type="button" data-copy-url="/admin/keys/export?scope=selection" data-copied=(lang.t("keys.ux.copied"))
                data-failed=(lang.t("error.request_failed")) disabled[t.selected == 0] { (lang.t("keys.bulk.copy")) }
            @for (scope, label, disabled) in [("selection", "keys.bulk.check", t.selected == 0), ("matching", "keys.bulk.check_matching", t.matching == 0), ("all", "keys.bulk.check_all", t.total == 0)] {
                button type="button" hx-post="/admin/checks" hx-vals=(format!(r#"{{"scope":"{scope}"}}"#)) data-check-scope=(scope)
                    hx-include="#keys-state, #check-params" hx-target="#check-panel" hx-swap="outerHTML" disabled[disabled]
                    hx-confirm=[(scope == "all").then(|| check_all_confirm(lang, t))] { (lang.t(label)) }
            }
        }
    }
}

/// "Check all N keys now? It takes about T." T is rough: the default parameters, one second a call.
fn check_all_confirm(lang: Lang, t: &KeyTable) -> String {
    let disabled = t.per_status.iter().find(|(s, _)| *s == KeyStatus::Disabled).map_or(0, |(_, n)| *n);
    let keys = (t.total - disabled).max(0);
    let p = crate::domain::checks::CheckParams::default();
    let interval_ms = match p.interval {
        crate::domain::checks::Interval::Fixed(d) => d.as_millis() as i64,
        crate::domain::checks::Interval::Random { min, max } => (min.as_millis() + max.as_millis()) as i64 / 2,
    };
    let concurrency = p.concurrency.max(1) as i64;
    let secs = ((keys + concurrency - 1) / concurrency * (1000 + interval_ms) + 999) / 1000;
    let time = if secs < 60 {
        lang.tf("dashboard.check_all.seconds", &[("n", &secs.to_string())])
    } else {
        lang.tf("dashboard.check_all.minutes", &[("n", &((secs + 59) / 60).to_string())])
    };
    lang.tf("dashboard.check_all.confirm", &[("keys", &keys.to_string()), ("time", &time)])
}

/// The page's keys, with a select-the-page box and sortable columns.
fn rows_table(lang: Lang, t: &KeyTable) -> Markup {
    let q = &t.query;
    let page_ids: Vec<String> = t.rows.iter().map(|r| r.id.to_string()).collect();
    let page_all_selected = !t.rows.is_empty() && t.rows.iter().all(|r| r.selected);
    let page_action = if page_all_selected { "unselect_page" } else { "select_page" };
    html! {
        div.table-wrap {
            table.keys {
                thead { tr {
                    th.num { "#" }
                    th.check {
                        input type="checkbox" aria-label=(lang.t("keys.select.page")) checked[page_all_selected]
                            hx-post="/admin/keys/selection" hx-vals=(format!(r#"{{"action":"{page_action}","ids":"{}"}}"#, page_ids.join(",")))
                            hx-include="#keys-state" hx-target="#keys-table" hx-swap="outerHTML";
                    }
                    th { (lang.t("keys.col.key")) }
                    (sort_header(lang, q, SortField::Balance, "keys.col.balance"))
                    (sort_header(lang, q, SortField::Checked, "keys.col.checked"))
                    (sort_header(lang, q, SortField::Added, "keys.col.added"))
                    th { (lang.t("keys.col.status")) }
                    th { span.sr-only { (lang.t("keys.col.actions")) } }
                } }
                tbody {
                    @for (i, r) in t.rows.iter().enumerate() {
                        (key_row(lang, q, q.offset() + i as i64 + 1, r))
                    }
                }
            }
        }
    }
}

/// First / previous / where / next / last.
fn pager(lang: Lang, t: &KeyTable) -> Markup {
    let q = &t.query;
    let pages = q.page_count(t.matching);
    let link = |p: u32, label: &str, enabled: bool| {
        let href = format!("/admin/keys?{}", q.with_page(p).to_query_string());
        html! {
            @if enabled {
                a href=(href) hx-get=(href) hx-target="#keys-table" hx-swap="outerHTML" hx-push-url="true" { (label) }
            } @else { span.disabled { (label) } }
        }
    };
    let position = [("page", q.page.to_string()), ("pages", pages.to_string()), ("count", t.matching.to_string())];
    let position: Vec<(&str, &str)> = position.iter().map(|(k, v)| (*k, v.as_str())).collect();
    html! {
        nav.pager aria-label=(lang.t("keys.pager.label")) {
            (link(1, lang.t("keys.pager.first"), q.page > 1))
            (link(q.page.saturating_sub(1).max(1), lang.t("keys.pager.prev"), q.page > 1))
            span.where { (lang.tf("keys.pager.position", &position)) }
            (link((q.page + 1).min(pages), lang.t("keys.pager.next"), q.page < pages))
            (link(pages, lang.t("keys.pager.last"), q.page < pages))
        }
    }
}

fn key_row(lang: Lang, q: &KeyListQuery, number: i64, r: &KeyRow) -> Markup {
    let select_action = if r.selected { "unselect" } else { "select" };
    let disabled = r.status == KeyStatus::Disabled;
    html! {
        tr.selected[r.selected] data-select-row {
            td.num { a href={ "/admin/keys/" (r.id) "?" (q.to_query_string()) } title=(lang.t("keys.details")) { (number) } }
            td.check {
                input type="checkbox" aria-label=(lang.t("keys.select.row")) checked[r.selected]
                    hx-post="/admin/keys/selection" hx-vals=(format!(r#"{{"action":"{select_action}","ids":"{}"}}"#, r.id))
                    hx-include="#keys-state" hx-target="#keys-table" hx-swap="outerHTML";
            }
            td.key {
                code data-key=(r.key) data-masked=(mask(&r.key)) { (mask(&r.key)) }
                button.icon type="button" data-reveal title=(lang.t("keys.reveal")) aria-label=(lang.t("keys.reveal")) { (super::components::icon(super::components::Icon::Eye)) }
                button.icon type="button" data-copy-text=(r.key) data-copied="✓" title=(lang.t("common.copy")) aria-label=(lang.t("common.copy")) { (super::components::icon(super::components::Icon::Copy)) }
            }
            td.balance data-label=(lang.t("keys.col.balance")) { @match r.total_balance { Some(b) => (format_balance(b)), None => span.muted { "—" } } }
            td.checked-at data-label=(lang.t("keys.col.checked")) { @match r.checked_at {
                Some(t) => (time(t)),
                None => span.muted title=(lang.t("keys.never_checked")) { (lang.t("keys.added_prefix")) " " (time(r.added_at)) },
            } }
            td.added-at data-label=(lang.t("keys.col.added")) { (time(r.added_at)) }
            td.state { (state_cell(lang, r)) }
            td.actions {
                button type="button" hx-post="/admin/checks" hx-vals=(format!(r#"{{"scope":"key","id":{}}}"#, r.id))
                    hx-include="#check-params" hx-target="#check-panel" hx-swap="outerHTML" { (lang.t("keys.row.check")) }
                @if disabled {
                    (action_button(&format!("/admin/keys/{}/enable", r.id), "{}", lang.t("keys.row.enable"), "", None, false))
                } @else {
                    (action_button(&format!("/admin/keys/{}/disable", r.id), "{}", lang.t("keys.row.disable"), "", None, false))
                }
                (action_button(&format!("/admin/keys/{}/delete", r.id), "{}", lang.t("keys.row.delete"), "danger", Some(lang.t("keys.row.delete_confirm")), false))
            }
        }
    }
}

/// A row's state: its badge, and the reason (the last error, or why the state changed) in a details
/// element a tap opens, so a phone reads it too. An unchecked key whose last check failed
/// transiently (429, 5xx, timeout) reads "check failed", not "unchecked".
fn state_cell(lang: Lang, r: &KeyRow) -> Markup {
    let failed = r.status == KeyStatus::Unchecked && r.last_error.is_some();
    let (word, label) = if failed {
        (CHECK_FAILED, lang.t("keys.ux.check_failed").to_owned())
    } else {
        (r.status.as_str(), status_label(lang, r.status))
    };
    let reason = r.last_error.as_deref().or(r.status_reason.as_deref());
    let badge = html! { span class={ "badge status-" (word) } { (label) } };
    html! {
        @match reason {
            Some(reason) => details.state-reason {
                summary { (badge) }
                p.reason { (lang.tf("keys.ux.reason", &[("reason", &crate::i18n::stored_reason_text(lang, reason))])) }
            },
            None => (badge),
        }
        @if r.status == KeyStatus::Depleted { " " (free_only_tag(lang)) }
    }
}

/// The answer to an export whose scope holds no key, for a browser without script: the message and
/// a way back.
pub fn export_refused(ctx: &PageContext, message: &str) -> Markup {
    let lang = ctx.lang;
    page(
        ctx,
        lang.t("keys.title"),
        html! {
            section.card.narrow #export-refused {
                h1 { (lang.t("keys.export.title")) }
                (flash(FlashKind::Error, message))
                p { a.button href="/admin/keys" { (lang.t("keys.ux.back")) } }
            }
        },
    )
}

/// The keys list's query string carried in a key's detail URL (`/admin/keys/5?status=failed&page=2`),
/// cleaned by a parse: only list state goes back into links.
pub fn list_query_of(path: &str) -> String {
    let raw = path.split_once('?').map_or("", |(_, q)| q);
    let parsed: crate::domain::keys::RawKeyListQuery = serde_urlencoded::from_str(raw).unwrap_or_default();
    KeyListQuery::parse(&parsed).to_query_string()
}

/// A detail page's action: a form posting to the keys table's endpoint (`from=detail` makes it answer
/// with a redirect: back to this page, or to the list after a delete).
fn detail_action(id: i64, action: &str, list: &str, label: &str, class: &str, confirm: Option<&str>) -> Markup {
    let path = format!("/admin/keys/{id}/{action}");
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(list).unwrap_or_default();
    html! {
        form.detail-action method="post" action=(path) hx-post=(path) hx-confirm=[confirm] {
            input type="hidden" name="from" value="detail";
            @for (name, value) in &fields { input type="hidden" name=(name) value=(value); }
            button type="submit" class=(class) data-action=(action) { (label) }
        }
    }
}

/// The key detail page's bar: back to the list as it was filtered, check, disable or enable, delete,
/// and the check panel a check fills.
pub fn key_actions(lang: Lang, k: &crate::domain::keys::KeyDetail, path: &str) -> Markup {
    let list = list_query_of(path);
    let toggle = if k.status == KeyStatus::Disabled { "enable" } else { "disable" };
    html! {
        p.back-link { a #back-to-list href={ "/admin/keys?" (list) } { "← " (lang.t("keys.ux.back")) } }
        section.card.key-actions #key-actions {
            div.actions-row {
                button #detail-check type="button" hx-post="/admin/checks" hx-vals=(format!(r#"{{"scope":"key","id":{}}}"#, k.id))
                    hx-include="#check-params" hx-target="#check-panel" hx-swap="outerHTML" { (lang.t("keys.row.check")) }
                (detail_action(k.id, toggle, &list, lang.t(&format!("keys.row.{toggle}")), "", None))
                (detail_action(k.id, "delete", &list, lang.t("keys.row.delete"), "danger", Some(lang.t("keys.row.delete_confirm"))))
                button #detail-copy type="button" data-copy-text=(k.key) data-copied=(lang.t("common.copied")) { (lang.t("keys.detail.copy")) }
            }
            // The same parameters as the keys page's (and the same remembered values, see app.js).
            (super::checks::params_form(lang, &crate::domain::FieldErrors::default()))
            (super::checks::panel(lang, None, None, false))
        }
    }
}
