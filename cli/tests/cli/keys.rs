//! `gitfleet keys`: a key made by the CLI authenticates through the store until it is
//! revoked; its token is printed once and never listed; bad input exits 2.

use chrono::{DateTime, Utc};
use gitfleet_contract::Role;
use gitfleet_store::parse_token;
use gitfleet_testkit::TestStore;
use serde_json::Value;

use super::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_key_is_printed_once_authenticates_is_listed_without_its_token_and_revoked_stops()
{
    let t = TestStore::new().await;
    let env = Env::with_database(&t.db).await;

    let (code, made) = env
        .run_json(&[
            "keys",
            "create",
            "--org",
            "acme",
            "--role",
            "producer",
            "--name",
            "ci pipeline",
            "--expires",
            "30",
        ])
        .await;
    assert_eq!(code, 0, "{made}");
    let fields: Vec<&str> = made
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, ["expires_at", "id", "key", "org", "role"]);
    assert_eq!(made["org"], "acme");
    assert_eq!(made["role"], "producer");
    let token = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    let (token_id, secret) = parse_token(&token).expect("a well-formed token");
    assert_eq!(token_id, id);
    let expires: DateTime<Utc> = made["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "expires in {days} days");

    let key = t
        .store
        .authenticate(&token)
        .await
        .unwrap()
        .expect("the key works");
    assert_eq!(
        (key.id.as_str(), key.org.as_str(), key.role),
        (id.as_str(), "acme", Role::Producer)
    );
    assert_eq!(key.name.as_deref(), Some("ci pipeline"));

    // The organization may come from GITFLEET_ORG; no --expires: it never expires.
    let (code, other) = env
        .run_json_env(
            &["keys", "create", "--role", "viewer"],
            &[("GITFLEET_ORG", "globex")],
        )
        .await;
    assert_eq!(code, 0, "{other}");
    assert_eq!(other["org"], "globex");
    assert_eq!(other["expires_at"], Value::Null);
    let other_token = other["key"].as_str().unwrap();
    let key = t.store.authenticate(other_token).await.unwrap().unwrap();
    assert_eq!((key.org.as_str(), key.role), ("globex", Role::Viewer));

    // `list`: JSON rows and a table, never a token or a secret.
    let (code, lines) = env.run(&["keys", "list", "--json"], None).await;
    assert_eq!(code, 0);
    let all: Value = serde_json::from_str(&lines.join("\n")).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(all[0]["org"], "globex", "newest first: {all}");
    assert_eq!(all[1]["id"], id.as_str());
    let (_, acme) = env
        .run_json(&["keys", "list", "--org", "acme", "--json"])
        .await;
    assert_eq!(acme.as_array().unwrap().len(), 1, "{acme}");
    assert_eq!(acme[0]["name"], "ci pipeline");
    let (code, table) = env.run(&["keys", "list"], None).await;
    assert_eq!(code, 0);
    assert!(
        table[0].starts_with("ID") && table[0].contains("LAST USED"),
        "{table:?}"
    );
    let row = table
        .iter()
        .find(|l| l.starts_with(&id))
        .expect("the key's row");
    assert!(
        row.contains("acme") && row.contains("producer") && row.contains("active"),
        "{row}"
    );
    for out in lines.iter().chain(&table) {
        assert!(!out.contains(secret) && !out.contains(other_token), "{out}");
    }

    // `revoke`: the key stops working at once.
    let (code, revoked) = env.run_json(&["keys", "revoke", &id]).await;
    assert_eq!(code, 0, "{revoked}");
    assert_eq!(revoked["id"], id.as_str());
    assert_eq!(revoked["revoked"], true);
    assert_eq!(t.store.authenticate(&token).await.unwrap(), None);
    assert!(
        t.store.authenticate(other_token).await.unwrap().is_some(),
        "only that key"
    );
    let (_, table) = env.run(&["keys", "list", "--org", "acme"], None).await;
    assert!(
        table[1].starts_with(&id) && table[1].contains("revoked"),
        "{table:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_role_expiry_organization_or_key_id_exits_2_naming_what_is_wrong() {
    let t = TestStore::new().await;
    let env = Env::with_database(&t.db).await;
    let create = |extra: &[&'static str]| {
        let mut args = vec!["keys", "create", "--org", "acme"];
        args.extend_from_slice(extra);
        args
    };
    for (args, expected) in [
        (
            create(&["--role", "boss"]),
            "unknown role \"boss\": must be one of viewer, producer, operator, admin",
        ),
        (create(&[]), "--role"),
        (create(&["--role", "viewer", "--expires", "0"]), "--expires"),
        (
            create(&["--role", "viewer", "--expires", "-5"]),
            "--expires",
        ),
        (
            create(&["--role", "viewer", "--expires", "3651"]),
            "from 1 to 3650",
        ),
        (
            create(&["--role", "viewer", "--expires", "1.5"]),
            "whole number of days",
        ),
        (
            vec!["keys", "create", "--role", "viewer"],
            "--org / GITFLEET_ORG: keys create needs the organization",
        ),
        (
            vec!["keys", "create", "--org", "ac:me", "--role", "viewer"],
            "org \"ac:me\"",
        ),
        (create(&["--role", "viewer", "--name", ""]), "name \"\""),
        (
            vec!["keys", "revoke", "0123456789abcdef"],
            "id: there is no API key \"0123456789abcdef\"",
        ),
        (vec!["keys", "revoke"], "ID"),
    ] {
        let (code, v) = env.run_json(&args).await;
        assert_eq!(code, 2, "{args:?}: {v}");
        assert_eq!(v["error"]["kind"], "invalid_input", "{args:?}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{args:?}: {message:?} should say {expected:?}"
        );
    }
    assert!(
        t.store.list_keys(None).await.unwrap().is_empty(),
        "no key was made"
    );
}
