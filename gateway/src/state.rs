//! What every request handler shares: the client (the one way into the queue), the record,
//! the key cache.

use std::sync::Arc;

use crate::auth::Keys;
use crate::config::GatewayConfig;
use gitfleet_client::{Client, Store};

/// The handlers' state: one [`Shared`] behind an `Arc`, so the clone axum makes for each
/// request (and each task a handler spawns) is a reference count, not a copy of the
/// client's configuration.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    /// Enqueues through the same library as the CLI, with no organization of its own: it
    /// stamps each job with its caller's (`EnqueueOptions::org`). Rows go to the background
    /// writer.
    pub client: Client,
    pub store: Store,
    pub keys: Arc<Keys>,
    pub config: Arc<GatewayConfig>,
    /// The dashboard's live feed (one per process, shared by every open page).
    pub live: Arc<crate::ui::live::Live>,
    /// Cancelled when the gateway stops (ends the MCP service's streams).
    pub shutdown: tokio_util::sync::CancellationToken,
}
