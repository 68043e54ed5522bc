//! The two FUSE transports (`durafs::transport`): FUSE over io_uring
//! carries a mount's requests through its rings, and a volume behaves the
//! same over either, a cut included. The whole suite also runs over
//! io_uring with `DURAFS_TRANSPORT=uring` (`.ci/run`).

use durafs::fs::FsOptions;
use durafs::model::Persistence;
use durafs::model::crash::Policy;
use durafs::mount::MountOptions;
use durafs::transport::Transport;
use durafs_tests::{Vol, fsync_dir};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

fn vol(transport: Transport) -> Vol {
    Vol::with_mount(
        FsOptions {
            persistence: Persistence::Posix,
            ..FsOptions::default()
        },
        MountOptions {
            transport: Some(transport),
            ..MountOptions::default()
        },
    )
}

/// Requests the rings served so far.
fn ring_requests(v: &Vol) -> u64 {
    v.mounted().io_uring_requests().expect("a ring counter")
}

#[test]
fn io_uring_carries_the_requests_of_its_mount() {
    let v = vol(Transport::Uring);
    assert_eq!(v.mounted().transport(), Transport::Uring);
    let info = v.fs().info();
    assert_eq!(info.transport, "uring");
    let before = ring_requests(&v);
    let mut f = fs::File::create(v.p("f")).expect("create");
    for i in 0..32u8 {
        f.write_all(&[i; 4096]).expect("write 4 KiB");
    }
    f.sync_all().expect("fsync");
    drop(f);
    fs::rename(v.p("f"), v.p("g")).expect("rename");
    let back = fs::read(v.p("g")).expect("read");
    assert_eq!(back.len(), 32 * 4096);
    assert!(
        back.chunks(4096)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8))
    );
    // 32 writes, an fsync, a rename, and their opens, lookups and reads.
    let served = ring_requests(&v) - before;
    assert!(
        served >= 35,
        "only {served} requests came through the rings"
    );
}

/// The rings submit their commits as `SCHED_IDLE`, so that the caller a
/// commit wakes stays on its CPU, and return to `SCHED_OTHER` before they
/// wait (`vendor/fuser/src/uring_wake.rs`).
#[test]
fn io_uring_commits_hand_the_cpu_to_the_caller() {
    let v = vol(Transport::Uring);
    let f = fs::File::create(v.p("f")).expect("create");
    for i in 0..64u64 {
        f.write_all_at(&[1; 4096], i * 4096).expect("write 4 KiB");
    }
    let handed = v.mounted().io_uring_hand_offs().expect("a ring counter");
    assert!(handed >= 1, "no commit handed off its CPU");
}

#[test]
fn dev_fuse_mounts_have_no_rings() {
    let v = vol(Transport::Dev);
    assert_eq!(v.mounted().transport(), Transport::Dev);
    fs::write(v.p("f"), b"x").expect("write");
    assert_eq!(v.mounted().io_uring_requests(), None);
    assert_eq!(v.mounted().io_uring_hand_offs(), None);
    assert_eq!(v.fs().info().transport, "dev");
}

/// The largest requests and replies fill a ring entry's payload buffer:
/// 1 MiB writes (`max_write`) and reads, and long directory listings.
#[test]
fn the_largest_writes_reads_and_listings_fit_a_ring_entry() {
    let v = vol(Transport::Uring);
    let data: Vec<u8> = (0..4u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut f = fs::File::create(v.p("big")).expect("create");
    f.write_all(&data).expect("write 4 MiB at once");
    f.sync_all().expect("fsync");
    let mut back = vec![0u8; data.len()];
    let mut r = fs::File::open(v.p("big")).expect("open");
    r.read_exact(&mut back).expect("read 4 MiB");
    assert!(back == data, "4 MiB read back differ");
    fs::create_dir(v.p("d")).expect("mkdir");
    let names: Vec<String> = (0..1500)
        .map(|i| format!("entry-with-a-long-name-{i:05}"))
        .collect();
    for n in &names {
        fs::write(v.p(&format!("d/{n}")), b"").expect("create");
    }
    let mut listed: Vec<String> = fs::read_dir(v.p("d"))
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    listed.sort();
    assert_eq!(listed, names);
}

/// Writers on both CPUs at once: requests go to both rings, and every
/// writer reads back its own bytes.
#[test]
fn concurrent_writers_over_io_uring_each_read_back_their_own_bytes() {
    let v = vol(Transport::Uring);
    std::thread::scope(|s| {
        for w in 0..4u8 {
            let path = v.p(&format!("w{w}"));
            s.spawn(move || {
                let f = fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .expect("create");
                let mut off = 0u64;
                for round in 0..200u32 {
                    let len = 1 + (round as usize * 7919 + w as usize * 104_729) % 70_000;
                    let chunk = vec![w ^ round as u8; len];
                    f.write_all_at(&chunk, off).expect("write");
                    let mut back = vec![0u8; len];
                    f.read_exact_at(&mut back, off).expect("read");
                    assert!(back == chunk, "writer {w} round {round} read other bytes");
                    off += len as u64;
                }
                f.sync_all().expect("fsync");
            });
        }
    });
    // 800 writes at least (the reads may come from the page cache).
    let served = ring_requests(&v);
    assert!(served >= 800, "only {served} requests through the rings");
}

/// What a cut keeps and loses is the model's business: the same history
/// gives the same post-crash tree over either transport.
#[test]
fn a_cut_over_io_uring_keeps_what_a_cut_over_dev_fuse_keeps() {
    let mut trees = Vec::new();
    for t in [Transport::Dev, Transport::Uring] {
        let mut v = vol(t);
        fs::create_dir(v.p("d")).expect("mkdir");
        fs::write(v.p("d/synced"), b"durable").expect("write");
        durafs_tests::fsync_file(&v.p("d/synced"));
        fsync_dir(&v.p("d"));
        fsync_dir(&v.mnt);
        fs::write(v.p("d/unsynced"), b"lost").expect("write");
        let f = fs::OpenOptions::new()
            .append(true)
            .open(v.p("d/synced"))
            .expect("open");
        (&f).write_all(b" and more").expect("append");
        drop(f);
        let summary = v.cut(Policy::DropAll);
        assert!(
            summary.ops_lost >= 2,
            "{t}: the cut lost {} operations",
            summary.ops_lost
        );
        v.remount();
        assert_eq!(
            v.mounted().transport(),
            t,
            "the remount keeps the transport"
        );
        let mut tree: Vec<(String, Vec<u8>)> = fs::read_dir(v.p("d"))
            .expect("readdir")
            .map(|e| {
                let e = e.expect("entry");
                let name = e.file_name().into_string().expect("utf8");
                (name, fs::read(e.path()).expect("read"))
            })
            .collect();
        tree.sort();
        trees.push(tree);
    }
    assert_eq!(trees[0], vec![("synced".to_string(), b"durable".to_vec())]);
    assert_eq!(trees[0], trees[1]);
}
