//! Upstream keys: their states, what an import accepts, how a key is shown, and the keys table's
//! query (filter, search, sort, page) parsed from the URL.

use std::collections::HashSet;

pub use super::key_state::KeyStatus;

pub const MIN_KEY_LEN: usize = 20;
pub const MAX_KEY_LEN: usize = 200;
/// The largest import accepted at once (text), from the page or the CLI.
pub const MAX_IMPORT_BYTES: usize = 20 * 1024 * 1024;

/// Why an import entry is not a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    TooShort,
    TooLong,
    ForbiddenCharacter,
    /// A character outside printable ASCII (`!` to `~`): SiliconFlow's keys are `sk-` and letters and
    /// digits, so a bidi control, a zero-width space, a non-ASCII letter or binary garbage is never part
    /// of one.
    NotAscii,
}

impl RejectReason {
    /// The catalogue key of the reason.
    pub fn message_key(self) -> &'static str {
        match self {
            Self::TooShort => "keys.import.too_short",
            Self::TooLong => "keys.import.too_long",
            Self::ForbiddenCharacter => "keys.import.forbidden_character",
            Self::NotAscii => "keys.import.not_ascii",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based line of the input.
    pub line: usize,
    /// The entry as given, cut to 80 characters, with every character outside printable ASCII shown as
    /// an escape (`\u{202e}`), so an invisible or bidi character is seen, not obeyed.
    pub text: String,
    pub reason: RejectReason,
}

/// An import split into keys (first occurrence order), duplicates within it, and rejected entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedImport {
    pub keys: Vec<String>,
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

/// A row of the keys table as the admin sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: i64,
    pub key: String,
    pub status: KeyStatus,
    pub status_reason: Option<String>,
    pub last_error: Option<String>,
    /// None until the first successful check.
    pub total_balance: Option<f64>,
    pub added_at: i64,
    pub checked_at: Option<i64>,
    /// In the viewing admin's selection.
    pub selected: bool,
}

/// One key in full, for its detail page.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDetail {
    pub id: i64,
    pub key: String,
    pub status: KeyStatus,
    pub status_reason: Option<String>,
    pub total_balance: Option<f64>,
    pub charge_balance: Option<f64>,
    pub gift_balance: Option<f64>,
    pub added_at: i64,
    pub checked_at: Option<i64>,
    pub last_error: Option<String>,
    pub source: Option<String>,
    pub request_count: i64,
    pub failure_count: i64,
    pub last_used_at: Option<i64>,
}

/// A state change of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyEvent {
    pub at: i64,
    pub from_status: KeyStatus,
    pub to_status: KeyStatus,
    pub reason: Option<String>,
}

/// What an import did: keys added, already in the pool, repeated within the input, and rejected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub added: usize,
    /// Ids of the keys this import added.
    pub new_ids: Vec<i64>,
    pub present: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}

fn is_separator(c: char) -> bool {
    matches!(c, ',' | ';' | ' ' | '\t' | '\r' | '，' | '；' | '\u{3000}')
}

fn forbidden(c: char) -> bool {
    c.is_control() || matches!(c, '"' | '\'' | '`' | '<' | '>')
}

/// Splits on newlines, commas, semicolons, spaces and tabs (and their full-width forms); accepts our
/// own export lines `key|balance`; rejects what cannot be a key, with its line number: control
/// characters, quotes and angle brackets, then anything outside printable ASCII, then the length.
pub fn parse_import(text: &str) -> ParsedImport {
    let mut out = ParsedImport::default();
    let mut seen = HashSet::new();
    // A byte order mark opens many files saved on Windows: not part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.split('\n').enumerate() {
        for token in line.split(is_separator) {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            let key = token.split_once('|').map_or(token, |(k, _)| k.trim());
            let reason = if key.chars().any(forbidden) || token.chars().any(forbidden) {
                Some(RejectReason::ForbiddenCharacter)
            } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
                Some(RejectReason::NotAscii)
            } else if key.chars().count() < MIN_KEY_LEN {
                Some(RejectReason::TooShort)
            } else if key.chars().count() > MAX_KEY_LEN {
                Some(RejectReason::TooLong)
            } else {
                None
            };
            match reason {
                Some(reason) => out.rejected.push(Rejected { line: index + 1, text: shown(token), reason }),
                None if seen.insert(key.to_owned()) => out.keys.push(key.to_owned()),
                None => out.duplicates += 1,
            }
        }
    }
    out
}

/// A rejected entry as shown: its first 80 characters, those outside printable ASCII escaped.
fn shown(token: &str) -> String {
    token
        .chars()
        .take(80)
        .map(|c| if c.is_ascii_graphic() { c.to_string() } else { c.escape_unicode().to_string() })
        .collect()
}

/// `sk-abcd…wxyz`: recognisable, not usable.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 12 {
        return "…".to_owned();
    }
    let head: String = chars[..7].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// Balances print in their shortest exact form: `14`, `0.88`, `-1.5`.
pub fn format_balance(value: f64) -> String {
    let text = format!("{value}");
    if text == "-0" { "0".to_owned() } else { text }
}

/// Which keys a list, count or bulk action covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyFilter {
    pub status: Option<KeyStatus>,
    /// Part of a key, matched exactly as typed (keys are case-sensitive).
    pub search: Option<String>,
    /// With `status` unchecked: only keys whose last check failed transiently (`Some(true)`, a 429,
    /// 5xx or timeout left a `last_error`), or only keys never tried (`Some(false)`). `None` (the
    /// command line's filters) takes both.
    pub check_failed: Option<bool>,
}

/// The keys table's word for unchecked keys whose last check failed transiently.
pub const CHECK_FAILED: &str = "check_failed";

impl KeyFilter {
    /// The filter of the table's `status` word: a state, or `check_failed`. The table's `unchecked`
    /// means never tried, so the two badges never count a key twice.
    pub fn for_status_word(word: &str, search: Option<String>) -> Self {
        match word.trim() {
            CHECK_FAILED => Self { status: Some(KeyStatus::Unchecked), search, check_failed: Some(true) },
            other => {
                let status = KeyStatus::parse(other);
                let check_failed = (status == Some(KeyStatus::Unchecked)).then_some(false);
                Self { status, search, check_failed }
            }
        }
    }

    /// The `status` word of this filter, as the URL carries it.
    pub fn status_word(&self) -> Option<&'static str> {
        match (self.status, self.check_failed) {
            (Some(KeyStatus::Unchecked), Some(true)) => Some(CHECK_FAILED),
            (status, _) => status.map(KeyStatus::as_str),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortField {
    Balance,
    /// Last checked, or added for keys never checked.
    Checked,
    #[default]
    Added,
}

impl SortField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Balance => "balance",
            Self::Checked => "checked",
            Self::Added => "added",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Balance, Self::Checked, Self::Added].into_iter().find(|s| s.as_str() == raw)
    }
}

pub const PAGE_SIZES: [u32; 4] = [20, 50, 100, 500];

/// The keys table's state, as kept in the URL.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyListQuery {
    pub filter: KeyFilter,
    pub sort: SortField,
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub size: u32,
}

impl Default for KeyListQuery {
    fn default() -> Self {
        Self { filter: KeyFilter::default(), sort: SortField::Added, descending: true, page: 1, size: PAGE_SIZES[0] }
    }
}

/// The raw query string fields; anything unknown falls back to the default instead of failing, so an
/// old bookmark still opens.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RawKeyListQuery {
    pub status: Option<String>,
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    pub page: Option<String>,
    pub size: Option<String>,
}

impl KeyListQuery {
    pub fn parse(raw: &RawKeyListQuery) -> Self {
        let d = Self::default();
        let search = raw.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(|q| q.chars().take(200).collect());
        let sort = raw.sort.as_deref().and_then(SortField::parse).unwrap_or(d.sort);
        Self {
            filter: KeyFilter::for_status_word(raw.status.as_deref().unwrap_or(""), search),
            sort,
            descending: raw.dir.as_deref().map_or(d.descending, |v| v != "asc"),
            page: raw.page.as_deref().and_then(|p| p.trim().parse().ok()).filter(|p| *p >= 1).unwrap_or(1),
            size: raw
                .size
                .as_deref()
                .and_then(|s| s.trim().parse().ok())
                .filter(|s| PAGE_SIZES.contains(s))
                .unwrap_or(d.size),
        }
    }

    /// The query string for this state (only what differs from the defaults).
    pub fn to_query_string(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(s) = self.filter.status_word() {
            pairs.push(("status", s.to_owned()));
        }
        if let Some(q) = &self.filter.search {
            pairs.push(("q", q.clone()));
        }
        pairs.push(("sort", self.sort.as_str().to_owned()));
        pairs.push(("dir", if self.descending { "desc" } else { "asc" }.to_owned()));
        if self.page > 1 {
            pairs.push(("page", self.page.to_string()));
        }
        if self.size != PAGE_SIZES[0] {
            pairs.push(("size", self.size.to_string()));
        }
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
    }

    /// The same view on another page.
    pub fn with_page(&self, page: u32) -> Self {
        Self { page, ..self.clone() }
    }

    /// Clicking a column: the active one flips direction, another starts descending on page 1.
    pub fn toggled(&self, field: SortField) -> Self {
        let descending = if self.sort == field { !self.descending } else { true };
        Self { sort: field, descending, page: 1, ..self.clone() }
    }

    /// Number of pages for `total` matching keys (at least 1).
    pub fn page_count(&self, total: i64) -> u32 {
        (total.max(0) as u64).div_ceil(self.size as u64).max(1) as u32
    }

    pub fn offset(&self) -> i64 {
        (self.page as i64 - 1) * self.size as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sk-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sk-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sk-cccccccccccccccccccccccccccccccc";

    #[test]
    fn check_failed_is_a_status_word_of_the_table_apart_from_unchecked() {
        let raw = |status: &str| RawKeyListQuery { status: Some(status.to_owned()), ..Default::default() };
        let failed = KeyListQuery::parse(&raw("check_failed"));
        assert_eq!(failed.filter.status, Some(KeyStatus::Unchecked));
        assert_eq!(failed.filter.check_failed, Some(true));
        assert!(failed.to_query_string().starts_with("status=check_failed&"));
        let never = KeyListQuery::parse(&raw("unchecked"));
        assert_eq!(never.filter.check_failed, Some(false), "the table's unchecked: never tried");
        assert!(never.to_query_string().starts_with("status=unchecked&"));
        assert_eq!(KeyListQuery::parse(&raw("active")).filter.check_failed, None);
        assert_eq!(KeyListQuery::parse(&raw("bogus")).filter, KeyFilter::default());
    }

    #[test]
    fn splits_on_every_separator_and_keeps_order() {
        let text = format!("{A},{B}\n  {C};{A}\t{B} \r\n{C}|12.5\n\n");
        let p = parse_import(&text);
        assert_eq!(p.keys, [A, B, C]);
        assert_eq!(p.duplicates, 3);
        assert!(p.rejected.is_empty());
    }

    #[test]
    fn accepts_export_lines_and_full_width_separators() {
        let p = parse_import(&format!("{A}|14\n{B}，{C}；"));
        assert_eq!(p.keys, [A, B, C]);
    }

    #[test]
    fn rejects_junk_with_line_numbers() {
        let text = format!("{A}\nshort\n<script>alert(1)</script>aaaaaaaaaaaaaa\n\"{B}\"\n{}\n{C}", "x".repeat(201));
        let p = parse_import(&text);
        assert_eq!(p.keys, [A, C]);
        let got: Vec<_> = p.rejected.iter().map(|r| (r.line, r.reason)).collect();
        assert_eq!(
            got,
            [
                (2, RejectReason::TooShort),
                (3, RejectReason::ForbiddenCharacter),
                (4, RejectReason::ForbiddenCharacter),
                (5, RejectReason::TooLong)
            ]
        );
        assert_eq!(p.rejected[3].text.chars().count(), 80, "long entries are cut");
    }

    #[test]
    fn rejects_keys_with_anything_but_printable_ascii_with_line_numbers() {
        let tail = "a".repeat(32);
        let text = [
            format!("sk-{tail}\u{202e}"),         // right-to-left override
            format!("sk-\u{2066}{tail}\u{2069}"), // bidi isolates
            format!("sk-{tail}\u{200b}"),         // zero-width space
            format!("\u{feff}sk-{tail}"),         // byte order mark
            format!("sk-{tail}\u{200d}x"),        // zero-width joiner
            format!("sk-{tail}é"),                // non-ASCII letter
            format!("sk-аaaa{tail}"),             // Cyrillic а
            format!("ｓｋ-{tail}"),               // full-width letters
            format!("sk-{tail}\u{fffd}"),         // what lossy decoding leaves of binary
            format!("sk-{tail}\u{0}"),            // NUL
            format!("sk-{tail}\u{7f}"),           // DEL
            format!("sk-{tail}|\u{202e}14"),      // in an export line's balance too
            format!("sk-{tail}"),
        ]
        .join("\n");
        let p = parse_import(&text);
        assert_eq!(p.keys, [format!("sk-{tail}")]);
        let got: Vec<_> = p.rejected.iter().map(|r| (r.line, r.reason)).collect();
        use RejectReason::{ForbiddenCharacter, NotAscii};
        assert_eq!(
            got,
            [
                (1, NotAscii),
                (2, NotAscii),
                (3, NotAscii),
                (4, NotAscii),
                (5, NotAscii),
                (6, NotAscii),
                (7, NotAscii),
                (8, NotAscii),
                (9, NotAscii),
                (10, ForbiddenCharacter),
                (11, ForbiddenCharacter),
                (12, NotAscii),
            ]
        );
        assert_eq!(NotAscii.message_key(), "keys.import.not_ascii");
        assert_eq!(p.rejected[0].text, format!("sk-{tail}\\u{{202e}}"), "shown, not obeyed");
        assert_eq!(p.rejected[9].text, format!("sk-{tail}\\u{{0}}"));
        // A byte order mark opening the input is not part of the first key.
        assert_eq!(parse_import(&format!("\u{feff}{A}\n{B}")).keys, [A, B]);
        // Full-width separators still separate; a no-break space (not a separator) inside a key does not.
        let p = parse_import(&format!("{A}\u{3000}{B}，{C}\n{A}\u{a0}{B}"));
        assert_eq!(p.keys, [A, B, C]);
        assert_eq!(p.rejected.iter().map(|r| (r.line, r.reason)).collect::<Vec<_>>(), [(2, NotAscii)]);
    }

    #[test]
    fn binary_garbage_yields_no_keys() {
        // 4 KB of reproducible random bytes (xorshift), decoded as a browser or a lossy reader would.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..8 {
            let bytes: Vec<u8> = (0..4096)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let p = parse_import(&String::from_utf8_lossy(&bytes));
            assert!(p.keys.is_empty(), "{:?}", p.keys);
            assert!(!p.rejected.is_empty());
        }
        // Printable runs long enough to pass the length rule, glued to garbage, are refused too.
        let mut glued = vec![0xff_u8, 0xfe];
        glued.extend_from_slice(A.as_bytes());
        glued.extend_from_slice(&[0xc3, 0x28, 0xe2, 0x80, 0x8b]);
        let p = parse_import(&String::from_utf8_lossy(&glued));
        assert!(p.keys.is_empty(), "{:?}", p.keys);
        assert_eq!(p.rejected.iter().map(|r| r.reason).collect::<Vec<_>>(), [RejectReason::NotAscii]);
    }

    #[test]
    fn masks_and_formats() {
        assert_eq!(mask(A), "sk-aaaa…aaaa");
        assert_eq!(mask("short"), "…");
        assert_eq!(format_balance(14.0), "14");
        assert_eq!(format_balance(0.88), "0.88");
        assert_eq!(format_balance(-1.5), "-1.5");
        assert_eq!(format_balance(-0.0), "0");
    }

    #[test]
    fn list_query_round_trips_and_falls_back() {
        let raw = RawKeyListQuery {
            status: Some("active".into()),
            q: Some(" abc ".into()),
            sort: Some("balance".into()),
            dir: Some("asc".into()),
            page: Some("3".into()),
            size: Some("100".into()),
        };
        let q = KeyListQuery::parse(&raw);
        assert_eq!(q.filter.status, Some(KeyStatus::Active));
        assert_eq!(q.filter.search.as_deref(), Some("abc"));
        assert_eq!((q.sort, q.descending, q.page, q.size, q.offset()), (SortField::Balance, false, 3, 100, 200));
        assert_eq!(q.to_query_string(), "status=active&q=abc&sort=balance&dir=asc&page=3&size=100");

        let junk = RawKeyListQuery {
            status: Some("alive".into()),
            sort: Some("colour".into()),
            page: Some("-2".into()),
            size: Some("7".into()),
            ..Default::default()
        };
        assert_eq!(KeyListQuery::parse(&junk), KeyListQuery::default());
    }

    #[test]
    fn toggling_and_pages() {
        let q = KeyListQuery::default();
        assert!(!q.toggled(SortField::Added).descending, "active column flips");
        let b = q.with_page(4).toggled(SortField::Balance);
        assert!(b.descending && b.page == 1 && b.sort == SortField::Balance);
        assert_eq!(q.page_count(0), 1);
        assert_eq!(q.page_count(41), 3);
    }
}
