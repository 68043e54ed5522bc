//! Bad input through the mount: each gets the errno a real filesystem gives
//! (compared against a plain directory on the host filesystem where that
//! makes sense), and the volume keeps serving afterwards (every test ends
//! its cases with a normal write + read). Includes a backing store that runs
//! out of space (a small tmpfs, unmounted in `Drop`).

use durafs::fs::FsOptions;
use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy};
use durafs::mount::Mounted;
use durafs_tests::{Vol, cpath, fsync_dir, mount_at, renameat2};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The volume still serves: a normal write and read of a fresh file.
fn alive(mnt: &Path, tag: &str) {
    let p = mnt.join(format!("alive-{tag}"));
    let data = format!("still serving after {tag}");
    fs::write(&p, &data).unwrap_or_else(|e| panic!("after {tag}: write: {e}"));
    assert_eq!(
        fs::read(&p).unwrap_or_else(|e| panic!("after {tag}: read: {e}")),
        data.as_bytes(),
        "after {tag}"
    );
    fs::remove_file(&p).unwrap_or_else(|e| panic!("after {tag}: unlink: {e}"));
}

fn errno_of<T>(r: io::Result<T>) -> Option<i32> {
    r.err().map(|e| e.raw_os_error().unwrap_or(-1))
}

/// Runs `op` in a plain host directory and in a fresh directory of the
/// mount; both must give the same result (`None` for success), which must
/// be `want`.
fn like_host(v: &Vol, what: &str, want: Option<i32>, op: impl Fn(&Path) -> io::Result<()>) {
    let host = tempfile::tempdir().expect("host tempdir");
    let dir = v
        .mnt
        .join(format!("case-{}", what.replace([' ', '/'], "_")));
    fs::create_dir(&dir).expect("mkdir case dir");
    let h = errno_of(op(host.path()));
    let m = errno_of(op(&dir));
    assert_eq!(h, want, "{what}: the host filesystem gives {h:?}");
    assert_eq!(
        m, h,
        "{what}: durafs gives {m:?}, the host filesystem {h:?} (errno numbers)"
    );
    alive(&v.mnt, what);
}

#[test]
fn name_length_limits_match_the_host() {
    let v = Vol::new(Persistence::Posix);
    let n255 = "n".repeat(255);
    let n256 = "n".repeat(256);
    like_host(&v, "create 255", None, |d| {
        fs::write(d.join(&n255), b"x")?;
        assert_eq!(fs::read(d.join(&n255))?, b"x");
        let names: Vec<_> = fs::read_dir(d)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        assert_eq!(names, vec![OsStr::new(&n255).to_owned()]);
        Ok(())
    });
    like_host(&v, "mkdir 255", None, |d| fs::create_dir(d.join(&n255)));
    like_host(&v, "create 256", Some(libc::ENAMETOOLONG), |d| {
        fs::write(d.join(&n256), b"x")
    });
    like_host(&v, "mkdir 256", Some(libc::ENAMETOOLONG), |d| {
        fs::create_dir(d.join(&n256))
    });
    like_host(&v, "symlink 256", Some(libc::ENAMETOOLONG), |d| {
        std::os::unix::fs::symlink("t", d.join(&n256))
    });
    like_host(&v, "rename to 256", Some(libc::ENAMETOOLONG), |d| {
        fs::write(d.join("a"), b"a")?;
        fs::rename(d.join("a"), d.join(&n256))
    });
    like_host(&v, "link to 256", Some(libc::ENAMETOOLONG), |d| {
        fs::write(d.join("b"), b"b")?;
        fs::hard_link(d.join("b"), d.join(&n256))
    });
    // A symlink target of 4095 bytes is fine; 4096 is ENAMETOOLONG.
    like_host(&v, "symlink target 4095", None, |d| {
        let t = "t".repeat(4095);
        std::os::unix::fs::symlink(&t, d.join("long"))?;
        assert_eq!(fs::read_link(d.join("long"))?.as_os_str().len(), 4095);
        Ok(())
    });
    like_host(&v, "symlink target 4096", Some(libc::ENAMETOOLONG), |d| {
        std::os::unix::fs::symlink("t".repeat(4096), d.join("toolong"))
    });
}

/// ext4, tmpfs and every other Linux filesystem refuse to look up a name
/// longer than `NAME_MAX` with `ENAMETOOLONG`, and so does durafs
/// (regression: it once answered `ENOENT`).
#[test]
fn lookup_of_a_too_long_name_is_enametoolong() {
    let v = Vol::new(Persistence::Posix);
    let n256 = "n".repeat(256);
    like_host(&v, "stat 256", Some(libc::ENAMETOOLONG), |d| {
        fs::metadata(d.join(&n256)).map(|_| ())
    });
    like_host(&v, "unlink 256", Some(libc::ENAMETOOLONG), |d| {
        fs::remove_file(d.join(&n256))
    });
}

#[test]
fn non_utf8_names_work_and_are_listed_back_exactly() {
    let mut v = Vol::new(Persistence::Posix);
    let names: [&[u8]; 4] = [
        b"caf\xe9",
        b"\xff\xfe\xfd",
        b"a\x01b\x7f",
        b"\xc3\x28-bad-utf8",
    ];
    for (i, n) in names.iter().enumerate() {
        fs::write(v.mnt.join(OsStr::from_bytes(n)), [i as u8; 3]).expect("create");
    }
    fs::create_dir(v.mnt.join(OsStr::from_bytes(b"dir\x80"))).expect("mkdir");
    fs::rename(
        v.mnt.join(OsStr::from_bytes(names[0])),
        v.mnt.join(OsStr::from_bytes(b"dir\x80/caf\xe9-moved")),
    )
    .expect("rename");
    let listed = |root: &Path| -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = fs::read_dir(root)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().as_bytes().to_vec())
            .filter(|n| n != b".durafs")
            .collect();
        out.sort();
        out
    };
    let mut want: Vec<Vec<u8>> = names[1..].iter().map(|n| n.to_vec()).collect();
    want.push(b"dir\x80".to_vec());
    want.sort();
    assert_eq!(listed(&v.mnt), want);
    assert_eq!(
        listed(&v.mnt.join(OsStr::from_bytes(b"dir\x80"))),
        vec![b"caf\xe9-moved".to_vec()]
    );
    // Durable with those exact bytes, in BACKING and after a cut.
    v.fs().sync().expect("sync");
    assert_eq!(listed(&v.backing), want);
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(listed(&v.mnt), want);
    assert_eq!(
        fs::read(v.mnt.join(OsStr::from_bytes(b"dir\x80/caf\xe9-moved"))).expect("read"),
        [0u8; 3]
    );
    assert_eq!(
        fs::read(v.mnt.join(OsStr::from_bytes(names[1]))).expect("read"),
        [1u8; 3]
    );
    alive(&v.mnt, "non-utf8 names");
}

#[test]
fn a_hundred_nested_directories_work_and_survive() {
    let mut v = Vol::new(Persistence::Posix);
    let mut p = v.mnt.clone();
    let mut rel = PathBuf::new();
    for i in 0..100 {
        p.push(format!("level-{i:03}"));
        rel.push(format!("level-{i:03}"));
        fs::create_dir(&p).expect("mkdir");
    }
    fs::write(p.join("leaf"), b"deep").expect("write leaf");
    assert_eq!(fs::read(p.join("leaf")).expect("read leaf"), b"deep");
    // Rename the top: the whole chain moves.
    fs::rename(v.p("level-000"), v.p("top")).expect("rename top");
    let moved = v
        .p("top")
        .join(rel.strip_prefix("level-000").expect("prefix"));
    assert_eq!(fs::read(moved.join("leaf")).expect("read moved"), b"deep");
    v.fs().sync().expect("sync");
    assert_eq!(
        fs::read(
            v.backing
                .join("top")
                .join(rel.strip_prefix("level-000").expect("prefix"))
                .join("leaf")
        )
        .expect("deep file in backing"),
        b"deep"
    );
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(
        fs::read(moved.join("leaf")).expect("after remount"),
        b"deep"
    );
    // Removing it bottom-up works too.
    let mut d = moved.clone();
    fs::remove_file(d.join("leaf")).expect("unlink leaf");
    while d != v.mnt {
        fs::remove_dir(&d).expect("rmdir");
        d.pop();
    }
    alive(&v.mnt, "deep paths");
}

fn rw(p: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(p)
        .expect("open")
}

#[test]
fn a_write_at_2_pow_40_is_sparse_and_survives() {
    let mut v = Vol::new(Persistence::Posix);
    let f = rw(&v.p("sparse"));
    f.write_all_at(b"far", 1 << 40).expect("write at 2^40");
    assert_eq!(f.metadata().expect("stat").len(), (1 << 40) + 3);
    for off in [0u64, 4096, (1 << 40) - 4096, (1 << 40) - 1] {
        let mut buf = [7u8; 16];
        let n = f.read_at(&mut buf, off).expect("read the hole");
        assert_eq!(n, 16.min(((1u64 << 40) + 3 - off) as usize));
        assert!(
            buf[..n.min(((1u64 << 40) - off) as usize)]
                .iter()
                .all(|&b| b == 0)
        );
    }
    let mut buf = [0u8; 8];
    assert_eq!(f.read_at(&mut buf, 1 << 40).expect("read the end"), 3);
    assert_eq!(&buf[..3], b"far");
    f.sync_all().expect("fsync");
    fsync_dir(&v.mnt);
    drop(f);
    let md = fs::metadata(v.backing.join("sparse")).expect("backing file");
    assert_eq!(md.len(), (1 << 40) + 3);
    use std::os::unix::fs::MetadataExt;
    assert!(md.blocks() < 1024, "the backing file is sparse: {md:?}");
    v.cut(Policy::DropAll);
    v.remount();
    let f = rw(&v.p("sparse"));
    assert_eq!(f.metadata().expect("stat").len(), (1 << 40) + 3);
    let mut buf = [9u8; 4];
    f.read_exact_at(&mut buf, (1 << 40) - 1).expect("read");
    assert_eq!(&buf, b"\0far");
    alive(&v.mnt, "sparse write");
}

/// durafs's largest file size: `Config::max_file_size`.
fn max_size() -> u64 {
    durafs::model::Config::default().max_file_size
}

#[test]
fn writes_and_truncates_past_the_maximum_size_are_efbig() {
    let v = Vol::new(Persistence::Posix);
    let max = max_size();
    let f = rw(&v.p("big"));
    for (off, len) in [(max, 1usize), (max + 4096, 10), (1 << 62, 1)] {
        let e = f
            .write_at(&vec![1u8; len], off)
            .expect_err("a write past the maximum size fails");
        assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "write at {off}: {e}");
    }
    let e = f.set_len(max + 1).expect_err("truncate past the maximum");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    assert_eq!(f.metadata().expect("stat").len(), 0, "nothing changed");
    // A huge truncate below the maximum works, and back down.
    f.set_len(1 << 42).expect("truncate up to 4 TiB");
    assert_eq!(f.metadata().expect("stat").len(), 1 << 42);
    let mut buf = [5u8; 8];
    f.read_exact_at(&mut buf, (1 << 42) - 8).expect("read");
    assert_eq!(buf, [0u8; 8]);
    f.sync_all().expect("fsync a 4 TiB sparse file");
    f.set_len(3).expect("truncate down");
    assert_eq!(f.metadata().expect("stat").len(), 3);
    alive(&v.mnt, "EFBIG");
}

/// durafs accepts a file that ends at exactly `max_file_size` (2^44) but the
/// host's ext4 (the usual backing) stops at 2^44 - 4096: fsync then fails.
#[test]
fn a_file_durafs_accepts_can_be_fsynced() {
    let v = Vol::new(Persistence::Posix);
    let f = rw(&v.p("edge"));
    let off = max_size() - 1;
    let host = tempfile::tempdir().expect("host");
    let hf = rw(&host.path().join("edge"));
    let host_res = errno_of(hf.write_at(b"x", off));
    let mount_res = errno_of(f.write_at(b"x", off));
    if mount_res.is_none() {
        let fsync = errno_of(f.sync_all());
        assert_eq!(fsync, None, "fsync of a file the write accepted");
    }
    assert_eq!(mount_res, host_res, "write ending at {}", off + 1);
}

#[test]
fn zero_length_writes_change_nothing() {
    let v = Vol::new(Persistence::Posix);
    let mut f = rw(&v.p("z"));
    f.write_all(b"abc").expect("write");
    assert_eq!(f.write(b"").expect("empty write"), 0);
    assert_eq!(f.write_at(b"", 1 << 30).expect("empty pwrite far"), 0);
    assert_eq!(f.write_at(b"", 0).expect("empty pwrite"), 0);
    let mut o = OpenOptions::new()
        .append(true)
        .open(v.p("z"))
        .expect("open append");
    assert_eq!(o.write(b"").expect("empty append"), 0);
    assert_eq!(f.metadata().expect("stat").len(), 3);
    assert_eq!(fs::read(v.p("z")).expect("read"), b"abc");
    assert_eq!(v.fs().status().files[0].unsynced_bytes, 3);
    alive(&v.mnt, "zero-length writes");
}

#[test]
fn o_append_from_two_writers_tears_and_loses_no_record() {
    const REC: usize = 64;
    const N: usize = 1000;
    let v = Vol::new(Persistence::Posix);
    File::create(v.p("log")).expect("create");
    std::thread::scope(|s| {
        for w in 0..2 {
            let p = v.p("log");
            s.spawn(move || {
                // Each writer opens the file itself: separate file
                // descriptions, as two processes would have.
                let mut f = OpenOptions::new().append(true).open(p).expect("open");
                for i in 0..N {
                    let mut rec = format!("writer {w} record {i:05} ").into_bytes();
                    rec.resize(REC - 1, b'.');
                    rec.push(b'\n');
                    // One write(2) per record.
                    assert_eq!(f.write(&rec).expect("append"), REC);
                }
            });
        }
    });
    let data = fs::read(v.p("log")).expect("read");
    assert_eq!(data.len(), 2 * N * REC, "no record lost or overwritten");
    let mut next = [0usize; 2];
    for rec in data.chunks(REC) {
        let text = std::str::from_utf8(rec).expect("utf8 record");
        let mut words = text.split_whitespace();
        assert_eq!(words.next(), Some("writer"), "torn record {text:?}");
        let w: usize = words.next().and_then(|w| w.parse().ok()).expect("writer");
        assert_eq!(words.next(), Some("record"), "torn record {text:?}");
        let i: usize = words.next().and_then(|w| w.parse().ok()).expect("index");
        assert_eq!(i, next[w], "writer {w}'s records in order: {text:?}");
        assert!(text.ends_with(".\n"), "torn record {text:?}");
        next[w] += 1;
    }
    assert_eq!(next, [N, N]);
    alive(&v.mnt, "O_APPEND");
}

#[test]
fn namespace_errors_match_the_host() {
    let v = Vol::new(Persistence::Posix);
    like_host(&v, "rename dir into its subtree", Some(libc::EINVAL), |d| {
        fs::create_dir_all(d.join("a/b/c"))?;
        fs::rename(d.join("a"), d.join("a/b/c/a"))
    });
    like_host(&v, "rename dir onto its child", Some(libc::EINVAL), |d| {
        fs::create_dir_all(d.join("a/b"))?;
        fs::rename(d.join("a"), d.join("a/b"))
    });
    like_host(&v, "rmdir non-empty", Some(libc::ENOTEMPTY), |d| {
        fs::create_dir_all(d.join("a/b"))?;
        fs::remove_dir(d.join("a"))
    });
    like_host(
        &v,
        "rename dir over non-empty dir",
        Some(libc::ENOTEMPTY),
        |d| {
            fs::create_dir_all(d.join("a"))?;
            fs::create_dir_all(d.join("b/x"))?;
            fs::rename(d.join("a"), d.join("b"))
        },
    );
    like_host(&v, "rename dir over file", Some(libc::ENOTDIR), |d| {
        fs::create_dir(d.join("a"))?;
        fs::write(d.join("f"), b"")?;
        fs::rename(d.join("a"), d.join("f"))
    });
    like_host(&v, "rename file over dir", Some(libc::EISDIR), |d| {
        fs::create_dir(d.join("a"))?;
        fs::write(d.join("f"), b"")?;
        fs::rename(d.join("f"), d.join("a"))
    });
    like_host(&v, "rmdir file", Some(libc::ENOTDIR), |d| {
        fs::write(d.join("f"), b"")?;
        fs::remove_dir(d.join("f"))
    });
    like_host(&v, "unlink dir", Some(libc::EISDIR), |d| {
        fs::create_dir(d.join("a"))?;
        fs::remove_file(d.join("a"))
    });
    like_host(&v, "mkdir existing", Some(libc::EEXIST), |d| {
        fs::create_dir(d.join("a"))?;
        fs::create_dir(d.join("a"))
    });
    like_host(&v, "create under a file", Some(libc::ENOTDIR), |d| {
        fs::write(d.join("f"), b"")?;
        fs::write(d.join("f/x"), b"")
    });
    like_host(&v, "link a directory", Some(libc::EPERM), |d| {
        fs::create_dir(d.join("a"))?;
        fs::hard_link(d.join("a"), d.join("b"))
    });
    like_host(&v, "rmdir dot", Some(libc::EINVAL), |d| {
        fs::create_dir(d.join("a"))?;
        fs::remove_dir(d.join("a/."))
    });
    like_host(&v, "missing parent", Some(libc::ENOENT), |d| {
        fs::write(d.join("no/such"), b"")
    });
    like_host(&v, "O_EXCL on existing", Some(libc::EEXIST), |d| {
        fs::write(d.join("f"), b"")?;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d.join("f"))
            .map(|_| ())
    });
    like_host(&v, "negative ftruncate", Some(libc::EINVAL), |d| {
        let f = File::create(d.join("f"))?;
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor.
        match unsafe { libc::ftruncate(f.as_raw_fd(), -1) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    });
    like_host(&v, "renameat2 noreplace", Some(libc::EEXIST), |d| {
        fs::write(d.join("a"), b"a")?;
        fs::write(d.join("b"), b"b")?;
        renameat2(&d.join("a"), &d.join("b"), libc::RENAME_NOREPLACE)
    });
}

/// Writes `cmd` to the control file in one write and reads the reply.
fn control(mnt: &Path, cmd: &[u8]) -> (Option<i32>, serde_json::Value) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(mnt.join(".durafs"))
        .expect("open the control file");
    let sent = errno_of(f.write(cmd));
    let mut reply = Vec::new();
    f.read_to_end(&mut reply).expect("read the reply");
    let json = serde_json::from_slice(&reply)
        .unwrap_or_else(|e| panic!("{cmd:?}: reply is not JSON ({e}): {reply:?}"));
    (sent, json)
}

#[test]
fn bad_control_commands_get_a_clear_error_and_the_daemon_keeps_serving() {
    let v = Vol::new(Persistence::Posix);
    fs::write(v.p("f"), b"data").expect("write");
    let long = vec![b'x'; 5000];
    // A zero-length write never reaches durafs (the kernel answers it): it
    // is no command, and the handle reads the status.
    let (sent, reply) = control(&v.mnt, b"");
    assert_eq!(sent, None);
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(reply["status"].is_object(), "{reply}");
    let cases: [(&[u8], &str); 13] = [
        (b"frobnicate", "unrecognized subcommand 'frobnicate'"),
        (b"\n", "empty command"),
        (b"   ", "empty command"),
        (b"STATUS", "unrecognized subcommand 'STATUS'"),
        (b"sync now", "unexpected argument"),
        (b"status\nsync\n", "one command"),
        (b"cut --policy", "a value is required for '--policy"),
        (b"cut --seed -1", "unexpected argument '-1'"),
        (b"cut --probability nan", "0..=1"),
        (b"cut --sector 0", "positive"),
        (b"\xff\xfe", "UTF-8"),
        (b"mark", "needs a label"),
        (&long, "longer than"),
    ];
    for (cmd, want) in cases {
        let (sent, reply) = control(&v.mnt, cmd);
        let show = String::from_utf8_lossy(&cmd[..cmd.len().min(40)]).into_owned();
        assert_eq!(sent, Some(libc::EINVAL), "{show:?}: the write fails");
        assert_eq!(reply["ok"], false, "{show:?}: {reply}");
        let err = reply["error"].as_str().unwrap_or("");
        assert!(err.contains(want), "{show:?}: {err:?} should say {want:?}");
        // Nothing changed and the volume serves.
        assert_eq!(fs::read(v.p("f")).expect("read"), b"data", "{show:?}");
        assert!(!v.fs().is_cut(), "{show:?}");
        alive(&v.mnt, "a bad control command");
    }
    // A long mark label, NUL bytes: still no harm.
    let (sent, reply) = control(&v.mnt, format!("mark {}", "y".repeat(2000)).as_bytes());
    assert_eq!(sent, Some(libc::EINVAL), "{reply}");
    let (sent, reply) = control(&v.mnt, b"sync\0");
    assert_eq!(
        sent,
        Some(libc::EINVAL),
        "a NUL byte is no command: {reply}"
    );
    // The volume is still fully functional, control file included.
    let (sent, reply) = control(&v.mnt, b"sync\n");
    assert_eq!((sent, &reply["ok"]), (None, &serde_json::json!(true)));
    assert_eq!(fs::read(v.backing.join("f")).expect("synced"), b"data");
    alive(&v.mnt, "bad control commands");
}

/// A small tmpfs mounted in a temp dir, as the backing store's filesystem,
/// with a durafs volume over it. Drop unmounts durafs, then the tmpfs (also
/// when the test panics).
struct SmallBacking {
    mounted: Option<Mounted>,
    opts: FsOptions,
    small: PathBuf,
    backing: PathBuf,
    mnt: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SmallBacking {
    fn new(size: &str, opts: FsOptions) -> SmallBacking {
        let tmp = tempfile::tempdir().expect("tempdir");
        let small = tmp.path().join("small");
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&small).expect("mkdir small");
        fs::create_dir(&mnt).expect("mkdir mnt");
        let data = std::ffi::CString::new(format!("size={size},mode=0700")).expect("opts");
        // SAFETY: valid NUL-terminated strings; the result is checked.
        let rc = unsafe {
            libc::mount(
                c"tmpfs".as_ptr(),
                cpath(&small).as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs at {}: {}",
            small.display(),
            io::Error::last_os_error()
        );
        let backing = small.join("backing");
        let mut sb = SmallBacking {
            mounted: None,
            opts,
            small,
            backing,
            mnt,
            _tmp: tmp,
        };
        sb.mounted = Some(mount_at(&sb.backing, &sb.mnt, opts));
        sb
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    fn remount(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.unmount().expect("unmount");
        }
        self.mounted = Some(mount_at(&self.backing, &self.mnt, self.opts));
    }

    /// A drop-all power cut, then a fresh mount.
    fn cut_and_remount(&mut self) {
        if let Some(m) = self.mounted.take() {
            m.cut(CrashOptions {
                policy: Policy::DropAll,
                ..CrashOptions::default()
            })
            .expect("cut");
        }
        self.mounted = Some(mount_at(&self.backing, &self.mnt, self.opts));
    }
}

impl Drop for SmallBacking {
    fn drop(&mut self) {
        // durafs first (it holds files open in the tmpfs), then the tmpfs.
        drop(self.mounted.take());
        let c = cpath(&self.small);
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } != 0 {
            // SAFETY: as above; lazily, so nothing stays mounted.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn write_fsync(p: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = File::create(p)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The checks shared by both backing-full tests: after the failure, the
/// durable file is intact, the volume serves, a clean unmount that cannot
/// persist everything fails and keeps the mount, and after a cut and a
/// remount small durable writes work again.
fn after_enospc(sb: &mut SmallBacking, durable: &[u8]) {
    assert_eq!(
        fs::read(sb.p("durable")).expect("read durable"),
        durable,
        "durable data intact through the mount"
    );
    fs::remove_file(sb.p("big")).expect("unlink big");
    fsync_dir(&sb.mnt);
    fs::write(sb.p("unsynced"), b"held in memory").expect("a small write still works");
    assert_eq!(fs::read(sb.p("unsynced")).expect("read"), b"held in memory");
    // The model still holds the unsynced bytes of the deleted `big` (and
    // its stored part fills the backing), so the unmount's sync fails.
    // Before, the unmount went on and `unsynced` lost its data silently;
    // now it fails and the volume stays mounted.
    let m = sb.mounted.as_mut().expect("mounted");
    let e = m.try_unmount().expect_err("the backing is still full");
    assert!(e.to_string().contains("stays mounted"), "{e}");
    assert_eq!(
        fs::read(sb.p("unsynced")).expect("still mounted"),
        b"held in memory"
    );
    sb.cut_and_remount();
    assert_eq!(
        fs::read(sb.p("durable")).expect("read durable after remount"),
        durable
    );
    assert!(!sb.p("big").exists(), "big was never durable");
    write_fsync(&sb.p("small"), b"small file after ENOSPC").expect("write small and fsync");
    fsync_dir(&sb.mnt);
    sb.remount();
    assert_eq!(
        fs::read(sb.p("small")).expect("read small after remount"),
        b"small file after ENOSPC"
    );
    assert_eq!(fs::read(sb.p("durable")).expect("durable"), durable);
    alive(&sb.mnt, "ENOSPC");
}

/// Deleting a durable file (unlink + fsync of the directory) frees its
/// space in BACKING while mounted, as on any filesystem. (Regression: durafs
/// kept it in `BACKING/.durafs/orphans/` until the next remount or cut, so a
/// long test filled the backing.)
#[test]
fn deleting_a_durable_file_frees_backing_space_while_mounted() {
    let sb = SmallBacking::new("4m", FsOptions::default());
    write_fsync(&sb.p("a"), &pattern(3 << 20, 1)).expect("3 MiB durable file");
    fsync_dir(&sb.mnt);
    fs::remove_file(sb.p("a")).expect("unlink");
    fsync_dir(&sb.mnt);
    write_fsync(&sb.p("b"), &pattern(3 << 20, 2))
        .expect("the space of the deleted file is available again");
}

#[test]
fn a_full_backing_gives_enospc_at_fsync_and_keeps_durable_data() {
    let mut sb = SmallBacking::new("4m", FsOptions::default());
    let durable = pattern(1 << 20, 1);
    write_fsync(&sb.p("durable"), &durable).expect("durable file");
    fsync_dir(&sb.mnt);
    // 6 MiB do not fit in a 4 MiB backing: the write is held in memory
    // (under the dirty limit) and the fsync must report the lack of space.
    let big = pattern(6 << 20, 2);
    let r = write_fsync(&sb.p("big"), &big);
    let e = r.expect_err("6 MiB cannot become durable in 4 MiB");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    after_enospc(&mut sb, &durable);
}

#[test]
fn a_full_backing_during_dirty_limit_writeback_reports_enospc_at_fsync() {
    let mut sb = SmallBacking::new(
        "4m",
        FsOptions {
            dirty_limit: 256 << 10,
            ..FsOptions::default()
        },
    );
    let durable = pattern(1 << 20, 1);
    write_fsync(&sb.p("durable"), &durable).expect("durable file");
    fsync_dir(&sb.mnt);
    let mut f = File::create(sb.p("big")).expect("create big");
    let chunk = pattern(512 << 10, 3);
    // Past the dirty limit each write triggers a writeback that fails; the
    // writes themselves took effect (a background writeback's failure is
    // the next fsync's to report, as in Linux).
    for i in 0..16 {
        f.write_all(&chunk)
            .unwrap_or_else(|e| panic!("write {i} (writeback failing behind it): {e}"));
    }
    let err = f
        .sync_all()
        .expect_err("8 MiB cannot become durable in 4 MiB");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    after_enospc(&mut sb, &durable);
}

/// After an fsync failed for lack of space, the file still reads what the
/// program wrote (the bytes were acknowledged by write(2)); they are just
/// not durable.
#[test]
fn a_failed_fsync_leaves_the_live_content_readable() {
    let sb = SmallBacking::new("4m", FsOptions::default());
    let big = pattern(6 << 20, 2);
    let mut f = File::create(sb.p("big")).expect("create");
    f.write_all(&big).expect("write");
    assert!(
        f.sync_all().is_err(),
        "6 MiB cannot become durable in 4 MiB"
    );
    // Read through durafs itself, not the kernel's page cache.
    let vol = sb.mounted.as_ref().expect("mounted").fs();
    let ino = vol.lookup(durafs::model::ROOT, b"big").expect("lookup").ino;
    let mut got = Vec::new();
    while got.len() < big.len() + 1 {
        let part = vol
            .read(ino, got.len() as u64, 1 << 20)
            .unwrap_or_else(|e| panic!("read at {}: {e}", got.len()));
        if part.is_empty() {
            break;
        }
        got.extend_from_slice(&part);
    }
    assert_eq!(got.len(), big.len(), "size after the failed fsync");
    let first = got.iter().zip(&big).position(|(a, b)| a != b);
    assert_eq!(first, None, "first differing byte after the failed fsync");
    drop(f);
}

/// Regression: an fsyncdir whose names could not be stored (the backing
/// ran out of inodes) had already committed them in the model, so the
/// retry, once space was free, succeeded with nothing to do, and the names
/// were lost at the next cut although that fsyncdir had returned 0.
#[test]
fn a_failed_fsyncdir_commits_nothing_and_its_retry_stores_the_names() {
    let mut sb = SmallBacking::new("4m,nr_inodes=64", FsOptions::default());
    let names = ["a", "b", "c", "d"];
    for n in names {
        fs::write(sb.p(n), n).expect("create (held in memory)");
    }
    // Take every free inode of the backing's filesystem.
    let filler = sb.small.join("filler");
    fs::create_dir(&filler).expect("mkdir filler");
    let mut taken = 0;
    while File::create(filler.join(taken.to_string())).is_ok() {
        taken += 1;
    }
    assert!(taken > 0, "the filler took no inode");
    let e = File::open(&sb.mnt)
        .and_then(|d| d.sync_all())
        .expect_err("no inode left for the new names");
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
    fs::remove_dir_all(&filler).expect("free the inodes");
    fsync_dir(&sb.mnt);
    sb.cut_and_remount();
    for n in names {
        assert_eq!(
            fs::read(sb.p(n)).unwrap_or_else(|e| panic!("{n} after the retried fsyncdir: {e}")),
            b"",
            "{n}: the name is durable, its data never was"
        );
    }
}
