use super::*;
use crate::calibrate::workload::{Step, WriteKind};

fn file(data: &[u8], nlink: u64) -> Entry {
    Entry {
        kind: EntryKind::File,
        size: data.len() as u64,
        nlink,
        mode: 0o644,
        target: None,
        digest: digest(data),
    }
}

fn tree(files: &[(&str, &[u8], u64)]) -> Outcome {
    let mut o = Outcome::default();
    for (p, d, n) in files {
        o.0.insert(p.to_string(), file(d, *n));
    }
    o
}

/// `A` = 8192 × `a`, then `steps`.
fn workload(steps: Vec<Op>) -> Workload {
    Workload {
        name: "t".into(),
        setup: vec![
            Op::Create("A"),
            Op::Write {
                path: "A",
                kind: WriteKind::Append,
                offset: 0,
                len: 8192,
                byte: b'a',
            },
        ],
        steps: steps
            .into_iter()
            .map(|op| Step { op, persist: None })
            .collect(),
    }
}

fn write(offset: u64, len: u64, byte: u8) -> Op {
    Op::Write {
        path: "A",
        kind: WriteKind::Unaligned,
        offset,
        len,
        byte,
    }
}

#[test]
fn an_old_size_with_the_new_last_blocks_tail_zeroed_is_truncate_tail_zeroed() {
    let h = History::of(&workload(vec![Op::Truncate {
        path: "A",
        size: 4103,
        grow: false,
    }]));
    let mut d = vec![b'a'; 8192];
    d[4103..4608].fill(0);
    let s = h.sort(
        1,
        &tree(&[("A", &d, 1)]),
        Some(&tree(&[("A", &[b'a'; 4103], 1)])),
    );
    assert_eq!(s.family, Family::TruncateTailZeroed, "{}", s.why);
    assert!(s.why.contains("[4103, 4608)"), "{}", s.why);
}

#[test]
fn an_extending_writes_sectors_inside_the_old_size_are_write_in_old_size() {
    let h = History::of(&workload(vec![write(7000, 3000, b'0')]));
    let mut d = vec![b'a'; 8192];
    d[7168..8192].fill(b'0');
    let s = h.sort(1, &tree(&[("A", &d, 1)]), None);
    assert_eq!(s.family, Family::WriteInOldSize, "{}", s.why);
    assert!(s.why.contains("[7168, 8192)"), "{}", s.why);
}

#[test]
fn a_middle_run_of_a_writes_sectors_is_torn_write() {
    let h = History::of(&workload(vec![write(1905, 5729, b'0')]));
    let mut d = vec![b'a'; 8192];
    d[3072..5120].fill(b'0');
    let s = h.sort(1, &tree(&[("A", &d, 1)]), None);
    assert_eq!(s.family, Family::TornWrite, "{}", s.why);
    assert!(s.why.contains("[3072, 5120)"), "{}", s.why);
}

#[test]
fn a_whole_version_under_other_names_is_names_and_otherwise_combination() {
    let h = History::of(&workload(vec![Op::Link { from: "A", to: "B" }]));
    let a = [b'a'; 8192];
    let real = tree(&[("A", &a, 1)]);
    let s = h.sort(1, &real, Some(&tree(&[("A", &a, 2), ("B", &a, 2)])));
    assert_eq!(s.family, Family::Names);
    assert!(
        s.why.contains("B absent (predicted file nlink=2)"),
        "{}",
        s.why
    );
    assert!(
        s.why.contains("A file nlink=1 (predicted file nlink=2)"),
        "{}",
        s.why
    );
    let s = h.sort(1, &real, Some(&tree(&[("A", &[b'a'; 10], 1)])));
    assert_eq!(s.family, Family::Combination, "{}", s.why);
}

#[test]
fn a_write_with_one_inner_sector_missing_is_torn_write() {
    let h = History::of(&workload(vec![write(1905, 5729, b'0')]));
    let mut d = vec![b'a'; 8192];
    d[1905..7634].fill(b'0');
    d[2560..3072].fill(b'a');
    let s = h.sort(1, &tree(&[("A", &d, 1)]), None);
    assert_eq!(s.family, Family::TornWrite, "{}", s.why);
    assert!(s.why.contains("[1905, 2560) [3072, 7634)"), "{}", s.why);
}

#[test]
fn bytes_no_step_explains_are_unexplained() {
    let h = History::of(&workload(vec![write(0, 100, b'0')]));
    let mut d = vec![b'a'; 8192];
    d[10] = b'0';
    d[4000] = b'0';
    let s = h.sort(1, &tree(&[("A", &d, 1)]), None);
    assert_eq!(s.family, Family::Unexplained, "{}", s.why);
}

#[test]
fn a_later_step_does_not_explain_an_earlier_crash_point() {
    let h = History::of(&workload(vec![
        Op::Create("B"),
        Op::Truncate {
            path: "A",
            size: 4103,
            grow: false,
        },
    ]));
    let mut d = vec![b'a'; 8192];
    d[4103..4608].fill(0);
    let real = tree(&[("A", &d, 1)]);
    assert_eq!(h.sort(1, &real, None).family, Family::Unexplained);
    assert_eq!(h.sort(2, &real, None).family, Family::TruncateTailZeroed);
}

#[test]
fn an_extending_writes_new_size_without_its_bytes_is_torn_write() {
    let h = History::of(&workload(vec![write(8000, 1000, b'0')]));
    let mut d = vec![b'a'; 8192];
    d.resize(9000, 0);
    let s = h.sort(1, &tree(&[("A", &d, 1)]), None);
    assert_eq!(s.family, Family::TornWrite, "{}", s.why);
    assert!(s.why.starts_with("A: 9000 B, bytes  of"), "{}", s.why);
}

#[test]
fn two_writes_of_one_file_each_torn_are_explained_as_a_pair() {
    let h = History::of(&workload(vec![
        write(3796, 2032, b'0'),
        write(5797, 323, b'1'),
    ]));
    let mut d = vec![b'a'; 8192];
    d[3796..4608].fill(b'0');
    d[5797..6120].fill(b'1');
    let s = h.sort(2, &tree(&[("A", &d, 1)]), None);
    assert_eq!(s.family, Family::TornWrite, "{}", s.why);
    assert!(
        s.why
            .contains("after bytes [3796, 4608) of the write at 3796+2032 (step 1)"),
        "{}",
        s.why
    );
}
