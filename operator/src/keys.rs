//! The instance's generated keys: made once, stored in a Secret, never overwritten (a new
//! session key logs everyone out; a new encryption key loses what it encrypted).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use fedi_config::vars;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// Keys of the Secret, and the server variable each one feeds. A user's `existingSecret`
/// must hold all of them.
pub const SECRET_KEYS: &[(&str, &str)] = &[
    ("secretKeyBase", vars::SECRET_KEY_BASE),
    ("oauthSigningKey", vars::OAUTH_SIGNING_KEY),
    ("encryptionKey", vars::ENCRYPTION_KEY),
    ("vapidPrivateKey", vars::VAPID_PRIVATE_KEY),
    ("vapidPublicKey", vars::VAPID_PUBLIC_KEY),
];

#[derive(Debug, thiserror::Error)]
#[error("the system random generator failed")]
pub struct RandomError;

/// Fresh key material for every key of `SECRET_KEYS`.
pub fn generate() -> Result<BTreeMap<String, String>, RandomError> {
    let rng = SystemRandom::new();
    let random = |len: usize| -> Result<String, RandomError> {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes).map_err(|_| RandomError)?;
        Ok(hex(&bytes))
    };
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| RandomError)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| RandomError)?;
    Ok(BTreeMap::from([
        ("secretKeyBase".to_string(), random(64)?),
        ("oauthSigningKey".to_string(), random(64)?),
        ("encryptionKey".to_string(), random(32)?),
        (
            "vapidPrivateKey".to_string(),
            STANDARD.encode(pkcs8.as_ref()),
        ),
        (
            "vapidPublicKey".to_string(),
            URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
        ),
    ]))
}

fn random_hex(len: usize) -> Result<String, RandomError> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(hex(&bytes))
}

/// The managed Redis's password, and the same as redis.conf directives for the nodes
/// (`masterauth` lets replicas authenticate to their primary).
pub fn redis_credentials() -> Result<BTreeMap<String, String>, RandomError> {
    use crate::build::managed::{REDIS_AUTH_CONF_KEY, REDIS_PASSWORD_KEY};
    let password = random_hex(32)?;
    let conf = format!("requirepass {password}\nmasterauth {password}\n");
    Ok(BTreeMap::from([
        (REDIS_PASSWORD_KEY.to_string(), password),
        (REDIS_AUTH_CONF_KEY.to_string(), conf),
    ]))
}

/// The managed object store's key pair, and SeaweedFS's identities file granting it the
/// bucket operations the server and the operator use.
pub fn s3_credentials() -> Result<BTreeMap<String, String>, RandomError> {
    use crate::build::managed::S3_CONFIG_KEY;
    use crate::build::{S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY};
    let access = random_hex(10)?;
    let secret = random_hex(20)?;
    let identities = serde_json::json!({"identities": [{
        "name": "fedi",
        "credentials": [{"accessKey": access, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]});
    Ok(BTreeMap::from([
        (S3_ACCESS_KEY_ID_KEY.to_string(), access),
        (S3_SECRET_ACCESS_KEY_KEY.to_string(), secret),
        (S3_CONFIG_KEY.to_string(), identities.to_string()),
    ]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_credentials_are_fresh_and_consistent() {
        let (a, b) = (redis_credentials().unwrap(), redis_credentials().unwrap());
        assert_ne!(a["password"], b["password"]);
        assert_eq!(a["password"].len(), 64);
        assert_eq!(
            a["auth.conf"],
            format!("requirepass {0}\nmasterauth {0}\n", a["password"])
        );
        let s3 = s3_credentials().unwrap();
        let identities: serde_json::Value = serde_json::from_str(&s3["s3.json"]).unwrap();
        let creds = &identities["identities"][0]["credentials"][0];
        assert_eq!(creds["accessKey"], s3["accessKeyId"].as_str());
        assert_eq!(creds["secretKey"], s3["secretAccessKey"].as_str());
        assert_ne!(
            s3["secretAccessKey"],
            s3_credentials().unwrap()["secretAccessKey"]
        );
    }

    #[test]
    fn every_key_is_generated_fresh_and_the_vapid_pair_matches() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        for (key, _) in SECRET_KEYS {
            assert!(!a[*key].is_empty(), "{key}");
            assert_ne!(a[*key], b[*key], "{key} must be random");
        }
        assert_eq!(a["secretKeyBase"].len(), 128);
        let public = URL_SAFE_NO_PAD.decode(&a["vapidPublicKey"]).unwrap();
        assert_eq!(
            (public.len(), public[0]),
            (65, 0x04),
            "an uncompressed P-256 point"
        );
        let pkcs8 = STANDARD.decode(&a["vapidPrivateKey"]).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .unwrap();
        assert_eq!(pair.public_key().as_ref(), public.as_slice());
    }
}
