use super::*;
use crate::explore::{ExploreOptions, sparse_states, states};
use crate::fs::{DuraFs, FsOptions};
use crate::model::enumerate::{EnumOptions, enumerate};
use crate::model::{Attrs, Effect, Fallocate, Kind, ROOT, SetAttrs};
use crate::trace::Trace;
use crate::trace::replay::Replayer;
use std::os::unix::fs::MetadataExt;

/// A tiny deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn attrs() -> Attrs {
    Attrs {
        mode: 0o644,
        ..Attrs::default()
    }
}

/// A random trace over three files that grow by writes past holes, shrink
/// and grow by truncate, get punched, zeroed and hard-linked, with some
/// fsyncs; starts from a durable sparse file.
fn random_trace(seed: u64) -> Trace {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let dir = tempfile::tempdir().unwrap();
    let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
    let base = fs.create(ROOT, b"f0", Kind::File, attrs(), None).unwrap();
    fs.write(base.ino, 3 * CHUNK + 100, b"durable").unwrap();
    fs.sync().unwrap();
    fs.start_trace(true, None).unwrap();
    let mut files = vec![base.ino];
    for step in 0..12 {
        let f = files[rng.below(files.len() as u64) as usize];
        match rng.below(8) {
            0 if files.len() < 3 => {
                let name = format!("f{}", files.len());
                let s = fs.create(ROOT, name.as_bytes(), Kind::File, attrs(), None);
                files.push(s.unwrap().ino);
            }
            1 => {
                let size = rng.below(6 * CHUNK);
                let set = SetAttrs {
                    size: Some(size),
                    ..SetAttrs::default()
                };
                fs.setattr(f, set).unwrap();
            }
            2 => {
                let (off, len) = (rng.below(5 * CHUNK), 1 + rng.below(2 * CHUNK));
                let mode = [Fallocate::PunchHole, Fallocate::ZeroRange][rng.below(2) as usize];
                fs.fallocate(f, off, len, mode).unwrap();
            }
            3 => {
                let name = format!("link{step}");
                fs.link(f, ROOT, name.as_bytes()).unwrap();
            }
            4 => fs.fsync(f, rng.below(2) == 0).unwrap(),
            _ => {
                let off = rng.below(6 * CHUNK);
                let len = 1 + rng.below(CHUNK + 700) as usize;
                let byte = 1 + rng.below(255) as u8;
                fs.write(f, off, &vec![byte; len]).unwrap();
            }
        }
    }
    fs.finish_trace().unwrap().unwrap()
}

/// Every crash state of `trace`, as the store the enumeration leaves.
fn stores(trace: &Trace) -> Vec<MemStore> {
    let mut r = Replayer::new(&trace.header).unwrap();
    let mut out = Vec::new();
    let opts = EnumOptions::default();
    loop {
        let pending = r.pending();
        for cs in enumerate(&pending, &opts) {
            let mut s = r.durable().clone();
            s.apply_all(&cs.effects(&pending));
            out.push(s);
        }
        let Some(ev) = trace.events.get(r.applied()) else {
            return out;
        };
        r.apply(ev).unwrap();
    }
}

/// Everything under `dir`: path, kind, mode, inode group, bytes or target.
fn listing(dir: &Path) -> Vec<(String, u32, u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut inos: HashMap<u64, u64> = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let n = inos.len() as u64;
            let group = *inos.entry(m.ino()).or_insert(n);
            let body = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                stack.push(p.clone());
                Vec::new()
            };
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, m.mode(), m.nlink(), group, body));
        }
    }
    out.sort();
    out
}

#[test]
fn sparse_materialise_is_byte_identical_to_the_dense_one_for_random_traces() {
    let mut checked = 0;
    for seed in 0..12 {
        let trace = random_trace(seed);
        for store in stores(&trace) {
            let dense = Snapshot::of(&store);
            let sparse = SparseSnapshot::of(&store);
            assert_eq!(sparse.to_snapshot(), dense, "seed {seed}");
            let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            dense.materialise(a.path()).unwrap();
            sparse.materialise(b.path()).unwrap();
            assert_eq!(listing(a.path()), listing(b.path()), "seed {seed}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} states");
}

#[test]
fn sparse_snapshots_are_equal_exactly_when_dense_ones_are() {
    for seed in 0..6 {
        let all: Vec<(Snapshot, SparseSnapshot)> = stores(&random_trace(seed))
            .iter()
            .map(|s| (Snapshot::of(s), SparseSnapshot::of(s)))
            .collect();
        for (d1, s1) in &all {
            for (d2, s2) in &all {
                assert_eq!(d1 == d2, s1 == s2, "seed {seed}");
            }
        }
    }
}

#[test]
fn states_are_the_distinct_dense_snapshots_in_enumeration_order() {
    for seed in 0..6 {
        let trace = random_trace(seed);
        let mut expected: Vec<Snapshot> = Vec::new();
        for store in stores(&trace) {
            let snap = Snapshot::of(&store);
            if !expected.contains(&snap) {
                expected.push(snap);
            }
        }
        let mut got = Vec::new();
        states(&trace, &ExploreOptions::default(), |s| {
            got.push(s.snapshot);
            true
        })
        .unwrap();
        assert_eq!(got, expected, "seed {seed}");
        let mut n = 0;
        sparse_states(&trace, &ExploreOptions::default(), |s| {
            assert_eq!(s.snapshot.to_snapshot(), expected[n], "seed {seed}");
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, expected.len());
    }
}

/// A file's content, made by applying `effects` to inode 2 of a store.
fn data(effects: &[Effect]) -> FileData {
    let mut s = MemStore::new(attrs());
    let init = crate::model::NewInode {
        kind: Kind::File,
        attrs: attrs(),
        target: None,
    };
    s.apply(&Effect::Link {
        dir: ROOT,
        name: b"f".to_vec(),
        ino: 2,
        init,
    });
    s.apply_all(effects);
    match SparseSnapshot::of(&s).file(b"f") {
        Some(d) => d.clone(),
        None => panic!("no file"),
    }
}

fn write(offset: u64, byte: u8, len: usize) -> Effect {
    Effect::Write {
        ino: 2,
        offset,
        data: vec![byte; len].into(),
    }
}

#[test]
fn patch_turns_a_file_holding_the_base_into_the_state_writing_only_what_differs() {
    let mut rng = Rng(7);
    let dir = tempfile::tempdir().unwrap();
    let mut contents = Vec::new();
    for _ in 0..40 {
        let mut effects = Vec::new();
        for _ in 0..1 + rng.below(5) {
            effects.push(match rng.below(4) {
                0 => Effect::Truncate {
                    ino: 2,
                    size: rng.below(8 * CHUNK),
                },
                1 => Effect::Zero {
                    ino: 2,
                    offset: rng.below(6 * CHUNK),
                    len: rng.below(2 * CHUNK),
                },
                _ => write(
                    rng.below(7 * CHUNK),
                    1 + rng.below(250) as u8,
                    1 + rng.below(6000) as usize,
                ),
            });
        }
        contents.push(data(&effects));
    }
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("w"))
        .unwrap();
    let mut holds = FileData::default();
    for (i, next) in contents.iter().enumerate() {
        if i % 3 == 0 {
            next.write_into(&f).unwrap();
        } else {
            next.patch(&f, &holds).unwrap();
        }
        assert_eq!(
            std::fs::read(dir.path().join("w")).unwrap(),
            next.to_vec(),
            "step {i}"
        );
        holds = next.clone();
    }
    // Only the differing chunk is an extent.
    let a = data(&[write(0, 1, 3 * CHUNK as usize)]);
    let b = data(&[write(0, 1, 3 * CHUNK as usize), write(CHUNK + 5, 9, 1)]);
    assert_eq!(b.extents(&a).len(), 1);
    assert_eq!(b.extents(&a)[0].0, CHUNK);
    assert!(a.extents(&a).is_empty());
}

#[test]
fn a_big_mostly_empty_file_is_written_as_holes() {
    let big = data(&[
        Effect::Truncate {
            ino: 2,
            size: 64 << 20,
        },
        write(10 * CHUNK, 1, 100),
        write(40 << 20, 2, 100),
    ]);
    assert_eq!(big.chunks.len(), 2);
    let dir = tempfile::tempdir().unwrap();
    let s = SparseSnapshot {
        entries: vec![SparseEntry {
            path: b"image".to_vec(),
            node: SnapNode::File(big.clone()),
            mode: 0o644,
            xattrs: Vec::new(),
        }],
    };
    s.materialise(dir.path()).unwrap();
    let p = dir.path().join("image");
    let m = std::fs::metadata(&p).unwrap();
    assert_eq!(m.len(), 64 << 20);
    assert!(
        m.blocks() * 512 < 1 << 20,
        "{} blocks allocated",
        m.blocks()
    );
    assert_eq!(std::fs::read(&p).unwrap(), big.to_vec());
}

#[test]
fn a_zeroed_chunk_equals_a_hole_so_such_states_are_deduplicated() {
    use std::hash::{BuildHasher, RandomState};
    let zeroed = data(&[
        write(0, 7, 10),
        Effect::Zero {
            ino: 2,
            offset: 0,
            len: 10,
        },
    ]);
    let hole = data(&[Effect::Truncate { ino: 2, size: 10 }]);
    assert_eq!(zeroed.to_vec(), hole.to_vec());
    assert_eq!(zeroed, hole);
    let h = RandomState::new();
    assert_eq!(h.hash_one(&zeroed), h.hash_one(&hole));
}
