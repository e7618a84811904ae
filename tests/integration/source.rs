//! Rules read from the source: every catalogue key named in `src/` exists in both languages, and no
//! function grows past 80 lines.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use keypool::i18n::Lang;

fn source_files() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    super::layers::sources(&src, &mut files);
    files.sort();
    files.into_iter().map(|f| (f.clone(), std::fs::read_to_string(&f).unwrap())).collect()
}

/// The plain string literals of a line (no escapes, no placeholders).
fn literals(line: &str) -> Vec<&str> {
    line.split('"').skip(1).step_by(2).collect()
}

fn looks_like_key(s: &str, tables: &BTreeSet<&str>) -> bool {
    let mut parts = s.split('.');
    let first = parts.next().unwrap_or_default();
    tables.contains(first)
        && s.contains('.')
        && s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
}

#[test]
fn every_catalogue_key_named_in_the_source_exists_in_both_languages() {
    let catalogues: Vec<(Lang, Vec<&str>)> = Lang::ALL.iter().map(|l| (*l, keypool::i18n::keys(*l))).collect();
    let tables: BTreeSet<&str> = catalogues[0].1.iter().filter_map(|k| k.split('.').next()).collect();
    let mut checked = 0;
    let mut missing = Vec::new();
    for (file, text) in source_files() {
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for key in literals(line).into_iter().filter(|s| looks_like_key(s, &tables)) {
                checked += 1;
                for (lang, keys) in &catalogues {
                    // A key, or a table whose keys are named at run time (`keys.status.{status}`).
                    let table = format!("{key}.");
                    if !keys.iter().any(|k| *k == key || k.starts_with(&table)) {
                        missing.push(format!("{}:{} {key} ({})", file.display(), n + 1, lang.code()));
                    }
                }
            }
        }
    }
    assert!(checked > 300, "the scan found the keys ({checked})");
    assert!(missing.is_empty(), "catalogue keys missing:\n{}", missing.join("\n"));
}

/// `fn` items and their length in lines, from the line of `fn` to the line of its closing brace at the
/// same indentation (rustfmt's layout).
fn functions(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let is_fn = [
            "fn ",
            "pub fn ",
            "pub(crate) fn ",
            "pub(super) fn ",
            "async fn ",
            "pub async fn ",
            "pub(crate) async fn ",
            "pub(super) async fn ",
            "const fn ",
            "pub const fn ",
        ]
        .iter()
        .any(|p| trimmed.starts_with(p));
        if !is_fn || trimmed.ends_with(';') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[i..].iter().position(|l| *l == close || l.starts_with(&format!("{close})"))) {
            let name = trimmed.split('(').next().unwrap_or_default().rsplit(' ').next().unwrap_or_default().to_owned();
            out.push((i + 1, name, end + 1));
        }
    }
    out
}

#[test]
fn no_function_in_src_is_longer_than_80_lines() {
    let mut long = Vec::new();
    let mut seen = 0;
    for (file, text) in source_files() {
        // Unit tests may be long (a table of cases); only the program counts.
        let program = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (line, name, len) in functions(program) {
            seen += 1;
            if len > 80 {
                long.push(format!("{}:{line} {name}: {len} lines", file.display()));
            }
        }
    }
    assert!(seen > 500, "the scan found the functions ({seen})");
    assert!(long.is_empty(), "functions over 80 lines:\n{}", long.join("\n"));
}

/// The stylesheet's sizes come from its scales (issue 13's design system): every margin, padding,
/// gap, font size and corner radius outside the token block is a `var(--…)`, `0`, `auto`, a percentage
/// or relative to the font (`em`); a new literal like `.65rem` fails here with its line.
#[test]
fn every_size_in_the_stylesheet_comes_from_the_scales() {
    let css = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/css/app.css")).unwrap();
    let body = &css[css.find("* { box-sizing").expect("the rules after the tokens")..];
    let props = ["margin", "padding", "gap", "font-size", "border-radius"];
    let mut literals = Vec::new();
    for (n, line) in body.lines().enumerate() {
        for decl in line.split(['{', ';', '}']) {
            let Some((prop, value)) = decl.split_once(':') else { continue };
            let prop = prop.trim();
            if !props.iter().any(|p| prop == *p || prop.starts_with(&format!("{p}-")) || prop.ends_with("-gap")) {
                continue;
            }
            // Inside var(…) and a clamp's preferred viewport value, numbers are the scale's or fluid.
            let words = value.replace(['(', ')', ','], " ");
            for w in words.split_whitespace() {
                let number_with_unit = w.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                    && (w.ends_with("rem") || w.ends_with("px"));
                if number_with_unit && !(prop == "font-size" && w == "15px") {
                    literals.push(format!("line {}: {prop}: {}", n + 1, value.trim()));
                }
            }
        }
    }
    assert!(literals.is_empty(), "sizes outside the scales:\n{}", literals.join("\n"));
}
