//! Leader election: exactly one replica fires the ticks.
//!
//! The leader holds a Postgres *session* advisory lock (`pg_try_advisory_lock`) on a
//! connection of its own, and checks every `leader_check` that the connection (and so the
//! lock) is still there. The others try to take the lock as often. When the leader dies,
//! its connection closes, Postgres frees the lock, and another replica takes it within one
//! check. A replica that loses its connection stops leading at once (before Postgres may
//! have noticed), so for a moment there may be no leader, never knowingly two; the
//! per-tick claim in [`crate::runs`] covers the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gitfleet_store::Store;
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

/// The advisory lock's key (one per database): "gitfleet" in ASCII, as a number.
pub const LOCK_KEY: i64 = 0x6769_7466_6c65_6574;

/// Whether this replica leads now. Cheap to clone and read.
#[derive(Debug, Clone, Default)]
pub struct Leadership(Arc<AtomicBool>);

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, leading: bool, replica: &str) {
        if self.0.swap(leading, Ordering::AcqRel) != leading {
            if leading {
                tracing::info!(replica, "leading: this replica fires the ticks");
            } else {
                tracing::warn!(replica, "no longer leading");
            }
        }
    }

    /// Campaigns until `stop`: takes the lock when it is free, keeps it while the
    /// connection lives. On stop the connection is closed, which frees the lock at once.
    pub async fn campaign(
        self,
        store: Store,
        replica: String,
        every: Duration,
        stop: CancellationToken,
    ) {
        let mut conn: Option<sqlx::PgConnection> = None;
        loop {
            let leading = match conn.as_mut() {
                None => match store.connect_dedicated().await {
                    Ok(c) => {
                        conn = Some(c);
                        try_lock(conn.as_mut().expect("just set")).await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cannot reach postgres to campaign");
                        Ok(false)
                    }
                },
                Some(c) if self.is_leader() => still_alive(c).await.map(|()| true),
                Some(c) => try_lock(c).await,
            };
            match leading {
                Ok(l) => self.set(l, &replica),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the leader connection");
                    self.set(false, &replica);
                    conn = None;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        self.set(false, &replica);
        if let Some(c) = conn {
            let _ = tokio::time::timeout(Duration::from_secs(2), c.close()).await;
        }
    }
}

async fn try_lock(conn: &mut sqlx::PgConnection) -> Result<bool, sqlx::Error> {
    let got: Option<bool> = sqlx::query_scalar!("SELECT pg_try_advisory_lock($1)", LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    Ok(got.unwrap_or(false))
}

/// The session is alive (and so is its lock), within a few seconds.
async fn still_alive(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    match tokio::time::timeout(Duration::from_secs(3), conn.ping()).await {
        Ok(r) => r,
        Err(_) => Err(sqlx::Error::PoolTimedOut),
    }
}
