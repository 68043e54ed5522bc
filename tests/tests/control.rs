//! The control file `MOUNTPOINT/.durafs`, driven as a script would: with
//! plain file reads and writes.

use durafs::model::Persistence;
use durafs_tests::Vol;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};

fn exchange(v: &Vol, cmd: &str) -> (std::io::Result<usize>, serde_json::Value) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(v.p(".durafs"))
        .expect("open the control file");
    let sent = f.write(cmd.as_bytes());
    let mut reply = Vec::new();
    f.read_to_end(&mut reply).expect("read the reply");
    (
        sent,
        serde_json::from_slice(&reply).expect("the reply is JSON"),
    )
}

#[test]
fn control_file_is_hidden_protected_and_reports_status() {
    let v = Vol::new(Persistence::Posix);
    let mut f = fs::File::create(v.p("f")).expect("create");
    f.write_all(b"0123456789ab").expect("write");
    f.sync_all().expect("fsync");
    f.write_all(b"cdefghijklmnop").expect("write tail");

    let names: Vec<_> = fs::read_dir(&v.mnt)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec!["f"], "the control file is not listed");
    let md = fs::metadata(v.p(".durafs")).expect("stat the control file");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&md.permissions()) & 0o777,
        0o600
    );

    // `cat MOUNTPOINT/.durafs` prints the status.
    let st: serde_json::Value =
        serde_json::from_slice(&fs::read(v.p(".durafs")).expect("cat")).expect("JSON");
    let file = &st["status"]["files"][0];
    assert_eq!(file["path"], "f");
    assert_eq!(file["ranges"], serde_json::json!([[12, 26]]));
    assert_eq!(file["unsynced_bytes"], 14);

    // `volume`: the same settings and counters, without the report.
    let (sent, vol) = exchange(&v, "volume");
    assert_eq!(sent.expect("volume is a command"), "volume".len());
    assert_eq!(vol["volume"], st["volume"]);
    assert!(vol.get("status").is_none(), "{vol}");

    for r in [
        fs::remove_file(v.p(".durafs")),
        fs::rename(v.p(".durafs"), v.p("x")),
        fs::rename(v.p("f"), v.p(".durafs")),
        fs::hard_link(v.p(".durafs"), v.p("y")),
    ] {
        let e = r.expect_err("the control file cannot be removed, renamed or linked");
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    }
    let e = fs::create_dir(v.p(".durafs")).expect_err("nor created");
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    assert_eq!(fs::read(v.p("f")).expect("f untouched").len(), 26);
}

#[test]
fn malformed_commands_fail_cleanly_and_the_volume_keeps_running() {
    let v = Vol::new(Persistence::Posix);
    fs::write(v.p("f"), b"data").expect("write");
    let (sent, reply) = exchange(&v, "cut --policy nope\n");
    assert_eq!(
        sent.expect_err("refused").raw_os_error(),
        Some(libc::EINVAL)
    );
    assert_eq!(reply["ok"], false);
    assert!(
        reply["error"]
            .as_str()
            .unwrap_or("")
            .contains("invalid value 'nope' for '--policy"),
        "{reply}"
    );
    let (sent, _) = exchange(&v, "frobnicate");
    assert!(sent.is_err());
    assert_eq!(fs::read(v.p("f")).expect("still serving"), b"data");

    let (sent, reply) = exchange(&v, "sync\n");
    sent.expect("sync accepted");
    assert_eq!(reply["ok"], true);
    let (_, st) = exchange(&v, "status");
    assert_eq!(
        st["status"]["pending_ops"], 0,
        "sync made everything durable"
    );
    assert_eq!(fs::read(v.backing.join("f")).expect("in backing"), b"data");
}

#[test]
fn a_cut_through_the_control_file_reports_the_losses() {
    let v = Vol::new(Persistence::Posix);
    fs::write(v.p("f"), b"lost bytes").expect("write");
    let (sent, reply) = exchange(&v, "cut --policy drop-all --seed 42");
    sent.expect("cut accepted");
    let cut = &reply["cut"];
    assert_eq!(cut["seed"], 42);
    assert_eq!(cut["bytes_lost"], 10);
    assert_eq!(cut["names_lost"], 1);
    let e = fs::read(v.p("f")).expect_err("the volume is dead");
    assert!(
        matches!(
            e.raw_os_error(),
            Some(libc::EIO) | Some(libc::ENOTCONN) | Some(libc::ENOENT)
        ),
        "{e}"
    );
}

/// Regression (issue 19): the control file refused `--policy=torn`, which
/// the CLI accepts (two grammars). Both forms cut alike now; an unknown
/// option is refused with clap's message, changing nothing.
#[test]
fn options_take_a_space_or_an_equals_sign_and_unknown_ones_are_refused() {
    for cmd in [
        "cut --policy torn --seed 9 --sector 4096",
        "cut --policy=torn --seed=9 --sector=4096",
        "cut '--policy=torn' --seed \"9\" --sector=4096",
    ] {
        let v = Vol::new(Persistence::Posix);
        fs::write(v.p("f"), vec![7u8; 10_000]).expect("write");
        let (sent, reply) = exchange(&v, "cut --policy=torn --force");
        assert_eq!(
            sent.expect_err("refused").raw_os_error(),
            Some(libc::EINVAL)
        );
        let e = reply["error"].as_str().unwrap_or("");
        assert!(e.contains("unexpected argument '--force'"), "{reply}");
        assert_eq!(fs::read(v.p("f")).expect("still serving").len(), 10_000);

        let (sent, reply) = exchange(&v, cmd);
        sent.unwrap_or_else(|e| panic!("{cmd}: {e}: {reply}"));
        assert_eq!(reply["cut"]["policy"], "torn", "{cmd}: {reply}");
        assert_eq!(reply["cut"]["seed"], 9, "{cmd}: {reply}");
    }
}
