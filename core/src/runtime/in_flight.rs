//! The ids this worker has taken and not yet acknowledged, shared by the fetchers (which
//! add), the acknowledger (which removes) and the heartbeat (which looks for lost replies).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The ids this worker has taken and not yet acknowledged: what its held list in Redis
/// should contain. Anything else found there lingering is a job whose fetch reply was lost.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<HashSet<String>>>);

impl InFlight {
    pub(super) fn insert(&self, id: &str) {
        self.0.lock().expect("not poisoned").insert(id.to_string());
    }
    pub(super) fn remove(&self, ids: impl Iterator<Item = String>) {
        let mut set = self.0.lock().expect("not poisoned");
        for id in ids {
            set.remove(&id);
        }
    }
    pub(super) fn contains(&self, id: &str) -> bool {
        self.0.lock().expect("not poisoned").contains(id)
    }
}
