//! A producer builds without the worker: what `gitfleet-client` pulls in (its normal
//! dependencies, transitively, as `cargo tree -e normal` shows them) holds none of the worker
//! side, and the contract beneath everything holds no I/O at all. Read from `cargo metadata`,
//! so a new dependency that breaks this fails here, naming the path that brings it in.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::process::Command;

use serde_json::Value;

/// The platform this runs on (`x86_64-unknown-linux-gnu`): dependencies for others are
/// left out (reading them would need their sources).
fn host() -> String {
    let out = Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// Package name → the names of its normal (non-dev, non-build) dependencies.
fn normal_graph() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", &host()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"]
        .as_array()
        .expect("a resolve graph")
    {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| name_of[d["pkg"].as_str().unwrap()].to_string())
            .collect();
        graph.insert(name_of[node["id"].as_str().unwrap()].to_string(), deps);
    }
    graph
}

/// Every package `root` depends on, with the chain that brings each in.
fn closure(graph: &BTreeMap<String, Vec<String>>, root: &str) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    let mut queue = VecDeque::from([(root.to_string(), root.to_string())]);
    while let Some((pkg, chain)) = queue.pop_front() {
        for dep in graph.get(&pkg).into_iter().flatten() {
            if !seen.contains_key(dep) {
                let via = format!("{chain} -> {dep}");
                seen.insert(dep.clone(), via.clone());
                queue.push_back((dep.clone(), via));
            }
        }
    }
    seen
}

fn assert_none_of(root: &str, banned: &[&str]) {
    let graph = normal_graph();
    assert!(graph.contains_key(root), "{root} is in the workspace");
    let deps = closure(&graph, root);
    let found: BTreeSet<String> = banned
        .iter()
        .filter_map(|b| deps.get(*b).cloned())
        .collect();
    assert!(found.is_empty(), "{root} pulls in: {found:#?}");
}

#[test]
fn the_client_builds_without_the_git_runner_sandboxes_or_op_handlers() {
    assert_none_of(
        "gitfleet-client",
        &["gitfleet-core", "nix", "apalis", "apalis-core"],
    );
}

#[test]
fn the_contract_has_no_redis_postgres_tokio_or_git() {
    assert_none_of(
        "gitfleet-contract",
        &[
            "tokio",
            "redis",
            "sqlx",
            "gitfleet-core",
            "gitfleet-queue",
            "gitfleet-store",
            "nix",
        ],
    );
}

#[test]
fn the_worker_side_does_depend_on_what_the_client_must_not() {
    // The check itself can see a dependency: the worker's crate has them.
    let graph = normal_graph();
    let deps = closure(&graph, "gitfleet-worker");
    assert!(deps.contains_key("gitfleet-core") && deps.contains_key("nix"));
}
