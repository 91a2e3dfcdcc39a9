//! gitfleet-telemetry: how every gitfleet binary (worker, scheduler, gateway) reports what it
//! does, set up the same way in each. Today: logs. DESIGN.md's one Prometheus registry per
//! process belongs here too.

use tracing_subscriber::EnvFilter;

/// Logs to standard error, filtered by `GITFLEET_LOG` (`tracing` filter syntax, default
/// `info`), as text or, with `GITFLEET_LOG_FORMAT=json`, one JSON object a line. Call once,
/// first thing in `main`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_env("GITFLEET_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("GITFLEET_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
