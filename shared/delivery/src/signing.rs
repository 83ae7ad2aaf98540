//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): with a `whsec_...`
//! secret, a delivery carries `webhook-id` (the same on every retry), `webhook-timestamp`
//! (Unix seconds of the attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, which the official `standardwebhooks` libraries verify.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use funnelhooks_core::Error;

const PREFIX: &str = "whsec_";

/// A signing secret, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key: Vec<u8>,
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets never reach logs, not even through Debug.
        f.write_str("SigningSecret(****)")
    }
}

impl SigningSecret {
    /// Parses `whsec_<base64>`; the key must be 24 to 64 bytes, as the spec asks.
    pub fn parse(secret: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::invalid("bad_secret", "signingSecret", reason);
        let encoded = secret
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("a signing secret starts with \"whsec_\""))?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| bad("the part after \"whsec_\" is not base64"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(bad("the key must be 24 to 64 bytes"));
        }
        Ok(Self { key })
    }

    /// A new secret from `random` key bytes (24 to 64 of them), in `whsec_` form.
    pub fn generate(random: &[u8]) -> Result<String, Error> {
        if !(24..=64).contains(&random.len()) {
            return Err(Error::invalid(
                "bad_secret",
                "signingSecret",
                "the key must be 24 to 64 bytes",
            ));
        }
        Ok(format!("{PREFIX}{}", STANDARD.encode(random)))
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The three headers for one attempt.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> [(&'static str, String); 3] {
        [
            ("webhook-id", id.to_string()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", self.sign(id, timestamp, body)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example from the Standard Webhooks specification and its reference libraries.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_changed_body_id_or_timestamp_changes_the_signature() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = secret.sign("msg_1", 1, b"{}");
        assert_ne!(base, secret.sign("msg_2", 1, b"{}"));
        assert_ne!(base, secret.sign("msg_1", 2, b"{}"));
        assert_ne!(base, secret.sign("msg_1", 1, b"{ }"));
    }

    #[test]
    fn malformed_secrets_are_refused_with_the_reason() {
        for (secret, reason) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"),
            ("whsec_not*base64", "base64"),
            ("whsec_c2hvcnQ=", "24 to 64"),
        ] {
            let err = SigningSecret::parse(secret).unwrap_err();
            assert!(err.to_string().contains(reason), "{secret}: {err}");
        }
    }

    #[test]
    fn generated_secret_parses_back_and_never_prints() {
        let s = SigningSecret::generate(&[7u8; 32]).unwrap();
        assert!(s.starts_with("whsec_"));
        let parsed = SigningSecret::parse(&s).unwrap();
        assert_eq!(format!("{parsed:?}"), "SigningSecret(****)");
    }
}
