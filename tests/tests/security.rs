//! Who may use a mount, and what it can reach: the mount options, other
//! users locked out (control file included), the bookkeeping directory
//! `BACKING/.durafs` unreachable through the mount, and no path leaving
//! `BACKING`.

use durafs::model::Persistence;
use durafs::model::crash::{CrashOptions, Policy};
use durafs_tests::{Vol, cpath, fsync_dir, fsync_file, renameat2};
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The line of /proc/self/mountinfo for `mnt`: (mount options, fs type,
/// super options).
fn mountinfo(mnt: &Path) -> (String, String, String) {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let want = mnt.to_str().expect("utf8").replace(' ', "\\040");
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(want.as_str()))
        .unwrap_or_else(|| panic!("{} not in mountinfo:\n{info}", mnt.display()));
    let (left, right) = line.split_once(" - ").expect("separator");
    let mount_opts = left.split(' ').nth(5).expect("mount options").to_string();
    let mut r = right.split(' ');
    let fstype = r.next().expect("type").to_string();
    let _source = r.next();
    let super_opts = r.next().expect("super options").to_string();
    (mount_opts, fstype, super_opts)
}

#[test]
fn the_mount_has_default_permissions_and_no_allow_other() {
    let v = Vol::new(Persistence::Posix);
    let (mount_opts, fstype, super_opts) = mountinfo(&v.mnt);
    assert_eq!(fstype, "fuse.durafs");
    let sopts: Vec<&str> = super_opts.split(',').collect();
    assert!(sopts.contains(&"default_permissions"), "{super_opts}");
    assert!(!sopts.contains(&"allow_other"), "{super_opts}");
    assert!(sopts.contains(&"user_id=0"), "{super_opts}");
    let mopts: Vec<&str> = mount_opts.split(',').collect();
    assert!(mopts.contains(&"nosuid"), "{mount_opts}");
    assert!(mopts.contains(&"nodev"), "{mount_opts}");
}

/// In a forked child that became uid/gid 65534: the errno of each of
/// stat, open for reading and opendir on `paths` (0 for success).
fn as_nobody(paths: &[PathBuf]) -> Vec<[i32; 3]> {
    let cs: Vec<CString> = paths.iter().map(|p| cpath(p)).collect();
    let mut fds = [0i32; 2];
    // SAFETY: a valid out-array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child only makes async-signal-safe calls on memory
    // prepared before the fork, then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            libc::close(fds[0]);
            let ok = libc::setgroups(0, std::ptr::null()) == 0
                && libc::setgid(65534) == 0
                && libc::setuid(65534) == 0;
            if !ok {
                libc::_exit(2);
            }
            let err = || *libc::__errno_location();
            for c in &cs {
                let mut st: libc::stat = std::mem::zeroed();
                let mut res = [0i32; 3];
                if libc::stat(c.as_ptr(), &mut st) != 0 {
                    res[0] = err();
                }
                let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
                if fd < 0 {
                    res[1] = err();
                } else {
                    libc::close(fd);
                }
                let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
                if fd < 0 {
                    res[2] = err();
                } else {
                    libc::close(fd);
                }
                if libc::write(fds[1], res.as_ptr().cast(), 12) != 12 {
                    libc::_exit(3);
                }
            }
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // SAFETY: waiting for our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status:#x}"
    );
    let mut buf = vec![0u8; 12 * paths.len()];
    // SAFETY: reading into our buffer.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: our descriptor.
    unsafe { libc::close(fds[0]) };
    assert_eq!(n as usize, buf.len(), "child results");
    buf.chunks(12)
        .map(|c| {
            let v = |i: usize| i32::from_ne_bytes(c[i * 4..i * 4 + 4].try_into().expect("4"));
            [v(0), v(1), v(2)]
        })
        .collect()
}

#[test]
fn another_uid_cannot_use_the_mount_nor_its_control_file() {
    let v = Vol::new(Persistence::Posix);
    // Open everything up so that only the mount's restriction can refuse:
    // the temp dir is traversable, and the files are world-readable.
    let top = v.mnt.parent().expect("parent").to_path_buf();
    fs::set_permissions(&top, fs::Permissions::from_mode(0o755)).expect("chmod top");
    fs::set_permissions(&v.mnt, fs::Permissions::from_mode(0o755)).expect("chmod root");
    fs::write(v.p("f"), b"secret").expect("write");
    fs::set_permissions(v.p("f"), fs::Permissions::from_mode(0o644)).expect("chmod f");
    fs::create_dir(v.p("d")).expect("mkdir");
    fs::set_permissions(v.p("d"), fs::Permissions::from_mode(0o755)).expect("chmod d");
    // The same layout on the host, as a control: there nobody may read.
    let plain = top.join("plain");
    fs::create_dir(&plain).expect("mkdir plain");
    fs::set_permissions(&plain, fs::Permissions::from_mode(0o755)).expect("chmod plain");
    fs::write(plain.join("f"), b"open").expect("write plain");
    fs::set_permissions(plain.join("f"), fs::Permissions::from_mode(0o644)).expect("chmod");

    let res = as_nobody(&[
        plain.join("f"),
        plain.clone(),
        v.mnt.clone(),
        v.p("f"),
        v.p("d"),
        v.p(".durafs"),
    ]);
    let ok = 0;
    let (acc, notdir) = (libc::EACCES, libc::ENOTDIR);
    assert_eq!(
        res[0],
        [ok, ok, notdir],
        "control: a plain file is readable"
    );
    assert_eq!(
        res[1],
        [ok, ok, ok],
        "control: a plain directory is readable"
    );
    assert_eq!(res[2], [acc, acc, acc], "the mount root");
    assert_eq!(res[3], [acc, acc, acc], "a file in the mount");
    assert_eq!(res[4], [acc, acc, acc], "a directory in the mount");
    assert_eq!(res[5], [acc, acc, acc], "the control file");
    // Nothing happened to the volume; the owner still uses it.
    assert_eq!(fs::read(v.p("f")).expect("read"), b"secret");
    assert!(!v.fs().is_cut());
}

#[test]
fn nothing_named_durafs_can_be_made_at_the_root() {
    let mut v = Vol::new(Persistence::Posix);
    fs::write(v.p("f"), b"f").expect("write");
    fs::create_dir(v.p("d")).expect("mkdir");
    let ctl = v.p(".durafs");
    let errno = |r: io::Result<()>| r.err().and_then(|e| e.raw_os_error());
    let cases: Vec<(&str, Option<i32>)> = vec![
        ("mkdir", errno(fs::create_dir(&ctl))),
        (
            "create O_EXCL",
            errno(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&ctl)
                    .map(|_| ()),
            ),
        ),
        ("symlink", errno(std::os::unix::fs::symlink("f", &ctl))),
        ("link", errno(fs::hard_link(v.p("f"), &ctl))),
        ("rename a file onto it", errno(fs::rename(v.p("f"), &ctl))),
        ("rename a dir onto it", errno(fs::rename(v.p("d"), &ctl))),
        ("rename it away", errno(fs::rename(&ctl, v.p("x")))),
        ("unlink", errno(fs::remove_file(&ctl))),
        ("rmdir", errno(fs::remove_dir(&ctl))),
        ("mkfifo", {
            let c = cpath(&ctl);
            // SAFETY: a valid path.
            let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
            if rc == 0 {
                None
            } else {
                io::Error::last_os_error().raw_os_error()
            }
        }),
        ("exchange with it", {
            renameat2(&v.p("f"), &ctl, libc::RENAME_EXCHANGE)
                .err()
                .and_then(|e| e.raw_os_error())
        }),
    ];
    for (what, e) in cases {
        assert!(
            matches!(
                e,
                Some(libc::EEXIST) | Some(libc::EPERM) | Some(libc::ENOTDIR)
            ),
            "{what} .durafs at the root: {e:?}"
        );
    }
    // The control file is still the control file, the rest untouched.
    let st: serde_json::Value =
        serde_json::from_slice(&fs::read(&ctl).expect("cat control")).expect("JSON status");
    assert_eq!(st["ok"], true);
    assert_eq!(fs::read(v.p("f")).expect("f"), b"f");
    assert!(v.p("d").is_dir());
    // Elsewhere the name is an ordinary name, and stays one.
    fs::create_dir(v.p("d/.durafs")).expect("mkdir d/.durafs");
    fs::write(v.p("d/.durafs/orphans"), b"mine").expect("write d/.durafs/orphans");
    v.fs().sync().expect("sync");
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(
        fs::read(v.p("d/.durafs/orphans")).expect("d/.durafs survives"),
        b"mine"
    );
}

#[test]
fn the_bookkeeping_directory_is_unreachable_through_the_mount() {
    let mut v = Vol::new(Persistence::Posix);
    // An orphan in BACKING: a file fsynced whose name is not durable.
    fs::write(v.p("orphan"), b"orphaned data").expect("write");
    fsync_file(&v.p("orphan"));
    let orphans: Vec<_> = fs::read_dir(v.backing.join(".durafs/orphans"))
        .expect("backing bookkeeping")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(orphans.len(), 1, "an orphan exists in BACKING: {orphans:?}");
    for rel in [
        ".durafs/orphans".to_string(),
        ".durafs/tmp".to_string(),
        ".durafs/lock".to_string(),
        format!(".durafs/orphans/{}", orphans[0].to_string_lossy()),
        ".durafs/.".to_string(),
        ".durafs/..".to_string(),
    ] {
        let e = fs::metadata(v.p(&rel)).expect_err(&rel);
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{rel}: {e}");
        let e = fs::write(v.p(&rel), b"x").expect_err(&rel);
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{rel}: {e}");
    }
    let e = fs::read_dir(v.p(".durafs")).expect_err("not a directory");
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{e}");
    let listed = |v: &Vol| -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(&v.mnt)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(listed(&v), ["orphan"]);
    // The same after a remount over a BACKING that holds the bookkeeping.
    fsync_dir(&v.mnt);
    v.cut(Policy::KeepAll);
    v.remount();
    assert!(v.backing.join(".durafs").is_dir());
    assert_eq!(listed(&v), ["orphan"]);
    assert_eq!(fs::read(v.p("orphan")).expect("read"), b"orphaned data");
    // statx on the root lists no extra link either: lookups of the
    // bookkeeping's names answer only for the control file.
    assert!(
        fs::symlink_metadata(v.p(".durafs"))
            .expect("control")
            .is_file()
    );
}

/// Every entry under `dir` (relative paths, sorted; symlinks not followed).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(d).expect("readdir") {
            let e = e.expect("entry");
            let p = e.path();
            out.push(
                p.strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned(),
            );
            if e.file_type().expect("type").is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn no_path_escapes_backing() {
    let v = Vol::new(Persistence::Posix);
    let outside = tempfile::tempdir().expect("outside dir");
    let abs = outside.path().to_path_buf();
    let sneaky = PathBuf::from("../../../../../../../..").join(abs.strip_prefix("/").expect("abs"));
    std::os::unix::fs::symlink(&abs, v.p("abs")).expect("absolute symlink");
    std::os::unix::fs::symlink(&sneaky, v.p("rel")).expect("relative symlink");
    std::os::unix::fs::symlink("../../..", v.p("up")).expect("dotdot symlink");
    // The kernel resolves `..` and refuses to move a name off the mount.
    fs::write(v.p("f"), b"f").expect("write");
    let e = fs::rename(v.p("f"), v.p("../escaped")).expect_err("rename off the mount");
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
    let e = fs::hard_link(v.p("f"), v.p("../escaped")).expect_err("link off the mount");
    assert_eq!(e.raw_os_error(), Some(libc::EXDEV), "{e}");
    assert!(!v.mnt.parent().expect("p").join("escaped").exists());
    // A symlink is stored as a symlink with its target verbatim.
    assert_eq!(fs::read_link(v.p("abs")).expect("readlink"), abs);
    assert_eq!(fs::read_link(v.p("rel")).expect("readlink"), sneaky);
    // Following one resolves in the host's namespace, as on any fs.
    fs::write(v.p("abs/x"), b"through the link").expect("write through");
    assert_eq!(
        fs::read(abs.join("x")).expect("outside"),
        b"through the link"
    );
    fs::remove_file(abs.join("x")).expect("clean");
    // Moving directories around under links that point outside: the store
    // never writes through a symlink, also in the crash states of a cut.
    fs::create_dir(v.p("d")).expect("mkdir d");
    fs::write(v.p("d/data"), b"inside").expect("write d/data");
    fsync_file(&v.p("d/data"));
    fsync_dir(&v.p("d"));
    fsync_dir(&v.mnt);
    fs::rename(v.p("d"), v.p("e")).expect("rename d");
    std::os::unix::fs::symlink(&abs, v.p("d")).expect("symlink d -> outside");
    fs::write(v.p("e/data"), b"rewritten").expect("rewrite");
    fs::write(v.p("e/new"), b"new").expect("new file");
    fsync_file(&v.p("e/data"));
    fsync_file(&v.p("e/new"));
    fsync_dir(&v.p("e"));
    v.fs().sync().expect("sync");
    assert_eq!(tree(&abs), Vec::<String>::new(), "nothing written outside");
    let t = tree(&v.backing);
    let want = [
        ".durafs",
        ".durafs/lock",
        ".durafs/orphans",
        ".durafs/tmp",
        "abs",
        "e",
        "e/data",
        "e/new",
        "d",
        "f",
        "rel",
        "up",
    ];
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(t, want, "BACKING holds exactly the volume");
    for l in ["abs", "rel", "up", "d"] {
        let md = fs::symlink_metadata(v.backing.join(l)).expect("lstat");
        assert!(md.file_type().is_symlink(), "{l} is a symlink in BACKING");
    }
    assert_eq!(
        fs::read_link(v.backing.join("rel")).expect("target"),
        sneaky
    );
    assert_eq!(
        fs::read(v.backing.join("e/data")).expect("data"),
        b"rewritten"
    );
}

/// The same sequence, not synced, cut in many random crash states: no crash
/// state writes outside BACKING.
#[test]
fn no_crash_state_writes_through_a_symlink() {
    let outside = tempfile::tempdir().expect("outside dir");
    let abs = outside.path().to_path_buf();
    for seed in 0..24 {
        let mut v = Vol::new(Persistence::Posix);
        fs::create_dir(v.p("d")).expect("mkdir d");
        fs::write(v.p("d/data"), b"old").expect("write");
        v.fs().sync().expect("sync");
        fs::rename(v.p("d"), v.p("e")).expect("rename d");
        std::os::unix::fs::symlink(&abs, v.p("d")).expect("symlink d");
        fs::write(v.p("e/data"), b"new bytes").expect("rewrite");
        fs::write(v.p("e/more"), b"more").expect("more");
        fs::rename(v.p("e/more"), v.p("e/data")).expect("replace");
        fs::create_dir(v.p("d2")).expect("mkdir d2");
        fs::rename(v.p("e"), v.p("d2/e")).expect("move e");
        let policy = if seed % 2 == 0 {
            Policy::Random
        } else {
            Policy::Torn
        };
        v.cut_with(CrashOptions {
            policy,
            seed,
            ..CrashOptions::default()
        });
        v.remount();
        assert_eq!(tree(&abs), Vec::<String>::new(), "seed {seed}: outside");
        for p in tree(&v.backing) {
            let md = fs::symlink_metadata(v.backing.join(&p)).expect("lstat");
            // `d` is the symlink, or still the old directory when the
            // rename was lost; nothing in BACKING is anything else.
            let t = md.file_type();
            assert!(
                t.is_symlink() || t.is_dir() || t.is_file(),
                "seed {seed}: {p}: {t:?}"
            );
            if t.is_symlink() {
                assert_eq!(fs::read_link(v.backing.join(&p)).expect("target"), abs);
            }
        }
    }
}

// ---- `allow_other`: other users, as the permission bits say ----

/// Runs `sh -c script` in `dir` as `uid`:`uid` with no supplementary
/// groups; `(succeeded, stdout and stderr)`.
fn sh_as(uid: u32, dir: &Path, script: &str) -> (bool, String) {
    durafs_tests::tools::require("setpriv", "util-linux");
    let out = std::process::Command::new("setpriv")
        .args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_string(),
            "sh".to_string(),
            "-c".to_string(),
            format!("cd \"$0\" && {{ {script}\n}}"),
        ])
        .arg(dir)
        .output()
        .expect("running setpriv");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn mode_uid_gid(p: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

const NOBODY: u32 = 65534;
const OTHER: u32 = 65533;

#[test]
fn an_allow_other_mount_has_allow_other_and_default_permissions() {
    let v = Vol::allow_other(Persistence::Posix);
    let (mount_opts, _, super_opts) = mountinfo(&v.mnt);
    let sopts: Vec<&str> = super_opts.split(',').collect();
    assert!(sopts.contains(&"default_permissions"), "{super_opts}");
    assert!(sopts.contains(&"allow_other"), "{super_opts}");
    let mopts: Vec<&str> = mount_opts.split(',').collect();
    assert!(mopts.contains(&"nosuid"), "{mount_opts}");
    assert!(mopts.contains(&"nodev"), "{mount_opts}");
}

#[test]
fn another_uid_uses_an_allow_other_mount_as_the_modes_say() {
    let v = Vol::allow_other(Persistence::Posix);
    fs::set_permissions(&v.mnt, fs::Permissions::from_mode(0o755)).expect("chmod root");
    fs::write(v.p("public"), b"public").expect("write");
    fs::set_permissions(v.p("public"), fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::write(v.p("private"), b"private").expect("write");
    fs::set_permissions(v.p("private"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::create_dir(v.p("shared")).expect("mkdir");
    fs::set_permissions(v.p("shared"), fs::Permissions::from_mode(0o777)).expect("chmod");

    let (ok, out) = sh_as(NOBODY, &v.mnt, "cat public");
    assert!(ok && out == "public", "a 0644 file is readable: {out}");
    for (script, what) in [
        ("cat private", "a 0600 file of root"),
        ("echo x >> public", "writing a 0644 file of root"),
        ("mkdir mine", "mkdir in a 0755 directory of root"),
        ("rm public", "unlink in a 0755 directory of root"),
    ] {
        let (ok, out) = sh_as(NOBODY, &v.mnt, script);
        assert!(!ok && out.contains("Permission denied"), "{what}: {out}");
    }
    // In a 0777 directory: new files and directories are the caller's.
    let (ok, out) = sh_as(
        NOBODY,
        &v.p("shared"),
        "umask 022 && echo data > f && mkdir d && ln -s f s && mkfifo p",
    );
    assert!(ok, "{out}");
    assert_eq!(mode_uid_gid(&v.p("shared/f")), (0o644, NOBODY, NOBODY));
    assert_eq!(mode_uid_gid(&v.p("shared/d")), (0o755, NOBODY, NOBODY));
    assert_eq!(mode_uid_gid(&v.p("shared/s")).1, NOBODY);
    assert_eq!(mode_uid_gid(&v.p("shared/p")), (0o644, NOBODY, NOBODY));
    // Durably so: BACKING holds the same owners after a cut.
    fsync_file(&v.p("shared/f"));
    fsync_dir(&v.p("shared"));
    fsync_dir(&v.mnt);
    let mut v = v;
    v.cut(Policy::DropAll);
    v.remount();
    assert_eq!(mode_uid_gid(&v.p("shared/f")), (0o644, NOBODY, NOBODY));
    assert_eq!(fs::read(v.p("shared/f")).expect("read"), b"data\n");
    let (ok, out) = sh_as(OTHER, &v.p("shared"), "echo more >> f");
    assert!(!ok && out.contains("Permission denied"), "{out}");
}

#[test]
fn the_control_file_stays_the_owners_under_allow_other() {
    let v = Vol::allow_other(Persistence::Posix);
    fs::set_permissions(&v.mnt, fs::Permissions::from_mode(0o755)).expect("chmod root");
    fs::write(v.p("f"), b"unsynced").expect("write");
    assert_eq!(mode_uid_gid(&v.p(".durafs")), (0o600, 0, 0));
    // The same refusal as without allow_other (the kernel: mode 0600).
    for script in ["cat .durafs", "echo sync > .durafs", "echo cut > .durafs"] {
        let (ok, out) = sh_as(NOBODY, &v.mnt, script);
        assert!(!ok && out.contains("Permission denied"), "{script}: {out}");
    }
    // A process of another uid that may override file modes
    // (CAP_DAC_OVERRIDE) passes the kernel's check; durafs's own check of
    // the caller's uid (`control_open`) still refuses it. The control
    // case shows that such a process reads a 0600 file of root.
    let secret = v.mnt.parent().expect("parent").join("secret");
    durafs_tests::tools::require("setpriv", "util-linux");
    fs::write(&secret, b"root only").expect("write secret");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let privileged = |args: &[&str]| {
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=+dac_override",
                "--ambient-caps=+dac_override",
            ])
            .args(args)
            .output()
            .expect("running setpriv (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = privileged(&["cat", secret.to_str().expect("utf8")]);
    assert!(ok && out == "root only", "control: {out}");
    let ctl = v.p(".durafs");
    let (ok, out) = privileged(&["cat", ctl.to_str().expect("utf8")]);
    assert!(!ok && out.contains("Permission denied"), "{out}");
    let (ok, out) = privileged(&["sh", "-c", &format!("echo cut > {}", ctl.display())]);
    assert!(!ok && out.contains("Permission denied"), "{out}");
    // Nothing happened: no cut, the data still unsynced; root still drives it.
    assert!(!v.fs().is_cut());
    assert!(v.fs().status().pending_ops > 0);
    let reply = fs::read_to_string(&ctl).expect("the owner reads the control file");
    assert!(reply.contains("\"ok\":true"), "{reply}");
}

#[test]
fn the_bookkeeping_directory_is_unreachable_for_other_users_too() {
    let v = Vol::allow_other(Persistence::Posix);
    fs::set_permissions(&v.mnt, fs::Permissions::from_mode(0o755)).expect("chmod root");
    for script in ["ls .durafs/", "cat .durafs/lock", "ls .durafs/orphans"] {
        let (ok, out) = sh_as(NOBODY, &v.mnt, script);
        assert!(
            !ok && (out.contains("Not a directory") || out.contains("Permission denied")),
            "{script}: {out}"
        );
    }
    let (ok, out) = sh_as(NOBODY, &v.mnt, "ls -a");
    assert!(ok && !out.contains(".durafs"), "{out}");
}

#[test]
fn a_sticky_directory_protects_each_users_files() {
    let v = Vol::allow_other(Persistence::Posix);
    fs::set_permissions(&v.mnt, fs::Permissions::from_mode(0o755)).expect("chmod root");
    fs::create_dir(v.p("tmp")).expect("mkdir");
    fs::set_permissions(v.p("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    let tmp = v.p("tmp");
    let (ok, out) = sh_as(NOBODY, &tmp, "echo n > nobodys && chmod 666 nobodys");
    assert!(ok, "{out}");
    let (ok, out) = sh_as(OTHER, &tmp, "echo o > others");
    assert!(ok, "{out}");
    for script in ["rm -f nobodys", "mv nobodys stolen", "mv others nobodys"] {
        let (ok, out) = sh_as(OTHER, &tmp, script);
        assert!(
            !ok && out.contains("Operation not permitted"),
            "{script}: {out}"
        );
    }
    // The file's mode still lets the other user write it.
    let (ok, out) = sh_as(OTHER, &tmp, "echo more >> nobodys");
    assert!(ok, "{out}");
    // Its owner, and root, may remove it.
    let (ok, out) = sh_as(NOBODY, &tmp, "mv nobodys mine && rm mine");
    assert!(ok, "{out}");
    fs::remove_file(tmp.join("others")).expect("root removes any file");
    assert_eq!(fs::read_dir(&tmp).expect("readdir").count(), 0);
}

#[test]
fn set_id_bits_are_cleared_by_a_write_of_another_user_and_by_chown() {
    let v = Vol::allow_other(Persistence::Posix);
    fs::set_permissions(&v.mnt, fs::Permissions::from_mode(0o755)).expect("chmod root");
    fs::write(v.p("prog"), b"#!/bin/sh\n").expect("write");
    fs::set_permissions(v.p("prog"), fs::Permissions::from_mode(0o6777)).expect("chmod");
    assert_eq!(mode_uid_gid(&v.p("prog")).0, 0o6777);
    let (ok, out) = sh_as(NOBODY, &v.mnt, "echo 'echo hi' >> prog");
    assert!(ok, "{out}");
    assert_eq!(mode_uid_gid(&v.p("prog")), (0o777, 0, 0));
    // chown drops them too (also root's), on files.
    fs::set_permissions(v.p("prog"), fs::Permissions::from_mode(0o6755)).expect("chmod");
    std::os::unix::fs::chown(v.p("prog"), Some(NOBODY), None).expect("chown");
    assert_eq!(mode_uid_gid(&v.p("prog")), (0o755, NOBODY, 0));
    // A new file in a set-group-ID directory gets the directory's group;
    // a new directory inherits the bit.
    fs::create_dir(v.p("g")).expect("mkdir");
    std::os::unix::fs::chown(v.p("g"), None, Some(OTHER)).expect("chgrp");
    fs::set_permissions(v.p("g"), fs::Permissions::from_mode(0o2777)).expect("chmod");
    let (ok, out) = sh_as(NOBODY, &v.p("g"), "umask 022 && : > f && mkdir d");
    assert!(ok, "{out}");
    assert_eq!(mode_uid_gid(&v.p("g/f")), (0o644, NOBODY, OTHER));
    assert_eq!(mode_uid_gid(&v.p("g/d")), (0o2755, NOBODY, OTHER));
}
