//! keypool: a self-hosted SiliconFlow API-key pool and OpenAI-compatible gateway.

pub mod charts;
pub mod checker;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod pool;
pub mod proxy;
pub mod startup;
pub mod state;
pub mod supervise;
pub mod views;
pub mod web;
