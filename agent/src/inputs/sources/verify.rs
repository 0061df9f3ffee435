//! Integrity checks a body must pass before it is parsed or used: the pinned SHA-256 and the
//! minisign signature, both optional per source. The cache is checked again when it is read.

use super::spec::SourceSpec;

/// Largest `.minisig` accepted (a real one is about 300 bytes).
pub const MAX_SIGNATURE_BYTES: u64 = 8 * 1024;

/// Why a body was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The body is not the one pinned by `sha256`.
    #[error("the body's SHA-256 is {actual}, not the pinned {pinned}")]
    Pinned { pinned: String, actual: String },
    /// `minisign_key` is set but there is no signature.
    #[error("no minisign signature ({what})")]
    NoSignature { what: String },
    /// The signature is malformed, by another key, or does not match the body.
    #[error("the minisign signature does not verify: {reason}")]
    BadSignature { reason: String },
}

/// Checks `body` against `spec`'s pin and key; `signature` is the `.minisig` text, if any.
/// Returns the body's SHA-256 (hex).
pub fn verify(
    spec: &SourceSpec,
    body: &[u8],
    signature: Option<&str>,
) -> Result<String, VerifyError> {
    let actual = crate::files::digest::sha256_hex(body);
    if let Some(pinned) = &spec.sha256
        && *pinned != actual
    {
        return Err(VerifyError::Pinned {
            pinned: pinned.clone(),
            actual,
        });
    }
    if let Some(key) = &spec.minisign_key {
        let text = signature.ok_or_else(|| VerifyError::NoSignature {
            what: "none was kept with this copy".into(),
        })?;
        let sig =
            minisign_verify::Signature::decode(text).map_err(|e| VerifyError::BadSignature {
                reason: format!("not a minisign signature ({e})"),
            })?;
        // Prehashed (minisign's default since 0.8) only: legacy signatures are refused.
        key.verify(body, &sig, false)
            .map_err(|e| VerifyError::BadSignature {
                reason: e.to_string(),
            })?;
    }
    Ok(actual)
}
