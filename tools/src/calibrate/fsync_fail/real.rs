//! The real side: ext4, xfs or btrfs on a loop device over an image file
//! on a durafs volume (in this process). The failure is durafs's own
//! fault on that volume, `error EIO --op write --path '^/image$' --range
//! A..B --forever` per failing range: the loop device's write requests
//! that touch those bytes fail whole (nothing of them is written), a real
//! disk I/O error under the real filesystem. Right after the failed fsync
//! the image's bytes show which dirty pages really reached the medium.

use super::super::device::{FsKind, LoopDev, MountGuard, run};
use super::super::fiemap;
use super::space::{self, Chunk};
use super::steps::Bench;
use super::workload::{Fail, PAGE, Workload};
use crate::workload as vol;
use crate::{Result, err};
use durafs::fs::FsOptions;
use durafs::model::ROOT;
use durafs::model::crash::{CrashOptions, Policy};
use durafs::mount::Mounted;
use std::path::{Path, PathBuf};

/// The image file's name on the outer volume.
const IMAGE: &str = "image";

/// The image size and mkfs command line (the image to be appended). btrfs
/// is made without `--mixed` (data and metadata in separate chunks, so
/// that failing the data chunks fails no metadata write), on an image
/// large enough for that (sparse: only what mkfs writes takes room).
fn mkfs(kind: FsKind) -> (u64, Vec<&'static str>) {
    match kind {
        FsKind::Btrfs => (1 << 30, vec!["mkfs.btrfs", "-q", "-f", "-K"]),
        _ => (kind.image_size(), kind.mkfs()),
    }
}

/// A real filesystem ready for one workload; dropping it unmounts the
/// filesystem, detaches the loop device and tears the outer volume down,
/// in that order (the fields' order).
pub struct Rig {
    inner: Option<MountGuard>,
    dev: Option<LoopDev>,
    outer: Option<Mounted>,
    kind: FsKind,
    inner_dir: PathBuf,
    image_ino: u64,
    /// btrfs: its chunks, read after mkfs.
    chunks: Vec<Chunk>,
    /// The armed faults' ids.
    faults: Vec<u64>,
    /// Device writes the faults failed, in all.
    pub failed_writes: u64,
    /// Of the workload's dirty pages, those whose new bytes were on the
    /// medium right after the failed fsync (`None`: not measured).
    pub reached: Option<Vec<bool>>,
    /// The byte ranges of the image the faults covered.
    pub ranges: Vec<(u64, u64)>,
    /// The free space right after the first mount (GETFSMAP; ext4, xfs).
    free_at_mount: Vec<(u64, u64)>,
    _dir: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        drop(self.inner.take());
        drop(self.dev.take());
        if let Some(outer) = self.outer.take() {
            // As in calibrate's recording: a cut detaches even while a
            // descriptor of the image is still open.
            let cut = CrashOptions {
                policy: Policy::DropAll,
                ..CrashOptions::default()
            };
            if let Err(e) = outer.cut(cut) {
                log::warn!("durafs calibrate: tearing the outer volume down: {e}");
            }
        }
    }
}

fn ioe(what: &str, e: std::io::Error) -> crate::CliError {
    err(format!("{what}: {e}"))
}

impl Rig {
    /// A fresh `kind` filesystem, mounted.
    pub fn new(kind: FsKind) -> Result<Rig> {
        let dir = tempfile::Builder::new()
            .prefix("durafs-calibrate-fsync-")
            .tempdir()
            .map_err(|e| ioe("creating a work directory", e))?;
        let outer = vol::volume(
            &dir.path().join("outer"),
            None,
            FsOptions::default(),
            false,
            |_| Ok(()),
        )?;
        let image = outer.mountpoint().join(IMAGE);
        let inner_dir = dir.path().join("inner");
        let mut rig = Rig {
            inner: None,
            dev: None,
            outer: None,
            kind,
            inner_dir,
            image_ino: 0,
            chunks: Vec::new(),
            faults: Vec::new(),
            failed_writes: 0,
            reached: None,
            ranges: Vec::new(),
            free_at_mount: Vec::new(),
            _dir: dir,
        };
        let fs = std::sync::Arc::clone(outer.fs());
        rig.outer = Some(outer);
        let (size, argv) = mkfs(kind);
        {
            let f = std::fs::File::create(&image).map_err(|e| ioe("creating the image", e))?;
            f.set_len(size).map_err(|e| ioe("sizing the image", e))?;
        }
        run(&argv, &image).map_err(err)?;
        rig.image_ino = fs
            .lookup(ROOT, IMAGE.as_bytes())
            .map_err(|e| err(format!("the image on the outer volume: {e}")))?
            .ino;
        if kind == FsKind::Btrfs {
            rig.chunks = space::chunks(&image).map_err(err)?;
        }
        std::fs::create_dir_all(&rig.inner_dir).map_err(|e| ioe("the inner mount point", e))?;
        let dev = LoopDev::attach(&image).map_err(err)?;
        rig.dev = Some(dev);
        rig.mount()?;
        if kind != FsKind::Btrfs {
            rig.free_at_mount =
                space::free_space(&rig.inner_dir).map_err(|e| ioe("GETFSMAP", e))?;
        }
        Ok(rig)
    }

    fn mount(&mut self) -> Result<()> {
        let dev = self
            .dev
            .as_ref()
            .ok_or_else(|| err("no loop device"))?
            .path()
            .to_path_buf();
        let m = MountGuard::mount(&dev, &self.inner_dir, self.kind.name(), None)
            .map_err(|e| err(format!("mounting {}: {e}", self.kind.name())))?;
        self.inner = Some(m);
        Ok(())
    }

    fn outer(&self) -> Result<&Mounted> {
        self.outer.as_ref().ok_or_else(|| err("no outer volume"))
    }

    /// The image's bytes `[off, off + len)` as the medium holds them.
    fn medium(&self, off: u64, len: u64) -> Result<Vec<u8>> {
        let fs = self.outer()?.fs();
        let mut out = Vec::with_capacity(len as usize);
        while (out.len() as u64) < len {
            let want = (len - out.len() as u64).min(1 << 20) as u32;
            let got = fs
                .read(self.image_ino, off + out.len() as u64, want)
                .map_err(|e| err(format!("reading the image: {e}")))?;
            if got.is_empty() {
                break;
            }
            out.extend(got);
        }
        out.resize(len as usize, 0);
        Ok(out)
    }

    /// The device offset of file page `page` of `file` now (FIEMAP, an
    /// unwritten extent's too: its blocks are where the page was sent).
    fn page_on_device(&self, file: &Path, page: u64) -> Result<Option<u64>> {
        let ex = fiemap::extents(file).map_err(|e| ioe("FIEMAP", e))?;
        let off = page * PAGE;
        let addr = ex
            .iter()
            .find(|e| e.logical <= off && off < e.logical + e.length)
            .map(|e| e.physical + (off - e.logical));
        Ok(match self.kind {
            FsKind::Btrfs => addr.and_then(|a| space::device_offset(&self.chunks, a)),
            _ => addr,
        })
    }

    fn data_chunks(&self) -> Vec<(u64, u64)> {
        self.chunks
            .iter()
            .filter(|c| c.is_data())
            .flat_map(|c| c.stripes.iter().map(move |s| (*s, s + c.length)))
            .collect()
    }

    /// The image ranges whose writes fail for `w`.
    fn targets(&self, w: &Workload, file: &Path) -> Result<Vec<(u64, u64)>> {
        let mut out = Vec::new();
        match &w.fail {
            Fail::Blocks { pages, free_space } => {
                for p in pages {
                    let at = self.page_on_device(file, *p)?.ok_or_else(|| {
                        err(format!("page {p} of the file has no block (FIEMAP)"))
                    })?;
                    out.push((at, at + PAGE));
                }
                if *free_space {
                    out.extend(self.free_for_appends(w, file)?);
                }
            }
            Fail::DataChunks => out = self.data_chunks(),
            Fail::NextFree { nth } => {
                // After the file's last block, on a fresh filesystem.
                let mut end = 0;
                for p in 0..w.pages {
                    if let Some(at) = self.page_on_device(file, p)? {
                        end = end.max(at + PAGE);
                    }
                }
                if end == 0 {
                    return Err(err("the file's blocks are not on the device (FIEMAP)"));
                }
                let at = end + nth * PAGE;
                out.push((at, at + PAGE));
            }
        }
        Ok(out)
    }

    /// Where appended pages may go: xfs's free space now; ext4's free
    /// space at the mount less the file's blocks (ext4 preallocates blocks
    /// after a file's last one for the inode, which GETFSMAP does not list
    /// as free; nothing else is allocated between the mount and the
    /// failure).
    fn free_for_appends(&self, w: &Workload, file: &Path) -> Result<Vec<(u64, u64)>> {
        if self.kind != FsKind::Ext4 {
            return space::free_space(&self.inner_dir).map_err(|e| ioe("GETFSMAP", e));
        }
        let mut used = Vec::new();
        for p in 0..w.pages {
            if let Some(at) = self.page_on_device(file, p)? {
                used.push((at, at + PAGE));
            }
        }
        Ok(space::subtract(&self.free_at_mount, &used))
    }

    /// Which dirty pages' new bytes are on the medium now.
    fn measure(&self, w: &Workload, file: &Path) -> Result<Vec<bool>> {
        let dirty = w.dirty();
        if self.kind != FsKind::Btrfs {
            let mut out = Vec::new();
            for p in &dirty {
                let on = match self.page_on_device(file, *p)? {
                    Some(at) => self.medium(at, PAGE)? == w.new_page(*p),
                    None => false,
                };
                out.push(on);
            }
            return Ok(out);
        }
        // Copy-on-write: a failed extent is never mapped, so the data
        // chunks are searched for the pages' new bytes.
        let wanted: Vec<Vec<u8>> = dirty.iter().map(|p| w.new_page(*p)).collect();
        let mut out = vec![false; dirty.len()];
        for (s, e) in self.data_chunks() {
            let mut at = s;
            while at < e {
                let len = (e - at).min(1 << 20);
                let bytes = self.medium(at, len)?;
                for block in bytes.chunks(PAGE as usize) {
                    for (i, want) in wanted.iter().enumerate() {
                        out[i] |= block == want.as_slice();
                    }
                }
                at += len;
            }
        }
        Ok(out)
    }
}

impl Bench for Rig {
    fn root(&self) -> PathBuf {
        self.inner_dir.clone()
    }

    fn arm(&mut self, w: &Workload, file: &Path) -> Result<()> {
        let ranges = self.targets(w, file)?;
        for (a, b) in &ranges {
            let spec =
                format!("error EIO --op write --path '^/{IMAGE}$' --range {a}..{b} --forever");
            let id = self
                .outer()?
                .fs()
                .add_fault(&spec)
                .map_err(|e| err(format!("arming {spec}: {}", e.0)))?;
            self.faults.push(id);
        }
        self.ranges = ranges;
        Ok(())
    }

    fn failed(&mut self, w: &Workload, file: &Path) -> Result<()> {
        self.reached = Some(self.measure(w, file)?);
        Ok(())
    }

    fn clear(&mut self) -> Result<()> {
        if self.faults.is_empty() {
            return Ok(());
        }
        let faults = self.outer()?.fs().faults();
        let fired: u64 = faults
            .list()
            .iter()
            .filter(|f| self.faults.contains(&f.id))
            .map(|f| f.fired)
            .sum();
        faults
            .clear(&self.faults)
            .map_err(|e| err(format!("clearing the faults: {}", e.0)))?;
        self.failed_writes += fired;
        self.faults.clear();
        Ok(())
    }

    fn evicted(&mut self, _file: &Path) -> Result<Vec<(u64, u64)>> {
        Ok(Vec::new())
    }

    fn remount(&mut self) -> Result<()> {
        if let Some(m) = self.inner.take() {
            m.unmount()
                .map_err(|e| err(format!("unmounting {}: {e}", self.kind.name())))?;
        }
        self.mount()
    }
}
