//! A service as users run one: a server process of its own non-root user
//! (uid 65534, as PostgreSQL runs as `postgres`) keeps its data on a
//! volume mounted with `durafs mount --allow-other`, fsyncs some records
//! and not others, the power is cut with `durafs cut --remount` while it
//! runs, and after the remount exactly what it fsynced is there, still
//! usable by that user.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const EXE: &str = env!("CARGO_BIN_EXE_durafs-cli");
const SERVICE_UID: u32 = 65534;

fn durafs(args: &[&str]) -> Output {
    durafs_tests::cli::run(EXE, args)
}

fn ok(args: &[&str]) -> String {
    durafs_tests::cli::ok(EXE, args)
}

/// A volume mounted by `durafs mount --allow-other` in a temp dir every
/// user may traverse; unmounted (or detached) on drop.
struct Volume {
    tmp: tempfile::TempDir,
}

impl Volume {
    fn mount() -> Volume {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let v = Volume { tmp };
        fs::create_dir(v.mnt()).expect("mkdir mnt");
        ok(&["mount", "--allow-other", &v.s(&v.backing()), &v.m()]);
        v
    }

    fn s(&self, p: &Path) -> String {
        p.to_str().expect("utf8 path").to_string()
    }

    fn backing(&self) -> PathBuf {
        self.tmp.path().join("backing")
    }

    fn mnt(&self) -> PathBuf {
        self.tmp.path().join("mnt")
    }

    fn m(&self) -> String {
        self.s(&self.mnt())
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let out = durafs(&["umount", "--lazy", &self.m()]);
        if !out.status.success() {
            durafs::mount::detach(&self.mnt());
        }
    }
}

/// The service: appends `rec1`..`rec3` to `log`, fsyncing each before it
/// acknowledges it on stdout, then writes `rec4` and a new file without
/// fsyncing them, says `idle` and waits on stdin (a server between
/// requests). `log`'s name was made durable by the caller.
const SERVER: &str = r#"
set -e
for i in 1 2 3; do
  echo "rec$i" >> log
  sync log
  echo "ack rec$i"
done
echo rec4 >> log
echo scratch > unsynced
echo idle
read _ || true
"#;

#[test]
fn a_non_root_service_keeps_exactly_what_it_fsynced_across_a_cut() {
    let v = Volume::mount();
    let data = v.mnt().join("data");
    // Set up as an administrator would (initdb, chown), all durable.
    fs::create_dir(&data).expect("mkdir data");
    fs::write(data.join("log"), b"").expect("create log");
    std::os::unix::fs::chown(&data, Some(SERVICE_UID), Some(SERVICE_UID)).expect("chown");
    std::os::unix::fs::chown(data.join("log"), Some(SERVICE_UID), Some(SERVICE_UID))
        .expect("chown log");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod data");
    ok(&["sync", &v.m()]);

    let mut server = Command::new("sh")
        .args(["-c", SERVER])
        .current_dir(&data)
        .uid(SERVICE_UID)
        .gid(SERVICE_UID)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the service");
    let stdout = server.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("service output");
        match line.strip_prefix("ack ") {
            Some(rec) => acked.push(rec.to_string()),
            None if line == "idle" => break,
            None => panic!("unexpected output from the service: {line}"),
        }
    }
    assert_eq!(acked, ["rec1", "rec2", "rec3"]);
    // The service's unsynced state: its record and its file.
    let status = ok(&["status", &v.m()]);
    assert!(status.contains("data/unsynced"), "{status}");
    assert!(status.contains("data/log"), "{status}");

    // The power goes while the service is up.
    ok(&["cut", &v.m(), "--policy", "drop-all", "--remount"]);
    // Its descriptors died with the old mount; it is stopped.
    let mut stdin = server.stdin.take().expect("stdin");
    let _ = writeln!(stdin, "stop");
    drop(stdin);
    let _ = server.wait().expect("waiting for the service");

    // After the remount, exactly the fsynced records, owned by the
    // service, which can read and append again (allow_other survived
    // the remount).
    let log = data.join("log");
    assert_eq!(fs::read_to_string(&log).expect("log"), "rec1\nrec2\nrec3\n");
    assert!(!data.join("unsynced").exists(), "the unsynced file is gone");
    let md = fs::metadata(&log).expect("stat log");
    assert_eq!((md.uid(), md.gid()), (SERVICE_UID, SERVICE_UID));
    let out = Command::new("sh")
        .args(["-c", "cat log && echo rec4 >> log && sync log"])
        .current_dir(&data)
        .uid(SERVICE_UID)
        .gid(SERVICE_UID)
        .output()
        .expect("the service again");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rec1\nrec2\nrec3\n");
    ok(&["umount", &v.m()]);
    assert_eq!(
        fs::read_to_string(v.backing().join("data/log")).expect("backing"),
        "rec1\nrec2\nrec3\nrec4\n"
    );
}

/// The Rust API's `TestVolume` with `allow_other`: a process of another
/// user works on it, and the remount after a cut keeps the option.
#[test]
fn a_test_volume_with_allow_other_serves_another_user() {
    use durafs::fs::FsOptions;
    use durafs::model::crash::{CrashOptions, Policy};
    use durafs::mount::MountOptions;
    use durafs::testing::TestVolume;
    let mo = MountOptions {
        allow_other: true,
        ..MountOptions::default()
    };
    let mut vol = TestVolume::with_mount_options(FsOptions::default(), mo).expect("mount");
    let dir = vol.path().join("svc");
    fs::create_dir(&dir).expect("mkdir");
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    let as_service = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .current_dir(&dir)
            .uid(SERVICE_UID)
            .gid(SERVICE_UID)
            .output()
            .expect("sh as the service")
    };
    let out = as_service("echo rec > log && sync log");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        fs::metadata(dir.join("log")).expect("stat").uid(),
        SERVICE_UID
    );
    vol.sync().expect("sync");
    vol.cut(CrashOptions {
        policy: Policy::DropAll,
        ..Default::default()
    })
    .expect("cut");
    let out = as_service("cat log");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "rec\n");
}
