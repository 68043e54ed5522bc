//! A Rust API for crash-testing storage code in its own `#[test]`s: a
//! [`TestVolume`] mounts durafs in a temp dir, and [`explore`] runs a
//! workload once, traced, then checks every crash state of the trace
//! (after every operation) and explains the failures as vulnerabilities.
//!
//! Mounting needs root and `/dev/fuse`. A test killed while it held a
//! volume (SIGKILL: a test runner's timeout) leaves a dead mount; the
//! next volume made on the machine clears it ([`clear_dead`]).
//!
//! ```no_run
//! use durafs::model::crash::{CrashOptions, Policy};
//! use durafs::testing::TestVolume;
//! use std::io::Write;
//!
//! let mut vol = TestVolume::new().unwrap();
//! let path = vol.path().join("data");
//! let mut f = std::fs::File::create(&path).unwrap();
//! f.write_all(b"acknowledged").unwrap();
//! f.sync_all().unwrap(); // the data, but not the name
//! drop(f);
//! vol.cut(CrashOptions { policy: Policy::DropAll, ..Default::default() }).unwrap();
//! // After the power cut the file's name was never made durable:
//! assert!(!vol.path().join("data").exists());
//! ```

use crate::fs::{CutSummary, DuraFs, FsOptions};
use crate::model::crash::{CrashOptions, CrashState};
use crate::model::enumerate::{EnumOptions, enumerate};
use crate::model::{PendingOp, Report};
use crate::mount::{MountOptions, Mounted, mount};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A durafs volume mounted in a fresh temp dir; unmounted (and removed)
/// when dropped, also while a test panics.
pub struct TestVolume {
    // Declared first: unmounted before the directories are removed.
    mounted: Option<Mounted>,
    opts: FsOptions,
    mount_opts: MountOptions,
    backing: PathBuf,
    mnt: PathBuf,
    _tmp: tempfile::TempDir,
}

impl fmt::Debug for TestVolume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestVolume")
            .field("mnt", &self.mnt)
            .field("backing", &self.backing)
            .finish()
    }
}

fn other(what: &str, e: impl fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl TestVolume {
    /// A volume with the default settings (the `posix` model).
    pub fn new() -> io::Result<TestVolume> {
        TestVolume::with_options(FsOptions::default())
    }

    /// A volume with `opts`.
    pub fn with_options(opts: FsOptions) -> io::Result<TestVolume> {
        TestVolume::with_mount_options(opts, MountOptions::default())
    }

    /// A volume with `opts`, mounted with `mount_opts`. With
    /// [`MountOptions::allow_other`] every user may use it (a test that
    /// runs a service as another user) and its temp dir is mode 0755.
    pub fn with_mount_options(opts: FsOptions, mount_opts: MountOptions) -> io::Result<TestVolume> {
        TestVolume::make(opts, mount_opts, false)
    }

    /// A volume whose every call is traced from the start (see
    /// [`crate::trace`]); [`explore`] replays the trace.
    fn traced(opts: FsOptions) -> io::Result<TestVolume> {
        TestVolume::make(opts, MountOptions::default(), true)
    }

    fn make(opts: FsOptions, mount_opts: MountOptions, traced: bool) -> io::Result<TestVolume> {
        use std::os::unix::fs::PermissionsExt;
        stale::clear_dead();
        let tmp = tempfile::Builder::new()
            .prefix(&stale::prefix(std::process::id()))
            .tempdir()?;
        if mount_opts.allow_other {
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))?;
        }
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir(&mnt)?;
        let mut v = TestVolume {
            mounted: None,
            opts,
            mount_opts,
            backing,
            mnt,
            _tmp: tmp,
        };
        v.mount(traced)?;
        Ok(v)
    }

    fn mount(&mut self, traced: bool) -> io::Result<()> {
        let fs = DuraFs::open(&self.backing, self.opts).map_err(|e| other("backing", e))?;
        if traced {
            fs.start_trace(true, None)?;
        }
        self.mounted = Some(mount(Arc::new(fs), &self.mnt, &self.mount_opts)?);
        Ok(())
    }

    fn fs(&self) -> io::Result<&Arc<DuraFs>> {
        self.mounted
            .as_ref()
            .map(Mounted::fs)
            .ok_or_else(|| io::Error::other("the volume is not mounted"))
    }

    /// Where the volume is mounted.
    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// The directory holding the durable state.
    pub fn backing(&self) -> &Path {
        &self.backing
    }

    /// Exactly what is not durable yet.
    pub fn status(&self) -> io::Result<Report> {
        Ok(self.fs()?.status())
    }

    /// The pending operations, in order.
    pub fn pending(&self) -> io::Result<Vec<PendingOp>> {
        Ok(self.fs()?.pending())
    }

    /// The crash states a cut now could leave, as [`enumerate`] lists them
    /// under the volume's model.
    pub fn crash_states(&self, opts: &EnumOptions) -> io::Result<Vec<CrashState>> {
        let opts = opts.under(self.persistence()?);
        let pending = self.pending()?;
        Ok(enumerate(&pending, &opts).collect())
    }

    /// The volume's durability model.
    fn persistence(&self) -> io::Result<crate::model::Persistence> {
        Ok(self.fs()?.model().config().persistence)
    }

    /// Makes everything durable.
    pub fn sync(&self) -> io::Result<()> {
        self.fs()?.sync().map_err(|e| other("sync", e))
    }

    /// Cuts the power with `opts` and remounts the post-crash state at the
    /// same path. Files left open fail from now on.
    pub fn cut(&mut self, opts: CrashOptions) -> io::Result<CutSummary> {
        let opts = opts.under(self.persistence()?);
        self.cut_with(opts.policy.name(), |p| {
            crate::model::crash::crash_state(p, &opts)
        })
    }

    /// Cuts the power leaving crash state number `n` of
    /// [`TestVolume::crash_states`] with `opts`, and remounts.
    pub fn cut_to_state(&mut self, n: usize, opts: &EnumOptions) -> io::Result<CutSummary> {
        let opts = opts.under(self.persistence()?);
        let mut missing = false;
        let summary = self.cut_with("enumerated", |p| {
            let states: Vec<CrashState> = enumerate(p, &opts).collect();
            let len = states.len();
            match states.into_iter().nth(n) {
                Some(s) => s,
                None => {
                    missing = true;
                    CrashState {
                        seed: 0,
                        kept: Vec::new(),
                        total: p.len(),
                        description: format!("drop-all: state {n} of {len} does not exist"),
                    }
                }
            }
        })?;
        if missing {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no crash state {n}; the volume was cut with drop-all"),
            ));
        }
        Ok(summary)
    }

    fn cut_with(
        &mut self,
        label: &str,
        choose: impl FnOnce(&[PendingOp]) -> CrashState,
    ) -> io::Result<CutSummary> {
        let m = self
            .mounted
            .take()
            .ok_or_else(|| io::Error::other("the volume is not mounted"))?;
        let summary = m.cut_with(label, choose).map_err(|e| other("cut", e))?;
        self.mount(false)?;
        Ok(summary)
    }
}

mod explore;
mod stale;

pub use explore::{Exploration, Failure, Workload, explore};
pub use stale::clear_dead;
