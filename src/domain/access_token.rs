//! Access keys of the proxy: the token format, its hash (what is stored) and its display hint.

use sha2::{Digest, Sha256};

use super::{FieldError, password::random_token};

/// Every token starts with this, so a leaked one is recognisable in logs and scanners.
pub const PREFIX: &str = "kp-";

/// A freshly minted token: shown once, then only its hash and hint remain.
pub struct NewToken {
    pub token: String,
    pub hash: String,
    pub hint: String,
}

pub fn mint() -> NewToken {
    let token = format!("{PREFIX}{}", random_token(40));
    NewToken { hash: hash(&token), hint: hint(&token), token }
}

/// Hex SHA-256 of the token. Tokens carry 238 bits of randomness, so a fast hash is enough.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `kp-abcd…wxyz`: enough to tell keys apart, useless to an attacker.
pub fn hint(token: &str) -> String {
    let chars: Vec<char> = token.chars().collect();
    if chars.len() <= 12 {
        return "…".to_owned();
    }
    let head: String = chars[..7].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// A name for an access key: 1–64 characters, no control characters, trimmed.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new("name", "access_keys.name_required"));
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(FieldError::new("name", "access_keys.name_invalid"));
    }
    Ok(name.to_owned())
}

/// The token of an `Authorization` header value: `Bearer TOKEN`, or a bare token.
pub fn from_authorization(value: &str) -> Option<&str> {
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None if value.eq_ignore_ascii_case("bearer") => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_hash_and_hint() {
        let t = mint();
        assert!(t.token.starts_with(PREFIX) && t.token.len() == 43);
        assert_eq!(t.hash, hash(&t.token));
        assert!(t.hint.starts_with("kp-") && t.hint.contains('…'));
        assert!(!t.hint.contains(&t.token[7..39]));
    }

    #[test]
    fn authorization_forms() {
        assert_eq!(from_authorization("Bearer kp-abc"), Some("kp-abc"));
        assert_eq!(from_authorization("bearer  kp-abc "), Some("kp-abc"));
        assert_eq!(from_authorization("kp-abc"), Some("kp-abc"));
        assert_eq!(from_authorization("Basic abc"), None);
        assert_eq!(from_authorization("Bearer "), None);
        assert_eq!(from_authorization(""), None);
    }

    #[test]
    fn names() {
        assert_eq!(parse_name("  ci bot ").ok(), Some("ci bot".to_owned()));
        assert!(parse_name("   ").is_err());
        assert!(parse_name("a\u{7}b").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
    }
}
