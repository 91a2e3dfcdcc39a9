//! The layers of the worker side point one way: `git` → `sandbox` → `ops` → `runtime`. A
//! module may name only modules below it (`crate::...`), and no two modules of one layer
//! may name each other (a parent and its own children aside). This reads the sources, so a
//! new import that breaks the rule fails here, naming the file and what it named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: [&str; 4] = ["git", "sandbox", "ops", "runtime"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `sandbox/clone.rs` → `["sandbox", "clone"]`; `ops/push/mod.rs` → `["ops", "push"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments and its `#[cfg(test)]` module (tests may reach
/// anywhere).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b...` path named in `code`, as its segments.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `gitfleet_crate::` and the like
        }
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        out.push(
            path.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        );
    }
    out
}

/// Every module `super::x` names (from a child of the module that holds `x`).
fn super_names(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        rest = &rest[at + "super::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name == "super" {
            continue;
        }
        if name.is_empty() {
            // `super::{a, b}`
            if let Some(list) = rest.strip_prefix('{') {
                let end = list.find('}').unwrap_or(list.len());
                for item in list[..end].split(',') {
                    let item: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    out.push(item);
                }
            }
            continue;
        }
        out.push(name);
    }
    out
}

#[test]
fn no_module_of_the_worker_side_names_one_above_it_and_none_name_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let layer = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut wrong = Vec::new();
    // module → the modules it names (full paths)
    let mut names: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut modules: BTreeSet<Vec<String>> = BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        modules.insert(module.clone());
    }
    for file in &files {
        let module = module_of(&src, file);
        let text = code(&std::fs::read_to_string(file).expect("readable"));
        let Some(top) = module.first() else { continue };
        let own = layer(top).expect("every top-level module is a layer");
        for path in crate_paths(&text) {
            let Some(first) = path.first() else { continue };
            match layer(first) {
                Some(l) if l > own => wrong.push(format!(
                    "{}: names crate::{} (a layer above {top})",
                    file.display(),
                    path.join("::")
                )),
                None => wrong.push(format!(
                    "{}: names crate::{}, which is not a layer",
                    file.display(),
                    path.join("::")
                )),
                _ => {}
            }
            // The longest module the path names.
            let named: Vec<String> = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
                .unwrap_or_default();
            if !named.is_empty() {
                names.entry(module.clone()).or_default().insert(named);
            }
        }
        // `super::x` from module m names the sibling m[..-1] + x, when x is a module.
        if module.len() >= 2 {
            let parent: Vec<String> = module[..module.len() - 1].to_vec();
            for name in super_names(&text) {
                let mut sibling = parent.clone();
                sibling.push(name);
                if modules.contains(&sibling) && sibling != module {
                    names.entry(module.clone()).or_default().insert(sibling);
                }
            }
        }
    }
    let related = |a: &Vec<String>, b: &Vec<String>| a.starts_with(b) || b.starts_with(a);
    for (module, named) in &names {
        for other in named {
            if related(module, other) {
                continue;
            }
            if names.get(other).is_some_and(|back| back.contains(module)) && module < other {
                wrong.push(format!(
                    "{} and {} name each other",
                    module.join("::"),
                    other.join("::")
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_sees_an_import_from_above_and_a_cycle() {
    // The rule's own parts, on text it must catch.
    assert_eq!(
        crate_paths("use crate::runtime::Worker;\nuse gitfleet_crate::x;"),
        vec![vec!["runtime".to_string(), "Worker".to_string()]]
    );
    assert_eq!(
        super_names("use super::{clone, result};\nuse super::super::x; super::fields::y"),
        vec!["clone", "result", "x", "fields"]
    );
    assert!(!code("// crate::runtime\n#[cfg(test)]\nuse crate::ops;").contains("crate::"));
}
