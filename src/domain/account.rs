//! Rules for the admin account's username and password.

use super::{FieldError, FieldErrors};

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 128;

/// 1–64 characters, no spaces or control characters.
pub fn parse_username(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("username", "account.username_required"));
    }
    if name.chars().count() > 64 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(FieldError::new("username", "account.username_invalid"));
    }
    Ok(name.to_owned())
}

/// A new admin password: 8–128 characters, typed twice the same.
pub fn parse_new_password(password: &str, confirm: &str) -> Result<String, FieldError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(FieldError::new("new_password", "account.password_too_short").with("min", MIN_PASSWORD_LEN));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(FieldError::new("new_password", "account.password_too_long").with("max", MAX_PASSWORD_LEN));
    }
    if password != confirm {
        return Err(FieldError::new("confirm_password", "account.password_mismatch"));
    }
    Ok(password.to_owned())
}

/// A parsed account form: the username to keep or set, and a new password if one was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountChange {
    pub username: String,
    pub new_password: Option<String>,
}

impl AccountChange {
    /// Blank new-password fields keep the current password.
    pub fn parse(username: &str, new_password: &str, confirm: &str) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let username = parse_username(username).map_err(|e| errors.push(e)).ok();
        let new_password = if new_password.is_empty() && confirm.is_empty() {
            Some(None)
        } else {
            parse_new_password(new_password, confirm).map(Some).map_err(|e| errors.push(e)).ok()
        };
        match (username, new_password) {
            (Some(username), Some(new_password)) if errors.is_empty() => Ok(Self { username, new_password }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(parse_username(" root ").ok(), Some("root".to_owned()));
        assert!(parse_username("").is_err());
        assert!(parse_username("two words").is_err());
        assert!(parse_username(&"a".repeat(65)).is_err());
        assert_eq!(parse_username("管理员").ok(), Some("管理员".to_owned()));
    }

    #[test]
    fn account_change_collects_every_error() {
        let errors = AccountChange::parse("a b", "short", "short").err().unwrap_or_default();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["username", "new_password"]);
        assert_eq!(
            AccountChange::parse("root", "", "").ok(),
            Some(AccountChange { username: "root".into(), new_password: None })
        );
    }

    #[test]
    fn passwords() {
        assert!(parse_new_password("short", "short").is_err());
        assert_eq!(parse_new_password("long enough", "long enough").ok(), Some("long enough".to_owned()));
        assert_eq!(parse_new_password("long enough", "long enougH").err().map(|e| e.field), Some("confirm_password"));
        assert!(parse_new_password(&"x".repeat(129), &"x".repeat(129)).is_err());
    }
}
