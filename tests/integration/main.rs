//! Integration tests: the real application over HTTP, and the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity, clippy::zombie_processes)]

mod auth;
mod browser;
mod cli;
mod guest;
mod keys;
mod schema;
mod settings;
mod support;
