//! Chart options for the dashboard, built with charming and handed to the vendored ECharts as JSON.
//! Pure functions: data in, chart out; unit-tested on their JSON.

use charming::Chart;
use charming::component::{Axis, Grid, Legend, LegendType, Title};
use charming::element::{AxisLabel, AxisType, Label, LabelPosition, Tooltip, Trigger};
use charming::series::{Bar, Line, Pie};

/// The chart as JSON safe to put in an HTML attribute or a `<script>`.
pub fn to_json(chart: &Chart) -> String {
    serde_json::to_string(chart).unwrap_or_else(|_| "{}".to_owned()).replace('<', "\\u003c").replace('>', "\\u003e")
}

/// Key counts per balance bucket. Every bucket is labelled (interval 0: ECharts would otherwise drop
/// labels that collide), rotated when there are more than a few so they fit a phone's width.
pub fn distribution(labels: &[String], counts: &[i64], name: &str) -> Chart {
    let rotate = if labels.len() > 4 { 45 } else { 0 };
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("3%").bottom("3%").contain_label(true))
        .x_axis(
            Axis::new()
                .type_(AxisType::Category)
                .data(labels.to_vec())
                .axis_label(AxisLabel::new().interval(0).rotate(rotate)),
        )
        .y_axis(Axis::new().type_(AxisType::Value).min_interval(1))
        .series(Bar::new().name(name).data(counts.to_vec()))
}

/// Keys per state as a doughnut: percentages inside the ring, the states' names in the legend below,
/// so nothing sticks out of a phone-wide chart.
pub fn status_doughnut(slices: &[(String, i64)]) -> Chart {
    let data: Vec<(i64, &str)> = slices.iter().filter(|(_, n)| *n > 0).map(|(name, n)| (*n, name.as_str())).collect();
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Item).formatter("{b}: {c} ({d}%)"))
        .legend(Legend::new().type_(LegendType::Scroll).bottom("0"))
        .series(
            Pie::new()
                .radius(vec!["38%", "68%"])
                .center(vec!["50%", "45%"])
                .label(Label::new().position(LabelPosition::Inside).formatter("{d}%"))
                .data(data),
        )
}

/// The pool's usable balance over time (the series called `name`); with `cap`, the axis stops at the
/// outlier bound and the subtitle says so.
pub fn trend(points: &[(i64, f64)], cap: Option<f64>, capped_note: &str, name: &str) -> Chart {
    let data: Vec<Vec<f64>> = points.iter().map(|(t, v)| vec![*t as f64, *v]).collect();
    let mut y = Axis::new().type_(AxisType::Value).scale(true);
    let mut title = Title::new();
    if let Some(cap) = cap {
        y = y.max(cap.ceil());
        title = title.subtext(capped_note.to_owned());
    }
    Chart::new()
        .title(title)
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("3%").bottom("3%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Time))
        .y_axis(y)
        .series(Line::new().name(name).show_symbol(points.len() < 60).data(data))
}

/// The keys with the highest balances, as horizontal bars (highest on top).
pub fn top_keys(labels: &[String], balances: &[f64], name: &str) -> Chart {
    let mut labels = labels.to_vec();
    let mut balances = balances.to_vec();
    labels.reverse();
    balances.reverse();
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("6%").bottom("3%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Value))
        .y_axis(Axis::new().type_(AxisType::Category).data(labels))
        .series(Bar::new().name(name).data(balances))
}

/// Requests per time step as bars and the share that failed (keypool's or the upstream's fault) as a
/// line on its own axis, in percent.
pub fn traffic(points: &[(i64, i64, f64)], requests: &str, error_rate: &str) -> Chart {
    let bars: Vec<Vec<f64>> = points.iter().map(|(t, n, _)| vec![*t as f64, *n as f64]).collect();
    let rate: Vec<Vec<f64>> = points.iter().map(|(t, _, pct)| vec![*t as f64, *pct]).collect();
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new().bottom("0"))
        .grid(Grid::new().left("3%").right("3%").bottom("12%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Time))
        .y_axis(Axis::new().type_(AxisType::Value).min_interval(1))
        .y_axis(Axis::new().type_(AxisType::Value).min(0).max(100).name("%"))
        .series(Bar::new().name(requests).data(bars))
        .series(Line::new().name(error_rate).y_axis_index(1).show_symbol(false).data(rate))
}

/// Latency quantiles (ms, the axis named `unit`) per time step, as lines; steps without requests are
/// left out.
pub fn latency(points: &[(i64, i64, i64)], p50: &str, p99: &str, unit: &str) -> Chart {
    let line = |pick: fn(&(i64, i64, i64)) -> i64| -> Vec<Vec<f64>> {
        points.iter().map(|p| vec![p.0 as f64, pick(p) as f64]).collect()
    };
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new().bottom("0"))
        .grid(Grid::new().left("3%").right("3%").bottom("12%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Time))
        .y_axis(Axis::new().type_(AxisType::Value).name(unit))
        .series(Line::new().name(p50).show_symbol(points.len() < 60).data(line(|p| p.1)))
        .series(Line::new().name(p99).show_symbol(points.len() < 60).data(line(|p| p.2)))
}

/// Tokens per model, input and output stacked, as horizontal bars (the most on top); in thousands or
/// millions when large, so the axis labels stay short (the unit is the axis name).
pub fn tokens_by_model(labels: &[String], input: &[i64], output: &[i64], names: (&str, &str)) -> Chart {
    let most = input.iter().zip(output).map(|(a, b)| a + b).max().unwrap_or(0);
    let (scale, unit) = match most {
        n if n >= 10_000_000 => (1e6, "M"),
        n if n >= 10_000 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let rev = |v: &[i64]| v.iter().rev().map(|n| (*n as f64 / scale * 10.0).round() / 10.0).collect::<Vec<_>>();
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new().bottom("0"))
        .grid(Grid::new().left("3%").right("8%").bottom("12%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Value).name(unit).split_number(3))
        .y_axis(Axis::new().type_(AxisType::Category).data(labels.iter().rev().cloned().collect()))
        .series(Bar::new().name(names.0).stack("tokens").data(rev(input)))
        .series(Bar::new().name(names.1).stack("tokens").data(rev(output)))
}

/// One value per label as horizontal bars (the first on top).
pub fn bars(labels: &[String], values: &[f64], name: &str) -> Chart {
    Chart::new()
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("3%").right("6%").bottom("3%").contain_label(true))
        .x_axis(Axis::new().type_(AxisType::Value).split_number(3))
        .y_axis(Axis::new().type_(AxisType::Category).data(labels.iter().rev().cloned().collect()))
        .series(Bar::new().name(name).data(values.iter().rev().copied().collect::<Vec<_>>()))
}

/// A model's name short enough for a chart's axis: without its organisation (`Qwen/Qwen3-8B` →
/// `Qwen3-8B`), keeping a `Pro/` tier (`Pro/deepseek-ai/DeepSeek-V3` → `Pro/DeepSeek-V3`).
pub fn short_model(model: &str) -> String {
    let last = model.rsplit('/').next().unwrap_or(model);
    match model.split('/').next() {
        Some("Pro") if model.matches('/').count() >= 2 => format!("Pro/{last}"),
        _ => last.to_owned(),
    }
}

/// One key's balance over time.
pub fn key_history(points: &[(i64, f64)], name: &str) -> Chart {
    trend(points, None, "", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(chart: &Chart) -> serde_json::Value {
        serde_json::from_str(&to_json(chart)).unwrap_or_default()
    }

    #[test]
    fn distribution_has_one_bar_per_bucket() {
        let text = json(&distribution(&["(0, 10]".into(), "> 1000".into()], &[3, 0], "keys")).to_string();
        assert!(text.contains(r#"["(0, 10]","> 1000"]"#), "{text}");
        assert!(text.contains("\"bar\"") && text.contains("[3,0]"), "{text}");
    }

    #[test]
    fn empty_and_single_inputs_still_make_charts() {
        assert!(to_json(&distribution(&[], &[], "keys")).contains("bar"));
        assert!(
            !to_json(&status_doughnut(&[("active".into(), 0)])).contains("\"active\""),
            "empty slices are left out"
        );
        assert!(to_json(&trend(&[], None, "", "balance")).contains("\"time\""));
        assert!(to_json(&top_keys(&["k".into()], &[1.0], "balance")).contains("\"k\""));
    }

    #[test]
    fn doughnut_shows_percentages() {
        let text = to_json(&status_doughnut(&[("active".into(), 3), ("invalid".into(), 1)]));
        assert!(text.contains("38%") && text.contains("{d}%") && text.contains("\"active\""), "{text}");
    }

    #[test]
    fn doughnut_labels_stay_inside_the_ring_with_the_legend_below() {
        let v = json(&status_doughnut(&[("active".into(), 3), ("invalid".into(), 1)]));
        assert_eq!(v["series"][0]["label"]["position"], "inside", "{v}");
        assert_eq!(v["legend"]["bottom"], "0", "{v}");
    }

    #[test]
    fn distribution_labels_every_bucket() {
        let labels: Vec<String> = (0..7).map(|i| format!("({i}, {}]", i + 1)).collect();
        let v = json(&distribution(&labels, &[1; 7], "keys"));
        let label = &v["xAxis"]["axisLabel"];
        assert_eq!(label["interval"], 0.0, "{v}");
        assert_eq!(label["rotate"], 45.0, "{v}");
        assert_eq!(v["grid"][0]["containLabel"], true, "{v}");
        let few = json(&distribution(&["a".into(), "b".into()], &[1, 2], "keys"));
        assert_eq!(few["xAxis"]["axisLabel"]["interval"], 0.0, "{few}");
        assert_eq!(few["xAxis"]["axisLabel"]["rotate"], 0.0, "{few}");
    }

    #[test]
    fn trend_cap_sets_the_axis_and_says_so() {
        let text = to_json(&trend(&[(1000, 10.0), (2000, 12.0)], Some(20.4), "capped at 21", "balance"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert!(text.contains("capped at 21"), "{text}");
        assert!(v.to_string().contains("\"max\":21"), "{v}");
        assert!(text.contains("[1000.0,10.0]"), "{text}");
        assert!(!to_json(&trend(&[(1000, 10.0)], None, "capped", "balance")).contains("capped"));
    }

    #[test]
    fn top_keys_put_the_highest_on_top() {
        let text = to_json(&top_keys(&["a".into(), "b".into()], &[9.0, 1.0], "balance"));
        assert!(text.contains(r#"["b","a"]"#) && text.contains("[1.0,9.0]"), "{text}");
    }

    #[test]
    fn model_names_are_shortened_for_axes() {
        assert_eq!(short_model("Qwen/Qwen3-8B"), "Qwen3-8B");
        assert_eq!(short_model("Pro/deepseek-ai/DeepSeek-V3"), "Pro/DeepSeek-V3");
        assert_eq!(short_model("plain"), "plain");
    }

    #[test]
    fn json_is_safe_inside_html() {
        let text = to_json(&top_keys(&["</script><b>".into()], &[1.0], "balance"));
        assert!(!text.contains('<') && text.contains("\\u003c/script"));
    }
}
