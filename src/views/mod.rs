//! maud views: pure functions from typed values to markup. No database, no request.
//! Every visible string comes from the language catalogue (`crate::i18n`).

pub mod components;
pub mod error;
pub mod keys;
pub mod layout;
pub mod login;
pub mod placeholder;
pub mod settings;
