//! The `durafs::testing` API as a Rust project would use it in its tests.

use durafs::fs::FsOptions;
use durafs::model::crash::{CrashOptions, Policy};
use durafs::model::enumerate::EnumOptions;
use durafs::testing::{TestVolume, explore};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

fn write_file(p: &Path, data: &[u8], sync: bool) -> io::Result<()> {
    let mut f = File::create(p)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    Ok(())
}

fn sync_dir(p: &Path) -> io::Result<()> {
    File::open(p)?.sync_all()
}

/// Replaces `config` (durable "old") with "new" through a temp file.
fn replace(root: &Path, careful: bool) -> io::Result<()> {
    write_file(&root.join("config"), b"old", true)?;
    sync_dir(root)?;
    write_file(&root.join("config.tmp"), b"new", careful)?;
    fs::rename(root.join("config.tmp"), root.join("config"))?;
    if careful {
        sync_dir(root)?;
    }
    Ok(())
}

fn config_is_old_or_new(root: &Path) -> Result<(), String> {
    match fs::read(root.join("config")) {
        Ok(d) if d == b"old" || d == b"new" => Ok(()),
        Ok(d) => Err(format!("config holds {:?}", String::from_utf8_lossy(&d))),
        Err(e) => Err(format!("config unreadable: {e}")),
    }
}

fn opts() -> EnumOptions {
    EnumOptions {
        cap: 32,
        ..EnumOptions::default()
    }
}

#[test]
fn explore_finds_rename_without_fsync_and_passes_the_careful_version() {
    let bad = explore(
        &opts(),
        FsOptions::default(),
        |root| replace(root, false),
        config_is_old_or_new,
    )
    .expect("explore");
    assert!(bad.states_tried > 1);
    assert!(!bad.failures.is_empty(), "{bad:?}");
    let good = explore(
        &opts(),
        FsOptions::default(),
        |root| replace(root, true),
        config_is_old_or_new,
    )
    .expect("explore");
    assert!(good.states_tried >= 1);
    assert!(good.failures.is_empty(), "{good:?}");
}

#[test]
fn test_volume_cuts_and_remounts_in_place() {
    let mut vol = TestVolume::new().expect("mount");
    write_file(&vol.path().join("kept"), b"durable", true).expect("write");
    sync_dir(vol.path()).expect("fsync dir");
    write_file(&vol.path().join("lost"), b"unsynced", false).expect("write");
    assert_eq!(vol.status().expect("status").files.len(), 1);
    assert!(vol.crash_states(&opts()).expect("states").len() > 1);
    let cut = vol
        .cut(CrashOptions {
            policy: Policy::DropAll,
            ..CrashOptions::default()
        })
        .expect("cut");
    assert_eq!(cut.bytes_lost, 8);
    assert_eq!(fs::read(vol.path().join("kept")).expect("kept"), b"durable");
    assert!(!vol.path().join("lost").exists());
    write_file(&vol.path().join("after"), b"usable", false).expect("the remount is usable");
}

/// Regression: `TestVolume::cut` chose its state without the journal rule
/// on a `journal` volume, where a later name never survives without an
/// earlier one. Every seed of a random cut now leaves a prefix of names.
#[test]
fn a_journal_volume_keeps_its_names_in_order_through_a_random_cut() {
    for seed in 0..16 {
        let mut vol = TestVolume::with_options(FsOptions {
            persistence: durafs::model::Persistence::Ext4,
            ..FsOptions::default()
        })
        .expect("mount");
        for name in ["a", "b", "c"] {
            File::create(vol.path().join(name)).expect("create");
        }
        vol.cut(CrashOptions {
            policy: Policy::Random,
            seed,
            ..CrashOptions::default()
        })
        .expect("cut");
        let there: Vec<bool> = ["a", "b", "c"]
            .iter()
            .map(|n| vol.path().join(n).exists())
            .collect();
        assert!(
            there.iter().skip_while(|t| **t).all(|t| !*t),
            "seed {seed}: names out of order: {there:?}"
        );
    }
}
