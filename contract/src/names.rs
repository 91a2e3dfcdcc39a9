//! The names the queue layout is built from: worker ids, queue names, and the own queue of a
//! worker (`worker:<worker id>`), which is where every op on one of its sandboxes goes. The
//! own-queue name is built by [`own_queue`] and read back by [`own_queue_worker`], and
//! nowhere else.

use crate::error::JobError;

/// The shared queue every worker serves unless told otherwise.
pub const DEFAULT_QUEUE: &str = "jobs";

/// What every own-queue name starts with.
const OWN_QUEUE_PREFIX: &str = "worker:";

/// The own queue of worker `worker_id`: `worker:<worker id>`.
pub fn own_queue(worker_id: &str) -> String {
    format!("{OWN_QUEUE_PREFIX}{worker_id}")
}

/// The worker whose own queue `queue` is, if it is one (not checked: see
/// [`validate_queue_name`]).
pub fn own_queue_worker(queue: &str) -> Option<&str> {
    queue.strip_prefix(OWN_QUEUE_PREFIX)
}

/// Checks a queue name: `worker:<worker id>` for a worker's own queue, otherwise lower-case
/// letters, digits, `-` and `_` (at most 64), and not one of the names the layout reserves.
pub fn validate_queue_name(name: &str) -> Result<(), JobError> {
    if let Some(worker) = own_queue_worker(name) {
        return validate_worker_id(worker)
            .map_err(|e| JobError::invalid_input(format!("queue {name:?}: {}", e.message)));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with(['-', '_']) {
        return Err(JobError::invalid_input(format!(
            "queue {name:?}: must be 1-64 of a-z, 0-9, '-', '_' (not leading), or worker:<id>"
        )));
    }
    if matches!(name, "queues" | "workers") {
        return Err(JobError::invalid_input(format!(
            "queue {name:?}: the name is reserved"
        )));
    }
    Ok(())
}

/// Checks a worker id: letters, digits and `-`, at most 100. (No `.`: a sandbox id is
/// `<worker id>.<ulid>`.)
pub fn validate_worker_id(id: &str) -> Result<(), JobError> {
    if id.is_empty()
        || id.len() > 100
        || id.starts_with('-')
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(JobError::invalid_input(format!(
            "worker id {id:?}: must be 1-100 of letters, digits and '-', not leading '-'"
        )));
    }
    Ok(())
}

/// Checks an organization id (the envelope's `org`): 1-64 of letters, digits, `_`, `-`,
/// `.`, not starting with `-` or `.`. (No `:`: it is part of Redis key names.)
pub fn validate_org_id(org: &str) -> Result<(), JobError> {
    let ok = !org.is_empty()
        && org.len() <= 64
        && !org.starts_with(['-', '.'])
        && org
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(JobError::invalid_input(format!(
            "org {org:?}: must be 1-64 of letters, digits, '_', '-', '.', not starting with '-' or '.'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        for ok in ["jobs", "git-ops", "q_1", "worker:host-01HX"] {
            validate_queue_name(ok).unwrap();
        }
        for bad in [
            "",
            "Jobs",
            "a b",
            "a:b",
            "-x",
            "queues",
            "workers",
            "worker:",
            "worker:a.b",
            "worker:-x",
        ] {
            let err = validate_queue_name(bad).unwrap_err();
            assert!(err.message.contains("queue"), "{bad}: {err}");
        }
    }

    #[test]
    fn an_own_queue_name_reads_back_as_its_worker() {
        let q = own_queue("host-01HX");
        assert_eq!(q, "worker:host-01HX");
        assert_eq!(own_queue_worker(&q), Some("host-01HX"));
        assert_eq!(own_queue_worker("jobs"), None);
    }

    #[test]
    fn org_ids_are_plain_names_that_fit_in_a_key() {
        for ok in ["acme", "Acme-Corp", "org_1", "a.b", &"x".repeat(64)] {
            validate_org_id(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            "-acme",
            ".acme",
            "ac:me",
            "ac me",
            "ac/me",
            &"x".repeat(65),
        ] {
            let e = validate_org_id(bad).unwrap_err();
            assert!(e.message.starts_with("org "), "{bad}: {e}");
        }
    }
}
