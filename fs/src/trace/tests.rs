use super::replay::Replayer;
use super::*;
use crate::fs::{DuraFs, FsOptions, Tripwire};
use crate::model::crash::{CrashOptions, Policy};
use crate::model::{Attrs, FsyncFailure, Op, ROOT, RenameFlags, SetAttrs};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc;

fn attrs(mode: u32) -> Attrs {
    Attrs {
        mode,
        ..Attrs::default()
    }
}

/// Every file's content and every directory and symlink, by path.
fn tree_of(fs: &DuraFs) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(ROOT, Vec::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for (name, ino, kind) in fs.model().readdir(dir).unwrap() {
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let content = match kind {
                Kind::File => {
                    let size = fs.getattr(ino).unwrap().size as u32;
                    fs.read(ino, 0, size).unwrap()
                }
                Kind::Dir => {
                    stack.push((ino, path.clone()));
                    b"<dir>".to_vec()
                }
                Kind::Symlink => fs.readlink(ino).unwrap().to_vec(),
                _ => Vec::new(),
            };
            out.insert(path, content);
        }
    }
    out
}

/// A volume with a starting tree, traced from then on.
fn traced_volume(dir: &std::path::Path) -> DuraFs {
    let fs = DuraFs::open(dir, FsOptions::default()).unwrap();
    let d = fs
        .create(ROOT, b"dir", Kind::Dir, attrs(0o755), None)
        .unwrap();
    let f = fs
        .create(d.ino, b"old", Kind::File, attrs(0o600), None)
        .unwrap();
    fs.write(f.ino, 0, b"starting content").unwrap();
    fs.sync().unwrap();
    fs.start_trace(true, None).unwrap();
    fs
}

/// A workload using every traced call; returns nothing, leaves some of it
/// unsynced.
fn workload(fs: &DuraFs) {
    let dir = fs.lookup(ROOT, b"dir").unwrap().ino;
    let old = fs.lookup(dir, b"old").unwrap().ino;
    let a = fs
        .create(ROOT, b"a", Kind::File, attrs(0o644), None)
        .unwrap()
        .ino;
    fs.write(a, 0, &[7u8; 3000]).unwrap();
    fs.fsync(a, true).unwrap();
    fs.write(a, 1000, b"overwritten").unwrap();
    fs.mark("a acknowledged").unwrap();
    fs.create(
        ROOT,
        b"ln",
        Kind::Symlink,
        attrs(0o777),
        Some(Bytes::from_static(b"a")),
    )
    .unwrap();
    fs.link(a, dir, b"hard").unwrap();
    fs.rename(ROOT, b"a", dir, b"renamed", RenameFlags::default())
        .unwrap();
    fs.fsyncdir(dir).unwrap();
    fs.setattr(
        old,
        SetAttrs {
            size: Some(5),
            ..SetAttrs::default()
        },
    )
    .unwrap();
    fs.fallocate(old, 0, 9000, crate::model::Fallocate::KeepSize)
        .unwrap();
    fs.unlink(dir, b"hard").unwrap();
    let raw = fs
        .create(ROOT, b"\xffraw", Kind::File, attrs(0o644), None)
        .unwrap()
        .ino;
    fs.write(raw, 100, b"sparse").unwrap();
    assert!(
        fs.unlink(ROOT, b"missing").is_err(),
        "failed calls are not recorded"
    );
}

#[test]
fn a_trace_round_trips_through_its_file_format() {
    let dir = tempfile::tempdir().unwrap();
    let fs = traced_volume(dir.path());
    workload(&fs);
    let trace = fs.finish_trace().unwrap().unwrap();
    assert_eq!(trace.events.len(), 14);
    assert_eq!(trace.events[0].to_string(), "#1 create /a");
    assert_eq!(trace.events[1].to_string(), "#2 write /a [0, 3000)");
    assert_eq!(trace.events[2].op.name(), "fdatasync");
    assert_eq!(trace.events[7].to_string(), "#8 rename /a -> /dir/renamed");
    assert_eq!(trace.events[9].op.name(), "truncate");
    let mut bytes = Vec::new();
    trace.write(&mut bytes).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains(r#""name":{"b64":"/3Jhdw=="}"#), "{text}");
    assert_eq!(Trace::read(&bytes[..]).unwrap(), trace);
    assert_eq!(trace.marks_before(5), vec!["a acknowledged".to_string()]);
    assert!(trace.marks_before(4).is_empty());
}

#[test]
fn a_replay_reaches_the_recorded_pending_operations_and_durable_tree() {
    let dir = tempfile::tempdir().unwrap();
    let fs = traced_volume(dir.path());
    workload(&fs);
    let trace = fs.finish_trace().unwrap().unwrap();
    let mut r = Replayer::new(&trace.header).unwrap();
    for ev in &trace.events {
        r.apply(ev).unwrap();
    }
    let ops = |p: Vec<crate::model::PendingOp>| p.into_iter().map(|p| p.op).collect::<Vec<Op>>();
    assert_eq!(ops(r.pending()), ops(fs.pending()));
    assert_eq!(
        crate::model::store::live_tree(r.model(), r.durable())
            .unwrap()
            .shapes()
            .len(),
        tree_of(&fs).len()
    );

    fs.cut(CrashOptions {
        policy: Policy::DropAll,
        ..CrashOptions::default()
    })
    .unwrap();
    drop(fs);
    let after = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
    let want: BTreeMap<Vec<u8>, Vec<u8>> = r
        .durable()
        .tree()
        .shapes()
        .into_iter()
        .map(|(p, n)| {
            let v = match n {
                crate::model::TreeNode::File(d) => d,
                crate::model::TreeNode::Dir => b"<dir>".to_vec(),
                crate::model::TreeNode::Symlink(t) => t,
                crate::model::TreeNode::Special(_) => Vec::new(),
            };
            (p, v)
        })
        .collect();
    assert_eq!(tree_of(&after), want);
}

#[test]
fn a_torn_last_line_is_dropped_and_damage_elsewhere_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let fs = traced_volume(dir.path());
    workload(&fs);
    let trace = fs.finish_trace().unwrap().unwrap();
    let mut bytes = Vec::new();
    trace.write(&mut bytes).unwrap();

    let torn = &bytes[..bytes.len() - 10];
    let read = Trace::read(torn).unwrap();
    assert_eq!(read.events.len(), trace.events.len() - 1);

    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[3] = "{not json";
    match Trace::read(lines.join("\n").as_bytes()) {
        Err(TraceError::Format { line: 4, .. }) => {}
        other => panic!("expected a format error at line 4, got {other:?}"),
    }
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(2);
    match Trace::read(lines.join("\n").as_bytes()) {
        Err(TraceError::Format { line: 3, what }) => assert!(what.contains("numbered 3"), "{what}"),
        other => panic!("expected a numbering error, got {other:?}"),
    }
    assert!(matches!(
        Trace::read(&b""[..]),
        Err(TraceError::Format { line: 1, .. })
    ));
}

#[test]
fn a_replay_that_diverges_says_which_event() {
    let dir = tempfile::tempdir().unwrap();
    let fs = traced_volume(dir.path());
    workload(&fs);
    let mut trace = fs.finish_trace().unwrap().unwrap();
    if let TraceOp::Create { ino, .. } = &mut trace.events[0].op {
        *ino += 1;
    }
    let mut r = Replayer::new(&trace.header).unwrap();
    match r.apply(&trace.events[0]) {
        Err(TraceError::Replay { n: 1, what }) => {
            assert!(what.contains("recording made"), "{what}")
        }
        other => panic!("expected a replay error, got {other:?}"),
    }
}

#[test]
fn tracing_must_start_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
    fs.create(ROOT, b"f", Kind::File, attrs(0o644), None)
        .unwrap();
    assert!(fs.start_trace(true, None).is_err());
    fs.sync().unwrap();
    fs.start_trace(true, None).unwrap();
    assert!(fs.start_trace(true, None).is_err(), "only one recorder");
}

/// Trips before or after the `nth` operation named `name`.
struct Wire {
    name: &'static str,
    before: bool,
    frozen: mpsc::Sender<u64>,
}

impl Tripwire for Wire {
    fn before(&self, _: u64, op: &TraceOp, _: &[String]) -> bool {
        self.before && op.name() == self.name
    }
    fn after(&self, _: u64, op: &TraceOp, _: &[String]) -> bool {
        !self.before && op.name() == self.name
    }
    fn frozen(&self, count: u64) {
        let _ = self.frozen.send(count);
    }
}

fn trip(before: bool) -> (Vec<u8>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(DuraFs::open(dir.path(), FsOptions::default()).unwrap());
    let (tx, rx) = mpsc::channel();
    fs.set_tripwire(Arc::new(Wire {
        name: "fsync",
        before,
        frozen: tx,
    }))
    .unwrap();
    let f = fs
        .create(ROOT, b"f", Kind::File, attrs(0o644), None)
        .unwrap()
        .ino;
    fs.write(f, 0, b"data").unwrap();
    fs.fsyncdir(ROOT).unwrap();
    let worker = {
        let fs = Arc::clone(&fs);
        std::thread::spawn(move || fs.fsync(f, false))
    };
    let count = rx.recv().unwrap();
    assert!(fs.is_frozen());
    fs.cut(CrashOptions {
        policy: Policy::DropAll,
        ..CrashOptions::default()
    })
    .unwrap();
    let r = worker.join().unwrap();
    assert_eq!(
        r.unwrap_err().errno(),
        libc::EIO,
        "the caller never sees success"
    );
    drop(fs);
    let after = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
    let f = after.lookup(ROOT, b"f").unwrap().ino;
    (after.read(f, 0, 100).unwrap(), count)
}

#[test]
fn a_before_trigger_freezes_the_volume_before_the_call_takes_effect() {
    // Frozen after 3 events: the fsync never took effect, so it is none.
    assert_eq!(trip(true), (Vec::new(), 3));
}

#[test]
fn an_after_trigger_freezes_the_volume_after_the_call_took_effect() {
    assert_eq!(trip(false), (b"data".to_vec(), 4));
}

/// Regression: the header held every file's whole content, so tracing a
/// volume with a 1 GiB sparse file read and stored 1 GiB of zeros.
#[test]
fn a_sparse_file_enters_the_header_by_its_non_zero_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
    let f = fs
        .create(ROOT, b"sparse", Kind::File, attrs(0o644), None)
        .unwrap();
    let far = 1u64 << 30;
    fs.write(f.ino, 0, b"head").unwrap();
    fs.write(f.ino, 5000, &[0; 100]).unwrap();
    fs.write(f.ino, 8190, b"xy").unwrap();
    fs.write(f.ino, far, b"tail").unwrap();
    fs.sync().unwrap();
    fs.start_trace(true, None).unwrap();
    fs.write(f.ino, 10, b"after").unwrap();
    let trace = fs.finish_trace().unwrap().unwrap();

    let inode = trace.header.inodes.iter().find(|i| i.ino == f.ino).unwrap();
    assert_eq!(inode.size, far + 4);
    assert!(inode.data.is_none());
    let got: Vec<(u64, usize)> = inode
        .extents
        .iter()
        .map(|e| (e.offset, e.data.0.len()))
        .collect();
    assert_eq!(
        got,
        vec![(0, 8192), (far, 4)],
        "blocks 0 and 1 merged, the zero-only block 2.. skipped"
    );
    let mut text = Vec::new();
    trace.write(&mut text).unwrap();
    assert!(text.len() < 64 * 1024, "{} bytes", text.len());

    let mut r = Replayer::new(&Trace::read(&text[..]).unwrap().header).unwrap();
    for ev in &trace.events {
        r.apply(ev).unwrap();
    }
    let mut want = vec![0u8; 8200];
    want[..4].copy_from_slice(b"head");
    want[8190..8192].copy_from_slice(b"xy");
    let mut d = Vec::new();
    r.durable().read(f.ino, 0, 8200, &mut d);
    assert_eq!(d, want);
    d.clear();
    r.durable().read(f.ino, far - 2, 6, &mut d);
    assert_eq!(d, b"\0\0tail");
    let live = crate::model::store::read_all(r.model(), r.durable(), f.ino).unwrap();
    assert_eq!(live.len() as u64, far + 4);
    assert_eq!(&live[..15], b"head\0\0\0\0\0\0after");
}

/// A version 1 header (whole content in `data`) is still read.
#[test]
fn a_version_1_header_is_still_replayed() {
    let line = r#"{"durafs_trace":1,"model":"posix","inodes":[{"ino":1,"kind":"dir","attrs":{"mode":493,"uid":0,"gid":0,"rdev":0,"atime":{"secs":0,"nanos":0},"mtime":{"secs":0,"nanos":0},"ctime":{"secs":0,"nanos":0}},"size":0,"target":null,"data":null},{"ino":2,"kind":"file","attrs":{"mode":420,"uid":0,"gid":0,"rdev":0,"atime":{"secs":0,"nanos":0},"mtime":{"secs":0,"nanos":0},"ctime":{"secs":0,"nanos":0}},"size":8,"target":null,"data":"aGVsbG8="}],"entries":[{"dir":1,"name":"f","ino":2}]}"#;
    let trace = Trace::read(format!("{line}\n").as_bytes()).unwrap();
    let r = Replayer::new(&trace.header).unwrap();
    let mut d = Vec::new();
    r.durable().read(2, 0, 8, &mut d);
    assert_eq!(d, b"hello\0\0\0");
}

/// The extended attributes of every path of a store, as `getxattr` on a
/// volume opened over it shows them.
fn xattrs_after_open(dir: &std::path::Path) -> BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Bytes>> {
    let fs = DuraFs::open(dir, FsOptions::default()).unwrap();
    crate::model::store::live_xattrs(fs.model()).unwrap()
}

#[test]
fn xattrs_and_zero_range_are_traced_replayed_and_in_the_header() {
    use crate::model::{Fallocate, XattrMode};
    let dir = tempfile::tempdir().unwrap();
    let fs = DuraFs::open(dir.path(), FsOptions::default()).unwrap();
    let f = fs
        .create(ROOT, b"f", Kind::File, attrs(0o644), None)
        .unwrap()
        .ino;
    fs.write(f, 0, &[1u8; 4096]).unwrap();
    fs.setxattr(f, b"user.start", b"s", XattrMode::Any).unwrap();
    fs.sync().unwrap();
    fs.start_trace(true, None).unwrap();
    fs.setxattr(f, b"user.kept", b"k", XattrMode::Create)
        .unwrap();
    fs.fsync(f, false).unwrap();
    fs.removexattr(f, b"user.start").unwrap();
    fs.setxattr(ROOT, b"trusted.lost", b"l", XattrMode::Any)
        .unwrap();
    fs.fallocate(f, 1000, 5000, Fallocate::ZeroRange).unwrap();
    fs.fsync(f, true).unwrap();
    let trace = fs.finish_trace().unwrap().unwrap();

    let start = &trace
        .header
        .inodes
        .iter()
        .find(|i| i.ino == f)
        .unwrap()
        .xattrs;
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].name.0, b"user.start");
    let names: Vec<&str> = trace.events.iter().map(|e| e.op.name()).collect();
    assert_eq!(
        names,
        [
            "setxattr",
            "fsync",
            "removexattr",
            "setxattr",
            "fallocate",
            "fdatasync"
        ]
    );
    let mut bytes = Vec::new();
    trace.write(&mut bytes).unwrap();
    assert_eq!(Trace::read(&bytes[..]).unwrap(), trace);

    let mut r = Replayer::new(&trace.header).unwrap();
    for ev in &trace.events {
        r.apply(ev).unwrap();
    }
    let ops = |p: Vec<crate::model::PendingOp>| p.into_iter().map(|p| p.op).collect::<Vec<Op>>();
    assert_eq!(ops(r.pending()), ops(fs.pending()));
    assert_eq!(ops(r.pending()).len(), 2, "the removal and the root's set");
    fs.cut(CrashOptions {
        policy: Policy::DropAll,
        ..CrashOptions::default()
    })
    .unwrap();
    drop(fs);
    let want: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Bytes>> = r.durable().xattrs();
    assert_eq!(
        want.get(&b"f"[..])
            .map(|x| x.keys().cloned().collect::<Vec<_>>()),
        Some(vec![b"user.kept".to_vec(), b"user.start".to_vec()])
    );
    assert_eq!(xattrs_after_open(dir.path()), want);
}

#[test]
fn a_version_2_trace_is_still_read() {
    let text = concat!(
        r#"{"durafs_trace":2,"model":"posix","inodes":[{"ino":1,"kind":"dir","#,
        r#""attrs":{"mode":493,"uid":0,"gid":0,"rdev":0,"#,
        r#""atime":{"secs":0,"nanos":0},"mtime":{"secs":0,"nanos":0},"#,
        r#""ctime":{"secs":0,"nanos":0}},"size":0}],"entries":[]}"#,
        "\n"
    );
    let trace = Trace::read(text.as_bytes()).unwrap();
    assert!(trace.header.inodes[0].xattrs.is_empty());
    Replayer::new(&trace.header).unwrap();
}

/// ext4's `auto_da_alloc`: the first close after a truncate to 0 is
/// recorded (it starts the file's writeback), and replays to the same
/// pending [`Op::CloseFlush`]; other closes change nothing and are not.
#[test]
fn the_first_close_after_a_truncate_to_zero_is_traced_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FsOptions {
        persistence: crate::model::Persistence::Ext4,
        ..FsOptions::default()
    };
    let fs = DuraFs::open(dir.path(), opts).unwrap();
    let f = fs
        .create(ROOT, b"f", Kind::File, attrs(0o644), None)
        .unwrap()
        .ino;
    fs.write(f, 0, &[b'o'; 3000]).unwrap();
    fs.sync().unwrap();
    fs.start_trace(true, None).unwrap();
    fs.release(f);
    let empty = SetAttrs {
        size: Some(0),
        ..SetAttrs::default()
    };
    fs.setattr(f, empty).unwrap();
    fs.write(f, 0, b"new").unwrap();
    fs.release(f);
    fs.release(f);
    fs.create(ROOT, b"d", Kind::Dir, attrs(0o755), None)
        .unwrap();
    let trace = fs.finish_trace().unwrap().unwrap();
    let names: Vec<&str> = trace.events.iter().map(|e| e.op.name()).collect();
    assert_eq!(names, ["truncate", "write", "close", "mkdir"]);
    assert_eq!(trace.events[2].to_string(), "#3 close /f");
    let closes = |p: Vec<crate::model::PendingOp>| {
        p.iter()
            .filter(|p| matches!(p.op, Op::CloseFlush { ino } if ino == f))
            .count()
    };
    assert_eq!(closes(fs.pending()), 1);
    let mut r = Replayer::new(&trace.header).unwrap();
    for ev in &trace.events {
        r.apply(ev).unwrap();
    }
    let ops = |p: Vec<crate::model::PendingOp>| p.into_iter().map(|p| p.op).collect::<Vec<Op>>();
    assert_eq!(ops(r.pending()), ops(fs.pending()));
}

/// A trace starting from a durable file `/f` (inode 2) of `size` bytes of
/// `o`, with `events` after it.
fn trace_with_file(size: u64, ops: Vec<TraceOp>) -> Trace {
    let root = InitInode {
        ino: ROOT,
        kind: Kind::Dir,
        attrs: attrs(0o755),
        size: 0,
        target: None,
        data: None,
        extents: Vec::new(),
        xattrs: Vec::new(),
    };
    let f = InitInode {
        ino: 2,
        kind: Kind::File,
        attrs: attrs(0o644),
        size,
        target: None,
        data: None,
        extents: vec![Extent {
            offset: 0,
            data: Data(Bytes::from(vec![b'o'; size as usize])),
        }],
        xattrs: Vec::new(),
    };
    let events = ops
        .into_iter()
        .zip(1..)
        .map(|(op, n)| Event {
            n,
            op,
            paths: vec!["/f".into()],
            caller: None,
        })
        .collect();
    Trace {
        header: Header {
            durafs_trace: TRACE_VERSION,
            model: crate::model::Persistence::Ext4,
            inodes: vec![root, f],
            entries: vec![InitEntry {
                dir: ROOT,
                name: Text(b"f".to_vec()),
                ino: 2,
            }],
        },
        events,
    }
}

/// A failed fsync is an event of its own: written as `fsync-failed` with
/// its semantics and seed, read back, and replayed to the state the model
/// reaches by the same call (the pages it wrote durable, the one that
/// failed marked clean under ext4, pending again under strict).
#[test]
fn a_failed_fsync_is_traced_and_replays_to_the_same_pages() {
    use crate::model::fsync_fail::written_pages;
    use crate::model::store::read_all;
    let seed = (0..1000)
        .find(|s| written_pages(&[0, 1, 2], *s) == [true, false, true])
        .unwrap();
    let page = 4096usize;
    for sem in [FsyncFailure::Ext4, FsyncFailure::Strict] {
        let failed = TraceOp::FsyncFailed {
            ino: 2,
            datasync: true,
            sem,
            seed,
        };
        let write = TraceOp::Write {
            ino: 2,
            offset: 0,
            data: Data(Bytes::from(vec![b'n'; 3 * page])),
            t: Timestamp::default(),
        };
        let trace = trace_with_file(3 * page as u64, vec![write, failed.clone()]);
        let mut text = Vec::new();
        trace.write(&mut text).unwrap();
        let line = String::from_utf8(text.clone()).unwrap();
        let want =
            format!(r#""op":"fsync-failed","ino":2,"datasync":true,"sem":"{sem}","seed":{seed}"#);
        assert!(line.contains(&want), "{line}");
        assert_eq!(Trace::read(text.as_slice()).unwrap(), trace);
        assert_eq!(failed.name(), "fsync-failed");
        assert!(TraceOp::NAMES.contains(&"fsync-failed"));
        assert!(failed.is_persistence_point() && failed.is_user_op());
        assert_eq!(
            trace.events[1].to_string(),
            format!("#2 fsync-failed /f (fdatasync, {sem}, seed {seed})")
        );

        let mut r = Replayer::new(&trace.header).unwrap();
        for ev in &trace.events {
            r.apply(ev).unwrap();
        }
        let mut durable = Vec::new();
        r.durable().read(2, 0, 3 * page as u64, &mut durable);
        let want: Vec<u8> = [b'n', b'o', b'n']
            .iter()
            .flat_map(|b| vec![*b; page])
            .collect();
        assert_eq!(durable, want, "{sem}");
        let live = read_all(r.model(), r.durable(), 2).unwrap();
        assert_eq!(live, vec![b'n'; 3 * page], "{sem}");
        let pending = r.pending();
        match sem {
            FsyncFailure::Strict => {
                assert!(!pending.is_empty());
                assert!(pending.iter().all(|p| r.event_of(p.seq) == Some(2)));
            }
            _ => assert!(pending.is_empty(), "{pending:?}"),
        }
    }
}
