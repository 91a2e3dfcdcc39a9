//! API keys in the record: what authenticates, what does not, and what the table keeps.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, SubsecRound, Utc};
use gitfleet_contract::Role;
use gitfleet_store::{StoreError, parse_token};
use gitfleet_testkit::TestStore;

#[tokio::test]
async fn a_created_key_authenticates_as_its_organization_and_role() {
    let db = TestStore::new().await;
    let new = db
        .store
        .create_key("acme", Role::Producer, Some("ci pipeline"), None)
        .await
        .unwrap();
    let (id, _) = parse_token(&new.token).expect("a well-formed token");
    assert_eq!(id, new.key.id);
    assert_eq!(new.key.org, "acme");
    assert_eq!(new.key.role, Role::Producer);
    assert_eq!(new.key.name.as_deref(), Some("ci pipeline"));
    assert_eq!(new.key.expires_at, None);

    let key = db.store.authenticate(&new.token).await.unwrap().unwrap();
    assert_eq!(key, new.key);

    // Another key of another organization is another identity.
    let other = db
        .store
        .create_key("globex", Role::Viewer, None, Some(Duration::days(30)))
        .await
        .unwrap();
    assert_ne!(other.key.id, new.key.id);
    let key = db.store.authenticate(&other.token).await.unwrap().unwrap();
    assert_eq!((key.org.as_str(), key.role), ("globex", Role::Viewer));
    let expires = key.expires_at.expect("an expiry");
    let days = (expires - key.created_at).num_seconds() as f64 / 86400.0;
    assert!((days - 30.0).abs() < 1e-6, "expires after {days} days");
}

#[tokio::test]
async fn a_changed_secret_a_wrong_id_a_malformed_token_a_revoked_or_expired_key_do_not_authenticate()
 {
    let db = TestStore::new().await;
    let store = &db.store;
    let new = store
        .create_key("acme", Role::Admin, None, None)
        .await
        .unwrap();
    let (id, secret) = parse_token(&new.token).unwrap();

    // One character of the secret changed, kept well-formed: the first character carries
    // all six of its bits, so any other letter is another valid secret.
    let first = secret.as_bytes()[0];
    let swapped = if first == b'A' { 'B' } else { 'A' };
    let changed = format!("gfk_{id}_{swapped}{}", &secret[1..]);
    assert!(parse_token(&changed).is_some());
    // The right secret under an id that is not the key's.
    let other_id = if id.starts_with('0') { "1" } else { "0" };
    let wrong_id = format!("gfk_{other_id}{}_{secret}", &id[1..]);
    for bad in [
        changed.as_str(),
        wrong_id.as_str(),
        "",
        "gfk_",
        "Bearer x",
        &new.token[..new.token.len() - 1],
        &format!("{} ", new.token),
        &new.token.to_uppercase(),
    ] {
        assert_eq!(store.authenticate(bad).await.unwrap(), None, "{bad:?}");
    }
    assert!(store.authenticate(&new.token).await.unwrap().is_some());

    // Revoked: for good, and a second revoke keeps the first time.
    assert!(store.revoke_key(&new.key.id).await.unwrap());
    assert_eq!(store.authenticate(&new.token).await.unwrap(), None);
    let first_revoked = store.list_keys(Some("acme")).await.unwrap()[0].revoked_at;
    assert!(first_revoked.is_some());
    assert!(store.revoke_key(&new.key.id).await.unwrap());
    assert_eq!(
        store.list_keys(Some("acme")).await.unwrap()[0].revoked_at,
        first_revoked
    );
    assert!(!store.revoke_key("0123456789abcdef").await.unwrap());

    // Expired: a key whose expiry has passed (set in the row, rather than waited for).
    let expiring = store
        .create_key("acme", Role::Viewer, None, Some(Duration::days(1)))
        .await
        .unwrap();
    assert!(store.authenticate(&expiring.token).await.unwrap().is_some());
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(&expiring.key.id)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(store.authenticate(&expiring.token).await.unwrap(), None);
}

#[tokio::test]
async fn the_row_keeps_no_trace_of_the_secret() {
    let db = TestStore::new().await;
    let new = db
        .store
        .create_key("acme", Role::Operator, Some("deploy"), None)
        .await
        .unwrap();
    let (id, secret) = parse_token(&new.token).unwrap();
    let secret_bytes = URL_SAFE_NO_PAD.decode(secret).unwrap();
    // The whole row, every column as text, and the hash column as bytes.
    let (row_text, hash): (String, Vec<u8>) =
        sqlx::query_as("SELECT row_to_json(k)::text, secret_sha256 FROM api_keys k WHERE id = $1")
            .bind(id)
            .fetch_one(db.store.pool())
            .await
            .unwrap();
    assert!(row_text.contains(id), "{row_text}");
    assert!(!row_text.contains(secret), "{row_text}");
    assert!(!row_text.contains(&hex(&secret_bytes)), "{row_text}");
    assert!(!row_text.contains(&new.token), "{row_text}");
    assert_eq!(hash.len(), 32);
    assert!(
        !hash
            .windows(8)
            .any(|w| secret_bytes.windows(8).any(|s| s == w))
            && !hash
                .windows(8)
                .any(|w| secret.as_bytes().windows(8).any(|s| s == w)),
        "the hash column holds no piece of the secret"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn touch_keys_keeps_the_latest_use_of_each_key_in_one_batch() {
    let db = TestStore::new().await;
    let store = &db.store;
    let a = store
        .create_key("acme", Role::Producer, None, None)
        .await
        .unwrap();
    let b = store
        .create_key("acme", Role::Viewer, None, None)
        .await
        .unwrap();
    // Postgres keeps microseconds.
    let t0 = Utc::now().trunc_subsecs(6) - Duration::minutes(10);
    let at = |m: i64| t0 + Duration::minutes(m);
    let last_used = |id: String| async move {
        store
            .list_keys(None)
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.id == id)
            .unwrap()
            .last_used_at
    };
    assert_eq!(last_used(a.key.id.clone()).await, None);

    // One batch: `a` twice (the later one counts, whatever the order), `b` once, and an id
    // of no key.
    store
        .touch_keys(&[
            (a.key.id.clone(), at(5)),
            (b.key.id.clone(), at(2)),
            (a.key.id.clone(), at(3)),
            ("ffffffffffffffff".into(), at(9)),
        ])
        .await
        .unwrap();
    assert_eq!(last_used(a.key.id.clone()).await, Some(at(5)));
    assert_eq!(last_used(b.key.id.clone()).await, Some(at(2)));

    // A batch that arrives late (an older time) does not move it back.
    store
        .touch_keys(&[(a.key.id.clone(), at(1)), (b.key.id.clone(), at(7))])
        .await
        .unwrap();
    assert_eq!(last_used(a.key.id.clone()).await, Some(at(5)));
    assert_eq!(last_used(b.key.id.clone()).await, Some(at(7)));
    store.touch_keys(&[]).await.unwrap();

    // Authenticating reads it back on the key.
    let key = store.authenticate(&a.token).await.unwrap().unwrap();
    assert_eq!(key.last_used_at, Some(at(5)));
}

#[tokio::test]
async fn listing_keys_is_newest_first_by_organization_and_carries_no_secret() {
    let db = TestStore::new().await;
    let store = &db.store;
    let mut tokens = Vec::new();
    for (org, role) in [
        ("acme", Role::Viewer),
        ("globex", Role::Admin),
        ("acme", Role::Producer),
    ] {
        tokens.push(store.create_key(org, role, None, None).await.unwrap());
    }
    let all = store.list_keys(None).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all.windows(2).all(|w| w[0].created_at >= w[1].created_at),
        "newest first: {all:?}"
    );
    let acme = store.list_keys(Some("acme")).await.unwrap();
    assert_eq!(acme.len(), 2);
    assert!(acme.iter().all(|k| k.org == "acme"));
    assert!(store.list_keys(Some("initech")).await.unwrap().is_empty());

    let json = serde_json::to_string(&all).unwrap();
    for new in &tokens {
        let (_, secret) = parse_token(&new.token).unwrap();
        assert!(!json.contains(secret), "{json}");
        assert!(json.contains(&new.key.id), "{json}");
    }
    let first: serde_json::Value = serde_json::to_value(&all[0]).unwrap();
    let mut fields: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "created_at",
            "expires_at",
            "id",
            "last_used_at",
            "name",
            "org",
            "revoked_at",
            "role"
        ]
    );
}

#[tokio::test]
async fn a_bad_organization_name_or_expiry_is_refused_naming_the_field() {
    let db = TestStore::new().await;
    let store = &db.store;
    let long = "n".repeat(101);
    for (org, name, expires, field) in [
        ("ac:me", None, None, "org"),
        ("", None, None, "org"),
        ("acme", Some(long.as_str()), None, "name"),
        ("acme", Some(""), None, "name"),
        ("acme", Some("line\nbreak"), None, "name"),
        ("acme", None, Some(Duration::zero()), "expires_in"),
        ("acme", None, Some(Duration::days(-1)), "expires_in"),
        ("acme", None, Some(Duration::days(3651)), "expires_in"),
    ] {
        match store.create_key(org, Role::Viewer, name, expires).await {
            Err(StoreError::Invalid { field: f, message }) => {
                assert_eq!(f, field, "{message}");
                assert!(message.starts_with(field), "{message}");
            }
            other => panic!("{org:?} {name:?} {expires:?}: {other:?}"),
        }
    }
    assert!(store.list_keys(None).await.unwrap().is_empty());
    store
        .create_key("acme", Role::Viewer, Some(&"n".repeat(100)), None)
        .await
        .expect("100 characters is the limit, not over it");
}
