//! maud views: pure functions from typed values to markup. No database, no request.
//! Every visible string comes from the language catalogue (`crate::i18n`).

pub mod access_limits;
pub mod checks;
pub mod components;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod guest;
pub mod keys;
pub mod layout;
pub mod login;
pub mod logs;
pub mod prices;
pub mod settings;

#[cfg(test)]
mod tests {
    //! No visible text is written into a view: it all comes from the catalogues. The check reads the
    //! view sources and lists string literals inside `html!` that are neither attribute values nor
    //! Rust expressions (splices in parentheses) yet hold a letter.

    /// Proper nouns that are the same in every language.
    const ALLOWED: &[&str] = &["keypool"];

    #[derive(Clone, Copy, PartialEq)]
    enum Brace {
        Block,
        Attribute,
    }

    /// Visible literals holding letters, as (line, text).
    fn visible_literals(source: &str) -> Vec<(usize, String)> {
        let chars: Vec<char> = source.chars().collect();
        let mut found = Vec::new();
        let mut i = 0;
        while let Some(start) = find(&chars, i, "html! {") {
            let mut braces = vec![Brace::Block];
            let mut parens = 0usize;
            let mut j = start + "html! {".len();
            let mut last = '{';
            while j < chars.len() && !braces.is_empty() {
                let c = chars[j];
                match c {
                    '"' => {
                        let (text, end) = literal(&chars, j);
                        let in_attribute = braces.contains(&Brace::Attribute);
                        if parens == 0
                            && !in_attribute
                            && last != '='
                            && text.chars().any(char::is_alphabetic)
                            && !ALLOWED.contains(&text.as_str())
                        {
                            found.push((chars[..j].iter().filter(|c| **c == '\n').count() + 1, text));
                        }
                        j = end;
                        last = '"';
                        continue;
                    }
                    '/' if chars.get(j + 1) == Some(&'/') => {
                        while j < chars.len() && chars[j] != '\n' {
                            j += 1;
                        }
                        continue;
                    }
                    '(' | '[' => parens += 1,
                    ')' | ']' => parens = parens.saturating_sub(1),
                    '{' if parens == 0 => braces.push(if last == '=' { Brace::Attribute } else { Brace::Block }),
                    '}' if parens == 0 => {
                        braces.pop();
                    }
                    _ => {}
                }
                if !c.is_whitespace() {
                    last = c;
                }
                j += 1;
            }
            i = j;
        }
        found
    }

    fn find(chars: &[char], from: usize, needle: &str) -> Option<usize> {
        let needle: Vec<char> = needle.chars().collect();
        (from..chars.len().saturating_sub(needle.len() - 1)).find(|&k| chars[k..k + needle.len()] == needle[..])
    }

    /// The text of the string literal opening at `start`, and the index after it.
    fn literal(chars: &[char], start: usize) -> (String, usize) {
        let mut text = String::new();
        let mut k = start + 1;
        while k < chars.len() && chars[k] != '"' {
            if chars[k] == '\\' {
                k += 1;
            }
            if let Some(c) = chars.get(k) {
                text.push(*c);
            }
            k += 1;
        }
        (text, k + 1)
    }

    #[test]
    fn the_check_finds_text_and_skips_attributes_and_splices() {
        let sample = r##"html! { p.x title="Hidden" class={ "a b" (c) } { "Hello" (lang.t("k")) " · " (format!("{} x", n)) } }"##;
        let found: Vec<String> = visible_literals(sample).into_iter().map(|(_, t)| t).collect();
        assert_eq!(found, ["Hello"]);
    }

    #[test]
    fn views_hold_no_visible_hard_coded_text() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/views");
        let mut problems = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "mod.rs") {
                continue;
            }
            let Ok(source) = std::fs::read_to_string(&path) else { continue };
            files += 1;
            for (line, text) in visible_literals(&source) {
                problems.push(format!("{}:{line}: {text:?}", path.display()));
            }
        }
        assert!(files >= 9, "read the views");
        assert!(problems.is_empty(), "visible text outside the catalogues:\n{}", problems.join("\n"));
    }
}
