//! Secrets and their digests: argon2id password hashes (PHC strings), random API tokens and
//! session cookies, and the SHA-256 under which the store keeps those. Nothing here logs or
//! keeps a secret; callers hold one only as long as the request that carries it.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest, Sha256};

/// What every API token starts with, so that one pasted into the wrong place is recognisable
/// (and secret scanners can find it).
pub const TOKEN_PREFIX: &str = "mf_";

/// A password is at least this long; there is no other rule (length is what counts).
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer passwords are refused, so nobody can make the server hash megabytes.
pub const MAX_PASSWORD_CHARS: usize = 1000;

/// `n` random bytes from the operating system, as lowercase hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source works");
    hex::encode(bytes)
}

/// A new API token: the prefix and 32 random bytes. Shown once; the store keeps its digest.
pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(32))
}

/// A new session cookie value: 32 random bytes.
pub fn new_session_cookie() -> String {
    random_hex(32)
}

/// A password for an account someone did not give one to: 20 characters from an alphabet
/// without look-alikes (about 115 bits).
pub fn generate_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    getrandom::getrandom(&mut bytes).expect("the operating system's random source works");
    // 256 is not a multiple of the alphabet's 56 letters: the slight bias costs under a bit.
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// The SHA-256 of a token or cookie, as hex: what the store keeps and looks up by. (These
/// are 256 random bits, so a fast digest is enough; passwords get argon2id.)
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The CSRF token of a session: derived from its cookie, so the store keeps nothing more, and
/// not the cookie's own digest (which the store does keep).
pub fn csrf_token(cookie: &str) -> String {
    digest(&format!("microfab csrf token:{cookie}"))
}

/// Equal, without leaking where they differ through the time it takes.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("a password has at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    #[error("hashing the password failed: {0}")]
    Hashing(String),
}

/// Whether `password` may be an account's password.
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The argon2id PHC string of `password` (with a fresh salt). Slow on purpose: call it off
/// the async threads (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`. Without a hash (no such account, or one
/// that signs in with tokens only) it still spends the time of one verification, against a
/// hash nobody knows the password of, so the answer's timing does not tell who exists.
pub fn verify_password(hash: Option<&str>, password: &str) -> bool {
    static NOBODY: OnceLock<String> = OnceLock::new();
    let nobody = NOBODY.get_or_init(|| {
        hash_password(&generate_password()).expect("hashing a generated password works")
    });
    let (hash, real) = match hash {
        Some(hash) => (hash, true),
        None => (nobody.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    real && matches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_kept_as_an_argon2id_hash_that_verifies_it() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(Some(&hash), "correct horse battery"));
        assert!(!verify_password(Some(&hash), "correct horse batterY"));
        assert!(!verify_password(None, "correct horse battery"));
        assert!(!verify_password(Some("not a phc string"), "x"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn tokens_are_prefixed_random_and_kept_as_digests() {
        let (a, b) = (new_api_token(), new_api_token());
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
        assert_ne!(csrf_token(&a), digest(&a));
        assert!(same_secret(&a, &a.clone()) && !same_secret(&a, &b) && !same_secret(&a, "mf_"));
        let password = generate_password();
        assert_eq!(password.chars().count(), 20);
        assert!(check_password(&password).is_ok());
    }
}
