//! An access key's limits: the state badges, one bar per quota with what is used now and when it
//! resets, the edit form (settings page) and the guest access key's card (guest page).

use maud::{Markup, html};

use super::components::field_error;
use crate::domain::FieldErrors;
use crate::domain::access_limits::{AccessLimits, Counts, Limit, format_money};
use crate::domain::settings::format_utc_offset;
use crate::i18n::Lang;

/// What the bars of one key show: its limits and its counts of the current minute, day and month
/// with each window's end.
pub struct LimitsItem<'a> {
    pub limits: &'a AccessLimits,
    pub usage: &'a [(Counts, i64); 3],
    /// Now and the upstream's time zone, in which days, months and times are shown.
    pub now: i64,
    pub offset_min: i32,
}

/// The form's values as shown: the stored limits, or what was just submitted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsFormValues {
    pub enabled: bool,
    /// `YYYY-MM-DDTHH:MM` in the upstream's time zone, as `datetime-local` takes it.
    pub expires: String,
    /// One per line.
    pub models: String,
    pub free_only: bool,
    pub rpm: String,
    pub tpm: String,
    pub rpd: String,
    pub tpd: String,
    pub spend_day: String,
    pub spend_month: String,
    pub note: String,
}

impl LimitsFormValues {
    pub fn from_limits(l: &AccessLimits, offset_min: i32) -> Self {
        let count = |n: Option<i64>| n.map(|n| n.to_string()).unwrap_or_default();
        let money = |x: Option<f64>| x.map(format_money).unwrap_or_default();
        Self {
            enabled: l.enabled,
            expires: l.expires_at.map(|at| local(at, offset_min, "%Y-%m-%dT%H:%M")).unwrap_or_default(),
            models: l.models.join("\n"),
            free_only: l.free_only,
            rpm: count(l.rpm),
            tpm: count(l.tpm),
            rpd: count(l.rpd),
            tpd: count(l.tpd),
            spend_day: money(l.spend_day),
            spend_month: money(l.spend_month),
            note: l.note.clone().unwrap_or_default(),
        }
    }

    fn number(&self, limit: Limit) -> &str {
        match limit {
            Limit::Rpm => &self.rpm,
            Limit::Tpm => &self.tpm,
            Limit::Rpd => &self.rpd,
            Limit::Tpd => &self.tpd,
            Limit::SpendDay => &self.spend_day,
            Limit::SpendMonth => &self.spend_month,
        }
    }
}

/// A moment in the time zone `offset_min` minutes east of UTC, in `format`.
fn local(ms: i64, offset_min: i32, format: &str) -> String {
    let shifted = ms + i64::from(offset_min) * 60_000;
    chrono::DateTime::from_timestamp_millis(shifted).map(|t| t.format(format).to_string()).unwrap_or_default()
}

/// A moment as the upstream's local time with its zone: `12-02 00:00 UTC+8`, the year when it is
/// not this one.
pub fn zoned_time(ms: i64, now: i64, offset_min: i32) -> Markup {
    let format =
        if local(ms, offset_min, "%Y") == local(now, offset_min, "%Y") { "%m-%d %H:%M" } else { "%Y-%m-%d %H:%M" };
    let datetime = chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    html! { time datetime=(datetime) { (local(ms, offset_min, format)) " " (format_utc_offset(offset_min)) } }
}

/// 1234 → 1.2k, 3456789 → 3.5M; money with its currency.
fn amount(limit: Limit, x: f64) -> String {
    if limit.is_spend() {
        return format!("¥{}", format_money(x));
    }
    let n = x.round() as i64;
    match n {
        n if n >= 1_000_000 => format!("{:.1}M", n as f64 / 1e6),
        n if n >= 10_000 => format!("{:.1}k", n as f64 / 1e3),
        n => n.to_string(),
    }
}

/// Disabled, expired or expiring, the models allowed, the note.
pub fn state_badges(lang: Lang, item: &LimitsItem) -> Markup {
    let l = item.limits;
    html! {
        span.limit-badges {
            @if !l.enabled { span.badge.limit-off { (lang.t("access_keys.limits.disabled")) } }
            @if let Some(at) = l.expires_at {
                @if at <= item.now {
                    span.badge.limit-off { (lang.t("access_keys.limits.expired")) " " (zoned_time(at, item.now, item.offset_min)) }
                } @else {
                    span.badge { (lang.t("access_keys.limits.expires_at")) " " (zoned_time(at, item.now, item.offset_min)) }
                }
            }
            @if l.free_only { span.badge.free-only { (lang.t("access_keys.limits.free_models_only")) } }
            @if !l.models.is_empty() {
                span.badge.limit-models title=(l.models.join("\n")) {
                    (lang.tf("access_keys.limits.models_allowed", &[("models", &l.models.join(", "))]))
                }
            }
            @if let Some(note) = &l.note { span.limit-note { (note) } }
        }
    }
}

/// One bar per quota set: used / limit, when it resets, and by how much it went over.
pub fn usage_bars(lang: Lang, item: &LimitsItem) -> Markup {
    html! {
        @if item.limits.has_quota() {
            ul.limit-bars {
                @for limit in Limit::ALL {
                    @if let Some(value) = limit.of(item.limits) {
                        (bar(lang, item, limit, value))
                    }
                }
            }
        } @else {
            p.muted.limit-none { (lang.t("access_keys.limits.no_quota")) }
        }
    }
}

fn bar(lang: Lang, item: &LimitsItem, limit: Limit, value: f64) -> Markup {
    let (counts, resets_at) = &item.usage[limit.period().index()];
    let used = limit.used(counts);
    let full = used >= value;
    html! {
        li.limit-bar.full[full] data-limit=(limit.name()) {
            span.limit-head {
                span.limit-name { (lang.t(&format!("access_keys.limits.bar.{}", limit.name()))) }
                span.limit-used { (amount(limit, used)) " / " (amount(limit, value)) }
            }
            progress max=(value) value=(used.min(value)) aria-label=(lang.t(&format!("access_keys.limits.bar.{}", limit.name()))) {}
            span.limit-foot {
                @if used > value {
                    span.limit-over { (lang.tf("access_keys.limits.over", &[("n", &amount(limit, used - value))])) }
                }
                span.limit-reset { (lang.t("access_keys.limits.resets")) " " (zoned_time(*resets_at, item.now, item.offset_min)) }
            }
        }
    }
}

/// The edit form of key `id`, in a `<details>` that is open when it holds errors.
pub fn limits_form(lang: Lang, id: i64, v: &LimitsFormValues, errors: &FieldErrors, offset_min: i32) -> Markup {
    let action = format!("/admin/access-keys/{id}/limits");
    let field_id = |name: &str| format!("limits-{id}-{name}");
    let invalid = |name: &str| errors.get(name).map(|_| "true");
    html! {
        details.limits-edit open[!errors.is_empty()] {
            summary { (lang.t("access_keys.limits.edit")) }
            form.limits-form method="post" action=(action) hx-post=(action) hx-target="#access-keys" hx-swap="outerHTML" {
                label.switch {
                    input name="enabled" type="checkbox" value="on" checked[v.enabled];
                    span { (lang.t("access_keys.limits.enabled")) }
                }
                div.limits-grid {
                    @for limit in Limit::ALL {
                        div.field {
                            label for=(field_id(limit.name())) { (lang.t(&format!("access_keys.limits.field.{}", limit.name()))) }
                            input id=(field_id(limit.name())) name=(limit.name()) type="text" inputmode=(if limit.is_spend() { "decimal" } else { "numeric" })
                                value=(v.number(limit)) aria-invalid=[invalid(limit.name())];
                            (field_error(lang, errors, limit.name()))
                        }
                    }
                }
                p.help { (lang.t("access_keys.limits.numbers_help")) }
                label for=(field_id("expires")) { (lang.t("access_keys.limits.expires")) }
                input id=(field_id("expires")) name="expires" type="datetime-local" value=(v.expires) aria-invalid=[invalid("expires")];
                (field_error(lang, errors, "expires"))
                p.help { (lang.tf("access_keys.limits.expires_help", &[("zone", &format_utc_offset(offset_min))])) }
                label for=(field_id("models")) { (lang.t("access_keys.limits.models")) }
                textarea id=(field_id("models")) name="models" rows="3" spellcheck="false" autocomplete="off"
                    placeholder="Qwen/*" aria-invalid=[invalid("models")] { (v.models) }
                (field_error(lang, errors, "models"))
                p.help { (lang.t("access_keys.limits.models_help")) }
                label.switch {
                    input name="free_only" type="checkbox" value="on" checked[v.free_only];
                    span { (lang.t("access_keys.limits.free_only")) }
                }
                p.help { (lang.t("access_keys.limits.free_only_help")) }
                label for=(field_id("note")) { (lang.t("access_keys.limits.note")) }
                input id=(field_id("note")) name="note" type="text" maxlength="200" value=(v.note) aria-invalid=[invalid("note")];
                (field_error(lang, errors, "note"))
                button.primary type="submit" { (lang.t("access_keys.limits.save")) }
            }
        }
    }
}

/// The limits as words, for guests: "60 requests per minute", "free models only" …
pub fn limits_list(lang: Lang, l: &AccessLimits, now: i64, offset_min: i32) -> Markup {
    let set: Vec<(Limit, f64)> = Limit::ALL.iter().filter_map(|lim| lim.of(l).map(|v| (*lim, v))).collect();
    html! {
        ul.limits-list {
            @for (limit, value) in &set {
                li { (lang.tf(&format!("access_keys.limits.per.{}", limit.name()), &[("n", &amount(*limit, *value))])) }
            }
            @if l.free_only { li { (lang.t("access_keys.limits.free_models_only")) } }
            @if !l.models.is_empty() {
                li { (lang.tf("access_keys.limits.models_allowed", &[("models", &l.models.join(", "))])) }
            }
            @if let Some(at) = l.expires_at {
                li { (lang.t("access_keys.limits.expires_at")) " " (zoned_time(at, now, offset_min)) }
            }
            @if set.is_empty() && !l.restricts_models() && l.expires_at.is_none() {
                li { (lang.t("access_keys.limits.none")) }
            }
        }
    }
}

/// The guest access key, shown to trusted guests (restricted mode): base URL, token, limits.
pub struct SharedKeyView<'a> {
    pub base_url: &'a str,
    pub token: &'a str,
    pub limits: &'a AccessLimits,
    pub now: i64,
    pub offset_min: i32,
}

pub fn shared_key_card(lang: Lang, v: &SharedKeyView) -> Markup {
    html! {
        section.card.shared-key #shared-key {
            h2 { (lang.t("guest.shared.title")) }
            p.help { (lang.t("guest.shared.intro")) }
            dl.facts {
                dt { (lang.t("guest.shared.base_url")) }
                dd { div.token-row { code #shared-base-url { (format!("{}/v1", v.base_url)) }
                    button type="button" data-copy="#shared-base-url" data-copied=(lang.t("common.copied")) { (lang.t("common.copy")) } } }
                dt { (lang.t("guest.shared.token")) }
                dd { div.token-row { code #shared-token { (v.token) }
                    button type="button" data-copy="#shared-token" data-copied=(lang.t("common.copied")) { (lang.t("common.copy")) } } }
                dt { (lang.t("guest.shared.limits")) }
                dd { (limits_list(lang, v.limits, v.now, v.offset_min)) }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H8: i32 = 480;

    fn ms(rfc: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(rfc).unwrap().timestamp_millis()
    }

    #[test]
    fn form_values_round_trip_the_upstream_time_zone() {
        let l = AccessLimits {
            expires_at: Some(ms("2026-12-04T18:00:00+08:00")),
            models: vec!["Qwen/*".into(), "a/b".into()],
            rpm: Some(60),
            spend_day: Some(2.5),
            ..AccessLimits::default()
        };
        let v = LimitsFormValues::from_limits(&l, H8);
        assert_eq!(v.expires, "2026-12-04T18:00");
        assert_eq!(v.models, "Qwen/*\na/b");
        assert_eq!((v.rpm.as_str(), v.tpm.as_str(), v.spend_day.as_str()), ("60", "", "2.5"));
    }

    #[test]
    fn a_bar_over_its_limit_is_full_and_says_by_how_much() {
        let l = AccessLimits { tpm: Some(100), ..AccessLimits::default() };
        let now = ms("2026-12-01T10:00:30+08:00");
        let usage = [(Counts { tokens: 130, ..Counts::default() }, ms("2026-12-01T10:01:00+08:00")); 3];
        let item = LimitsItem { limits: &l, usage: &usage, now, offset_min: H8 };
        let html = usage_bars(Lang::En, &item).into_string();
        assert!(html.contains(r#"<progress max="100" value="100""#), "{html}");
        assert!(html.contains("130 / 100") && html.contains("over by 30"), "{html}");
        assert!(html.contains("12-01 10:01 UTC+8"), "{html}");
    }
}
