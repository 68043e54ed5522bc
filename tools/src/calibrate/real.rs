//! The real filesystem's outcomes, recorded at the block level. An image
//! file on a tracing durafs volume is attached to a loop device (buffered:
//! every block write becomes a FUSE write, every cache flush or FUA an
//! fsync of the image), formatted and mounted; the workload runs in its
//! root with its marks going to the outer volume, so they are ordered with
//! the block writes. Then the trace is taken and nothing is unmounted
//! first: the crash. Just before each flush of the image and at each mark
//! (see [`super::points`]), every crash state durafs allows for the image
//! file (block writes since the last flush lost, reordered or torn at the
//! sector size) is materialised into an image, attached, mounted
//! (the journal or log replays), read into an [`Outcome`], unmounted and
//! checked with the filesystem's `fsck -n`.
//!
//! Identical images are mounted once (keyed by a 64-bit hash of the
//! bytes). Writeback the kernel has not started by a mark is not on the
//! device, so it is not in the real outcomes of that mark.

use super::device::{FsKind, LoopDev, MountGuard, run};
use super::outcome::{Contents, Outcome, read_tree_keeping};
use super::points::{Placement, Point, WalkStats, at_marks};
use super::reach::Origin;
use super::{PointOutcomes, Side};
use crate::workload::{self, ENV_MOUNT, check_interrupted, spawn};
use crate::{Result, err};
use durafs::fs::FsOptions;
use durafs::model::crash::{CrashOptions, Policy};
use durafs::model::enumerate::EnumOptions;
use durafs::model::{FileData, Ino, MemStore, SparseNode};
use durafs::trace::{Trace, TraceOp};
use std::collections::HashMap;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::{Mutex, mpsc};

/// The image file's name in the recording volume.
const IMAGE: &[u8] = b"image";

/// How one distinct image fared.
pub type Verdict = std::result::Result<Outcome, String>;

/// What the real side does between operations (`--writeback`,
/// `--commits`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Recording {
    /// Write dirty pages back before each mark.
    pub writeback: bool,
    /// Write dirty pages back at the script's `wb` call of this number
    /// (from 1) only.
    pub writeback_at: Option<usize>,
    /// Commit the journal every second and wait for a commit before each
    /// mark ([`super::commit`]).
    pub commits: bool,
    /// Write back and sync the filesystem before each mark, on both sides
    /// (the model's side only syncs).
    pub settle: bool,
}

/// Records `script` on a fresh `kind` filesystem in `dir`.
pub fn record(kind: FsKind, script: &str, how: Recording, dir: &Path) -> Result<Recorded> {
    let outer = workload::volume(dir, None, FsOptions::default(), false, |fs| {
        fs.start_trace(true, None)
            .map_err(|e| err(format!("tracing: {e}")))
    })?;
    let mnt = outer.mountpoint().to_path_buf();
    let image = mnt.join("image");
    let ioe = |what: &str, e: std::io::Error| err(format!("{what}: {e}"));
    {
        let f = fs::File::create(&image).map_err(|e| ioe("creating the image", e))?;
        f.set_len(kind.image_size())
            .map_err(|e| ioe("sizing the image", e))?;
        f.sync_all().map_err(|e| ioe("fsync of the image", e))?;
        fs::File::open(&mnt)
            .and_then(|d| d.sync_all())
            .map_err(|e| ioe("fsync of the volume's root", e))?;
    }
    run(&kind.mkfs(), &image).map_err(err)?;
    let inner_dir = dir.join("inner");
    fs::create_dir_all(&inner_dir).map_err(|e| ioe("creating the inner mount point", e))?;
    let dev = LoopDev::attach(&image).map_err(err)?;
    let options = how
        .commits
        .then(|| super::commit::mount_options(kind))
        .flatten();
    let inner = MountGuard::mount(dev.path(), &inner_dir, kind.name(), options)
        .map_err(|e| err(format!("mounting the fresh {}: {e}", kind.name())))?;
    let exe = std::env::current_exe().map_err(|e| ioe("finding the durafs binary", e))?;
    let argv = ["sh".to_string(), "-c".to_string(), script.to_string()];
    let mut env: Vec<(&str, &Path)> = vec![("DURAFS", &exe), (ENV_MOUNT, &mnt)];
    if how.writeback || how.settle {
        env.push(("DURAFS_WRITEBACK", Path::new("1")));
    }
    let at = how.writeback_at.map(|k| k.to_string());
    if let Some(k) = &at {
        env.push(("DURAFS_WRITEBACK_AT", Path::new(k)));
    }
    if how.settle {
        env.push(("DURAFS_SETTLE", Path::new("1")));
    }
    if how.commits {
        env.push(("DURAFS_COMMIT", Path::new("1")));
    }
    let status = spawn(&argv, &inner_dir, &env)?
        .wait()
        .map_err(|e| ioe("waiting for the workload", e))?;
    // The crash: the trace ends here, with the filesystem still mounted.
    let trace = workload::take_trace(&outer)?;
    if let Err(e) = inner.unmount() {
        log::warn!("durafs calibrate: {e}");
    }
    drop(dev);
    // The recording volume's content is not needed once the trace is
    // taken, and a descriptor of its image may still be open (the loop
    // device's release is asynchronous; a child forked by another thread
    // holds copies of this process's descriptors until its exec), so it is
    // torn down as a cut, which detaches even while files are open.
    outer
        .cut(CrashOptions {
            policy: Policy::DropAll,
            ..CrashOptions::default()
        })
        .map_err(|e| err(format!("tearing the recording volume down: {e}")))?;
    check_interrupted()?;
    if !status.success() {
        return Err(err(format!(
            "the workload failed ({status}) on {}",
            kind.name()
        )));
    }
    let image = image_ino(&trace).ok_or_else(|| err("the trace has no image file"))?;
    Ok(Recorded { trace, image })
}

fn image_ino(trace: &Trace) -> Option<Ino> {
    trace.events.iter().find_map(|e| match &e.op {
        TraceOp::Create { name, ino, .. } if name.0 == IMAGE => Some(*ino),
        _ => None,
    })
}

/// The image file `ino` in a crash state, written to `dst` in proportion
/// to its data (holes stay holes: `FileData::write_into`), and a 64-bit
/// digest of its content for finding identical images.
pub fn materialise_image(state: &MemStore, ino: Ino, dst: &Path) -> std::io::Result<u64> {
    let data = image_data(state, ino);
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dst)?;
    data.write_into(&f)?;
    // FileData is canonical (equal exactly when the bytes are), so its
    // hash stands for the bytes'.
    let mut h = std::hash::DefaultHasher::new();
    data.hash(&mut h);
    Ok(h.finish())
}

/// The image file's content in `state`.
pub fn image_data(state: &MemStore, ino: Ino) -> FileData {
    state
        .sparse_tree()
        .into_values()
        .find_map(|(node, i)| match node {
            SparseNode::File(d) if i == ino => Some(d),
            _ => None,
        })
        .unwrap_or_default()
}

/// Mounts the image at `img`, reads its tree (its files' bytes into
/// `keep`), unmounts and checks it.
pub fn check_image(kind: FsKind, img: &Path, mnt: &Path, keep: &mut Contents) -> Verdict {
    let dev = LoopDev::attach(img)?;
    let outcome = {
        let m = MountGuard::mount(dev.path(), mnt, kind.name(), None)?;
        let o = read_tree_keeping(mnt, keep).map_err(|e| format!("reading the tree failed: {e}"));
        // Not a finding about the filesystem: the guard detaches it lazily.
        m.unmount()
            .map_err(|e| format!("calibrate could not unmount: {e}"))?;
        o?
    };
    run(&kind.fsck(), dev.path()).map_err(|e| format!("fsck failed: {e}"))?;
    Ok(outcome)
}

/// A state to check: its mark index, its image and where it came from.
type Item = (usize, MemStore, Origin);
type Queue = Mutex<mpsc::Receiver<Item>>;

/// What the checking threads fill in.
#[derive(Default)]
struct Found {
    /// Each distinct image's verdict, by its digest.
    verdicts: Mutex<HashMap<u64, Verdict>>,
    /// (mark index, image digest, origin) of every state.
    keys: Mutex<Vec<(usize, u64, Origin)>>,
    /// The bytes of every file of every outcome.
    contents: Mutex<Contents>,
}

/// One checking thread: materialises each queued state into its own image
/// and mounts it unless an identical image was already checked.
fn worker(kind: FsKind, ino: Ino, w: usize, scratch: &Path, rx: &Queue, found: &Found) {
    let img = scratch.join(format!("w{w}.img"));
    let mnt = scratch.join(format!("w{w}.mnt"));
    if let Err(e) = fs::create_dir_all(&mnt) {
        log::warn!("durafs calibrate: {}: {e}", mnt.display());
    }
    loop {
        let next = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok((point, store, origin)) = next else {
            return;
        };
        let key = match materialise_image(&store, ino, &img) {
            Ok(k) => k,
            Err(e) => {
                log::warn!("durafs calibrate: writing {}: {e}", img.display());
                continue;
            }
        };
        if let Ok(mut k) = found.keys.lock() {
            k.push((point, key, origin));
        }
        let known = found.verdicts.lock().map_or(true, |m| m.contains_key(&key));
        if !known {
            let mut keep = Contents::new();
            let v = check_image(kind, &img, &mnt, &mut keep);
            if v.is_ok() {
                if let Ok(mut c) = found.contents.lock() {
                    c.extend(keep);
                }
            }
            if let Ok(mut m) = found.verdicts.lock() {
                m.insert(key, v);
            }
        }
    }
}

/// One recording of a workload: the trace of the image file, and the
/// image's inode in it.
pub struct Recorded {
    pub trace: Trace,
    pub image: Ino,
}

/// The real outcomes at every step of `rec` (the workload's recording
/// number `recording`), `jobs` images at a time.
pub fn outcomes(
    kind: FsKind,
    rec: &Recorded,
    recording: usize,
    opts: &EnumOptions,
    max_states: usize,
    jobs: usize,
    scratch: &Path,
) -> Result<Side> {
    let (tx, rx) = mpsc::sync_channel::<Item>(jobs);
    let rx = Mutex::new(rx);
    let found = Found::default();
    let mut points: Vec<Point> = Vec::new();
    let stats: std::result::Result<WalkStats, String> = std::thread::scope(|s| {
        for w in 0..jobs {
            let (rx, found) = (&rx, &found);
            s.spawn(move || worker(kind, rec.image, w, scratch, rx, found));
        }
        let r = at_marks(
            &rec.trace,
            Placement::Persistence,
            opts,
            max_states,
            false,
            |point, store, at| {
                if workload::interrupted() {
                    return false;
                }
                if points.last() != Some(point) {
                    points.push(point.clone());
                }
                let origin = Origin {
                    recording,
                    position: at.position,
                    kept: at.state.kept.clone(),
                };
                tx.send((point.index, store, origin)).is_ok()
            },
        );
        drop(tx);
        r.map_err(|e| e.to_string())
    });
    check_interrupted()?;
    let stats = stats.map_err(err)?;
    let Found {
        verdicts,
        keys,
        contents,
    } = found;
    let verdicts = verdicts.into_inner().unwrap_or_default();
    let mut out: Vec<PointOutcomes> = points.into_iter().map(PointOutcomes::new).collect();
    for (point, key, origin) in keys.into_inner().unwrap_or_default() {
        let Some(po) = out.iter_mut().find(|p| p.point.index == point) else {
            continue;
        };
        match verdicts.get(&key) {
            Some(Ok(o)) => {
                let at = po.origins.entry(o.clone()).or_default();
                if at.iter().all(|x| x.position != origin.position) {
                    at.push(origin);
                }
                po.add(o.clone());
            }
            Some(Err(e)) => po.add_inconsistent(e),
            None => po.add_inconsistent("not checked"),
        }
    }
    Ok(Side {
        points: out,
        stats,
        contents: contents.into_inner().unwrap_or_default(),
    })
}
