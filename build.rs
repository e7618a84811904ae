//! Tells the tests what this machine can do, as cfgs, so a test that cannot run here is reported as
//! ignored (with the reason) instead of passing without testing anything:
//! - `keypool_browser`: Chromium and ChromeDriver are installed (or `KEYPOOL_REQUIRE_BROWSER` is set,
//!   and the browser tests then fail loudly when they are missing);
//! - `keypool_can_mount`: running as root with `mount` (the full-disk tests mount a small tmpfs);
//! - `keypool_test_pg`: the tests run on PostgreSQL (`KEYPOOL_TEST_POSTGRES_URL`), so SQLite-only
//!   tests are ignored;
//! - `keypool_pg_server`: PostgreSQL's server binaries (`initdb`) are installed, or
//!   `KEYPOOL_REQUIRE_POSTGRES_SERVER=1` (the fault tests then fail loudly without them).

use std::path::Path;

fn main() {
    for cfg in ["keypool_browser", "keypool_can_mount", "keypool_test_pg", "keypool_pg_server"] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!("cargo::rerun-if-changed=build.rs");
    // Installing or removing Chromium changes /usr/bin.
    println!("cargo::rerun-if-changed=/usr/bin");
    println!("cargo::rerun-if-env-changed=KEYPOOL_REQUIRE_BROWSER");
    println!("cargo::rerun-if-env-changed=KEYPOOL_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=KEYPOOL_REQUIRE_POSTGRES_SERVER");
    println!("cargo::rerun-if-changed=/usr/lib/postgresql");
    let browser = Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists();
    if browser || std::env::var_os("KEYPOOL_REQUIRE_BROWSER").is_some() {
        println!("cargo::rustc-cfg=keypool_browser");
    }
    let mount = Path::new("/usr/bin/mount").exists() || Path::new("/bin/mount").exists();
    if mount && is_root() {
        println!("cargo::rustc-cfg=keypool_can_mount");
    }
    let initdb = std::fs::read_dir("/usr/lib/postgresql")
        .map(|versions| versions.flatten().any(|v| v.path().join("bin/initdb").exists()))
        .unwrap_or(false);
    if initdb || std::env::var("KEYPOOL_REQUIRE_POSTGRES_SERVER").is_ok_and(|v| v == "1") {
        println!("cargo::rustc-cfg=keypool_pg_server");
    }
    if std::env::var("KEYPOOL_TEST_POSTGRES_URL").is_ok_and(|v| !v.trim().is_empty()) {
        println!("cargo::rustc-cfg=keypool_test_pg");
    }
}

/// Whether the effective user is root (read from /proc; false where there is none).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
            .unwrap_or(false)
    })
}
