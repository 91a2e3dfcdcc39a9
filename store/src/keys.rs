//! API keys: how the gateway knows which organization calls it, and with what [`Role`].
//!
//! A key is the token `gfk_<id>_<secret>`: `id` (16 hex digits) is public and finds the row,
//! `secret` (256 random bits) proves the caller holds the key. The token is shown once, when
//! the key is made ([`NewKey`]); the table keeps only the secret's SHA-256, so neither a
//! leaked row nor a backup lets anyone call the API.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::TryRngCore;
use rand::rngs::OsRng;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Store, StoreError};
use gitfleet_contract::{Role, rfc3339_micros, validate_org_id};

/// What every token starts with (so a leaked one is recognisable, e.g. by secret scanners).
const TOKEN_PREFIX: &str = "gfk_";
/// Random bytes in a key's id: 16 hex digits.
const ID_BYTES: usize = 8;
const ID_LEN: usize = ID_BYTES * 2;
/// Random bytes in a key's secret: 256 bits, 43 characters of unpadded base64url.
const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43;
/// The longest a key's name may be, in characters.
const NAME_MAX: usize = 100;
/// The longest a key may live.
pub const KEY_MAX_DAYS: i64 = 3650;

/// An API key as the record keeps it: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ApiKey {
    /// The public part of the token, and the row's key.
    pub id: String,
    /// The organization the key acts for.
    pub org: String,
    pub role: Role,
    /// What the key is for, as its creator put it.
    pub name: Option<String>,
    #[serde(serialize_with = "micros")]
    #[schemars(with = "chrono::DateTime<chrono::Utc>")]
    pub created_at: DateTime<Utc>,
    /// `None`: never expires.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the gateway last saw it used (written in batches, so it may lag a little).
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_used_at: Option<DateTime<Utc>>,
}

fn micros<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    rfc3339_micros::serialize(&Some(*t), s)
}

impl ApiKey {
    /// Whether the key may be used at `now`: not revoked, and not past its expiry.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// A key just made, with its token: the only time the token exists outside the caller's
/// hands. Its `Debug` leaves the token out.
pub struct NewKey {
    pub key: ApiKey,
    /// `gfk_<id>_<secret>`, for the caller to hand over once.
    pub token: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &self.key)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Splits a token into its id and secret if it has exactly the shape of one
/// (`gfk_`, 16 lower-case hex digits, `_`, 32 bytes of unpadded base64url); `None` for
/// anything else.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    // ASCII only, so the splits below fall on character boundaries.
    if rest.len() != ID_LEN + 1 + SECRET_LEN || !rest.is_ascii() {
        return None;
    }
    let (id, rest) = rest.split_at(ID_LEN);
    // Split by position, not at '_': base64url's alphabet has '_' in it.
    let secret = rest.strip_prefix('_')?;
    let id_ok = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    // The decoder refuses non-canonical text (stray bits in the last character), so one
    // secret has one spelling.
    let secret_ok = URL_SAFE_NO_PAD
        .decode(secret)
        .is_ok_and(|bytes| bytes.len() == SECRET_BYTES);
    (id_ok && secret_ok).then_some((id, secret))
}

/// The hash the record keeps of a secret (as the token spells it). A plain SHA-256, not a
/// slow password hash: slow hashes protect guessable secrets, and 256 random bits cannot be
/// guessed, whatever the hash costs; a fast one keeps every API request cheap.
fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Bytes from the operating system's random source (the getrandom syscall).
fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut bytes = [0u8; N];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| StoreError::Random(e.to_string()))?;
    Ok(bytes)
}

fn invalid(field: &'static str, message: String) -> StoreError {
    StoreError::Invalid { field, message }
}

/// A key's row as Postgres returns it (the role as text).
struct KeyRow {
    id: String,
    org_id: String,
    role: String,
    name: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<KeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: KeyRow) -> Result<Self, StoreError> {
        // The table's CHECK allows only the four names; anything else is a broken row.
        let role = r
            .role
            .parse()
            .map_err(|e: String| sqlx::Error::Decode(format!("api_keys.role: {e}").into()))?;
        Ok(ApiKey {
            id: r.id,
            org: r.org_id,
            role,
            name: r.name,
            created_at: r.created_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
            last_used_at: r.last_used_at,
        })
    }
}

impl Store {
    /// Makes a key for `org` with `role`, expiring `expires_in` from now (Postgres's clock)
    /// or never. The returned token is the only copy: it is not kept.
    pub async fn create_key(
        &self,
        org: &str,
        role: Role,
        name: Option<&str>,
        expires_in: Option<chrono::Duration>,
    ) -> Result<NewKey, StoreError> {
        validate_org_id(org).map_err(|e| invalid("org", e.message))?;
        if let Some(name) = name {
            let chars = name.chars().count();
            if chars == 0 || chars > NAME_MAX || name.chars().any(char::is_control) {
                return Err(invalid(
                    "name",
                    format!(
                        "name {name:?}: must be 1-{NAME_MAX} printable characters (no control characters)"
                    ),
                ));
            }
        }
        let expires_us = match expires_in {
            None => None,
            Some(d)
                if d > chrono::Duration::zero() && d <= chrono::Duration::days(KEY_MAX_DAYS) =>
            {
                d.num_microseconds()
            }
            Some(_) => {
                return Err(invalid(
                    "expires_in",
                    format!("expires_in: must be more than zero and at most {KEY_MAX_DAYS} days"),
                ));
            }
        };
        let id = hex(&random::<ID_BYTES>()?);
        let secret = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>()?);
        let hash = secret_hash(&secret);
        let row = sqlx::query_as!(
            KeyRow,
            r#"
INSERT INTO api_keys (id, org_id, role, name, secret_sha256, expires_at)
VALUES ($1, $2, $3, $4, $5, now() + $6::bigint * interval '1 microsecond')
RETURNING id, org_id, role, name, created_at, expires_at, revoked_at, last_used_at
"#,
            id,
            org,
            role.as_str(),
            name,
            &hash[..],
            expires_us,
        )
        .fetch_one(&self.pool)
        .await?;
        let token = format!("{TOKEN_PREFIX}{id}_{secret}");
        Ok(NewKey {
            key: row.try_into()?,
            token,
        })
    }

    /// The key `token` is, if it is one and may be used now; `None` for a token of the wrong
    /// shape, an unknown id, a wrong secret, a revoked or an expired key alike (the caller
    /// answers all of them the same, so a caller learns nothing from which it was).
    pub async fn authenticate(&self, token: &str) -> Result<Option<ApiKey>, StoreError> {
        let Some((id, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let row = sqlx::query!(
            r#"
SELECT id, org_id, role, name, secret_sha256, created_at, expires_at, revoked_at, last_used_at,
       now() AS "now!"
  FROM api_keys WHERE id = $1
"#,
            id
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        // Constant time, so how long the answer takes says nothing of how much of a guessed
        // secret was right.
        if !bool::from(secret_hash(secret)[..].ct_eq(&row.secret_sha256)) {
            return Ok(None);
        }
        let now = row.now;
        let key = ApiKey::try_from(KeyRow {
            id: row.id,
            org_id: row.org_id,
            role: row.role,
            name: row.name,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        })?;
        // Expiry by Postgres's clock, which also set it: replicas' clocks do not matter.
        Ok(key.is_active(now).then_some(key))
    }

    /// Keys, of `org` or of every organization, newest first (revoked and expired ones too).
    pub async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        if let Some(org) = org {
            validate_org_id(org).map_err(|e| invalid("org", e.message))?;
        }
        let rows = sqlx::query_as!(
            KeyRow,
            r#"
SELECT id, org_id, role, name, created_at, expires_at, revoked_at, last_used_at
  FROM api_keys
 WHERE ($1::text IS NULL OR org_id = $1)
 ORDER BY created_at DESC, id DESC
"#,
            org
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    /// Revokes key `id` for good (a key already revoked keeps its first `revoked_at`);
    /// `false` if there is no such key.
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1",
            id
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records when keys were used, in one statement for the whole batch: each key's
    /// `last_used_at` becomes the latest of what it was and the times given for it (an id
    /// may come more than once; ids of no key are ignored).
    pub async fn touch_keys(&self, used: &[(String, DateTime<Utc>)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        let (ids, times): (Vec<String>, Vec<DateTime<Utc>>) = used.iter().cloned().unzip();
        sqlx::query!(
            r#"
UPDATE api_keys AS k SET last_used_at = GREATEST(k.last_used_at, u.at)
  FROM (SELECT id, max(at) AS at FROM UNNEST($1::text[], $2::timestamptz[]) AS t(id, at)
         GROUP BY id) AS u
 WHERE k.id = u.id
"#,
            &ids,
            &times,
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> String {
        format!(
            "{TOKEN_PREFIX}{}_{}",
            hex(&random::<ID_BYTES>().unwrap()),
            URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>().unwrap())
        )
    }

    #[test]
    fn a_token_splits_into_its_id_and_secret() {
        for _ in 0..200 {
            let t = token();
            let (id, secret) = parse_token(&t).unwrap_or_else(|| panic!("{t}"));
            assert_eq!(t, format!("gfk_{id}_{secret}"));
            assert_eq!((id.len(), secret.len()), (16, 43));
        }
    }

    #[test]
    fn anything_not_shaped_like_a_token_is_refused_without_a_panic() {
        let id = "0123456789abcdef";
        let secret = URL_SAFE_NO_PAD.encode(random::<SECRET_BYTES>().unwrap());
        let good = format!("gfk_{id}_{secret}");
        assert!(parse_token(&good).is_some());
        // The last character of 32 bytes carries 4 bits and 2 zero bits: 'B' (000001) is
        // another spelling of what 'A' spells, and refused.
        let stray_bits = format!("gfk_{id}_{}B", &secret[..42]);
        for t in [
            String::new(),
            "gfk_".into(),
            good[..good.len() - 1].to_string(),
            format!("{good}A"),
            good.replacen("gfk_", "gfx_", 1),
            good.replacen("gfk_", "GFK_", 1),
            format!("gfk_0123456789ABCDEF_{secret}"),
            format!("gfk_0123456789abcdeg_{secret}"),
            format!("gfk_{id}-{secret}"),
            format!("gfk_{id}_{}=", &secret[..42]),
            format!("gfk_{id}_{}+", &secret[..42]),
            stray_bits,
            // Multi-byte characters where a split would fall inside one.
            format!("gfk_0123456789abcdé_{secret}"),
            format!("gfk_{id}_{}é", &secret[..41]),
            format!("gfk_{id}_{}", "é".repeat(22)),
        ] {
            assert_eq!(parse_token(&t), None, "{t:?}");
        }
    }

    #[test]
    fn a_new_keys_debug_leaves_out_its_token() {
        let t = token();
        let new = NewKey {
            key: ApiKey {
                id: "0123456789abcdef".into(),
                org: "acme".into(),
                role: Role::Producer,
                name: None,
                created_at: Utc::now(),
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
            token: t.clone(),
        };
        let shown = format!("{new:?}");
        assert!(!shown.contains(&t) && !shown.contains(&t[21..]), "{shown}");
        assert!(shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn a_key_is_active_until_it_expires_or_is_revoked() {
        let now = Utc::now();
        let mut key = ApiKey {
            id: "0123456789abcdef".into(),
            org: "acme".into(),
            role: Role::Viewer,
            name: None,
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        assert!(key.is_active(now));
        key.expires_at = Some(now + chrono::Duration::seconds(1));
        assert!(key.is_active(now));
        assert!(!key.is_active(now + chrono::Duration::seconds(1)));
        key.expires_at = None;
        key.revoked_at = Some(now);
        assert!(!key.is_active(now));
    }
}
