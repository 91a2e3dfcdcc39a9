//! The types and the checks of each op are two views of one contract: these tests hold them
//! to the same fields, so a schema generated from a type never promises what the check
//! refuses, or leaves out what it requires.

use serde_json::{Value, json};

use super::*;

const SANDBOX: &str = "host-01J00000000000000000000000.01J00000000000000000000001";

/// A job each op accepts, with every field it knows set.
fn samples() -> Vec<(OpName, Value)> {
    let files = json!([
        {"path": "a.txt", "content": "hi"},
        {"path": "b.bin", "content": "aGk=", "encoding": "base64"},
        {"path": "old.txt", "delete": true},
    ]);
    vec![
        (
            OpName::Clone,
            json!({"repo_url": "https://example.com/o/r.git", "branch": "dev", "agent_id": "a1",
                   "task_id": "t1", "shallow": true, "sparse_paths": ["src"]}),
        ),
        (OpName::Status, json!({"sandbox_id": SANDBOX})),
        (
            OpName::Diff,
            json!({"sandbox_id": SANDBOX, "paths": ["src"], "staged": true}),
        ),
        (
            OpName::WriteFiles,
            json!({"sandbox_id": SANDBOX, "files": files}),
        ),
        (
            OpName::Pull,
            json!({"sandbox_id": SANDBOX, "rebase": false}),
        ),
        (
            OpName::Push,
            json!({"sandbox_id": SANDBOX, "message": "m", "paths": ["a.txt"], "target_branch": "x"}),
        ),
        (OpName::Release, json!({"sandbox_id": SANDBOX})),
        (
            OpName::Change,
            json!({"repo_url": "https://example.com/o/r.git", "branch": "dev", "agent_id": "a1",
                   "task_id": "t1", "shallow": false, "sparse_paths": [], "files": files,
                   "message": "m", "paths": ["a.txt"], "target_branch": "x"}),
        ),
        (OpName::Sleep, json!({"ms": 5})),
        (OpName::Echo, json!({"anything": [1, 2]})),
        (
            OpName::Maintain,
            json!({"task": "evict", "worker_id": "host-01J00000000000000000000000",
                   "sandbox_ids": [SANDBOX]}),
        ),
    ]
}

fn typed_round_trip(op: OpName, args: &Value) -> Value {
    fn via<A: OpArgs>(args: &Value) -> Value {
        let typed = A::parse(args, &Rules::default()).expect("a sample parses");
        let spec = typed.to_spec();
        assert_eq!(spec.op, A::OP.as_str());
        spec.args
    }
    match op {
        OpName::Change => via::<ChangeArgs>(args),
        OpName::Clone => via::<CloneArgs>(args),
        OpName::Diff => via::<DiffArgs>(args),
        OpName::Echo => via::<EchoArgs>(args),
        OpName::Maintain => via::<MaintainArgs>(args),
        OpName::Pull => via::<PullArgs>(args),
        OpName::Push => via::<PushArgs>(args),
        OpName::Release => via::<ReleaseArgs>(args),
        OpName::Sleep => via::<SleepArgs>(args),
        OpName::Status => via::<StatusArgs>(args),
        OpName::WriteFiles => via::<WriteFilesArgs>(args),
    }
}

/// Whether everything `given` says is said, the same, in `built` (which may say more).
fn said_in(given: &Value, built: &Value) -> bool {
    match (given, built) {
        (Value::Object(g), Value::Object(b)) => g
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| said_in(v, w))),
        (Value::Array(g), Value::Array(b)) => {
            g.len() == b.len() && g.iter().zip(b).all(|(v, w)| said_in(v, w))
        }
        (g, b) => g == b,
    }
}

#[test]
fn every_op_has_a_sample_and_a_schema() {
    let ops: Vec<OpName> = samples().into_iter().map(|(op, _)| op).collect();
    for op in OpName::ALL {
        assert!(ops.contains(op), "no sample for {op}");
        assert!(op.args_schema().as_object().is_some(), "{op}");
        assert!(op.result_schema().as_object().is_some(), "{op}");
        assert_eq!(OpName::from_name(op.as_str()), Some(*op));
    }
    let mut names: Vec<&str> = OpName::ALL.iter().map(|op| op.as_str()).collect();
    let listed = names.clone();
    names.sort_unstable();
    assert_eq!(
        names, listed,
        "OpName::ALL is kept in the order of the names"
    );
}

#[test]
fn a_job_built_from_the_types_passes_the_checks_unchanged() {
    for (op, args) in samples() {
        op.check(&args, &Rules::default())
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        let again = typed_round_trip(op, &args);
        op.check(&again, &Rules::default())
            .unwrap_or_else(|e| panic!("{op} after a round trip: {e}"));
        // Nothing the job said is lost or changed by the type (defaults may be filled in).
        assert!(said_in(&args, &again), "{op}: {args} became {again}");
        assert_eq!(
            typed_round_trip(op, &again),
            again,
            "{op}: a second trip changes it"
        );
    }
}

#[test]
fn the_schema_requires_exactly_what_the_check_requires() {
    for (op, args) in samples() {
        if matches!(op, OpName::Echo | OpName::Maintain) {
            continue; // any object; a tagged union (checked by its own test)
        }
        let schema = op.args_schema();
        let schema = schema.as_object().unwrap();
        let properties = schema["properties"].as_object().unwrap();
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let fields = args.as_object().unwrap();
        for name in properties.keys() {
            assert!(fields.contains_key(name), "{op}: sample lacks {name}");
        }
        for name in fields.keys() {
            assert!(properties.contains_key(name), "{op}: schema lacks {name}");
            let mut without = args.clone();
            without.as_object_mut().unwrap().remove(name);
            let refused = op.check(&without, &Rules::default()).is_err();
            assert_eq!(
                refused,
                required.contains(&name.as_str()),
                "{op}: without {name}, the check {} but the schema {}",
                if refused { "refuses" } else { "accepts" },
                if required.contains(&name.as_str()) {
                    "requires it"
                } else {
                    "does not"
                },
            );
        }
    }
}

#[test]
fn unknown_ops_and_bad_args_are_named() {
    let err = validate(&JobSpec::new("frobnicate", json!({})), &Rules::default()).unwrap_err();
    assert_eq!(err.kind, crate::error::ErrorKind::InvalidInput);
    assert!(err.message.contains("unknown op \"frobnicate\""), "{err}");
    assert!(err.message.contains("echo"), "{err}");
    let err = validate(
        &JobSpec::new("sleep", json!({"ms": "soon"})),
        &Rules::default(),
    )
    .unwrap_err();
    assert!(err.message.starts_with("ms:"), "{err}");
    assert_eq!(
        validate(&JobSpec::new("sleep", json!({"ms": 5})), &Rules::default()).unwrap(),
        OpName::Sleep
    );
}

#[test]
fn file_repositories_pass_only_when_the_rules_allow_them() {
    let args = json!({"repo_url": "file:///srv/r.git", "agent_id": "a", "task_id": "t"});
    let err = OpName::Clone.check(&args, &Rules::default()).unwrap_err();
    assert!(err.message.starts_with("repo_url:"), "{err}");
    OpName::Clone
        .check(
            &args,
            &Rules {
                allow_file_repos: true,
                ..Default::default()
            },
        )
        .unwrap();
}

#[test]
fn jobs_on_a_sandbox_route_to_its_worker() {
    let spec = JobSpec::new("status", json!({"sandbox_id": SANDBOX}));
    assert_eq!(
        route(&spec).as_deref(),
        Some("worker:host-01J00000000000000000000000")
    );
    assert_eq!(route(&JobSpec::new("clone", json!({}))), None);
}

#[test]
fn write_files_and_change_keep_to_the_job_write_limits() {
    let rules = Rules {
        limits: JobLimits {
            max_write_bytes: 10,
            max_write_files: 2,
            ..Default::default()
        },
        ..Default::default()
    };
    let job = |files: Value| json!({"sandbox_id": SANDBOX, "files": files});
    let change = |files: Value| {
        json!({"repo_url": "https://example.com/o/r.git", "agent_id": "a", "task_id": "t",
               "files": files, "message": "m"})
    };
    let fits = json!([{"path": "a", "content": "12345"}, {"path": "b", "content": "12345"}]);
    OpName::WriteFiles
        .check(&job(fits.clone()), &rules)
        .unwrap();
    OpName::Change.check(&change(fits), &rules).unwrap();

    // Eleven bytes in all (base64 counts decoded): the second file takes it over.
    let heavy = json!([{"path": "a", "content": "12345"},
                       {"path": "b", "content": "MTIzNDU2", "encoding": "base64"}]);
    for (op, args) in [
        (OpName::WriteFiles, job(heavy.clone())),
        (OpName::Change, change(heavy)),
    ] {
        let err = op.check(&args, &rules).unwrap_err();
        assert_eq!(
            err.message,
            "files[1].content: takes the job to 11 bytes, over the limit of 10 bytes per job \
             (GITFLEET_JOB_MAX_WRITE_BYTES)",
            "{op}"
        );
    }
    // Deletes count as files too.
    let many = json!([{"path": "a", "delete": true}, {"path": "b", "delete": true},
                      {"path": "c", "delete": true}]);
    for (op, args) in [
        (OpName::WriteFiles, job(many.clone())),
        (OpName::Change, change(many)),
    ] {
        let err = op.check(&args, &rules).unwrap_err();
        assert_eq!(
            err.message,
            "files: 3 entries, over the limit of 2 per job (GITFLEET_JOB_MAX_WRITE_FILES)",
            "{op}"
        );
    }
    let err = OpName::WriteFiles
        .check(&job(json!([])), &rules)
        .unwrap_err();
    assert_eq!(err.message, "files: must hold at least one entry");
}

#[test]
fn a_sleep_over_the_cap_is_refused_naming_the_cap() {
    let rules = Rules {
        limits: JobLimits {
            max_sleep_ms: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    OpName::Sleep.check(&json!({"ms": 100}), &rules).unwrap();
    let err = OpName::Sleep
        .check(&json!({"ms": 101}), &rules)
        .unwrap_err();
    assert_eq!(
        err.message,
        "ms: 101 is over the limit of 100 (GITFLEET_JOB_MAX_SLEEP_MS)"
    );
    // The default cap is an hour.
    OpName::Sleep
        .check(&json!({"ms": 3_600_000}), &Rules::default())
        .unwrap();
    OpName::Sleep
        .check(&json!({"ms": 3_600_001}), &Rules::default())
        .unwrap_err();
}
