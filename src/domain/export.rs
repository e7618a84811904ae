//! Key export: which keys (scope), what each item holds, what separates items, and the file name.

use super::FieldError;
use super::keys::format_balance;

pub const DEFAULT_MIN_BALANCE: f64 = 10.0;
pub const MAX_CUSTOM_SEPARATOR: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExportScope {
    All,
    /// Keys in the `active` state.
    Valid,
    /// The admin's current selection.
    Selection,
    /// Keys whose total balance is at least this (inclusive), except invalid and disabled ones.
    MinBalance(f64),
}

impl ExportScope {
    /// The scope's word in file names.
    pub fn slug(&self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Valid => "valid".to_owned(),
            Self::Selection => "selected".to_owned(),
            Self::MinBalance(min) => format!("balance-at-least-{}", format_balance(*min)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Separator {
    Newline,
    Comma,
    Space,
    Semicolon,
    Tab,
    Custom(String),
}

impl Separator {
    /// A word (`newline`, `comma`, `space`, `semicolon`, `tab`) or any other text of 1–10 characters.
    /// Empty means newline.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Ok(match raw {
            "" | "newline" => Self::Newline,
            "comma" => Self::Comma,
            "space" => Self::Space,
            "semicolon" => Self::Semicolon,
            "tab" => Self::Tab,
            custom if custom.chars().count() <= MAX_CUSTOM_SEPARATOR => Self::Custom(custom.to_owned()),
            _ => return Err(FieldError::new("sep", "keys.export.separator_too_long")),
        })
    }

    pub fn text(&self) -> &str {
        match self {
            Self::Newline => "\n",
            Self::Comma => ",",
            Self::Space => " ",
            Self::Semicolon => ";",
            Self::Tab => "\t",
            Self::Custom(s) => s,
        }
    }
}

/// The separator a form sent: `sep=custom` means the text of `custom_sep`.
pub fn pick_separator<'a>(sep: Option<&'a str>, custom: Option<&'a str>) -> Option<&'a str> {
    match (sep, custom) {
        (Some("custom"), Some(custom)) => Some(custom),
        (sep, _) => sep,
    }
}

/// A parsed export request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRequest {
    pub scope: ExportScope,
    /// Items are `key|balance` (keys never checked stay a bare `key`).
    pub with_balance: bool,
    pub separator: Separator,
}

impl ExportRequest {
    /// From the words of the URL or the CLI: scope `all|valid|selection|min_balance` (`min-balance` too),
    /// `min_balance` (default 10), `with_balance` (`1`/`true`/`on`), `sep`.
    pub fn parse(
        scope: &str,
        min_balance: Option<&str>,
        with_balance: Option<&str>,
        sep: Option<&str>,
    ) -> Result<Self, FieldError> {
        let scope = match scope.trim() {
            "" | "all" => ExportScope::All,
            "valid" => ExportScope::Valid,
            "selection" | "selected" => ExportScope::Selection,
            "min_balance" | "min-balance" => {
                let min = match min_balance.map(str::trim).filter(|v| !v.is_empty()) {
                    None => DEFAULT_MIN_BALANCE,
                    Some(v) => v
                        .parse::<f64>()
                        .ok()
                        .filter(|m| m.is_finite())
                        .ok_or_else(|| FieldError::new("min_balance", "keys.export.min_balance_invalid"))?,
                };
                ExportScope::MinBalance(min)
            }
            _ => return Err(FieldError::new("scope", "keys.export.scope_invalid")),
        };
        let with_balance = with_balance.is_some_and(|v| matches!(v.trim(), "1" | "true" | "on" | "yes"));
        Ok(Self { scope, with_balance, separator: Separator::parse(sep.unwrap_or(""))? })
    }

    /// One item of the output.
    pub fn item(&self, key: &str, balance: Option<f64>) -> String {
        match (self.with_balance, balance) {
            (true, Some(b)) => format!("{key}|{}", format_balance(b)),
            _ => key.to_owned(),
        }
    }

    /// `keypool-valid-keys-2026-11-26T11-39-38.txt`, `keypool-all-keys-with-balance-….txt`.
    pub fn file_name(&self, now_ms: i64) -> String {
        let stamp = chrono::DateTime::from_timestamp_millis(now_ms)
            .map(|t| t.format("%Y-%m-%dT%H-%M-%S").to_string())
            .unwrap_or_default();
        let balance = if self.with_balance { "-with-balance" } else { "" };
        format!("keypool-{}-keys{balance}-{stamp}.txt", self.scope.slug())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_defaults() {
        let r = ExportRequest::parse("min_balance", None, Some("1"), Some("comma")).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.scope, ExportScope::MinBalance(10.0));
        assert!(r.with_balance);
        assert_eq!(r.separator.text(), ",");
        assert_eq!(
            ExportRequest::parse("min-balance", Some("12.5"), None, None).ok().map(|r| r.scope),
            Some(ExportScope::MinBalance(12.5))
        );
        assert!(ExportRequest::parse("min_balance", Some("lots"), None, None).is_err());
        assert!(ExportRequest::parse("some", None, None, None).is_err());
        assert_eq!(ExportRequest::parse("", None, None, None).ok().map(|r| r.scope), Some(ExportScope::All));
    }

    #[test]
    fn separators() {
        for (word, text) in [
            ("newline", "\n"),
            ("comma", ","),
            ("space", " "),
            ("semicolon", ";"),
            ("tab", "\t"),
            ("", "\n"),
            (" | ", " | "),
        ] {
            assert_eq!(Separator::parse(word).map(|s| s.text().to_owned()).ok().as_deref(), Some(text), "{word:?}");
        }
        assert!(Separator::parse("0123456789").is_ok());
        assert!(Separator::parse("0123456789a").is_err());
    }

    #[test]
    fn items_and_file_names() {
        let r = ExportRequest::parse("valid", None, Some("1"), None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.item("sk-x", Some(14.0)), "sk-x|14");
        assert_eq!(r.item("sk-x", None), "sk-x");
        // 2026-11-26T11:39:38Z
        assert_eq!(r.file_name(1_795_693_178_000), "keypool-valid-keys-with-balance-2026-11-26T11-39-38.txt");
        let m = ExportRequest::parse("min_balance", Some("12.5"), None, None).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(m.file_name(0).starts_with("keypool-balance-at-least-12.5-keys-1970"));
    }
}
