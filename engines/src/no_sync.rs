//! Checks that each engine's vulnerable form makes nothing durable and that
//! its crash-safe form does, by running it on a thread where every call that
//! makes data durable fails.
//!
//! A seccomp filter installed on that thread makes `fsync`, `fdatasync`,
//! `sync`, `syncfs`, `sync_file_range` and `msync` fail with `EDOM` (an errno
//! nothing else in these code paths returns). Filters are per thread and die
//! with it, so the other tests are unaffected.

use std::io;
use std::path::Path;

use crate::btree::{BTree, BTreeOptions};
use crate::hash_index::{HashIndex, HashIndexOptions};
use crate::log_hash::{LogHash, LogHashOptions};
use crate::lsm::{Lsm, LsmOptions};
use crate::sstable::{SSTable, SSTableWriter};
use crate::{Durability, Error, KvStore, Result};

#[cfg(target_arch = "x86_64")]
const SYNC_CALLS: [u32; 6] = [74, 75, 162, 306, 277, 26];
#[cfg(target_arch = "aarch64")]
const SYNC_CALLS: [u32; 6] = [82, 83, 81, 267, 84, 227];

const EDOM: i32 = 33;

#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

unsafe extern "C" {
    fn prctl(option: i32, ...) -> i32;
}

/// Makes every durability call of the current thread fail with `EDOM`.
fn forbid_sync_on_this_thread() {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JEQ_K: u16 = 0x15;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    const PR_SET_NO_NEW_PRIVS: i32 = 38;
    const PR_SET_SECCOMP: i32 = 22;
    const SECCOMP_MODE_FILTER: u64 = 2;
    let n = SYNC_CALLS.len() as u8;
    // Load the syscall number (offset 0 of `struct seccomp_data`), compare it
    // with each durability call, and return EDOM on a match.
    let mut prog = vec![SockFilter {
        code: BPF_LD_W_ABS,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    for (i, &nr) in SYNC_CALLS.iter().enumerate() {
        prog.push(SockFilter {
            code: BPF_JMP_JEQ_K,
            jt: n - i as u8,
            jf: 0,
            k: nr,
        });
    }
    prog.push(SockFilter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: SECCOMP_RET_ALLOW,
    });
    prog.push(SockFilter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: SECCOMP_RET_ERRNO | EDOM as u32,
    });
    let fprog = SockFprog {
        len: prog.len() as u16,
        filter: prog.as_ptr(),
    };
    // SAFETY: plain prctl calls; `fprog` points at a live, well-formed BPF
    // program for the duration of the call (the kernel copies it).
    let r = unsafe {
        if prctl(PR_SET_NO_NEW_PRIVS, 1u64, 0u64, 0u64, 0u64) != 0 {
            -1
        } else {
            prctl(
                PR_SET_SECCOMP,
                SECCOMP_MODE_FILTER,
                &fprog as *const SockFprog,
            )
        }
    };
    assert_eq!(
        r,
        0,
        "installing the seccomp filter: {}",
        io::Error::last_os_error()
    );
}

/// Runs `f` on a fresh thread on which every durability call fails.
fn without_sync<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            forbid_sync_on_this_thread();
            f()
        });
        h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// True when `r` failed because a durability call was refused.
fn refused<T>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::Io(e)) if e.raw_os_error() == Some(EDOM))
}

/// Creates a store in a missing directory, writes, deletes, runs
/// maintenance twice (the second time over data it already wrote), closes,
/// damages the newest log's tail, reopens (which cuts it) and closes again.
fn workload<S: KvStore + 'static>(
    root: &Path,
    open: impl Fn(&Path) -> Result<S>,
    log_file: impl Fn(&Path) -> std::path::PathBuf,
) -> Result<()> {
    let dir = root.join("a/store");
    let mut s = open(&dir)?;
    for round in 0..3u8 {
        for k in 0..40u8 {
            s.put(&[b'k', k], &[round; 30])?;
        }
        for k in (0..40u8).step_by(3) {
            s.delete(&[b'k', k])?;
        }
        s.maintain()?;
    }
    s.put(b"last", b"value")?;
    Box::new(s).close()?;
    let log = log_file(&dir);
    let mut bytes = std::fs::read(&log)?;
    bytes.extend_from_slice(&[0x55; 5]);
    std::fs::write(&log, &bytes)?;
    let mut s = open(&dir)?;
    assert_eq!(s.get(b"last")?.as_deref(), Some(&b"value"[..]));
    s.put(b"after", b"reopen")?;
    Box::new(s).close()
}

fn newest(dir: &Path, ext: &str) -> std::path::PathBuf {
    let ids = crate::segment::list_ids(dir, ext).unwrap();
    let id = *ids.last().unwrap();
    dir.join(crate::segment::segment_name(id, ext))
}

fn btree(root: &Path, d: Durability) -> Result<()> {
    let o = BTreeOptions {
        durability: d,
        checkpoint_bytes: 512,
    };
    workload(
        root,
        |dir| BTree::open(dir, o),
        |dir| dir.join(crate::btree::WAL_FILE),
    )
}

fn lsm(root: &Path, o: LsmOptions) -> Result<()> {
    let o = LsmOptions {
        memtable_bytes: 600,
        compact_after: 2,
        ..o
    };
    workload(
        root,
        |dir| Lsm::open(dir, o),
        |dir| dir.join(crate::lsm::wal::WAL_FILE),
    )
}

fn log_hash(root: &Path, d: Durability) -> Result<()> {
    let o = LogHashOptions {
        durability: d,
        segment_bytes: 300,
    };
    workload(
        root,
        |dir| LogHash::open(dir, o),
        |dir| newest(dir, crate::log_hash::SEGMENT_EXT),
    )
}

fn hash_index(root: &Path, sync_writes: bool) -> Result<()> {
    let o = HashIndexOptions {
        sync_writes,
        segment_bytes: 300,
    };
    // `close` seals the newest segment; the damaged tail is cut from it and
    // its hint, now stale, is ignored.
    workload(
        root,
        |dir| HashIndex::open(dir, o),
        |dir| newest(dir, crate::hash_index::SEGMENT_EXT),
    )
}

fn sstable(root: &Path, d: Durability) -> Result<()> {
    let path = root.join("t.sst");
    let mut w = SSTableWriter::create(&path, d)?;
    w.add(b"a", Some(b"1"))?;
    w.add(b"b", None)?;
    w.finish()?;
    assert_eq!(SSTable::open(&path)?.len(), 2);
    Ok(())
}

/// Runs `run` on a fresh directory with durability calls refused.
fn run(run: impl FnOnce(&Path) -> Result<()> + Send) -> Result<()> {
    let root = tempfile::tempdir().unwrap();
    without_sync(|| run(root.path()))
}

#[test]
fn the_filter_refuses_fsync_on_its_thread_only() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("f")).unwrap();
    let r = without_sync(|| durafs::fsio::fsync_file(&f));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(EDOM));
    let r = without_sync(|| durafs::fsio::fsync_dir(dir.path()));
    assert_eq!(r.unwrap_err().raw_os_error(), Some(EDOM));
    durafs::fsio::fsync_file(&f).unwrap();
}

/// The vulnerable form of every engine works with every durability call
/// refused: it fsyncs nothing, not when it creates its files, not in a
/// checkpoint, flush, compaction or merge, not when it cuts a torn tail.
#[test]
fn flush_forms_make_nothing_durable() {
    let flush = Durability::Flush;
    run(|r| btree(r, flush)).expect("btree");
    run(|r| lsm(r, LsmOptions::all(flush))).expect("lsm");
    run(|r| log_hash(r, flush)).expect("log_hash");
    run(|r| hash_index(r, false)).expect("hash_index");
    run(|r| sstable(r, flush)).expect("sstable");
}

/// The crash-safe form of every engine fails when durability calls are
/// refused (so the test above can fail), and each LSM setting alone decides
/// its own durability calls: the WAL's in `put`, the table's and the flush
/// order's in `flush`.
#[test]
fn fsync_forms_need_durability_calls() {
    let fsync = Durability::FSYNC;
    assert!(refused(&run(|r| btree(r, fsync))), "btree");
    assert!(refused(&run(|r| lsm(r, LsmOptions::all(fsync)))), "lsm");
    assert!(refused(&run(|r| log_hash(r, fsync))), "log_hash");
    assert!(refused(&run(|r| hash_index(r, true))), "hash_index");
    assert!(refused(&run(|r| sstable(r, fsync))), "sstable");

    let only = LsmOptions {
        memtable_bytes: 1 << 20,
        ..LsmOptions::all(Durability::Flush)
    };
    for (what, o, put_syncs) in [
        ("wal", LsmOptions { wal: fsync, ..only }, true),
        (
            "sstable",
            LsmOptions {
                sstable: fsync,
                ..only
            },
            false,
        ),
        (
            "flush order",
            LsmOptions {
                flush_order: fsync,
                ..only
            },
            false,
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        drop(Lsm::open(root.path(), o).unwrap());
        let r = without_sync(|| -> Result<Result<()>> {
            let mut db = Lsm::open(root.path(), o)?;
            let put = db.put(b"k", b"v");
            if put_syncs {
                return Ok(put);
            }
            put?;
            db.delete(b"k")?;
            db.put(b"k", b"w")?;
            Ok(db.flush())
        });
        assert!(refused(&r.unwrap()), "only {what} at Fsync");
    }
}
