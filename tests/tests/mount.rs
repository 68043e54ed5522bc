//! Mounted tests: a real FUSE mount over a fresh backing directory, cuts,
//! and remounts over what the cut left. Each test uses its own temp dirs;
//! the volume unmounts on drop (also when a test panics). Nothing sleeps:
//! every FUSE call returns only after durafs replied.

use durafs::model::Persistence;
use durafs::model::crash::Policy;
use durafs_tests::{Vol, fsync_dir, fsync_file};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

#[test]
fn only_fsynced_bytes_survive_a_drop_all_cut_and_open_files_fail_after_it() {
    let mut v = Vol::new(Persistence::Posix);
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(v.p("f"))
        .expect("create");
    f.write_all(b"durable-part").expect("write");
    f.sync_all().expect("fsync");
    fsync_dir(&v.mnt);
    f.write_all(b"-unsynced-tail").expect("write tail");
    let mut live = Vec::new();
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_to_end(&mut live).expect("read live");
    assert_eq!(live, b"durable-part-unsynced-tail");
    let cut = v.cut(Policy::DropAll);
    assert_eq!((cut.ops_lost, cut.bytes_lost), (1, 14));
    // The process kept its file open across the cut: nothing it writes
    // lands, and nothing it reads comes from a stale kernel cache.
    let err = f
        .write_all(b"after the cut")
        .expect_err("writes fail after the cut");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::ENOTCONN)),
        "{err}"
    );
    f.seek(SeekFrom::Start(0)).expect("seek");
    let mut stale = Vec::new();
    let err = f
        .read_to_end(&mut stale)
        .expect_err("reads fail after the cut");
    assert!(
        matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::ENOTCONN)),
        "{err}"
    );
    drop(f);
    v.remount();
    assert_eq!(
        fs::read(v.p("f")).expect("read after remount"),
        b"durable-part"
    );
}

#[test]
fn status_reports_the_exact_unsynced_range() {
    let v = Vol::new(Persistence::Posix);
    let mut f = File::create(v.p("f")).expect("create");
    f.write_all(b"0123456789ab").expect("write");
    f.sync_all().expect("fsync");
    f.write_all(b"cdefghijklmnop").expect("write tail");
    let rep = v.fs().status();
    let file = rep
        .files
        .iter()
        .find(|r| r.path == "f")
        .expect("f in the report");
    assert_eq!(file.ranges, vec![(12, 26)]);
    assert_eq!(file.unsynced_bytes, 14);
    assert_eq!(file.size_change, Some((12, 26)));
    assert_eq!(
        rep.names.len(),
        1,
        "the create is unsynced: {:?}",
        rep.names
    );
}

/// Creates `f`, writes and fsyncs it (but not the directory), cuts, and
/// returns whether `f` exists after a remount, with its content.
fn fsynced_file_without_dir_fsync(p: Persistence) -> Option<Vec<u8>> {
    let mut v = Vol::new(p);
    {
        let mut f = File::create(v.p("f")).expect("create");
        f.write_all(b"payload").expect("write");
        f.sync_all().expect("fsync file only");
    }
    v.cut(Policy::DropAll);
    v.remount();
    match fs::read(v.p("f")) {
        Ok(d) => Some(d),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("reading f after remount: {e}"),
    }
}

#[test]
fn file_fsync_without_dir_fsync_is_lost_under_posix() {
    assert_eq!(fsynced_file_without_dir_fsync(Persistence::Posix), None);
}

#[test]
fn file_fsync_without_dir_fsync_survives_under_journal() {
    assert_eq!(
        fsynced_file_without_dir_fsync(Persistence::Ext4),
        Some(b"payload".to_vec())
    );
}

#[test]
fn unsynced_rename_over_a_file_is_undone_by_a_cut() {
    let mut v = Vol::new(Persistence::Posix);
    fs::write(v.p("a"), b"old content").expect("write a");
    fs::write(v.p("b"), b"new content").expect("write b");
    for n in ["a", "b"] {
        OpenOptions::new()
            .write(true)
            .open(v.p(n))
            .expect("open")
            .sync_all()
            .expect("fsync");
    }
    fsync_dir(&v.mnt);
    fs::rename(v.p("b"), v.p("a")).expect("rename");
    assert_eq!(fs::read(v.p("a")).expect("read a"), b"new content");
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(
        fs::read(v.p("a")).expect("read a after cut"),
        b"old content"
    );
    assert_eq!(
        fs::read(v.p("b")).expect("read b after cut"),
        b"new content"
    );
}

#[test]
fn fsynced_rename_and_directories_survive_and_backing_is_plain() {
    let mut v = Vol::new(Persistence::Posix);
    fs::create_dir(v.p("d")).expect("mkdir");
    fs::write(v.p("d/tmp"), b"atomic").expect("write");
    OpenOptions::new()
        .write(true)
        .open(v.p("d/tmp"))
        .expect("open")
        .sync_all()
        .expect("fsync");
    fs::rename(v.p("d/tmp"), v.p("d/final")).expect("rename");
    fsync_dir(&v.p("d"));
    fsync_dir(&v.mnt);
    assert_eq!(
        fs::read(v.backing.join("d/final")).expect("plain file in backing"),
        b"atomic"
    );
    assert!(
        fs::read_dir(&v.mnt)
            .expect("readdir")
            .all(|e| e.map(|e| e.file_name() != ".durafs").unwrap_or(true))
    );
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(fs::read(v.p("d/final")).expect("read after cut"), b"atomic");
    assert!(!v.p("d/tmp").exists());
}

#[test]
fn meta_first_cut_after_write_and_rename_shows_the_zero_filled_file() {
    let mut v = Vol::new(Persistence::Posix);
    // The classic: write a temp file, rename it over the real name, never
    // fsync the data. A meta-first crash keeps the rename and the size, not
    // the bytes.
    fs::write(v.p("tmp"), b"new config contents").expect("write tmp");
    fs::rename(v.p("tmp"), v.p("config")).expect("rename");
    fsync_dir(&v.mnt);
    let cut = v.cut(Policy::MetaFirst);
    assert_eq!(cut.bytes_lost, 19);
    v.remount();
    assert_eq!(
        fs::read(v.p("config")).expect("config exists after the cut"),
        vec![0u8; 19]
    );
    assert!(!v.p("tmp").exists());
}

#[test]
fn eight_threads_keep_every_fsync_acknowledged_byte() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 40;
    let mut v = Vol::new(Persistence::Posix);
    for t in 0..THREADS {
        File::create(v.p(&format!("t{t}"))).expect("create");
    }
    fsync_dir(&v.mnt);
    let acked: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let path = v.p(&format!("t{t}"));
                s.spawn(move || {
                    let mut f = OpenOptions::new().append(true).open(path).expect("open");
                    let mut acked = Vec::new();
                    let mut written = Vec::new();
                    for r in 0..ROUNDS {
                        let rec = format!("thread {t} record {r}\n").into_bytes();
                        f.write_all(&rec).expect("write");
                        written.extend_from_slice(&rec);
                        if r % 3 == 0 {
                            f.sync_data().expect("fdatasync");
                            acked = written.clone();
                        }
                    }
                    acked
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    v.cut(Policy::DropAll);
    v.remount();
    for (t, want) in acked.iter().enumerate() {
        let got = fs::read(v.p(&format!("t{t}"))).expect("read after the cut");
        assert_eq!(&got, want, "thread {t}: exactly the acknowledged bytes");
    }
}

#[test]
fn dirty_limit_writes_back_the_oldest_data_and_reports_it() {
    let mut v = Vol::with(durafs::fs::FsOptions {
        dirty_limit: 64 << 10,
        ..Default::default()
    });
    for n in ["old", "new"] {
        File::create(v.p(n)).expect("create");
    }
    fsync_dir(&v.mnt);
    let chunk = vec![7u8; 48 << 10];
    fs::write(v.p("old"), &chunk).expect("write old");
    fs::write(v.p("new"), &chunk).expect("write new: passes the limit");
    let info = v.fs().info();
    assert!(info.writebacks >= 1, "{info:?}");
    assert_eq!(info.written_back_bytes, 48 << 10, "{info:?}");
    assert!(info.dirty_bytes <= 64 << 10, "{info:?}");
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(fs::read(v.p("old")).expect("old"), chunk, "written back");
    assert_eq!(fs::read(v.p("new")).expect("new"), b"", "still dirty: lost");
}

#[test]
fn real_fsync_fsyncs_the_backing_directory_and_only_then() {
    for real_fsync in [false, true] {
        let v = Vol::with(durafs::fs::FsOptions {
            real_fsync,
            ..Default::default()
        });
        fs::write(v.p("f"), b"data").expect("write");
        fsync_file(&v.p("f"));
        fsync_dir(&v.mnt);
        let n = v.fs().info().backing_fsyncs;
        assert_eq!(n > 0, real_fsync, "real_fsync {real_fsync}: {n} fsyncs");
    }
}

#[test]
fn listing_with_attributes_matches_each_file() {
    let v = Vol::new(Persistence::Posix);
    fs::create_dir(v.p("d")).expect("mkdir");
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        fs::write(v.p(&format!("d/{n}")), vec![1u8; i * 100]).expect("write");
    }
    std::os::unix::fs::symlink("a", v.p("d/link")).expect("symlink");
    let mut seen = Vec::new();
    for e in fs::read_dir(v.p("d")).expect("readdir") {
        let e = e.expect("entry");
        let md = e.metadata().expect("metadata");
        let direct = fs::symlink_metadata(e.path()).expect("lstat");
        assert_eq!(md.len(), direct.len());
        assert_eq!(
            e.file_type().expect("type").is_symlink(),
            direct.file_type().is_symlink()
        );
        seen.push((e.file_name().into_string().expect("utf8"), md.len()));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("a".into(), 0),
            ("b".into(), 100),
            ("c".into(), 200),
            ("link".into(), 1)
        ]
    );
}

#[test]
fn sparse_and_hole_queries_behave_like_posix() {
    let v = Vol::new(Persistence::Posix);
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(v.p("sparse"))
        .expect("create");
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"end", 1 << 30).expect("write far away");
    let mut buf = [9u8; 16];
    f.read_exact_at(&mut buf, 4096).expect("read the hole");
    assert_eq!(buf, [0u8; 16]);
    assert_eq!(
        v.fs().info().dirty_bytes,
        3,
        "a sparse write holds its bytes only"
    );
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor.
    let hole = unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_HOLE) };
    assert_eq!(hole, (1 << 30) + 3, "SEEK_HOLE finds the end of the file");
    // SAFETY: a valid descriptor.
    let past = unsafe { libc::lseek(f.as_raw_fd(), (1 << 30) + 3, libc::SEEK_DATA) };
    assert_eq!(past, -1, "SEEK_DATA past the end is ENXIO");
}
