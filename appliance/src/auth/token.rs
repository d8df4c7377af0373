//! Access tokens: `rap1.<claims>.<mac>`, both parts base64url without
//! padding, the MAC an HMAC-SHA256 over `rap1.<claims>` with the appliance's
//! own key. Only this appliance issues and checks them, so a shared-key MAC
//! is enough, and it costs about a microsecond to check.
//!
//! Pure code: the current time is an argument.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rap_storage::{AuthSessionId, UserId};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

const PREFIX: &str = "rap1.";

/// What an access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    /// The auth session it was issued from.
    pub sid: AuthSessionId,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique per token, so two tokens issued in one second still differ.
    pub jti: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Issues and checks access tokens with one key.
#[derive(Clone)]
pub struct AccessTokens {
    mac: Hmac<Sha256>,
}

impl AccessTokens {
    pub fn new(key: &[u8; 32]) -> Self {
        // INVARIANT: HMAC accepts keys of any length.
        let mac =
            <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Self { mac }
    }

    pub fn issue(&self, claims: &AccessClaims) -> String {
        // Serializing four plain fields cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(128);
        token.push_str(PREFIX);
        URL_SAFE_NO_PAD.encode_string(json, &mut token);
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }

    /// Checks the MAC first (constant time), then expiry at `now_unix`.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<AccessClaims, TokenError> {
        if !token.starts_with(PREFIX) {
            return Err(TokenError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        if signed.len() <= PREFIX.len() {
            return Err(TokenError::Malformed);
        }
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag).map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD.decode(&signed[PREFIX.len()..]).map_err(|_| TokenError::Malformed)?;
        let claims: AccessClaims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now_unix >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: UserId::from_uuid(Uuid::from_u128(1)),
            sid: AuthSessionId::from_uuid(Uuid::from_u128(2)),
            iat: 1000,
            exp,
            jti: Uuid::from_u128(3),
        }
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let tokens = AccessTokens::new(&[1; 32]);
        let token = tokens.issue(&claims(1900));
        assert!(token.starts_with("rap1."));
        assert_eq!(tokens.verify(&token, 1899), Ok(claims(1900)));
        assert_eq!(tokens.verify(&token, 1900), Err(TokenError::Expired));
    }

    #[test]
    fn any_change_or_another_key_breaks_the_signature() {
        let tokens = AccessTokens::new(&[1; 32]);
        let token = tokens.issue(&claims(1900));
        assert_eq!(AccessTokens::new(&[2; 32]).verify(&token, 1000), Err(TokenError::BadSignature));

        // Claims re-encoded with another user, old MAC kept.
        let (_, tag) = token.rsplit_once('.').expect("two parts");
        let forged_claims = AccessClaims { sub: UserId::from_uuid(Uuid::from_u128(99)), ..claims(1900) };
        let forged =
            format!("rap1.{}.{tag}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).expect("json")));
        assert_eq!(tokens.verify(&forged, 1000), Err(TokenError::BadSignature));

        for malformed in ["", "rap1.", "rap1..", "Bearer x", "rap1.e30", "rap1.e30.!!!", "rap2.e30.AAAA"] {
            assert!(tokens.verify(malformed, 1000).is_err(), "{malformed:?}");
        }
        // A correctly signed token whose claims are not ours is malformed.
        let mut mac = tokens.mac.clone();
        mac.update(b"rap1.e30");
        let odd = format!("rap1.e30.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
        assert_eq!(tokens.verify(&odd, 1000), Err(TokenError::Malformed));
    }
}
