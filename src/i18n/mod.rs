//! The UI's two languages. Each has one catalogue (`zh-CN.toml`, `en.toml` beside this file), nested
//! tables flattened to dotted keys (`nav.dashboard`). Views never hold visible text of their own.
//!
//! A third, pseudo-locale (`qps-ploc`, chosen with `/lang/qps-ploc`, never offered by the switch nor
//! taken from `Accept-Language`) shows every catalogue text as `⟦English⟧`: on a page in it, any
//! text outside the brackets did not come from a catalogue (`tests/integration/pseudo_locale.rs`).

use std::collections::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
    /// `⟦English⟧`: finds text that is not in the catalogues.
    Pseudo,
}

const ZH_SOURCE: &str = include_str!("zh-CN.toml");
const EN_SOURCE: &str = include_str!("en.toml");

static ZH: LazyLock<HashMap<String, String>> = LazyLock::new(|| flatten_source(ZH_SOURCE));
static EN: LazyLock<HashMap<String, String>> = LazyLock::new(|| flatten_source(EN_SOURCE));
static PSEUDO: LazyLock<HashMap<String, String>> =
    LazyLock::new(|| EN.iter().map(|(k, v)| (k.clone(), format!("{PSEUDO_OPEN}{v}{PSEUDO_CLOSE}"))).collect());

/// The brackets around every text of the pseudo-locale.
pub const PSEUDO_OPEN: char = '⟦';
pub const PSEUDO_CLOSE: char = '⟧';

/// Name of the cookie that keeps the visitor's choice.
pub const LANG_COOKIE: &str = "keypool_lang";

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Zh, Lang::En];

    /// The BCP 47 tag, used in `<html lang>` and the language cookie.
    pub fn code(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
            Self::Pseudo => "qps-ploc",
        }
    }

    /// The language's own name, for the switch.
    pub fn native_name(self) -> &'static str {
        match self {
            Self::Zh => "中文",
            Self::En => "English",
            Self::Pseudo => "⟦Pseudo⟧",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "zh" => Some(Self::Zh),
            "en" => Some(Self::En),
            "qps" => Some(Self::Pseudo),
            _ => None,
        }
    }

    /// The best supported language of an `Accept-Language` header (by q-value, then order).
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(f32, Lang)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("");
            let q = pieces.find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse::<f32>().ok())).unwrap_or(1.0);
            if let Some(lang) = Self::parse(tag)
                && lang != Self::Pseudo
                && q > 0.0
                && best.is_none_or(|(bq, _)| q > bq)
            {
                best = Some((q, lang));
            }
        }
        best.map(|(_, l)| l)
    }

    fn catalogue(self) -> &'static HashMap<String, String> {
        match self {
            Self::Zh => &ZH,
            Self::En => &EN,
            Self::Pseudo => &PSEUDO,
        }
    }

    /// The text of `key`; a missing key shows itself (and fails the catalogue tests).
    pub fn t(self, key: &str) -> &str {
        self.catalogue().get(key).map(String::as_str).unwrap_or(key)
    }

    /// The text of `key`, if the catalogue has it (for optional texts such as a field's placeholder).
    pub fn get(self, key: &str) -> Option<&str> {
        self.catalogue().get(key).map(String::as_str)
    }

    /// The text of `key` with `{name}` placeholders filled.
    pub fn tf(self, key: &str, args: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in args {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }
}

/// The translated text of a field error (pages and the command line).
pub fn field_message(lang: Lang, e: &crate::domain::FieldError) -> String {
    let args: Vec<(&str, &str)> = e.args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    lang.tf(e.key, &args)
}

/// A reason (a key's state, a failed check, a block) in `lang`: its catalogue text with its parameters;
/// a text stored before reasons had codes as it is.
pub fn reason_text(lang: Lang, reason: &crate::domain::reason::Reason) -> String {
    use crate::domain::reason::Reason;
    match (reason, reason.message()) {
        (Reason::Probe { reason: inner }, Some((key, _))) => lang.tf(key, &[("reason", &reason_text(lang, inner))]),
        (_, Some((key, args))) => {
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            lang.tf(key, &args)
        }
        (Reason::Text(text), None) => text.clone(),
        (_, None) => String::new(),
    }
}

/// A stored reason (see [`crate::domain::reason`]) in `lang`.
pub fn stored_reason_text(lang: Lang, stored: &str) -> String {
    reason_text(lang, &crate::domain::reason::Reason::decode(stored))
}

/// A request log's error in `lang` (see [`crate::domain::logs::error_message`]); an upstream's answer
/// as a reason; any other text as it is. `no key available (last: …)` renders what was last met too.
pub fn log_error_text(lang: Lang, stored: &str) -> String {
    match crate::domain::logs::error_message(stored) {
        Some(("logs.failure.no_key_last", args)) => {
            let last = args.first().map(|(_, v)| log_error_text(lang, v)).unwrap_or_default();
            lang.tf("logs.failure.no_key_last", &[("last", &last)])
        }
        Some((key, args)) => {
            let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
            lang.tf(key, &args)
        }
        None => stored_reason_text(lang, stored),
    }
}

/// Every key of a language's catalogue (for tests and tools).
pub fn keys(lang: Lang) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = lang.catalogue().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn flatten_source(source: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    match source.parse::<toml::Table>() {
        Ok(table) => flatten("", &table, &mut out),
        Err(e) => tracing::error!(error = %e, "a language catalogue does not parse"),
    }
    out
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_parse_and_have_the_same_keys() {
        assert!(ZH_SOURCE.parse::<toml::Table>().is_ok(), "zh-CN.toml does not parse");
        assert!(EN_SOURCE.parse::<toml::Table>().is_ok(), "en.toml does not parse");
        let zh = keys(Lang::Zh);
        let en = keys(Lang::En);
        let only_zh: Vec<_> = zh.iter().filter(|k| !en.contains(k)).collect();
        let only_en: Vec<_> = en.iter().filter(|k| !zh.contains(k)).collect();
        assert!(only_zh.is_empty() && only_en.is_empty(), "only in zh-CN: {only_zh:?}; only in en: {only_en:?}");
        assert!(zh.len() > 50);
    }

    #[test]
    fn placeholders_match_between_languages() {
        let re = |s: &str| {
            let mut names: Vec<String> =
                s.split('{').skip(1).filter_map(|p| p.split_once('}')).map(|(n, _)| n.to_owned()).collect();
            names.sort();
            names
        };
        for key in keys(Lang::En) {
            assert_eq!(re(Lang::En.t(key)), re(Lang::Zh.t(key)), "placeholders differ for {key}");
        }
    }

    #[test]
    fn accept_language() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,zh-CN;q=0.8"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Some(Lang::Zh));
        assert_eq!(Lang::from_accept_language("fr-FR, en;q=0.5, zh;q=0.7"), Some(Lang::Zh));
        assert_eq!(Lang::from_accept_language("fr-FR"), None);
        assert_eq!(Lang::from_accept_language("en;q=0"), None);
        assert_eq!(Lang::from_accept_language("qps-ploc"), None, "the pseudo-locale is only chosen on purpose");
        assert_eq!(Lang::parse("qps-ploc"), Some(Lang::Pseudo));
        assert_eq!(Lang::Pseudo.t("nav.dashboard"), format!("⟦{}⟧", Lang::En.t("nav.dashboard")));
    }

    #[test]
    fn formatting() {
        assert!(Lang::En.tf("error.too_many_requests_retry", &[("seconds", "42")]).contains("in 42 seconds"));
    }
}
