use super::*;
use crate::model::crash::Policy;
use crate::trace::Data;

fn write(ino: Ino, offset: u64, len: usize) -> TraceOp {
    TraceOp::Write {
        ino,
        offset,
        data: Data(vec![b'x'; len].into()),
        t: Default::default(),
    }
}

fn fsync(ino: Ino) -> TraceOp {
    TraceOp::Fsync {
        ino,
        datasync: false,
    }
}

fn p(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

#[test]
fn the_grammar_is_consistent() {
    use clap::CommandFactory;
    args::AddLine::command().debug_assert();
}

#[test]
fn a_cut_fires_once_after_the_nth_fsync_of_a_matching_path() {
    let f = Faults::default();
    let id = f
        .add_line("cut --policy keep-all --op fsync --path '^/wal' --nth 3 --seed 9")
        .unwrap();
    assert!(f.is_armed());
    let wal = p("/wal/1.log");
    for _ in 0..2 {
        assert!(f.check(When::After, 0, &fsync(2), &wal).is_empty());
    }
    assert!(
        f.check(When::After, 0, &fsync(3), &p("/data")).is_empty(),
        "other path"
    );
    assert!(
        f.check(When::Before, 0, &fsync(2), &wal).is_empty(),
        "before is not after"
    );
    let fired = f.check(When::After, 0, &fsync(2), &wal);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].id, id);
    let Act::Cut { opts, remount } = &fired[0].act else {
        panic!("{fired:?}");
    };
    assert_eq!(
        (opts.policy, opts.seed, *remount),
        (Policy::KeepAll, 9, false)
    );
    assert!(
        f.check(When::After, 0, &fsync(2), &wal).is_empty(),
        "fires once"
    );
    // Disarmed, it no longer counts.
    assert!(!f.is_armed());
    let st = &f.list()[0];
    assert_eq!(
        (st.matched, st.fired, st.remaining, st.armed),
        (3, 1, Some(0), false)
    );
}

#[test]
fn counts_every_after_ops_chance_times_and_forever() {
    let f = Faults::default();
    f.add_line("error EIO --op write --every 2 --times 2")
        .unwrap();
    let fired: Vec<usize> = (0..8)
        .map(|i| f.check(When::Before, i, &write(2, 0, 1), &p("/a")).len())
        .collect();
    assert_eq!(fired, [0, 1, 0, 1, 0, 0, 0, 0]);

    let f = Faults::default();
    f.add_line("delay 5 --after-ops 3 --forever").unwrap();
    let fired: Vec<usize> = (0..5)
        .map(|i| f.check(When::Before, i, &write(2, 0, 1), &p("/a")).len())
        .collect();
    assert_eq!(fired, [0, 0, 0, 1, 1]);
    assert!(f.is_armed());

    let draws = |seed: u64| {
        let f = Faults::default();
        f.add_line(&format!(
            "error ENOSPC --chance 0.5 --forever --seed {seed}"
        ))
        .unwrap();
        (0..64)
            .map(|_| f.check(When::Before, 0, &write(2, 0, 1), &p("/a")).len())
            .collect::<Vec<_>>()
    };
    assert_eq!(draws(4), draws(4), "seeded");
    let n: usize = draws(4).iter().sum();
    assert!((16..=48).contains(&n), "{n} of 64 at 0.5");
}

#[test]
fn a_range_matches_overlapping_writes_only() {
    let f = Faults::default();
    f.add_line("error EIO --range 4096..8192 --forever")
        .unwrap();
    let hit = |off, len| {
        !f.check(When::Before, 0, &write(2, off, len), &p("/img"))
            .is_empty()
    };
    assert!(!hit(0, 4096));
    assert!(hit(4095, 2));
    assert!(hit(8191, 10));
    assert!(!hit(8192, 10));
    assert!(f.check(When::Before, 0, &fsync(2), &p("/img")).is_empty());
}

#[test]
fn defaults_and_refusals_are_per_action() {
    let f = Faults::default();
    // fsync-fail watches fsync and fdatasync, before the call.
    f.add_line("fsync-fail").unwrap();
    let fdatasync = TraceOp::Fsync {
        ino: 2,
        datasync: true,
    };
    assert!(
        f.check(When::Before, 0, &write(2, 0, 1), &p("/a"))
            .is_empty()
    );
    let fired = f.check(When::Before, 0, &fdatasync, &p("/a"));
    assert!(
        matches!(
            fired[0].act,
            Act::FsyncFail {
                seed: 0,
                journal: false
            }
        ),
        "{fired:?}"
    );
    for (line, want) in [
        (
            "fsync-fail --op write",
            "fsync-fail faults watch fsync or fdatasync",
        ),
        ("error EIO --when after", "acts before the call"),
        ("torn --when before", "chosen after the write"),
        ("torn --parts 2", "--keep"),
        ("torn --parts 2 --keep 3", "above --parts"),
        ("torn-seq --count 2 --keep 3", "above --count"),
        ("error EWHAT", "one of EIO"),
        ("error EIO --path '('", "regex"),
        ("error EIO --op frob", "expected one of"),
        ("error EIO --nth 2 --every 3", "cannot be used with"),
        ("error EIO --times 2 --forever", "cannot be used with"),
        ("error EIO --range 9..3", "empty"),
        ("cut --policy nope", "possible values"),
        ("explode", "unrecognized subcommand"),
        ("cut 'unbalanced", "unbalanced quotes"),
    ] {
        let e = Faults::default().add_line(line).unwrap_err();
        assert!(e.0.contains(want), "{line}: {e}");
    }
}

#[test]
fn a_torn_sequence_takes_the_next_writes_of_the_same_file() {
    let f = Faults::default();
    f.add_line("torn-seq --count 3 --keep 1,3 --cut --path '^/log'")
        .unwrap();
    let acts: Vec<Vec<Act>> = [
        (2, "/log"),
        (3, "/other"),
        (2, "/log"),
        (2, "/log"),
        (2, "/log"),
    ]
    .iter()
    .map(|(ino, path)| {
        f.check(When::After, 0, &write(*ino, 0, 1), &p(path))
            .into_iter()
            .map(|x| x.act)
            .collect()
    })
    .collect();
    let seq = |keep, cut| vec![Act::Sequence { keep, cut }];
    assert_eq!(
        acts,
        [
            seq(true, false),
            vec![],
            seq(false, false),
            seq(true, true),
            vec![]
        ]
    );
    assert!(!f.is_armed());
}

#[test]
fn clear_removes_named_or_all_faults_and_refuses_unknown_ids() {
    let f = Faults::default();
    let a = f.add_line("error EIO").unwrap();
    let b = f.add_line("delay 1").unwrap();
    assert_eq!(f.clear(&[99]).unwrap_err().0, "no fault #99");
    assert_eq!(f.list().len(), 2, "a refused clear removes nothing");
    assert_eq!(f.clear(&[a]), Ok(1));
    assert_eq!(f.list()[0].id, b);
    assert_eq!(f.clear(&[]), Ok(1));
    assert!(!f.is_armed());
}

#[test]
fn a_plan_gives_the_same_faults_as_the_control_grammar() {
    let text = r#"
# the WAL's third fsync
[[fault]]
action = "cut"
op = "fsync"
path = "^/wal"
nth = 3

[[fault]]
action = "error"
errno = "ENOSPC"
forever = true
after_ops = 10

[[fault]]
action = "torn"
parts = 3
keep = [1, 3]
"#;
    let plan = plan::parse(text).unwrap();
    assert_eq!(plan.len(), 3);
    assert_eq!((plan[0].line, plan[0].column), (3, 1));
    assert_eq!(plan[1].spec(), "error ENOSPC --after-ops 10 --forever");
    assert_eq!(plan[2].spec(), "torn --keep '1,3' --parts 3");
    let f = Faults::default();
    for p in &plan {
        f.add_words(&p.words).unwrap();
    }
    assert_eq!(f.list().len(), 3);
}

#[test]
fn a_malformed_plan_names_the_line_and_column() {
    for (text, want) in [
        (
            "[[fault]]\naction = \"cut\"\n\n[[fault]]\naction = \"error\"\n",
            "line 4, column 1: fault 2: error needs errno",
        ),
        (
            "[[fault]]\naction = \"cut\"\nnth = 0\n",
            "line 1, column 1: fault 1: invalid value '0' for '--nth",
        ),
        ("[[fault]]\nop = \"write\"\n", "missing action"),
        ("[[fault]\n", "line 1, column"),
        ("faults = 3\n", "unknown field"),
        (
            "[[fault]]\naction = \"cut\"\nbogus = 1\n",
            "unexpected argument '--bogus'",
        ),
    ] {
        let e = plan::parse(text).unwrap_err();
        assert!(e.0.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn at_takes_the_triggers_of_durafs_run() {
    let f = Faults::default();
    f.add_line("cut --at 'after:fsync:^/wal:nth=2'").unwrap();
    let wal = p("/wal");
    assert!(f.check(When::After, 0, &fsync(2), &wal).is_empty());
    assert!(f.check(When::Before, 0, &fsync(2), &wal).is_empty());
    assert_eq!(f.check(When::After, 0, &fsync(2), &wal).len(), 1);

    let f = Faults::default();
    f.add_line("cut --at after-fsync=2").unwrap();
    assert!(f.check(When::After, 0, &TraceOp::Sync, &[]).is_empty());
    assert_eq!(
        f.check(When::After, 0, &TraceOp::Fsyncdir { dir: 1 }, &p("/"))
            .len(),
        1
    );

    let f = Faults::default();
    f.add_line("cut --at after-ops=3").unwrap();
    assert!(
        f.check(When::After, 2, &write(2, 0, 1), &p("/a"))
            .is_empty()
    );
    assert_eq!(f.check(When::After, 3, &write(2, 0, 1), &p("/a")).len(), 1);

    for (line, want) in [
        ("cut --at after-ops=3 --nth 2", "cannot be used with"),
        ("error EIO --at 'after:write:x'", "acts before the call"),
        ("torn --at after-fsync=1", "for cut and delay"),
        ("cut --at sometime", "unknown trigger"),
    ] {
        let e = Faults::default().add_line(line).unwrap_err();
        assert!(e.0.contains(want), "{line}: {e}");
    }
}
