//! The scheduler's identity: a self-signed certificate and two tokens, made on first start
//! and kept in the data dir (files mode 0600).
//!
//! ```text
//! DIR/cert.der      certificate (DER)           DIR/join-token    node token
//! DIR/key.der       private key (DER, 0600)     DIR/client-token  client token
//! ```
use mlt_protocol::handshake::Role;
use mlt_protocol::token::{constant_time_eq, Token};
use rand::RngCore;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Certificate, key and the two tokens.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Certificate, DER.
    pub cert_der: Vec<u8>,
    /// Private key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// Token for nodes.
    pub join_token: Token,
    /// The key of QUIC stateless resets, kept across restarts: a restarted scheduler tells
    /// its nodes at once that their connections are gone, instead of leaving them to time out.
    pub reset_key: Vec<u8>,
    /// Token for clients.
    pub client_token: Token,
}

impl Identity {
    /// The role a secret grants, compared in constant time.
    pub fn role_of(&self, secret: &str) -> Option<Role> {
        if constant_time_eq(secret.as_bytes(), self.join_token.secret.as_bytes()) {
            Some(Role::Node)
        } else if constant_time_eq(secret.as_bytes(), self.client_token.secret.as_bytes()) {
            Some(Role::Client)
        } else {
            None
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path)
}

fn secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Loads the identity from `dir`, creating whatever is missing.
pub fn load_or_create(dir: &Path) -> anyhow::Result<Identity> {
    use anyhow::Context;
    let fresh = !dir.exists();
    fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    if fresh {
        // Tokens, keys, specs (and their environment values) and datasets: the owner's alone.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private", dir.display()))?;
    }
    let cert_path = dir.join("cert.der");
    let key_path = dir.join("key.der");
    if !cert_path.exists() || !key_path.exists() {
        let names = vec!["mlt-scheduler".to_string(), "localhost".to_string()];
        let ck = rcgen::generate_simple_self_signed(names).context("generating the certificate")?;
        write_private(&key_path, ck.signing_key.serialize_der().as_slice())?;
        write_private(&cert_path, ck.cert.der().as_ref())?;
    }
    let cert_der =
        fs::read(&cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
    let key_der = fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let fingerprint = mlt_net::tls::fingerprint(&cert_der);
    let reset_path = dir.join("reset-key");
    let reset_key = match fs::read(&reset_path) {
        Ok(k) if k.len() == 64 => k,
        _ => {
            let mut k = vec![0u8; 64];
            rand::rng().fill_bytes(&mut k);
            write_private(&reset_path, &k)?;
            k
        }
    };
    let token = |file: &str, role: Role| -> anyhow::Result<Token> {
        let path = dir.join(file);
        if let Ok(text) = fs::read_to_string(&path) {
            let t = Token::parse(&text)
                .with_context(|| format!("{} is not a valid token", path.display()))?;
            if t.fingerprint == fingerprint && t.role == role {
                return Ok(t);
            }
        }
        let t = Token {
            role,
            fingerprint,
            secret: secret(),
        };
        write_private(&path, format!("{}\n", t.encode()).as_bytes())?;
        Ok(t)
    };
    let join_token = token("join-token", Role::Node)?;
    let client_token = token("client-token", Role::Client)?;
    Ok(Identity {
        cert_der,
        key_der,
        join_token,
        client_token,
        reset_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.join_token, b.join_token);
        assert_ne!(a.join_token.secret, a.client_token.secret);
        let fresh = dir.path().join("fresh");
        load_or_create(&fresh).unwrap();
        let mode = fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "a data dir it creates is private");
        assert_eq!(a.reset_key, b.reset_key, "the reset key survives restarts");
        assert_eq!(a.reset_key.len(), 64);
        for f in ["key.der", "join-token", "client-token", "reset-key"] {
            let mode = fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        assert_eq!(a.role_of(&a.join_token.secret), Some(Role::Node));
        assert_eq!(a.role_of(&a.client_token.secret), Some(Role::Client));
        assert_eq!(a.role_of("nope"), None);
        assert_eq!(
            a.join_token.fingerprint,
            mlt_net::tls::fingerprint(&a.cert_der)
        );
    }
}
