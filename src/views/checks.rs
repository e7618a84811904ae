//! The check job's parameters form and its live progress panel.

use maud::{Markup, html};

use super::components::{FlashKind, field_error, flash};
use crate::domain::FieldErrors;
use crate::domain::checks::Progress;
use crate::i18n::Lang;

fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The tuning every check button sends along (`hx-include="#check-params"`).
pub fn params_form(lang: Lang, errors: &FieldErrors) -> Markup {
    let num = |name: &str, value: &str, step: &str, label_key: &str| {
        html! {
            label { (lang.t(label_key))
                input type="number" name=(name) value=(value) min="0" step=(step);
            }
            (field_error(lang, errors, name))
        }
    };
    html! {
        details.check-params {
            summary { (lang.t("checks.params.title")) }
            form #check-params.params-grid {
                (num("concurrency", "10", "1", "checks.params.concurrency"))
                fieldset {
                    legend { (lang.t("checks.params.interval")) }
                    label.switch { input type="radio" name="interval_mode" value="fixed" checked; span { (lang.t("checks.params.fixed")) } }
                    label.switch { input type="radio" name="interval_mode" value="random"; span { (lang.t("checks.params.random")) } }
                }
                (num("interval_secs", "1", "0.1", "checks.params.interval_secs"))
                (num("min_interval_ms", "500", "1", "checks.params.min_interval_ms"))
                (num("max_interval_ms", "1500", "1", "checks.params.max_interval_ms"))
                (num("retries", "1", "1", "checks.params.retries"))
                (num("retry_interval_ms", "2000", "1", "checks.params.retry_interval_ms"))
                (num("rate", "0", "0.1", "checks.params.rate"))
                p.help { (lang.t("checks.params.help")) }
            }
        }
    }
}

/// The panel: nothing yet, a running job polled every second, or the last job's summary.
pub fn panel(lang: Lang, progress: Option<&Progress>, message: Option<(FlashKind, String)>, oob: bool) -> Markup {
    panel_with(lang, progress, message, oob, PanelOpts::default())
}

/// How a panel answering a start differs from a polled one.
#[derive(Default, Clone, Copy)]
pub struct PanelOpts {
    /// A start was refused because a job runs: the polls keep saying so until it ends.
    pub busy: bool,
    /// Answers a start: `app.js` scrolls it into view.
    pub scroll: bool,
}

pub fn panel_with(
    lang: Lang,
    progress: Option<&Progress>,
    message: Option<(FlashKind, String)>,
    oob: bool,
    opts: PanelOpts,
) -> Markup {
    let running = progress.is_some_and(|p| p.running);
    let poll = if opts.busy { "/admin/checks/panel?busy=1" } else { "/admin/checks/panel" };
    html! {
        section #check-panel.check-panel hx-swap-oob=[oob.then_some("true")] hx-get=[running.then_some(poll)] hx-trigger=[running.then_some("every 1s")] hx-swap="outerHTML"
            data-scroll=[opts.scroll.then_some("true")] data-busy=[opts.busy.then_some("true")] {
            @if let Some((kind, text)) = &message { (flash(*kind, text)) }
            @if let Some(p) = progress {
                @let percent = (p.processed * 100).checked_div(p.total).unwrap_or(100);
                div.check-head {
                    strong { (if p.running { lang.t("checks.panel.running") } else if p.stopped { lang.t("checks.panel.stopped") } else { lang.t("checks.panel.finished") }) }
                    span.muted { (lang.tf("checks.panel.scope", &[("label", lang.t(&p.label))])) }
                    @if p.running {
                        button.danger type="button" hx-post="/admin/checks/stop" hx-target="#check-panel" hx-swap="outerHTML" { (lang.t("checks.panel.stop")) }
                    }
                }
                progress max=(p.total) value=(p.processed) { (percent) "%" }
                p.check-numbers {
                    span #check-processed { (lang.tf("checks.panel.processed", &[("done", &p.processed.to_string()), ("total", &p.total.to_string())])) }
                    @for (class, n) in &p.counts {
                        span class={ "badge outcome-" (class.as_str()) } { (lang.t(&format!("checks.outcome.{}", class.as_str()))) " " (n) }
                    }
                }
                p.muted {
                    (lang.tf("checks.panel.speed", &[("speed", &format!("{:.1}", p.speed))])) " · "
                    (lang.tf("checks.panel.elapsed", &[("time", &secs(p.elapsed))]))
                    @if let Some(eta) = p.eta { " · " (lang.tf("checks.panel.eta", &[("time", &secs(eta))])) }
                }
            }
        }
    }
}

/// A check the browser runs (client request mode): everything `checks.js` needs.
#[derive(serde::Serialize)]
pub struct ClientJob {
    pub upstream: String,
    pub keys: Vec<(i64, String)>,
    pub concurrency: usize,
    #[serde(serialize_with = "interval_ms")]
    pub interval: crate::domain::checks::Interval,
    pub retries: u32,
    pub retry_interval_ms: u64,
    pub rate: f64,
    /// To offer the same check on the server when the browser is refused.
    pub scope: String,
    pub id: Option<i64>,
    pub filter_status: Option<String>,
    pub filter_q: Option<String>,
}

fn interval_ms<S: serde::Serializer>(i: &crate::domain::checks::Interval, s: S) -> Result<S::Ok, S::Error> {
    use crate::domain::checks::Interval;
    let (min, max) = match i {
        Interval::Fixed(d) => (d.as_millis(), d.as_millis()),
        Interval::Random { min, max } => (min.as_millis(), max.as_millis()),
    };
    serde::Serialize::serialize(&[min as u64, max as u64], s)
}

/// The panel of a browser-run check; `checks.js` drives it and posts the answers.
pub fn client_panel(lang: Lang, job: &ClientJob) -> Markup {
    let config = serde_json::to_string(job).unwrap_or_default();
    html! {
        section #check-panel.check-panel data-client-check=(config) data-scroll="true"
            data-text-refused=(lang.t("checks.client.refused")) data-text-done=(lang.t("checks.client.done")) {
            div.check-head {
                strong { (lang.t("checks.client.running")) }
                button.danger type="button" data-client-stop { (lang.t("checks.panel.stop")) }
            }
            progress max=(job.keys.len()) value="0" {}
            p.check-numbers { span data-client-progress { "0 / " (job.keys.len()) } }
            p.client-message role="status" {}
            form.client-fallback hidden hx-post="/admin/checks" hx-target="#check-panel" hx-swap="outerHTML" hx-include="#check-params" {
                input type="hidden" name="force_server" value="1";
                input type="hidden" name="scope" value=(job.scope);
                @if let Some(id) = job.id { input type="hidden" name="id" value=(id); }
                @if let Some(s) = &job.filter_status { input type="hidden" name="status" value=(s); }
                @if let Some(q) = &job.filter_q { input type="hidden" name="q" value=(q); }
                button.primary type="submit" { (lang.t("checks.client.use_server")) }
            }
        }
    }
}
