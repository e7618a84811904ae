//! Integration tests: the real application over HTTP, and the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity, clippy::zombie_processes)]

mod auth;
mod browser;
mod checks;
mod cli;
mod cluster;
mod dashboard;
mod faults;
mod guest;
mod keys;
mod mock;
mod process;
mod proxy;
mod schema;
mod settings;
mod support;
