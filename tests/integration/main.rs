//! Integration tests: the real application over HTTP, and the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity, clippy::zombie_processes)]

mod access_limits;
mod auth;
mod background;
mod browser;
mod checks;
mod cli;
mod cluster;
mod dashboard;
mod encryption;
mod errors;
mod faults;
mod first_run;
mod framing;
mod guest;
mod hardening;
mod keys;
mod layers;
mod logs;
mod mock;
mod process;
mod proxy;
mod pseudo_locale;
mod routing;
mod schema;
mod settings;
mod slow_clients;
mod source;
mod support;
mod usage;
mod visibility;
