//! RSA key pairs of local actors (accounts and the instance actor), and the two operations
//! federation needs from them: signing with a private key, verifying with a public one.
//!
//! Generation uses the `rsa` crate (ring cannot generate RSA keys); signing and verification
//! use ring. Keys are 2048 bits: what Mastodon generates and what every peer accepts.

use ring::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use sqlx::PgConnection;

use crate::db::Database;

pub const KEY_BITS: usize = 2048;

/// A PEM key pair: PKCS#8 private key, SPKI public key (`-----BEGIN PUBLIC KEY-----`, the
/// form Mastodon publishes in `publicKey.publicKeyPem`).
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// The OS generator (through ring), in the `rand_core` version `rsa` speaks: its own
/// `SysRng` would need a second `getrandom` major version as a direct dependency.
struct OsRng(ring::rand::SystemRandom);

impl rsa::rand_core::TryRng for OsRng {
    type Error = std::io::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        ring::rand::SecureRandom::fill(&self.0, dst)
            .map_err(|_| std::io::Error::other("the OS random generator failed"))
    }
}

impl rsa::rand_core::TryCryptoRng for OsRng {}

/// A new key pair. CPU-bound (tens to hundreds of milliseconds): call from a blocking
/// thread, or through [`generate_async`].
pub fn generate() -> anyhow::Result<KeyPair> {
    let private = rsa::PrivateKey::new(&mut OsRng(ring::rand::SystemRandom::new()), KEY_BITS)?;
    let private_pem = private.to_pkcs8_pem(LineEnding::LF)?.to_string();
    let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF)?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

pub async fn generate_async() -> anyhow::Result<KeyPair> {
    tokio::task::spawn_blocking(generate).await?
}

/// Stores `pair` as the key of the local account `account_id` (inside the transaction that
/// creates the account). A key that exists already stays.
pub async fn insert_account_key(
    conn: &mut PgConnection,
    account_id: i64,
    pair: &KeyPair,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_keys (account_id, private_key_pem, public_key_pem) \
         VALUES ($1, $2, $3) ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(account_id)
    .bind(&pair.private_pem)
    .bind(&pair.public_pem)
    .execute(conn)
    .await
    .map(drop)
}

/// [`insert_account_key`] for the account of the local user `user_id`.
pub async fn insert_user_account_key(
    conn: &mut PgConnection,
    user_id: i64,
    pair: &KeyPair,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_keys (account_id, private_key_pem, public_key_pem) \
         SELECT account_id, $2, $3 FROM users WHERE id = $1 ON CONFLICT (account_id) DO NOTHING",
    )
    .bind(user_id)
    .bind(&pair.private_pem)
    .bind(&pair.public_pem)
    .execute(conn)
    .await
    .map(drop)
}

/// The key pair of a local account, generated now for accounts created before keys
/// existed (or by a path that does not create one). Concurrent first uses agree on the
/// first one stored.
pub async fn account_key(db: &Database, account_id: i64) -> anyhow::Result<KeyPair> {
    let query = "SELECT private_key_pem, public_key_pem FROM account_keys WHERE account_id = $1";
    if let Some((private_pem, public_pem)) = sqlx::query_as::<_, (String, String)>(query)
        .bind(account_id)
        .fetch_optional(db.primary())
        .await?
    {
        return Ok(KeyPair {
            private_pem,
            public_pem,
        });
    }
    let pair = generate_async().await?;
    let mut conn = db.primary().acquire().await?;
    insert_account_key(&mut conn, account_id, &pair).await?;
    let (private_pem, public_pem) = sqlx::query_as::<_, (String, String)>(query)
        .bind(account_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

/// The instance actor's key pair, generated on first use.
pub async fn instance_actor_key(db: &Database) -> anyhow::Result<KeyPair> {
    let query = "SELECT private_key_pem, public_key_pem FROM instance_actor_keys";
    if let Some((private_pem, public_pem)) = sqlx::query_as::<_, (String, String)>(query)
        .fetch_optional(db.primary())
        .await?
    {
        return Ok(KeyPair {
            private_pem,
            public_pem,
        });
    }
    let pair = generate_async().await?;
    sqlx::query(
        "INSERT INTO instance_actor_keys (private_key_pem, public_key_pem) VALUES ($1, $2) \
         ON CONFLICT (singleton) DO NOTHING",
    )
    .bind(&pair.private_pem)
    .bind(&pair.public_pem)
    .execute(db.primary())
    .await?;
    let (private_pem, public_pem) = sqlx::query_as::<_, (String, String)>(query)
        .fetch_one(db.primary())
        .await?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

/// A private key ready to sign, with the `keyId` peers will fetch to verify.
pub struct Signer {
    pub key_id: String,
    key: RsaKeyPair,
}

impl Signer {
    pub fn new(key_id: String, private_pem: &str) -> anyhow::Result<Self> {
        let der = rsa::PrivateKey::from_pkcs8_pem(private_pem)?.to_pkcs8_der()?;
        let key = RsaKeyPair::from_pkcs8(der.as_bytes())
            .map_err(|e| anyhow::anyhow!("unusable private key: {e}"))?;
        Ok(Self { key_id, key })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (`rsa-sha256`; what `hs2019` means for RSA keys).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            // Only fails on a buffer of the wrong length, sized above from the key.
            .expect("RSA signing with a correctly sized buffer");
        signature
    }
}

/// A remote (or local) public key, parsed once.
#[derive(Clone)]
pub struct PublicKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits)", self.n.len() * 8)
    }
}

impl PublicKey {
    /// SPKI (`BEGIN PUBLIC KEY`, Mastodon and most) or PKCS#1 (`BEGIN RSA PUBLIC KEY`, some
    /// older software) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let pem = pem.trim();
        let key = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
            <rsa::PublicKey as rsa::pkcs1::DecodeRsaPublicKey>::from_pkcs1_pem(pem)
                .map_err(|e| format!("invalid PKCS#1 public key: {e}"))?
        } else {
            rsa::PublicKey::from_public_key_pem(pem)
                .map_err(|e| format!("invalid public key: {e}"))?
        };
        Ok(Self {
            n: key.n_bytes().into_vec(),
            e: key.e_bytes().into_vec(),
        })
    }

    /// Whether `signature` is an RSASSA-PKCS1-v1_5 SHA-256 signature of `message`. Keys
    /// under 2048 bits are refused by ring.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_signs_and_verifies_and_nothing_else_verifies() {
        let pair = generate().unwrap();
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let signer = Signer::new(
            "https://a.example/users/u#main-key".into(),
            &pair.private_pem,
        )
        .unwrap();
        let public = PublicKey::from_pem(&pair.public_pem).unwrap();
        assert_eq!(public.n.len() * 8, KEY_BITS);
        let sig = signer.sign(b"hello");
        assert!(public.verify(b"hello", &sig));
        assert!(!public.verify(b"hellO", &sig));
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(!public.verify(b"hello", &bad));
        let other = PublicKey::from_pem(&generate().unwrap().public_pem).unwrap();
        assert!(!other.verify(b"hello", &sig));
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }

    #[test]
    fn pkcs1_public_keys_parse_and_garbage_does_not() {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let pair = generate().unwrap();
        let private = rsa::PrivateKey::from_pkcs8_pem(&pair.private_pem).unwrap();
        let pkcs1 = private
            .to_public_key()
            .to_pkcs1_pem(LineEnding::LF)
            .unwrap();
        let public = PublicKey::from_pem(&pkcs1).unwrap();
        let signer = Signer::new("k".into(), &pair.private_pem).unwrap();
        assert!(public.verify(b"m", &signer.sign(b"m")));
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }
}
