//! `gitfleet keys`: the gateway's API keys, on the durable record. `create` prints the one
//! copy of a key's token; `list` prints keys without it (the record has only a hash);
//! `revoke` ends a key for good.

use chrono::Utc;
use gitfleet_contract::fmt_time;
use serde_json::json;

use crate::connect::{need_store, unreachable};
use crate::output::{print, print_rows};
use crate::{Fail, KeysCommand, tables};

pub async fn run(command: KeysCommand, org: Option<String>) -> Result<u8, Fail> {
    match command {
        KeysCommand::Create {
            role,
            name,
            expires,
        } => {
            let org = org.ok_or_else(|| {
                Fail::Invalid(
                    "--org / GITFLEET_ORG: keys create needs the organization the key is for"
                        .into(),
                )
            })?;
            let store = need_store()?;
            let expires_in = expires.map(|days| chrono::Duration::days(days.into()));
            let new = store
                .create_key(&org, role, name.as_deref(), expires_in)
                .await
                .map_err(unreachable(&store))?;
            print(&json!({
                "id": new.key.id,
                "key": new.token,
                "org": new.key.org,
                "role": new.key.role,
                "expires_at": fmt_time(new.key.expires_at),
            }));
            Ok(0)
        }
        KeysCommand::List { json } => {
            let store = need_store()?;
            let keys = store
                .list_keys(org.as_deref())
                .await
                .map_err(unreachable(&store))?;
            let now = Utc::now();
            print_rows(&keys, json, |rows| tables::keys(rows, now));
            Ok(0)
        }
        KeysCommand::Revoke { id } => {
            let store = need_store()?;
            if !store.revoke_key(&id).await.map_err(unreachable(&store))? {
                return Err(Fail::Invalid(format!("id: there is no API key {id:?}")));
            }
            print(&json!({ "id": id, "revoked": true }));
            Ok(0)
        }
    }
}
