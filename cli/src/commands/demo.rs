//! `gitfleet demo`: runs [`crate::demo`] and prints what each agent saw and a summary;
//! exits 1 when an agent failed or the shared branch lacks one commit per agent on it.

use gitfleet_client::QueueConfig;

use crate::Fail;
use crate::demo::UrlSource;

pub async fn run() -> Result<u8, Fail> {
    let config = QueueConfig::from_env().map_err(|e| Fail::Invalid(e.to_string()))?;
    eprintln!(
        "gitfleet demo: a git server, two workers and ten agents, on Redis at {} ...",
        config.redacted_url()
    );
    // An explicit URL that does not answer is an error; the default one gets a private
    // redis-server instead.
    let source = UrlSource::of_env_value(std::env::var("GITFLEET_REDIS_URL").ok().as_deref());
    let r = crate::demo::run(config, source)
        .await
        .map_err(Fail::Unreachable)?;
    println!(
        "{:<6} {:<34} {:>6} {:>9} {:>9} {:>9}  {:<18} {:<10} {:>7}",
        "agent",
        "worker",
        "cached",
        "clone ms",
        "write ms",
        "push ms",
        "branch",
        "commit",
        "rebased"
    );
    let mut agents = r.agents.clone();
    agents.sort_by_key(|a| a.agent);
    for a in &agents {
        println!(
            "{:<6} {:<34} {:>6} {:>9.1} {:>9.1} {:>9.1}  {:<18} {:<10} {:>7}",
            a.agent,
            a.worker,
            a.cache_hit,
            a.clone_ms,
            a.write_ms,
            a.push_ms,
            a.branch,
            a.commit,
            a.rebased
        );
    }
    for f in &r.failures {
        println!("failed: {f}");
    }
    println!(
        "\n{} of 10 agents pushed in {:.0} ms; the shared branch got {} commits from {} agents (each once, none forced).",
        r.agents.len(),
        r.elapsed.as_secs_f64() * 1e3,
        r.shared_commits,
        r.shared_agents
    );
    Ok(
        if r.failures.is_empty() && r.shared_commits == r.shared_agents {
            0
        } else {
            1
        },
    )
}
