//! The request log as the admin reads it: one filter type shared by the page, its CSV export and
//! `keypool logs`, parsed from query parameters (or CLI flags) in one place, and the CSV format.

use super::{FieldError, FieldErrors};

/// Rows per page of the log page.
pub const PAGE_SIZE: i64 = 50;

/// How the proxy's log starts the error of a request that got 503 because no key could serve it
/// (none left to try, or every key tried is out of rotation for the model). [`StatusClass::NoKey`]
/// is recognised by it.
pub const NO_KEY_ERROR: &str = "no key available";

/// A logged error as a catalogue message (`logs.failure.*`, or a [`super::reason::Reason`]'s) and its
/// parameters. The log keeps the gateway's English words — its text filter and CSV export search and
/// show them as they are — and the page reads them in its language through this table; the details
/// inside (an upstream's message, a byte count, a model) are data. `None`: a text this table does
/// not know, shown as it is.
pub fn error_message(stored: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
    const EXACT: [(&str, &str); 12] = [
        (super::proxy::CLOSE_DELIMITED_MESSAGE, "logs.failure.close_delimited"),
        ("unknown access key", "logs.failure.unknown_access_key"),
        ("missing access key", "logs.failure.missing_access_key"),
        ("unsafe path", "logs.failure.unsafe_path"),
        ("body too large", "logs.failure.body_too_large"),
        ("body too slow", "logs.failure.body_too_slow"),
        ("unreadable body", "logs.failure.unreadable_body"),
        ("client closed the connection", "logs.failure.client_closed"),
        ("access key disabled", "logs.failure.access_key_disabled"),
        ("access key expired", "logs.failure.access_key_expired"),
        ("the upstream stream broke off before its end marker (connection lost)", "logs.failure.stream_cut"),
        (NO_KEY_ERROR, "logs.failure.no_key"),
    ];
    // (start, end, key, the name of what lies between).
    const FRAMED: [(&str, &str, &str, &str); 8] = [
        ("no key available (last: ", ")", "logs.failure.no_key_last", "last"),
        ("model not allowed: ", "", "logs.failure.model_not_allowed", "model"),
        ("access key limit ", " reached", "logs.failure.access_limit", "limit"),
        ("no answer within ", " s (first_byte_timeout_s)", "logs.failure.first_byte_timeout", "seconds"),
        ("no data from the upstream for ", " s (idle_timeout_s)", "logs.failure.idle_timeout", "seconds"),
        ("the upstream closed the connection after ", " bytes", "logs.failure.closed_after", "received"),
        ("the upstream stream broke: ", "", "logs.failure.stream_broke", "detail"),
        ("cannot connect to the upstream: ", "", "reason.connection", "detail"),
    ];
    let text = stored.trim();
    if let Some((_, key)) = EXACT.iter().find(|(t, _)| *t == text) {
        return Some((key, Vec::new()));
    }
    for (start, end, key, name) in FRAMED {
        if let Some(inner) = text.strip_prefix(start).and_then(|r| r.strip_suffix(end)) {
            // `… after 10 of 100 bytes`
            if let Some((received, expected)) = inner.split_once(" of ").filter(|_| name == "received") {
                return Some((key, vec![("received", received.to_owned()), ("expected", expected.to_owned())]));
            }
            return Some((key, vec![(name, inner.to_owned())]));
        }
    }
    if let Some(detail) = text.strip_prefix("upstream request failed: ") {
        return Some(("reason.connection", vec![("detail", detail.to_owned())]));
    }
    None
}

#[cfg(test)]
mod error_message_tests {
    use super::*;

    #[test]
    fn the_gateways_own_errors_have_catalogue_messages() {
        let cases = [
            ("unknown access key", "logs.failure.unknown_access_key", vec![]),
            ("no key available", "logs.failure.no_key", vec![]),
            ("no key available (last: HTTP 429: busy)", "logs.failure.no_key_last", vec![("last", "HTTP 429: busy")]),
            ("access key limit rpm reached", "logs.failure.access_limit", vec![("limit", "rpm")]),
            (
                "no answer within 30 s (first_byte_timeout_s)",
                "logs.failure.first_byte_timeout",
                vec![("seconds", "30")],
            ),
            (
                "the upstream closed the connection after 10 of 100 bytes",
                "logs.failure.closed_after",
                vec![("received", "10"), ("expected", "100")],
            ),
            ("upstream request failed: reset", "reason.connection", vec![("detail", "reset")]),
            (super::super::proxy::CLOSE_DELIMITED_MESSAGE, "logs.failure.close_delimited", vec![]),
        ];
        for (stored, key, args) in cases {
            let (k, a) = error_message(stored).unwrap_or_else(|| panic!("{stored}"));
            let a: Vec<(&str, &str)> = a.iter().map(|(n, v)| (*n, v.as_str())).collect();
            assert_eq!((k, a), (key, args), "{stored}");
        }
        assert_eq!(error_message("HTTP 500: oops"), None, "an upstream answer is a reason");
    }
}

/// The outcome classes the log can be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// Delivered: 1xx–3xx.
    Ok,
    /// The caller's mistake: 4xx.
    CallerError,
    /// 5xx from or about the upstream (not [`StatusClass::NoKey`]).
    UpstreamError,
    /// 503 because no key could serve the request.
    NoKey,
}

impl StatusClass {
    pub const ALL: [StatusClass; 4] = [Self::Ok, Self::CallerError, Self::UpstreamError, Self::NoKey];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::CallerError => "4xx",
            Self::UpstreamError => "5xx",
            Self::NoKey => "no_key",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s.trim())
    }

    /// The class of a logged row.
    pub fn of(status: i64, error: Option<&str>) -> Self {
        match status {
            s if s < 400 => Self::Ok,
            s if s < 500 => Self::CallerError,
            503 if error.is_some_and(|e| e.starts_with(NO_KEY_ERROR)) => Self::NoKey,
            _ => Self::UpstreamError,
        }
    }
}

/// Which access key: by id (the page's select) or by name (the CLI, a typed link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessKeyRef {
    Id(i64),
    Name(String),
}

impl AccessKeyRef {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        Some(match s.parse::<i64>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(s.to_owned()),
        })
    }

    pub fn as_param(&self) -> String {
        match self {
            Self::Id(id) => id.to_string(),
            Self::Name(name) => name.clone(),
        }
    }
}

/// The time range: the last `since`, or explicit bounds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimeRange {
    #[default]
    All,
    /// The last `ms` milliseconds before now; `text` as typed (`24h`), for links.
    Since { ms: i64, text: String },
    /// `from` inclusive, `to` exclusive, in ms; either may be open. `*_text` as typed, for links.
    Between { from: Option<i64>, to: Option<i64>, from_text: String, to_text: String },
}

/// The `since` values the page offers.
pub const SINCE_CHOICES: [&str; 4] = ["1h", "24h", "7d", "30d"];

/// Parses a duration like `90m`, `1h`, `24h`, `7d`, `2w` into milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let s = s.trim();
    let unit = s.chars().last()?;
    let n: i64 = s[..s.len() - unit.len_utf8()].trim().parse().ok()?;
    let unit_ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    (n > 0 && n <= 100_000).then(|| n * unit_ms)
}

/// Parses a point in time: RFC 3339, `YYYY-MM-DDTHH:MM[:SS]` or `YYYY-MM-DD HH:MM[:SS]` (UTC, as the
/// page's `datetime-local` field sends it), `YYYY-MM-DD` (midnight UTC), or milliseconds since 1970.
pub fn parse_instant(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.len() > 10 && s.chars().all(|c| c.is_ascii_digit()) {
        return s.parse().ok();
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

/// What to show of the log. Every field narrows; the default shows everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogFilter {
    pub range: TimeRange,
    pub access_key: Option<AccessKeyRef>,
    pub model: Option<String>,
    pub class: Option<StatusClass>,
    /// An upstream key's id.
    pub key_id: Option<i64>,
    /// Text the error contains (case-insensitive).
    pub search: Option<String>,
}

impl LogFilter {
    /// `[from, to)` in ms at `now`.
    pub fn bounds(&self, now: i64) -> (Option<i64>, Option<i64>) {
        match &self.range {
            TimeRange::All => (None, None),
            TimeRange::Since { ms, .. } => (Some(now - ms), None),
            TimeRange::Between { from, to, .. } => (*from, *to),
        }
    }

    /// The filter as query parameters (without the page position).
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match &self.range {
            TimeRange::All => {}
            TimeRange::Since { text, .. } => out.push(("since", text.clone())),
            TimeRange::Between { from_text, to_text, .. } => {
                if !from_text.is_empty() {
                    out.push(("from", from_text.clone()));
                }
                if !to_text.is_empty() {
                    out.push(("to", to_text.clone()));
                }
            }
        }
        if let Some(a) = &self.access_key {
            out.push(("access_key", a.as_param()));
        }
        if let Some(m) = &self.model {
            out.push(("model", m.clone()));
        }
        if let Some(c) = self.class {
            out.push(("status", c.as_str().to_owned()));
        }
        if let Some(k) = self.key_id {
            out.push(("key", k.to_string()));
        }
        if let Some(q) = &self.search {
            out.push(("q", q.clone()));
        }
        out
    }

    pub fn to_query_string(&self) -> String {
        encode(&self.params())
    }
}

fn encode(params: &[(&str, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The page's query parameters as sent (also the CSV export's).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RawLogQuery {
    pub since: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub access_key: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub key: Option<String>,
    pub q: Option<String>,
    pub before: Option<String>,
}

/// A filter and a position: rows with an id below `before` (none: the newest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogQuery {
    pub filter: LogFilter,
    pub before: Option<i64>,
}

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl LogQuery {
    /// Parses the parameters; a bad value is left out of the filter and reported for its field.
    pub fn parse(raw: &RawLogQuery) -> (Self, FieldErrors) {
        let mut errors = FieldErrors::default();
        let mut filter = LogFilter::default();
        // Explicit bounds are more specific than `since` (the page sends both when both are set).
        if present(&raw.from).is_some() || present(&raw.to).is_some() {
            let mut bound = |field: &'static str, v: &Option<String>| match present(v) {
                None => (None, String::new()),
                Some(text) => match parse_instant(text) {
                    Some(t) => (Some(t), text.to_owned()),
                    None => {
                        errors.push(FieldError::new(field, "logs.error.time").with("value", text));
                        (None, String::new())
                    }
                },
            };
            let (from, from_text) = bound("from", &raw.from);
            let (to, to_text) = bound("to", &raw.to);
            if from.is_some() || to.is_some() {
                filter.range = TimeRange::Between { from, to, from_text, to_text };
            }
        } else if let Some(since) = present(&raw.since) {
            match parse_duration(since) {
                Some(ms) => filter.range = TimeRange::Since { ms, text: since.to_owned() },
                None => errors.push(FieldError::new("since", "logs.error.since").with("value", since)),
            }
        }
        filter.access_key = present(&raw.access_key).and_then(AccessKeyRef::parse);
        filter.model = present(&raw.model).map(str::to_owned);
        if let Some(status) = present(&raw.status) {
            match StatusClass::parse(status) {
                Some(c) => filter.class = Some(c),
                None => errors.push(FieldError::new("status", "logs.error.status").with("value", status)),
            }
        }
        if let Some(key) = present(&raw.key) {
            match key.parse::<i64>() {
                Ok(id) => filter.key_id = Some(id),
                Err(_) => errors.push(FieldError::new("key", "logs.error.key").with("value", key)),
            }
        }
        filter.search = present(&raw.q).map(|q| q.chars().take(200).collect());
        let before = present(&raw.before).and_then(|b| b.parse::<i64>().ok()).filter(|b| *b > 0);
        (Self { filter, before }, errors)
    }

    /// The query string of the page of rows older than `id`.
    pub fn older_than(&self, id: i64) -> String {
        let mut params = self.filter.params();
        params.push(("before", id.to_string()));
        encode(&params)
    }
}

/// One logged request, with the names it refers to (gone when the key or access key was deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub id: i64,
    pub at: i64,
    pub access_key_id: Option<i64>,
    pub access_key_name: Option<String>,
    pub key_id: Option<i64>,
    /// The upstream key in clear (callers mask it).
    pub key: Option<String>,
    pub method: String,
    pub path: String,
    pub model: Option<String>,
    pub status: i64,
    pub latency_ms: i64,
    pub ttfb_ms: Option<i64>,
    pub attempts: i64,
    pub error: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub total_tokens: Option<i64>,
    pub cost: Option<f64>,
}

impl LogEntry {
    pub fn class(&self) -> StatusClass {
        StatusClass::of(self.status, self.error.as_deref())
    }

    /// The access key's name, `#id` when it was revoked since, empty without one.
    pub fn access_key_label(&self) -> String {
        match (&self.access_key_name, self.access_key_id) {
            (Some(name), _) => name.clone(),
            (None, Some(id)) => format!("#{id}"),
            (None, None) => String::new(),
        }
    }

    /// The upstream key masked, `#id` when it was deleted since, empty without one.
    pub fn key_label(&self) -> String {
        match (&self.key, self.key_id) {
            (Some(key), _) => super::keys::mask(key),
            (None, Some(id)) => format!("#{id}"),
            (None, None) => String::new(),
        }
    }
}

/// `2026-11-30T21:05:09.123Z`.
pub fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A cost with at most 6 decimals and no trailing zeros: `0.0012`, `3`.
pub fn format_cost(cost: f64) -> String {
    let text = format!("{cost:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" || text.is_empty() { "0".to_owned() } else { text.to_owned() }
}

/// The CSV header row (with its line end).
pub const CSV_HEADER: &str = "at,access_key,model,status,prompt_tokens,completion_tokens,total_tokens,cost,latency_ms,error,\
     key,ttfb_ms,attempts,method,path,id\r\n";

/// A CSV field: quoted when it holds a comma, quote, or line break (quotes doubled), as RFC 4180 says.
pub fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// One row of the CSV export (with its line end), in [`CSV_HEADER`]'s order.
pub fn csv_row(out: &mut String, e: &LogEntry) {
    let opt = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let fields = [
        iso_time(e.at),
        e.access_key_label(),
        e.model.clone().unwrap_or_default(),
        e.status.to_string(),
        opt(e.prompt_tokens),
        opt(e.completion_tokens),
        opt(e.total_tokens),
        e.cost.map(format_cost).unwrap_or_default(),
        e.latency_ms.to_string(),
        e.error.clone().unwrap_or_default(),
        e.key_label(),
        opt(e.ttfb_ms),
        e.attempts.to_string(),
        e.method.clone(),
        e.path.clone(),
        e.id.to_string(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, f);
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawLogQuery {
        let q = encode(&pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect::<Vec<_>>());
        serde_urlencoded::from_str(&q).unwrap_or_default()
    }

    #[test]
    fn durations_and_instants_parse() {
        assert_eq!(parse_duration("1h"), Some(3_600_000));
        assert_eq!(parse_duration("7d"), Some(7 * 86_400_000));
        assert_eq!(parse_duration("30m"), Some(1_800_000));
        assert_eq!(parse_duration("0h"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5y"), None);
        assert_eq!(parse_instant("2026-11-30T10:00"), Some(1_796_032_800_000));
        assert_eq!(parse_instant("2026-11-30T10:00:00Z"), Some(1_796_032_800_000));
        assert_eq!(parse_instant("2026-11-30"), Some(1_795_996_800_000));
        assert_eq!(parse_instant("1796032800000"), Some(1_796_032_800_000));
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn a_query_parses_and_round_trips() {
        let (q, errors) = LogQuery::parse(&raw(&[
            ("since", "24h"),
            ("access_key", "team a"),
            ("model", "Qwen/Qwen3-8B"),
            ("status", "no_key"),
            ("key", "12"),
            ("q", "timeout"),
            ("before", "99"),
        ]));
        assert!(errors.is_empty());
        assert_eq!(q.before, Some(99));
        assert_eq!(q.filter.access_key, Some(AccessKeyRef::Name("team a".into())));
        assert_eq!(q.filter.class, Some(StatusClass::NoKey));
        assert_eq!(q.filter.key_id, Some(12));
        assert_eq!(q.filter.bounds(100_000_000), (Some(100_000_000 - 86_400_000), None));
        let again = LogQuery::parse(&serde_urlencoded::from_str(&q.older_than(99)).unwrap_or_default()).0;
        assert_eq!(again, q);
        let (q, _) = LogQuery::parse(&raw(&[("access_key", "3")]));
        assert_eq!(q.filter.access_key, Some(AccessKeyRef::Id(3)));
    }

    #[test]
    fn bad_values_are_reported_and_left_out() {
        let (q, errors) = LogQuery::parse(&raw(&[("since", "forever"), ("status", "teapot"), ("key", "x")]));
        assert_eq!(q.filter, LogFilter::default());
        assert_eq!(errors.0.len(), 3);
        let (q, errors) = LogQuery::parse(&raw(&[("from", "2026-11-30"), ("to", "nope")]));
        assert_eq!(errors.0.len(), 1);
        assert!(matches!(q.filter.range, TimeRange::Between { from: Some(_), to: None, .. }));
        let (q, _) = LogQuery::parse(&raw(&[("since", "1h"), ("from", "2026-11-30")]));
        assert!(matches!(q.filter.range, TimeRange::Between { .. }), "explicit bounds win");
    }

    #[test]
    fn classes_follow_status_and_the_no_key_error() {
        assert_eq!(StatusClass::of(200, None), StatusClass::Ok);
        assert_eq!(StatusClass::of(429, Some("x")), StatusClass::CallerError);
        assert_eq!(StatusClass::of(503, Some("no key available")), StatusClass::NoKey);
        assert_eq!(StatusClass::of(503, Some("upstream said 503")), StatusClass::UpstreamError);
        assert_eq!(StatusClass::of(502, None), StatusClass::UpstreamError);
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        let mut s = String::new();
        csv_field(&mut s, "plain");
        s.push(',');
        csv_field(&mut s, "a, \"b\"\nc");
        assert_eq!(s, "plain,\"a, \"\"b\"\"\nc\"");
        assert_eq!(format_cost(0.00120000), "0.0012");
        assert_eq!(format_cost(3.0), "3");
        assert_eq!(format_cost(0.0), "0");
        assert_eq!(iso_time(1_796_032_800_123), "2026-11-30T10:00:00.123Z");
    }
}
