//! The layers of DESIGN §4, read from the source: nothing below `web` uses `web` (only `startup`, which
//! wires the server, and `cli`, which starts it, may), only `web` renders `views`, and only those three
//! use the whole `AppState`.

use std::path::{Path, PathBuf};

pub(super) fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`web`, `pool`, `state` …).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::X` path a file names (in `use` lines and inline paths), comments left out.
fn uses(text: &str, target: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .filter(|l| l.contains(&format!("crate::{target}::")) || l.contains(&format!("crate::{target}}}")))
        .map(str::to_owned)
        .collect()
}

fn violations(allowed: &[&str], target: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let module = module_of(&src, &file);
        if module == target || allowed.contains(&module.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for line in uses(&text, target) {
            found.push(format!("{}: {}", file.strip_prefix(&src).unwrap().display(), line.trim()));
        }
    }
    found
}

#[test]
fn nothing_below_web_uses_web() {
    let found = violations(&["startup", "cli", "lib", "main"], "web");
    assert!(found.is_empty(), "modules below `web` use it:\n{}", found.join("\n"));
}

#[test]
fn only_web_renders_views() {
    let found = violations(&["web", "lib"], "views");
    assert!(found.is_empty(), "modules other than `web` use `views`:\n{}", found.join("\n"));
}

/// The gateway and the checker get the context they need (`proxy::Gateway`, `checker::JobContext`,
/// `checker::schedule::Schedule`), not the whole app: only the top (`web`, `startup`, `cli`) uses
/// `AppState`.
#[test]
fn only_the_top_uses_the_app_state() {
    let found = violations(&["web", "startup", "cli", "lib", "main"], "state");
    assert!(found.is_empty(), "modules below the top use `AppState`:\n{}", found.join("\n"));
}

#[test]
fn the_scan_finds_a_use() {
    assert_eq!(uses("use crate::web::throttle::Throttle;\n// crate::web::x\n", "web").len(), 1);
    assert_eq!(uses("    crate::views::components::field_message(lang, e)", "views").len(), 1);
    assert!(uses("use crate::webhooks::x;", "web").is_empty());
}
