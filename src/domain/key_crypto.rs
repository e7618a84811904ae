//! Optional encryption at rest of the upstream keys (`KEYPOOL_ENCRYPTION_KEY`).
//!
//! * The encryption key is 32 bytes, written as 64 hex characters or base64. Two subkeys are derived
//!   from it with HMAC-SHA256 (one per purpose): an AES-256-GCM key and a lookup-hash key.
//! * A stored key is `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag), with a random 96-bit nonce per
//!   value; a value without the prefix is a key stored in clear (a database before `encrypt-keys`).
//! * Uniqueness and exact lookup go through `key_hash`: hex HMAC-SHA256 of the key under the lookup
//!   subkey, in a unique column; `key_hint` keeps the last four characters (shown masked anyway) so a
//!   short search still finds keys. Keys stored in clear have neither (uniqueness on `key`, as always).
//! * [`KeyCipher::check_value`] is a keyed fingerprint of the encryption key, stored once in the
//!   database, so a different key is refused at start without trying to decrypt anything.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Marks an encrypted stored key (format version 1).
pub const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// The 32-byte encryption key. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(…)")
    }
}

impl EncryptionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// 64 hex characters, or base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(raw).map_err(|e| e.to_string())?
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(raw).ok())
                .ok_or_else(|| {
                    "must be 32 bytes written as 64 hex characters or base64 (e.g. `openssl rand -hex 32`)".to_owned()
                })?
        };
        let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!("must be 32 bytes (64 hex characters or base64; e.g. `openssl rand -hex 32`), not {}", bytes.len())
        })?;
        Ok(Self(array))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("a stored key is encrypted but KEYPOOL_ENCRYPTION_KEY is not set")]
    NoKey,
    #[error("a stored key cannot be decrypted: it was encrypted with another KEYPOOL_ENCRYPTION_KEY or altered")]
    Undecryptable,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// AES-256-GCM and the lookup hash, under subkeys of one [`EncryptionKey`].
#[derive(Clone)]
pub struct KeyCipher {
    aead: Aes256Gcm,
    hash_key: [u8; 32],
    check: String,
}

impl KeyCipher {
    pub fn new(key: &EncryptionKey) -> Self {
        let enc_key = hmac(&key.0, b"keypool/v1/aes-256-gcm");
        let hash_key = hmac(&key.0, b"keypool/v1/key-hash");
        let check = format!("v1:{}", hex::encode(hmac(&key.0, b"keypool/v1/key-check")));
        Self { aead: Aes256Gcm::new(&enc_key.into()), hash_key, check }
    }

    /// `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag), a fresh random nonce each time.
    pub fn seal(&self, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        // Encryption of an in-memory buffer fails only past 64 GiB.
        let sealed = self.aead.encrypt(Nonce::from_slice(&nonce), plain.as_bytes()).unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD_NO_PAD.encode(out))
    }

    /// The key inside a sealed value; any alteration (or another key) fails.
    pub fn open(&self, stored: &str) -> Result<String, CryptoError> {
        let body = stored.strip_prefix(PREFIX).ok_or(CryptoError::Undecryptable)?;
        let bytes = STANDARD_NO_PAD.decode(body).map_err(|_| CryptoError::Undecryptable)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self.aead.decrypt(Nonce::from_slice(nonce), sealed).map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)
    }

    /// The keyed hash that makes encrypted keys unique and findable by their exact text (hex).
    pub fn lookup_hash(&self, plain: &str) -> String {
        hex::encode(hmac(&self.hash_key, plain.as_bytes()))
    }

    /// A fingerprint of the encryption key (reveals nothing of it), stored to recognise a wrong key.
    pub fn check_value(&self) -> &str {
        &self.check
    }
}

/// Whether a stored key is encrypted (else it is the key in clear).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

/// The non-secret part kept next to an encrypted key for search: its last four characters.
pub fn hint(plain: &str) -> String {
    let chars: Vec<char> = plain.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

/// A key as it goes into the `keys` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key: String,
    pub hash: Option<String>,
    pub hint: Option<String>,
}

/// How keys are stored: in clear (no `KEYPOOL_ENCRYPTION_KEY`) or encrypted.
#[derive(Clone, Default)]
pub enum KeyCodec {
    #[default]
    Plain,
    Encrypted(Box<KeyCipher>),
}

impl std::fmt::Debug for KeyCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_encrypted() { "KeyCodec::Encrypted" } else { "KeyCodec::Plain" })
    }
}

impl KeyCodec {
    pub fn new(key: Option<&EncryptionKey>) -> Self {
        key.map_or(Self::Plain, |k| Self::Encrypted(Box::new(KeyCipher::new(k))))
    }

    pub fn is_encrypted(&self) -> bool {
        matches!(self, Self::Encrypted(_))
    }

    pub fn cipher(&self) -> Option<&KeyCipher> {
        match self {
            Self::Plain => None,
            Self::Encrypted(c) => Some(c),
        }
    }

    /// The row values for a new key: encrypted with hash and hint, or the key in clear.
    pub fn store(&self, plain: &str) -> StoredKey {
        match self {
            Self::Plain => StoredKey { key: plain.to_owned(), hash: None, hint: None },
            Self::Encrypted(c) => {
                StoredKey { key: c.seal(plain), hash: Some(c.lookup_hash(plain)), hint: Some(hint(plain)) }
            }
        }
    }

    /// The key of a stored value: a value in clear is returned as it is (a database part-way through
    /// `encrypt-keys` reads fine); an encrypted one needs the right key.
    pub fn open(&self, stored: String) -> Result<String, CryptoError> {
        if !is_sealed(&stored) {
            return Ok(stored);
        }
        match self {
            Self::Plain => Err(CryptoError::NoKey),
            Self::Encrypted(c) => c.open(&stored),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL";

    fn cipher(byte: u8) -> KeyCipher {
        KeyCipher::new(&EncryptionKey::from_bytes([byte; 32]))
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let c = cipher(1);
        let a = c.seal(KEY);
        let b = c.seal(KEY);
        assert!(a.starts_with(PREFIX) && !a.contains("sk-") && !a.contains("WXYZ"), "{a}");
        assert_ne!(a, b, "a random nonce per value");
        assert_eq!(c.open(&a).as_deref(), Ok(KEY));
        assert_eq!(c.open(&b).as_deref(), Ok(KEY));
        let codec = KeyCodec::Encrypted(Box::new(c));
        let stored = codec.store(KEY);
        assert_eq!(stored.hint.as_deref(), Some("IJKL"));
        assert_eq!(codec.open(stored.key).as_deref(), Ok(KEY));
        assert_eq!(codec.open(KEY.to_owned()).as_deref(), Ok(KEY), "a key in clear reads as it is");
    }

    #[test]
    fn tampering_and_another_key_are_detected() {
        let c = cipher(1);
        let sealed = c.seal(KEY);
        let mut bytes = STANDARD_NO_PAD.decode(&sealed[PREFIX.len()..]).unwrap_or_default();
        assert!(bytes.len() > NONCE_LEN + 16);
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let altered = format!("{PREFIX}{}", STANDARD_NO_PAD.encode(&bytes));
            assert_eq!(c.open(&altered), Err(CryptoError::Undecryptable), "byte {i}");
            bytes[i] ^= 1;
        }
        assert_eq!(c.open(&sealed[..sealed.len() - 4]), Err(CryptoError::Undecryptable));
        assert_eq!(c.open("enc:v1:!!"), Err(CryptoError::Undecryptable));
        assert_eq!(cipher(2).open(&sealed), Err(CryptoError::Undecryptable));
        assert_eq!(KeyCodec::Plain.open(sealed), Err(CryptoError::NoKey));
    }

    #[test]
    fn lookup_hash_and_check_value_are_keyed_and_stable() {
        let (a, b) = (cipher(1), cipher(2));
        assert_eq!(a.lookup_hash(KEY), cipher(1).lookup_hash(KEY));
        assert_ne!(a.lookup_hash(KEY), b.lookup_hash(KEY));
        assert_ne!(a.lookup_hash(KEY), a.lookup_hash("sk-other"));
        assert_eq!(a.lookup_hash(KEY).len(), 64);
        assert_eq!(a.check_value(), cipher(1).check_value());
        assert_ne!(a.check_value(), b.check_value());
        assert!(!a.check_value().contains(&hex::encode([1u8; 32])));
    }

    #[test]
    fn parses_hex_and_base64_and_refuses_the_rest() {
        let bytes = [0xabu8; 32];
        let hex_text = hex::encode(bytes);
        assert_eq!(EncryptionKey::parse(&hex_text), Ok(EncryptionKey::from_bytes(bytes)));
        assert_eq!(EncryptionKey::parse(&hex_text.to_uppercase()), Ok(EncryptionKey::from_bytes(bytes)));
        assert_eq!(EncryptionKey::parse(&STANDARD.encode(bytes)), Ok(EncryptionKey::from_bytes(bytes)));
        assert_eq!(EncryptionKey::parse(&URL_SAFE_NO_PAD.encode(bytes)), Ok(EncryptionKey::from_bytes(bytes)));
        for bad in ["", "short", &hex_text[..62], &STANDARD.encode([1u8; 16]), "not base64 at all!"] {
            let err = EncryptionKey::parse(bad).err().unwrap_or_default();
            assert!(err.contains("32 bytes"), "{bad}: {err}");
        }
        assert_eq!(format!("{:?}", EncryptionKey::from_bytes(bytes)), "EncryptionKey(…)");
    }

    #[test]
    fn hint_is_the_last_four_characters() {
        assert_eq!(hint("sk-abcdef"), "cdef");
        assert_eq!(hint("ab"), "ab");
    }
}
