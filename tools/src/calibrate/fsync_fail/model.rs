//! The model's side: the same workload on a plain durafs volume with
//! `FsOptions { fsync_failure: <fs>, .. }`, its fsync failed by an
//! `fsync-fail` fault whose seed makes the model write back exactly the
//! dirty pages that really reached the medium. The remount is a clean
//! unmount (a sync: pages a failed fsync marked clean are not pending, so
//! it does not write them) and a mount of the same backing directory.
//!
//! durafs never evicts a page (it has no page cache of its own), so the
//! model's rule "a failed page is readable until evicted" is applied here:
//! a read after `drop_caches` takes the durable bytes (as the remount reads
//! them) on the ranges [`durafs::model::Model::clean_ranges`] lists.

use super::steps::{Bench, FILE};
use super::workload::Workload;
use crate::workload as vol;
use crate::{Result, err};
use durafs::fs::FsOptions;
use durafs::model::fsync_fail::{FsyncFailure, written_pages};
use durafs::model::{Persistence, ROOT};
use durafs::mount::Mounted;
use std::path::{Path, PathBuf};

/// Seeds tried for the pattern of written pages.
const SEEDS: u64 = 1 << 16;

/// The first fault seed whose [`written_pages`] of `dirty` is `reached`.
pub fn seed_for(dirty: &[u64], reached: &[bool]) -> Option<u64> {
    (0..SEEDS).find(|s| written_pages(dirty, *s) == reached)
}

/// A durafs volume for one workload; unmounted (cleanly) on drop.
pub struct ModelBench {
    mounted: Option<Mounted>,
    opts: FsOptions,
    seed: u64,
    dir: tempfile::TempDir,
}

impl ModelBench {
    pub fn new(model: Persistence, sem: FsyncFailure, seed: u64) -> Result<ModelBench> {
        let dir = tempfile::Builder::new()
            .prefix("durafs-calibrate-fsync-model-")
            .tempdir()
            .map_err(|e| err(format!("creating a work directory: {e}")))?;
        let opts = FsOptions {
            persistence: model,
            fsync_failure: sem,
            ..FsOptions::default()
        };
        let mut b = ModelBench {
            mounted: None,
            opts,
            seed,
            dir,
        };
        b.mount()?;
        Ok(b)
    }

    fn mount(&mut self) -> Result<()> {
        let m = vol::volume(self.dir.path(), None, self.opts, false, |_| Ok(()))?;
        self.mounted = Some(m);
        Ok(())
    }

    fn mounted(&self) -> Result<&Mounted> {
        self.mounted
            .as_ref()
            .ok_or_else(|| err("the model's volume is not mounted"))
    }
}

impl Bench for ModelBench {
    fn root(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn arm(&mut self, _w: &Workload, _file: &Path) -> Result<()> {
        let spec = format!("fsync-fail --path '^/{FILE}$' --seed {}", self.seed);
        self.mounted()?
            .fs()
            .add_fault(&spec)
            .map_err(|e| err(format!("arming {spec}: {}", e.0)))?;
        Ok(())
    }

    fn failed(&mut self, _w: &Workload, _file: &Path) -> Result<()> {
        Ok(())
    }

    fn clear(&mut self) -> Result<()> {
        Ok(())
    }

    fn evicted(&mut self, _file: &Path) -> Result<Vec<(u64, u64)>> {
        let fs = self.mounted()?.fs();
        let ino = fs
            .lookup(ROOT, FILE.as_bytes())
            .map_err(|e| err(format!("the model's file: {e}")))?
            .ino;
        fs.model()
            .clean_ranges(ino)
            .map_err(|e| err(format!("the model's clean ranges: {e}")))
    }

    fn remount(&mut self) -> Result<()> {
        if let Some(m) = self.mounted.take() {
            m.unmount()
                .map_err(|e| err(format!("unmounting the model's volume: {e}")))?;
        }
        self.mount()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_every_pattern_with_a_failed_page() {
        let dirty = [0, 2, 3];
        for bits in 0..7u32 {
            let want: Vec<bool> = (0..3).map(|i| bits >> i & 1 == 1).collect();
            let s = seed_for(&dirty, &want).expect("a seed");
            assert_eq!(written_pages(&dirty, s), want);
        }
        assert_eq!(seed_for(&dirty, &[true, true, true]), None);
    }
}
