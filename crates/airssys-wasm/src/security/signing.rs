//! Signing components: Ed25519 over the component's content hash and the
//! manifest's name and version, stored beside the component as `FILE.sig`.
//! A [`TrustPolicy`] refuses an unsigned, tampered or wrongly-signed component
//! before it is compiled.
//!
//! Keys are text files holding 64 hex digits: the secret seed (`KEY`) or the
//! public key (`KEY.pub`).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::units::hex;

/// What a signature covers besides the bytes: the manifest's name and version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIdentity {
    /// The component's name.
    pub name: String,
    /// The component's version.
    pub version: String,
}

/// The content of a `FILE.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The signed identity.
    #[serde(flatten)]
    pub identity: SignedIdentity,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// The public key that made the signature, hex.
    pub public_key: String,
    /// The Ed25519 signature, hex.
    pub signature: String,
}

fn message(sha256: &str, id: &SignedIdentity) -> Vec<u8> {
    format!(
        "airssys-wasm signature v1\n{sha256}\n{}\n{}\n",
        id.name, id.version
    )
    .into_bytes()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let s = s.trim();
    if s.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn sig_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Signature {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The HTTP header an upload (the admin API's `POST /upgrade/{component}`)
/// carries its signature file in, hex-encoded ([`header_value`]) so that any
/// name survives as a header.
pub const SIGNATURE_HEADER: &str = "airssys-signature";

/// A signature file's text as the value of [`SIGNATURE_HEADER`]: its bytes in hex.
pub fn header_value(signature_file: &str) -> String {
    hex(signature_file.as_bytes())
}

/// The signature file's text back from a [`SIGNATURE_HEADER`] value; `None`
/// when it is not hex of UTF-8 text.
pub fn from_header_value(value: &str) -> Option<String> {
    let v = value.trim().as_bytes();
    if !v.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let bytes = v
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Where the signature of `component` lives: `component` + `.sig`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut p = component.as_os_str().to_owned();
    p.push(".sig");
    PathBuf::from(p)
}

/// Generates a key pair and writes `out` (secret) and `out.pub` (public).
/// Returns the public key's hex.
///
/// # Errors
///
/// [`Error::Io`] when the key files cannot be written.
pub fn keygen(out: &Path) -> Result<String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Config(format!("no system randomness: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let public = hex(key.verifying_key().as_bytes());
    let write = |p: &Path, text: String| {
        std::fs::write(p, text).map_err(|source| Error::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    write(out, hex(&seed) + "\n")?;
    restrict_permissions(out);
    write(&signature_path_pub(out), public.clone() + "\n")?;
    Ok(public)
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) {}

fn signature_path_pub(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// Signs `component` with the secret key in `key_file`; writes and returns `component.sig`.
///
/// # Errors
///
/// [`Error::Io`] when the component or key cannot be read or the signature written;
/// [`Error::Signature`] for a malformed key.
pub fn sign(component: &Path, key_file: &Path, identity: &SignedIdentity) -> Result<PathBuf> {
    let seed = unhex::<32>(&String::from_utf8_lossy(&read(key_file)?))
        .ok_or_else(|| sig_err(key_file, "not a secret key (expected 64 hex digits)"))?;
    let key = SigningKey::from_bytes(&seed);
    let sha256 = hex(&Sha256::digest(read(component)?));
    let signature = key.sign(&message(&sha256, identity));
    let file = SignatureFile {
        identity: identity.clone(),
        sha256,
        public_key: hex(key.verifying_key().as_bytes()),
        signature: hex(&signature.to_bytes()),
    };
    let out = signature_path(component);
    let text =
        serde_json::to_string_pretty(&file).map_err(|e| sig_err(&out, e.to_string()))? + "\n";
    std::fs::write(&out, text).map_err(|source| Error::Io {
        path: out.clone(),
        source,
    })?;
    Ok(out)
}

/// The public keys whose signatures are trusted. Empty: signatures are not required.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    keys: Vec<(PathBuf, VerifyingKey)>,
}

impl TrustPolicy {
    /// Trusts the public key in `path` (64 hex digits).
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::Signature`] for a malformed public key.
    pub fn trust_key_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = unhex::<32>(&String::from_utf8_lossy(&read(path)?))
            .ok_or_else(|| sig_err(path, "not a public key (expected 64 hex digits)"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| sig_err(path, format!("not a valid Ed25519 public key: {e}")))?;
        self.keys.push((path.to_path_buf(), key));
        Ok(self)
    }

    /// Whether any key is trusted (and so signatures are required).
    pub fn is_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks `component` against its `.sig` before anything compiles it: the
    /// signature must exist, match the bytes, match `identity` when given, and
    /// verify with a trusted key. Returns the signed identity.
    pub fn verify(
        &self,
        component: &Path,
        identity: Option<&SignedIdentity>,
    ) -> Result<SignedIdentity> {
        self.verify_bytes(component, &read(component)?, identity)
    }

    /// As [`TrustPolicy::verify`], for bytes already read from `component`, so that
    /// what is verified is exactly what is then compiled.
    pub fn verify_bytes(
        &self,
        component: &Path,
        bytes: &[u8],
        identity: Option<&SignedIdentity>,
    ) -> Result<SignedIdentity> {
        let sig_path = signature_path(component);
        let text = std::fs::read_to_string(&sig_path).map_err(|_| {
            sig_err(
                component,
                format!("refused: not signed (no {})", sig_path.display()),
            )
        })?;
        self.verify_signature(component, &sig_path, bytes, &text, identity)
    }

    /// As [`TrustPolicy::verify_bytes`], with the signature file's text given
    /// (say, as it arrived beside the bytes in an upload). `component` and
    /// `sig_path` name the two in errors.
    pub fn verify_signature(
        &self,
        component: &Path,
        sig_path: &Path,
        bytes: &[u8],
        text: &str,
        identity: Option<&SignedIdentity>,
    ) -> Result<SignedIdentity> {
        let file: SignatureFile = serde_json::from_str(text)
            .map_err(|e| sig_err(sig_path, format!("refused: malformed signature file: {e}")))?;
        let sha256 = hex(&Sha256::digest(bytes));
        if sha256 != file.sha256 {
            return Err(sig_err(
                component,
                format!(
                    "refused: tampered: content hash {sha256} does not match the signed hash {}",
                    file.sha256
                ),
            ));
        }
        if let Some(id) = identity {
            if *id != file.identity {
                return Err(sig_err(
                    component,
                    format!(
                        "refused: signed as {}@{}, but the manifest says {}@{}",
                        file.identity.name, file.identity.version, id.name, id.version
                    ),
                ));
            }
        }
        let signature = unhex::<64>(&file.signature)
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| sig_err(sig_path, "refused: malformed signature"))?;
        let msg = message(&sha256, &file.identity);
        if self
            .keys
            .iter()
            .any(|(_, k)| k.verify(&msg, &signature).is_ok())
        {
            return Ok(file.identity);
        }
        let signed_by_trusted = self
            .keys
            .iter()
            .any(|(_, k)| hex(k.as_bytes()) == file.public_key);
        Err(sig_err(
            component,
            if signed_by_trusted {
                "refused: the signature does not verify (tampered signature or identity)"
                    .to_string()
            } else {
                format!("refused: signed by an untrusted key ({})", file.public_key)
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_tamper_and_wrong_key() {
        let dir = tempfile::tempdir().unwrap();
        let comp = dir.path().join("c.wasm");
        std::fs::write(&comp, b"\0asm component bytes").unwrap();
        let key = dir.path().join("key");
        keygen(&key).unwrap();
        let other = dir.path().join("other");
        keygen(&other).unwrap();
        let id = SignedIdentity {
            name: "c".into(),
            version: "1.0.0".into(),
        };
        let trust = TrustPolicy::default()
            .trust_key_file(dir.path().join("key.pub"))
            .unwrap();
        let err = trust.verify(&comp, None).unwrap_err().to_string();
        assert!(err.contains("not signed"), "{err}");
        sign(&comp, &key, &id).unwrap();
        assert_eq!(trust.verify(&comp, Some(&id)).unwrap(), id);
        let wrong_id = SignedIdentity {
            version: "2.0.0".into(),
            ..id.clone()
        };
        assert!(trust
            .verify(&comp, Some(&wrong_id))
            .unwrap_err()
            .to_string()
            .contains("manifest says c@2.0.0"));
        let untrusted = TrustPolicy::default()
            .trust_key_file(dir.path().join("other.pub"))
            .unwrap();
        assert!(untrusted
            .verify(&comp, None)
            .unwrap_err()
            .to_string()
            .contains("untrusted key"));
        std::fs::write(&comp, b"\0asm component bytes, changed").unwrap();
        assert!(trust
            .verify(&comp, None)
            .unwrap_err()
            .to_string()
            .contains("tampered"));
    }
}
