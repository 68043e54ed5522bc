//! Tests of the workload generator and its scripts.

use super::*;
use std::collections::BTreeSet;

fn kind(op: &Op) -> String {
    match op {
        Op::Write { kind, .. } => format!("write-{kind:?}"),
        Op::Truncate { grow, .. } => format!("truncate-grow-{grow}"),
        Op::Rename { to, .. } if FILES.contains(to) => "rename".into(),
        other => format!("{other:?}")
            .split(['(', ' '])
            .next()
            .unwrap_or("")
            .into(),
    }
}

#[test]
fn the_same_seed_gives_the_same_workloads_and_another_seed_others() {
    let a: Vec<Workload> = (0..50).map(|i| generate(7, i)).collect();
    let b: Vec<Workload> = (0..50).map(|i| generate(7, i)).collect();
    let c: Vec<Workload> = (0..50).map(|i| generate(8, i)).collect();
    assert_eq!(a, b);
    assert_ne!(
        a.iter().map(|w| w.script()).collect::<Vec<_>>(),
        c.iter().map(|w| w.script()).collect::<Vec<_>>()
    );
}

#[test]
fn a_sample_covers_every_operation_kind_every_persistence_call_and_every_length() {
    let mut kinds = BTreeSet::new();
    let mut persists = BTreeSet::new();
    let mut lens = BTreeSet::new();
    for i in 0..400 {
        let w = generate(1, i);
        lens.insert(w.steps.len());
        for s in &w.steps {
            kinds.insert(kind(&s.op));
            persists.insert(match &s.persist {
                None => "none",
                Some(Persist::Fsync(_)) => "fsync",
                Some(Persist::Fdatasync(_)) => "fdatasync",
                Some(Persist::Fsyncdir(_)) => "fsyncdir",
                Some(Persist::Sync) => "sync",
            });
        }
    }
    for k in [
        "Create",
        "Mkdir",
        "write-Append",
        "write-InPage",
        "write-AcrossPages",
        "write-Unaligned",
        "write-SubSector",
        "truncate-grow-true",
        "truncate-grow-false",
        "Fallocate",
        "rename",
        "Link",
        "Unlink",
        "Rmdir",
        "Symlink",
    ] {
        assert!(kinds.contains(k), "{k} never generated: {kinds:?}");
    }
    assert_eq!(persists.len(), 5, "{persists:?}");
    assert_eq!(lens, BTreeSet::from([1, 2, 3]));
}

/// Every script of a sample runs to the end with `sh` in a plain
/// directory (marks going to `true`), and leaves the tree the
/// simulation predicts.
#[test]
fn generated_scripts_run_in_a_plain_directory() {
    for i in 0..40 {
        let w = generate(1, i);
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(w.script())
            .current_dir(dir.path())
            .env("DURAFS", "true")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\n{}",
            w.script(),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut sim = Sim::default();
        for op in w.setup.iter().chain(w.steps.iter().map(|s| &s.op)) {
            sim.apply(op);
        }
        for (p, node) in &sim.nodes {
            let md = std::fs::symlink_metadata(dir.path().join(p)).unwrap();
            match node {
                Node::File(i) => assert_eq!(md.len(), sim.sizes[*i], "{p}\n{}", w.script()),
                Node::Dir => assert!(md.is_dir()),
                Node::Symlink => assert!(md.file_type().is_symlink()),
            }
        }
    }
}

/// Regression: seed 1 workload 28 renamed `dir2/C` onto `dir/C`, a
/// hard link of the same file; mv(1) refuses that, so the workload
/// failed on every filesystem.
#[test]
fn a_rename_never_targets_another_name_of_the_same_file() {
    for i in 0..500 {
        let w = generate(1, i);
        let mut sim = Sim::default();
        for op in &w.setup {
            sim.apply(op);
        }
        for s in &w.steps {
            if let Op::Rename { from, to } = &s.op {
                assert!(
                    sim.file(to).is_none() || sim.file(to) != sim.file(from),
                    "{}",
                    w.script()
                );
            }
            sim.apply(&s.op);
        }
    }
}
