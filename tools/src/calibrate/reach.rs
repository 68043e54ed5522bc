//! Reach: membership in the other direction. A predicted outcome that no
//! enumerated real state showed may still be one the real device gives:
//! the real side enumerates prefixes, single omissions and chosen splits of
//! the image's block writes, not every subset. For such an outcome this
//! search builds the device state that would give it and mounts it.
//!
//! From a real outcome of the same step that differs from the predicted one
//! only in the bytes of files of the same size (the *base*, with the crash
//! state of the image that gave it, [`Origin`]), the base image is mounted
//! and each differing file's extents are read (`FIEMAP`). Every device
//! sector (at the real side's unit) under a differing file sector must then
//! hold the predicted bytes in one of its versions at that crash position:
//! the durable one, or the one after any pending block write to it. Each
//! such sector takes the latest version that matches; a block write then
//! persisted the sectors whose version is past it. The image state so built
//! must be one the block-level rules of the real side accept unchanged
//! ([`durafs::model::profile::apply`]: the page rule on the image at the
//! sector size), and its mount (journal replay), read and `fsck -n` must
//! give exactly the predicted outcome. So "reached" is never a guess: the
//! device state is legal and was mounted.
//!
//! Not searched: bases that differ in names, sizes or metadata; file bytes
//! that are not plain device bytes (inline, unwritten or delayed extents);
//! btrfs, whose `FIEMAP` addresses are its own logical addresses, not
//! device offsets. Such predictions stay unseen.

use super::PointOutcomes;
use super::device::{FsKind, LoopDev, MountGuard};
use super::fiemap::{Extent, extents};
use super::member::after;
use super::outcome::{Contents, EntryKind, Outcome};
use super::real::{Recorded, check_image, image_data, materialise_image};
use durafs::model::crash::merge_adjacent;
use durafs::model::enumerate::EnumOptions;
use durafs::model::profile::apply;
use durafs::model::store::CHUNK;
use durafs::model::{FileData, Ino, MemStore, Op, PendingOp, Survival};
use durafs::trace::replay::Replayer;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::Path;

/// The crash state of the image that gave a real outcome: which recording
/// of the workload, the crash position (events applied) and what survived
/// of the pending writes.
#[derive(Clone, Debug)]
pub struct Origin {
    pub recording: usize,
    pub position: usize,
    pub kept: Vec<(usize, Survival)>,
}

/// Bases (a real outcome at one crash position of one recording) tried
/// per predicted outcome: fewest differing files first, then the latest
/// positions (the most block writes pending).
const MAX_BASES: usize = 64;

/// Device states built and mounted per workload.
const MAX_MOUNTS: usize = 400;

/// Why a predicted outcome was not reached: the furthest the search got
/// over all its bases (later variants got further).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Miss {
    /// Not searched: btrfs, or the workload's mount budget was spent.
    NotSearched,
    /// No real outcome of the step has the same names, kinds and sizes:
    /// in this recording the metadata was never committed (or always
    /// was) while the prediction needs otherwise (a commit timing the
    /// recording lacks), or the names differ.
    NoBase,
    /// Some differing bytes are not plain device bytes (inline, unwritten
    /// or delayed extents).
    NotPlain,
    /// Some differing bytes were on the device in no version at any base's
    /// crash position: in this recording the data was never written there
    /// while it could be lost (a writeback timing the recording lacks).
    NeverOnDevice,
    /// The device state needed breaks the block-level rules.
    RulesRefuse,
    /// The device state was built and mounted, and gave another outcome
    /// (or failed `fsck`).
    MountedDiffers,
}

impl Miss {
    pub fn name(self) -> &'static str {
        match self {
            Miss::NotSearched => "not searched",
            Miss::NoBase => "no real outcome with these names and sizes",
            Miss::NotPlain => "not in plain extents",
            Miss::NeverOnDevice => "bytes never on the device",
            Miss::RulesRefuse => "block rules refuse",
            Miss::MountedDiffers => "mounted state differs",
        }
    }
}

/// A predicted outcome's device state (its description), or why none was
/// built.
pub type Reached = Result<String, Miss>;

/// What the search needs of a workload's real side.
pub struct RealSide<'a> {
    pub kind: FsKind,
    /// Each recording of the workload.
    pub recordings: &'a [Recorded],
    /// The real side's enumeration options (its rules and sector).
    pub opts: &'a EnumOptions,
    pub points: &'a [PointOutcomes],
    pub contents: &'a Contents,
}

/// For each of `wanted` (an index into the real side's points and a
/// predicted outcome, whose bytes are in `predicted`), the description of
/// a real device state that gives it, or why the search built none.
pub fn reached(
    real: &RealSide,
    predicted: &Contents,
    wanted: &[(usize, &Outcome)],
    scratch: &Path,
) -> Vec<Result<String, Miss>> {
    if real.kind == FsKind::Btrfs {
        return vec![Err(Miss::NotSearched); wanted.len()];
    }
    // Each try can only take an outcome further than having no base.
    let mut found: Vec<Result<String, Miss>> = vec![Err(Miss::NoBase); wanted.len()];
    let tries = tries(real, wanted);
    let img = scratch.join("reach.img");
    let mnt = scratch.join("reach.mnt");
    if let Err(e) = std::fs::create_dir_all(&mnt) {
        log::warn!("durafs calibrate: {}: {e}", mnt.display());
        return vec![Err(Miss::NotSearched); wanted.len()];
    }
    // A base's file extents, read once per outcome: where the same outcome
    // comes from several positions its files usually lie in the same
    // blocks, and the final mount checks every built state anyway.
    let mut maps: HashMap<(usize, u64), Option<Maps>> = HashMap::new();
    let mut mounts = 0;
    let mut replay: Option<(usize, Replayer)> = None;
    let mut here: Option<((usize, usize), Vec<PendingOp>, FileData)> = None;
    for (w, base, origin) in tries {
        if found[w].is_ok() {
            continue;
        }
        if mounts >= MAX_MOUNTS {
            found[w] = Err(Miss::NotSearched);
            continue;
        }
        let (position, n) = (origin.position, origin.recording);
        let Some(rec) = real.recordings.get(n) else {
            continue;
        };
        let (trace, ino) = (&rec.trace, &rec.image);
        if replay.as_ref().is_none_or(|(m, _)| *m != n) {
            let Ok(r) = Replayer::new(&trace.header) else {
                continue;
            };
            replay = Some((n, r));
        }
        let Some((_, r)) = replay.as_mut() else {
            continue;
        };
        while r.applied() < position {
            if r.apply(&trace.events[r.applied()]).is_err() {
                return found;
            }
        }
        // Tries come sorted by recording and position: the pending list
        // and the durable image are taken once per crash position.
        if here.as_ref().is_none_or(|(k, _, _)| *k != (n, position)) {
            here = Some(((n, position), r.pending(), image_data(r.durable(), *ino)));
        }
        let Some((_, pending, durable_image)) = here.as_ref() else {
            continue;
        };
        let at = At {
            pending,
            durable: r.durable(),
            durable_image,
            ino: *ino,
            real,
            img: &img,
            mnt: &mnt,
        };
        let key = (n, outcome_hash(base));
        let map = maps.entry(key).or_insert_with(|| {
            mounts += 1;
            at.extents(origin, base)
        });
        let Some(map) = map.as_ref() else {
            log::debug!("reach: no extents of the base at event {position}");
            continue;
        };
        let target = wanted[w].1;
        let got = at
            .build(origin, base, target, map, predicted)
            .and_then(|how| {
                mounts += 1;
                at.check(&how, target).ok_or(Miss::MountedDiffers)
            });
        log::debug!("reach: at event {position}: {got:?}");
        let before = match &found[w] {
            Err(m) => *m,
            Ok(_) => continue,
        };
        found[w] = got.map_err(|m| m.max(before));
    }
    found
}

/// For each wanted outcome (by its index), the bases to build it from, in
/// the order of the recordings' traces (each is replayed once).
fn tries<'a>(
    real: &'a RealSide,
    wanted: &[(usize, &Outcome)],
) -> Vec<(usize, &'a Outcome, &'a Origin)> {
    let mut tries = Vec::new();
    for (w, (k, p)) in wanted.iter().enumerate() {
        let Some(po) = real.points.get(*k) else {
            continue;
        };
        let mut bases: Vec<(usize, &Outcome, &Origin)> = po
            .origins
            .iter()
            .filter_map(|(r, o)| Some((differing(r, p)?.len(), r, o)))
            .flat_map(|(n, r, o)| o.iter().map(move |x| (n, r, x)))
            .collect();
        bases.sort_by_key(|b| (b.0, std::cmp::Reverse(b.2.position), b.2.recording));
        tries.extend(bases.into_iter().take(MAX_BASES).map(|(_, r, o)| (w, r, o)));
    }
    tries.sort_by_key(|t| (t.2.recording, t.2.position));
    tries
}

/// The paths where `real` and `predicted` differ, if they differ only in
/// the bytes of files of the same size.
fn differing(real: &Outcome, predicted: &Outcome) -> Option<Vec<String>> {
    if real.0.keys().ne(predicted.0.keys()) {
        return None;
    }
    let mut out = Vec::new();
    for ((path, r), (_, p)) in real.0.iter().zip(&predicted.0) {
        if r == p {
            continue;
        }
        let same = (r.kind, r.size, r.nlink, r.mode, &r.target)
            == (EntryKind::File, p.size, p.nlink, p.mode, &p.target)
            && p.kind == EntryKind::File;
        if !same {
            return None;
        }
        out.push(path.clone());
    }
    (!out.is_empty()).then_some(out)
}

fn outcome_hash(o: &Outcome) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    o.hash(&mut h);
    h.finish()
}

/// Each file path's extents in a base image.
type Maps = BTreeMap<String, Vec<Extent>>;

/// A device state to try: the image's kept writes and, for the
/// description, each changed device unit with the write its version is
/// from (`None`: the durable version).
struct Built {
    kept: Vec<(usize, Survival)>,
    units: Vec<(u64, Option<u64>)>,
    recording: usize,
    position: usize,
}

/// One crash position of the image's trace.
struct At<'a> {
    pending: &'a [PendingOp],
    durable: &'a MemStore,
    /// The image file's durable content (read sector by sector).
    durable_image: &'a FileData,
    /// The image file's inode.
    ino: Ino,
    real: &'a RealSide<'a>,
    img: &'a Path,
    mnt: &'a Path,
}

impl At<'_> {
    fn store(&self, kept: &[(usize, Survival)]) -> MemStore {
        after(self.pending, self.durable, kept)
    }

    fn unit(&self) -> u64 {
        self.real.opts.rules.unit(self.real.opts.sector).max(1)
    }

    /// Mounts the base image and maps every file of `base`.
    fn extents(&self, origin: &Origin, base: &Outcome) -> Option<Maps> {
        let store = self.store(&origin.kept);
        let ioe = |e: std::io::Error| log::warn!("durafs calibrate: reach: {e}");
        materialise_image(&store, self.ino, self.img)
            .map_err(ioe)
            .ok()?;
        let dev = LoopDev::attach(self.img).ok()?;
        let m = MountGuard::mount(dev.path(), self.mnt, self.real.kind.name(), None).ok()?;
        let mut maps = Maps::new();
        for (path, e) in &base.0 {
            if e.kind == EntryKind::File {
                if let Ok(x) = extents(&self.mnt.join(path)) {
                    maps.insert(path.clone(), x);
                }
            }
        }
        m.unmount().ok()?;
        Some(maps)
    }

    /// The device state that gives `target` from `base`, if every differing
    /// sector has a matching version and the rules accept the state.
    fn build(
        &self,
        origin: &Origin,
        base: &Outcome,
        target: &Outcome,
        maps: &Maps,
        predicted: &Contents,
    ) -> Result<Built, Miss> {
        let unit = self.unit();
        // Device unit index -> (offset in the unit, wanted bytes) pieces.
        let mut wants: BTreeMap<u64, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
        let bytes = |c: &'_ Contents, o: &Outcome, path: &str| -> Option<Vec<u8>> {
            c.get(&o.0.get(path)?.digest).cloned()
        };
        for path in differing(base, target).ok_or(Miss::NoBase)? {
            let have = bytes(self.real.contents, base, &path).ok_or(Miss::NoBase)?;
            let want = bytes(predicted, target, &path).ok_or(Miss::NoBase)?;
            let map = maps.get(&path).ok_or(Miss::NotPlain)?;
            pieces(&have, &want, map, unit, &mut wants).ok_or(Miss::NotPlain)?;
        }
        let mut persisted: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
        let mut units = Vec::new();
        for (u, parts) in &wants {
            let (touching, versions) = self.versions(*u, unit).ok_or(Miss::RulesRefuse)?;
            let level = (0..versions.len())
                .rev()
                .find(|l| {
                    parts
                        .iter()
                        .all(|(o, b)| versions[*l].get(*o..*o + b.len()) == Some(&b[..]))
                })
                .ok_or_else(|| {
                    log::trace!(
                        "reach: device sector {u} ({} versions) never holds {parts:?}",
                        versions.len()
                    );
                    Miss::NeverOnDevice
                })?;
            for (j, i) in touching.iter().enumerate() {
                let (s, e) = self.pending[*i].op.data_range().ok_or(Miss::RulesRefuse)?;
                let range = (s.max(u * unit), e.min((u + 1) * unit));
                let p = persisted
                    .entry(*i)
                    .or_insert_with(|| self.persisted_in_base(origin, *i));
                set(p, range, j < level);
            }
            let from = level.checked_sub(1).map(|l| self.pending[touching[l]].seq);
            units.push((*u, from));
        }
        let kept = self.with(origin, &persisted);
        let (legal, _) = apply(
            self.pending,
            kept.clone(),
            self.real.opts.rules,
            self.real.opts.sector,
        );
        let image = |k: &[(usize, Survival)]| image_data(&self.store(k), self.ino);
        if legal != kept && image(&legal) != image(&kept) {
            return Err(Miss::RulesRefuse);
        }
        Ok(Built {
            kept: legal,
            units,
            recording: origin.recording,
            position: origin.position,
        })
    }

    /// The pending operations of the image that touch device unit `u`, and
    /// the unit's versions: durable, then after each of them.
    fn versions(&self, u: u64, unit: u64) -> Option<(Vec<usize>, Vec<Vec<u8>>)> {
        let (a, b) = (u * unit, (u + 1) * unit);
        let mut cur = durable_bytes(self.durable_image, a, unit);
        let mut touching = Vec::new();
        let mut versions = vec![cur.clone()];
        for (i, p) in self.pending.iter().enumerate() {
            if p.op.inode() != Some(self.ino) {
                continue;
            }
            let Some((s, e)) = p.op.data_range() else {
                continue;
            };
            if e <= a || b <= s {
                continue;
            }
            let (lo, hi) = (s.max(a), e.min(b));
            match &p.op {
                Op::Write { offset, data, .. } => {
                    let src = &data[(lo - offset) as usize..(hi - offset) as usize];
                    cur[(lo - a) as usize..(hi - a) as usize].copy_from_slice(src);
                }
                Op::Punch { .. } => cur[(lo - a) as usize..(hi - a) as usize].fill(0),
                // The image never changes size after its set-up.
                _ => return None,
            }
            touching.push(i);
            versions.push(cur.clone());
        }
        Some((touching, versions))
    }

    /// The byte ranges of pending operation `i` the base state persisted.
    fn persisted_in_base(&self, origin: &Origin, i: usize) -> Vec<(u64, u64)> {
        let Some((s, e)) = self.pending[i].op.data_range() else {
            return Vec::new();
        };
        match origin.kept.iter().find(|(j, _)| *j == i).map(|(_, h)| h) {
            Some(Survival::Full) => vec![(s, e)],
            Some(Survival::Torn { persisted, .. } | Survival::DataOnly { persisted }) => {
                persisted.clone()
            }
            Some(Survival::MetaOnly) | None => Vec::new(),
        }
    }

    /// The base's kept list with the operations of `persisted` replaced.
    fn with(
        &self,
        origin: &Origin,
        persisted: &BTreeMap<usize, Vec<(u64, u64)>>,
    ) -> Vec<(usize, Survival)> {
        let mut out: Vec<(usize, Survival)> = origin
            .kept
            .iter()
            .filter(|(i, _)| !persisted.contains_key(i))
            .cloned()
            .collect();
        for (i, p) in persisted {
            let Some(range) = self.pending[*i].op.data_range() else {
                continue;
            };
            let how = if p.as_slice() == [range] {
                Survival::Full
            } else if p.is_empty() {
                continue;
            } else {
                Survival::Torn {
                    persisted: p.clone(),
                    garbage: None,
                }
            };
            out.push((*i, how));
        }
        out.sort_by_key(|(i, _)| *i);
        out
    }

    /// Materialises `how`, mounts it and compares; the description if it
    /// gives exactly `target`.
    fn check(&self, how: &Built, target: &Outcome) -> Option<String> {
        let store = self.store(&how.kept);
        materialise_image(&store, self.ino, self.img).ok()?;
        let got = check_image(self.real.kind, self.img, self.mnt, &mut Contents::new()).ok()?;
        (got == *target).then(|| {
            let unit = self.unit();
            let parts: Vec<String> = how
                .units
                .iter()
                .map(|(u, from)| {
                    let v = from.map_or("durable".to_string(), |s| format!("#{s}"));
                    format!("[{}, {}) {v}", u * unit, (u + 1) * unit)
                })
                .collect();
            format!(
                "the image of recording {} at event {} with device sectors at other versions: {}",
                how.recording,
                how.position,
                parts.join(", ")
            )
        })
    }
}

/// Adds to `wants` the device pieces that must hold `want` where it
/// differs from `have`, sector by sector; `None` if a differing byte is
/// not in a plain extent.
fn pieces(
    have: &[u8],
    want: &[u8],
    map: &[Extent],
    unit: u64,
    wants: &mut BTreeMap<u64, Vec<(usize, Vec<u8>)>>,
) -> Option<()> {
    if have.len() != want.len() {
        return None;
    }
    let n = unit as usize;
    for k in 0..want.len().div_ceil(n) {
        let r = k * n..((k + 1) * n).min(want.len());
        if have[r.clone()] == want[r.clone()] {
            continue;
        }
        // Byte by byte within the sector: an extent boundary may fall
        // inside it (1 KiB blocks under a 4 KiB unit).
        let mut off = r.start;
        while off < r.end {
            let e = map.iter().find(|e| e.device(off as u64).is_some())?;
            let dev = e.device(off as u64)?;
            let run_end = (e.logical + e.length).min(r.end as u64) as usize;
            let (mut d, mut o) = (dev, off);
            while o < run_end {
                let u = d / unit;
                let within = (d % unit) as usize;
                let len = (n - within).min(run_end - o);
                wants
                    .entry(u)
                    .or_default()
                    .push((within, want[o..o + len].to_vec()));
                d += len as u64;
                o += len;
            }
            off = run_end;
        }
    }
    Some(())
}

/// Sets or clears `range` in the sorted ranges `p`.
fn set(p: &mut Vec<(u64, u64)>, range: (u64, u64), on: bool) {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(s, e) in p.iter() {
        if e <= range.0 || range.1 <= s {
            out.push((s, e));
            continue;
        }
        if s < range.0 {
            out.push((s, range.0));
        }
        if range.1 < e {
            out.push((range.1, e));
        }
    }
    if on {
        out.push(range);
    }
    out.sort_unstable();
    *p = merge_adjacent(out);
}

/// `unit` bytes of `data` at `at` (a multiple of the unit, which divides
/// [`CHUNK`]); holes and bytes past the end read as zeros.
fn durable_bytes(data: &FileData, at: u64, unit: u64) -> Vec<u8> {
    let mut out = vec![0u8; unit as usize];
    let base = at / CHUNK * CHUNK;
    if let Ok(k) = data.chunks.binary_search_by_key(&base, |(o, _)| *o) {
        let (o, c) = &data.chunks[k];
        let bytes = data.within(*o, c);
        let from = (at - base) as usize;
        let n = bytes.len().saturating_sub(from).min(out.len());
        out[..n].copy_from_slice(&bytes[from..from + n]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_adds_and_removes_a_range_keeping_the_rest() {
        let mut p = vec![(0, 4096)];
        set(&mut p, (512, 1024), false);
        assert_eq!(p, vec![(0, 512), (1024, 4096)]);
        set(&mut p, (512, 1024), true);
        assert_eq!(p, vec![(0, 4096)]);
        let mut q = Vec::new();
        set(&mut q, (1024, 1536), true);
        assert_eq!(q, vec![(1024, 1536)]);
    }

    #[test]
    fn a_differing_sector_becomes_a_device_piece_through_its_extent() {
        let have = vec![b'a'; 2048];
        let mut want = have.clone();
        want[600..700].fill(b'b');
        // File bytes [0, 1024) at device 8192, [1024, 2048) at 65536.
        let map = [
            Extent {
                logical: 0,
                physical: 8192,
                length: 1024,
                plain: true,
            },
            Extent {
                logical: 1024,
                physical: 65536,
                length: 1024,
                plain: true,
            },
        ];
        let mut w = BTreeMap::new();
        pieces(&have, &want, &map, 512, &mut w).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(
            w[&((8192 + 512) / 512)],
            vec![(0, want[512..1024].to_vec())]
        );
        want[1500] = b'c';
        let mut w = BTreeMap::new();
        pieces(&have, &want, &map, 512, &mut w).unwrap();
        assert!(w.contains_key(&(65536 / 512)), "{w:?}");
        // Under a 4 KiB unit the first block's bytes are a piece of the
        // unit at 8192, at offset 0 in it.
        let mut w = BTreeMap::new();
        pieces(&have, &want, &map, 4096, &mut w).unwrap();
        assert_eq!(w[&2][0].0, 0);
        assert_eq!(w[&16][0].0, 0);
        let unplain = [Extent {
            plain: false,
            ..map[0]
        }];
        assert!(pieces(&have[..1024], &want[..1024], &unplain, 512, &mut w).is_none());
    }
}
