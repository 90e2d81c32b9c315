//! Tokens. A token is `mlt1-<role>-<fingerprint>-<secret>`: the role (`node` or `client`), the
//! SHA-256 fingerprint of the scheduler's certificate (64 hex digits) so that the peer pins the
//! server as `kubeadm join --discovery-token-ca-cert-hash` does, and a 32-byte secret (64 hex
//! digits) that the scheduler checks in constant time.
use crate::handshake::Role;
use thiserror::Error;

/// A parsed token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The role this token grants.
    pub role: Role,
    /// SHA-256 of the scheduler certificate (DER).
    pub fingerprint: [u8; 32],
    /// The secret, as 64 hex digits.
    pub secret: String,
}

/// Why a token string is not a token.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    /// Wrong number of parts or wrong prefix.
    #[error("not an mlt-cluster token (expected mlt1-<node|client>-<64 hex>-<64 hex>)")]
    Shape,
    /// Unknown role.
    #[error("token role `{0}` is neither `node` nor `client`")]
    Role(String),
    /// The fingerprint or secret is not 64 hex digits.
    #[error("token {0} is not 64 hexadecimal digits")]
    Hex(&'static str),
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Token {
    /// Formats the token.
    pub fn encode(&self) -> String {
        let fp: String = self
            .fingerprint
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("mlt1-{}-{}-{}", self.role, fp, self.secret)
    }

    /// Parses a token string (surrounding whitespace ignored).
    pub fn parse(s: &str) -> Result<Token, TokenError> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        let [prefix, role, fp, secret] = parts[..] else {
            return Err(TokenError::Shape);
        };
        if prefix != "mlt1" {
            return Err(TokenError::Shape);
        }
        let role = match role {
            "node" => Role::Node,
            "client" => Role::Client,
            other => return Err(TokenError::Role(other.to_string())),
        };
        if !is_hex64(fp) {
            return Err(TokenError::Hex("fingerprint"));
        }
        if !is_hex64(secret) {
            return Err(TokenError::Hex("secret"));
        }
        let mut fingerprint = [0u8; 32];
        for (i, chunk) in fp.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|_| TokenError::Hex("fingerprint"))?;
            fingerprint[i] =
                u8::from_str_radix(hex, 16).map_err(|_| TokenError::Hex("fingerprint"))?;
        }
        Ok(Token {
            role,
            fingerprint,
            secret: secret.to_ascii_lowercase(),
        })
    }
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_and_rejects_garbage() {
        let t = Token {
            role: Role::Node,
            fingerprint: [0xab; 32],
            secret: "0f".repeat(32),
        };
        let s = t.encode();
        assert!(s.starts_with("mlt1-node-abab"));
        assert_eq!(Token::parse(&s).unwrap(), t);
        assert_eq!(Token::parse("hello"), Err(TokenError::Shape));
        assert_eq!(
            Token::parse(&s.replace("node", "root")),
            Err(TokenError::Role("root".into()))
        );
        assert_eq!(
            Token::parse(&s[..s.len() - 1]),
            Err(TokenError::Hex("secret"))
        );
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
