//! Integration tests: the real application over HTTP, and the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod cli;
mod schema;
mod settings;
mod support;
