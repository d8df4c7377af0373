//! RS256 JWTs (RFC 7519 compact form), signed and checked without I/O.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rap_storage::{AuthSessionId, SessionId, UserId, WorkerId};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

/// What a data-plane token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: UserId,
    /// The session.
    pub sid: SessionId,
    /// The worker holding the session.
    pub wid: WorkerId,
    /// The attachment the token stands for.
    pub aid: Uuid,
    /// The auth session it was issued in (an extension of the seed's
    /// claims): the socket lives only as long as that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asid: Option<AuthSessionId>,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token (single use at the direct endpoint).
    pub jti: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm other than RS256")]
    WrongAlgorithm,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

pub(super) fn sign(claims: &Claims, key: &SigningKey<Sha256>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature: Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

/// Checks a token with the public key alone: the header must say RS256,
/// then the signature, then expiry at `now_unix`.
pub fn verify(token: &str, key: &VerifyingKey<Sha256>, now_unix: i64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let header: Header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if header.alg != "RS256" {
        return Err(TokenError::WrongAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let signature = Signature::try_from(signature.as_slice()).map_err(|_| TokenError::BadSignature)?;
    let signing_input = &token[..token.len() - token.rsplit('.').next().map_or(0, |last| last.len() + 1)];
    key.verify(signing_input.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenError::Malformed)?)
        .map_err(|_| TokenError::Malformed)?;
    if now_unix >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use rsa::RsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    use rsa::signature::Keypair;

    fn keys() -> (SigningKey<Sha256>, VerifyingKey<Sha256>) {
        // A small key keeps the test fast; size is not what is tested.
        let private = RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("key");
        let signing = SigningKey::<Sha256>::new(private);
        let verifying = signing.verifying_key();
        (signing, verifying)
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: UserId::from_uuid(Uuid::from_u128(1)),
            sid: SessionId::from_uuid(Uuid::from_u128(2)),
            wid: WorkerId::from_uuid(Uuid::from_u128(3)),
            aid: Uuid::from_u128(4),
            asid: None,
            iat: 100,
            exp,
            jti: Uuid::from_u128(5),
        }
    }

    fn forge(header: &str, claims: &Claims, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("json")),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let (signing, verifying) = keys();
        let token = sign(&claims(200), &signing);
        assert_eq!(verify(&token, &verifying, 150), Ok(claims(200)));
        assert_eq!(verify(&token, &verifying, 200), Err(TokenError::Expired));
        let (_, other) = keys();
        assert_eq!(verify(&token, &other, 150), Err(TokenError::BadSignature));
    }

    #[test]
    fn every_other_algorithm_is_refused() {
        let (signing, verifying) = keys();
        let genuine = sign(&claims(200), &signing);
        let genuine_signature = URL_SAFE_NO_PAD.decode(genuine.rsplit('.').next().expect("signature")).expect("base64");
        // alg none, empty signature.
        assert_eq!(
            verify(&forge(r#"{"alg":"none"}"#, &claims(200), b""), &verifying, 150),
            Err(TokenError::WrongAlgorithm)
        );
        assert_eq!(
            verify(&forge(r#"{"alg":"None"}"#, &claims(200), b""), &verifying, 150),
            Err(TokenError::WrongAlgorithm)
        );
        // HS256 keyed with the public key's PEM: the classic confusion attack.
        let public_pem = verifying.to_public_key_pem(LineEnding::LF).expect("pem");
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(200)).expect("json"))
        );
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(public_pem.as_bytes()).expect("hmac");
        mac.update(input.as_bytes());
        let hs256 = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        assert_eq!(verify(&hs256, &verifying, 150), Err(TokenError::WrongAlgorithm));
        // RS256 header, but the claims changed under the genuine signature.
        let elevated = Claims { sub: UserId::from_uuid(Uuid::from_u128(99)), ..claims(200) };
        assert_eq!(
            verify(&forge(r#"{"alg":"RS256"}"#, &elevated, &genuine_signature), &verifying, 150),
            Err(TokenError::BadSignature)
        );
        for malformed in ["", "a.b", "a.b.c.d", "!!!.e30.AA"] {
            assert!(verify(malformed, &verifying, 150).is_err(), "{malformed:?}");
        }
    }
}
