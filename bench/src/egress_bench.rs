//! `egress-bench`: what the egress check costs each network git call, against issue 9's
//! budget (≤ 1 ms per op p50, with the ownership check).
//!
//! `egress-bench [--runs N] [--json]` measures [`Git::check_remote`], the check
//! `Git::run` makes before every call that names a remote (parse the URL, judge the name,
//! resolve, judge every address, build the pin), in this process, for:
//! - an IP-literal host (`http://127.0.0.1:…`): nothing to resolve;
//! - a name (`http://localhost:…`), resolved once and then from the runner's cache (what
//!   every call after the first within 30 s costs);
//! - the same name on a fresh runner each time: a real `getaddrinfo` (through tokio's
//!   blocking pool) on every call, as the first call to a host pays it;
//! - a refused host (`http://10.0.0.1/…` under the default policy).
//!
//! No server is contacted: the check runs before git would start. Resolving `localhost`
//! reads `/etc/hosts`; a name that needs DNS costs whatever the resolver takes, once per
//! 30 s per host.

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use gitfleet_core::git::{EgressConfig, Git, GitConfig};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "egress-bench",
    about = "the cost of the egress check per git call"
)]
struct Cli {
    /// Checks measured per case (the uncached case makes a runner for each of a tenth as
    /// many).
    #[arg(long, default_value_t = 20_000)]
    runs: usize,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Case {
    case: &'static str,
    n: usize,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    max_us: f64,
}

impl Case {
    fn of(case: &'static str, mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = (p / 100.0 * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Self {
            case,
            n: samples.len(),
            p50_us: at(50.0),
            p90_us: at(90.0),
            p99_us: at(99.0),
            max_us: at(100.0),
        }
    }
}

async fn runner(home: &std::path::Path, egress: EgressConfig) -> anyhow::Result<Git> {
    let mut config = GitConfig::new(home);
    config.egress = egress;
    Git::new(config)
        .await
        .map_err(|e| anyhow::anyhow!("setting up git: {e}"))
}

/// Microseconds of `check_remote(url)`, `runs` times on `git`.
async fn time(git: &Git, url: &str, runs: usize, refused: bool) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let checked = git.check_remote(url).await;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        match (checked, refused) {
            (Ok(()), false) | (Err(_), true) => {}
            (Ok(()), true) => anyhow::bail!("{url} passed; it should be refused"),
            (Err(e), false) => anyhow::bail!("{url} refused: {e}"),
        }
    }
    Ok(samples)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let tmp = tempfile::tempdir().context("a temporary directory")?;
    let home = tmp.path().join("home");
    let allowed = EgressConfig::allowing("127.0.0.1");
    let git = runner(&home, allowed.clone()).await?;
    let literal = "http://127.0.0.1:8080/org/repo.git";
    let name = "http://localhost:8080/org/repo.git";

    let mut cases = vec![
        Case::of(
            "IP-literal host",
            time(&git, literal, cli.runs, false).await?,
        ),
        Case::of(
            "name, cached (after the first call)",
            time(&git, name, cli.runs, false).await?,
        ),
    ];
    let mut cold = Vec::with_capacity(cli.runs / 10);
    for _ in 0..(cli.runs / 10).max(1) {
        let fresh = runner(&home, allowed.clone()).await?;
        cold.extend(time(&fresh, name, 1, false).await?);
    }
    cases.push(Case::of("name, resolved (first call to a host)", cold));
    let strict = runner(&home, EgressConfig::default()).await?;
    cases.push(Case::of(
        "refused (private address)",
        time(&strict, "http://10.0.0.1/org/repo.git", cli.runs, true).await?,
    ));

    if cli.json {
        println!("{}", serde_json::to_string_pretty(&cases)?);
    } else {
        println!(
            "{:<40} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "egress check", "n", "p50 µs", "p90 µs", "p99 µs", "max µs"
        );
        for c in &cases {
            println!(
                "{:<40} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                c.case, c.n, c.p50_us, c.p90_us, c.p99_us, c.max_us
            );
        }
        println!("budget: egress and ownership checks together ≤ 1000 µs per op p50");
    }
    Ok(())
}
