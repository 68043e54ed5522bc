//! Sorting false negatives into families. A false negative is a real
//! outcome no predicted state of its step matched; its family says which
//! rule of the model, or which gap of the enumeration, it points at. Each
//! file that differs from the nearest prediction is explained from the
//! workload's own history (its operations replayed on byte vectors, every
//! candidate compared by [`digest`]):
//!
//! * `names`: every differing file holds bytes and a size some moment of the
//!   workload gave it; names, link counts or kinds differ.
//! * `combination`: names and link counts as predicted, every file's bytes
//!   a moment of the workload, but not together in any predicted state.
//! * `truncate-tail-zeroed`: a shrinking truncate's old size, with the new
//!   last block's tail zeroed from the new end to a sector boundary.
//! * `write-in-old-size`: an extending write's sectors (some or all) inside
//!   the old size written, the old size kept.
//! * `torn-write`: a write's bytes in a subset of its sectors (any run, or
//!   any subset of a write of at most 16 sectors; the enumeration tries
//!   three), with the old, the new, or the last kept sector's size.
//! * `unexplained`: none of these; read it by hand.
//!
//! Only generated workloads have a history ([`History::of`]); a `--workload`
//! script's false negatives stay unsorted.

use super::outcome::{Entry, EntryKind, Outcome, digest};
use super::workload::{Op, Workload};
use std::collections::BTreeMap;

/// Sector granularity of the explanations (a 4096-byte run is also a run
/// of 512-byte sectors).
const SECTOR: u64 = 512;
const BLOCK: u64 = 4096;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Names,
    Combination,
    TruncateTailZeroed,
    WriteInOldSize,
    TornWrite,
    Unexplained,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Names => "names",
            Family::Combination => "combination",
            Family::TruncateTailZeroed => "truncate-tail-zeroed",
            Family::WriteInOldSize => "write-in-old-size",
            Family::TornWrite => "torn-write",
            Family::Unexplained => "unexplained",
        }
    }
    pub const ALL: [Family; 6] = [
        Family::Names,
        Family::Combination,
        Family::TruncateTailZeroed,
        Family::WriteInOldSize,
        Family::TornWrite,
        Family::Unexplained,
    ];
}

/// A false negative's family and the explanation found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sorted {
    pub family: Family,
    /// e.g. `A: 8192 B, tail [4103, 4608) zeroed (truncate -s 4103, step 1)`.
    pub why: String,
}

/// A change of one file's bytes, at a step (0: the setup).
#[derive(Clone, Debug)]
struct Change {
    step: usize,
    ino: usize,
    op: Op,
}

/// A generated workload's data history.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// Per inode, its bytes after each step that changed them: (step, bytes).
    versions: Vec<Vec<(usize, Vec<u8>)>>,
    changes: Vec<Change>,
}

fn write_into(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let end = offset as usize + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(bytes);
}

impl History {
    /// Replays `w`'s operations on byte vectors.
    pub fn of(w: &Workload) -> History {
        let mut h = History::default();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        let mut data: Vec<Vec<u8>> = Vec::new();
        let steps = w.setup.iter().map(|op| (0, op));
        let steps = steps.chain(w.steps.iter().enumerate().map(|(k, s)| (k + 1, &s.op)));
        for (step, op) in steps {
            let ino = match op {
                Op::Create(p) => {
                    data.push(Vec::new());
                    h.versions.push(vec![(step, Vec::new())]);
                    names.insert(p, data.len() - 1);
                    continue;
                }
                Op::Write { path, .. } | Op::Truncate { path, .. } | Op::Fallocate { path, .. } => {
                    match names.get(path) {
                        Some(i) => *i,
                        None => continue,
                    }
                }
                Op::Rename { from, to } => {
                    if let Some(i) = names.remove(from) {
                        names.insert(to, i);
                    }
                    continue;
                }
                Op::Link { from, to } => {
                    if let Some(i) = names.get(from).copied() {
                        names.insert(to, i);
                    }
                    continue;
                }
                Op::Unlink(p) => {
                    names.remove(p);
                    continue;
                }
                Op::Mkdir(_) | Op::Rmdir(_) | Op::Symlink { .. } => continue,
            };
            let d = &mut data[ino];
            match op {
                Op::Write {
                    offset, len, byte, ..
                } => write_into(d, *offset, &vec![*byte; *len as usize]),
                Op::Truncate { size, .. } => d.resize(*size as usize, 0),
                Op::Fallocate { offset, len, .. } => {
                    let end = (offset + len) as usize;
                    if d.len() < end {
                        d.resize(end, 0);
                    }
                }
                _ => {}
            }
            let v = &mut h.versions[ino];
            match v.last_mut() {
                Some((s, bytes)) if *s == step => *bytes = d.clone(),
                _ => v.push((step, d.clone())),
            }
            if step > 0 {
                h.changes.push(Change {
                    step,
                    ino,
                    op: op.clone(),
                });
            }
        }
        h
    }

    /// The versions of `ino` up to step `k`, and before step `before`.
    fn bases(&self, ino: usize, before: usize) -> impl Iterator<Item = &Vec<u8>> {
        self.versions[ino]
            .iter()
            .filter(move |(s, _)| *s < before)
            .map(|(_, b)| b)
    }

    /// True when some file had exactly `e`'s size and bytes by step `k`.
    fn is_a_version(&self, e: &Entry, k: usize) -> bool {
        self.versions
            .iter()
            .flatten()
            .any(|(s, b)| *s <= k && b.len() as u64 == e.size && digest(b) == e.digest)
    }

    /// Sorts a false negative at step `k` (0: the `start` mark).
    pub fn sort(&self, k: usize, real: &Outcome, nearest: Option<&Outcome>) -> Sorted {
        let mut found: Vec<(Family, String)> = Vec::new();
        for (path, e) in &real.0 {
            if nearest.and_then(|n| n.0.get(path)) == Some(e) || e.kind != EntryKind::File {
                continue;
            }
            if self.is_a_version(e, k) {
                continue;
            }
            found.push(match self.explain(k, e) {
                Some((f, why)) => (f, format!("{path}: {why}")),
                None => (
                    Family::Unexplained,
                    format!("{path}: {} B, digest {:016x}", e.size, e.digest),
                ),
            });
        }
        found.sort();
        match found.into_iter().next_back() {
            None => match names_why(real, nearest) {
                Some(why) => Sorted {
                    family: Family::Names,
                    why,
                },
                None => Sorted {
                    family: Family::Combination,
                    why: combination_why(real, nearest),
                },
            },
            Some((family, why)) => Sorted { family, why },
        }
    }

    /// The first data family that explains `e` at step `k`.
    fn explain(&self, k: usize, e: &Entry) -> Option<(Family, String)> {
        for c in self.changes.iter().filter(|c| c.step <= k) {
            for base in self.bases(c.ino, c.step) {
                if let Some(x) = explain_change(c, base, e, true) {
                    return Some(x);
                }
            }
        }
        self.explain_pair(k, e)
    }

    /// `e` as two changes of one file by step `k`, each applied in part: an
    /// earlier write torn to one run of its sectors, then a later change
    /// (runs only: every subset of both would be too many).
    fn explain_pair(&self, k: usize, e: &Entry) -> Option<(Family, String)> {
        let changes: Vec<&Change> = self.changes.iter().filter(|c| c.step <= k).collect();
        for (n, c1) in changes.iter().enumerate() {
            let Op::Write {
                offset, len, byte, ..
            } = c1.op
            else {
                continue;
            };
            let w = Written {
                offset,
                end: offset + len,
                byte,
            };
            for c2 in changes[n + 1..].iter().filter(|c| c.ino == c1.ino) {
                for base in self.bases(c1.ino, c1.step) {
                    for runs in sector_sets(w.offset, w.end, false) {
                        for mid in w.candidates(base, &runs) {
                            if let Some((f, why)) = explain_change(c2, &mid, e, false) {
                                let why = format!(
                                    "{why}, after bytes {} of the write at {offset}+{len} (step {})",
                                    show_runs(&runs),
                                    c1.step
                                );
                                return Some((f, why));
                            }
                        }
                    }
                }
            }
        }
        None
    }
}

fn matches(candidate: &[u8], e: &Entry) -> bool {
    candidate.len() as u64 == e.size && digest(candidate) == e.digest
}

/// `e` as the result of change `c` applied in part to `base` (in any subset
/// of its sectors with `subsets`, else in one run).
fn explain_change(c: &Change, base: &[u8], e: &Entry, subsets: bool) -> Option<(Family, String)> {
    let old = base.len() as u64;
    let at = format!("step {}", c.step);
    match c.op {
        Op::Truncate { size, .. } if size < old => {
            let last = size.div_ceil(BLOCK).max(1) * BLOCK;
            let runs = zeroed_run(base, size, last.min(old), e, subsets)?;
            let why = format!(
                "{old} B, {} zeroed (truncate -s {size}, {at}, size not changed)",
                show_runs(&runs)
            );
            Some((Family::TruncateTailZeroed, why))
        }
        Op::Write {
            offset, len, byte, ..
        } => {
            let w = Written {
                offset,
                end: offset + len,
                byte,
            };
            let (runs, size) = w.torn(base, e, subsets)?;
            let family = if size == old && w.end > old {
                Family::WriteInOldSize
            } else {
                Family::TornWrite
            };
            let why = format!(
                "{size} B, bytes {} of the write at {offset}+{len} ({at}) onto {old} B",
                show_runs(&runs)
            );
            Some((family, why))
        }
        _ => None,
    }
}

/// A set of sectors `[i, j)...` inside `[from, to)` (file offsets, clipped
/// to it) whose zeroing gives `e` from `base`, the size kept.
fn zeroed_run(
    base: &[u8],
    from: u64,
    to: u64,
    e: &Entry,
    subsets: bool,
) -> Option<Vec<(u64, u64)>> {
    sector_sets(from, to, subsets).into_iter().find(|runs| {
        let mut d = base.to_vec();
        for (i, j) in runs {
            d[*i as usize..*j as usize].fill(0);
        }
        matches(&d, e)
    })
}

/// Most sectors of a range whose every subset is tried (2^16 subsets).
const MAX_SUBSET_SECTORS: u64 = 16;

/// The sets of sectors of `[from, to)` (clipped to it), as sorted disjoint
/// runs: none, every single run, then, with `subsets`, every other subset
/// when the range has at most [`MAX_SUBSET_SECTORS`] sectors.
fn sector_sets(from: u64, to: u64, subsets: bool) -> Vec<Vec<(u64, u64)>> {
    let (first, last) = (from / SECTOR, to.div_ceil(SECTOR));
    let sector = |s: u64| ((s * SECTOR).max(from), ((s + 1) * SECTOR).min(to));
    // The empty set: a write's size change without any of its bytes.
    let mut sets: Vec<Vec<(u64, u64)>> = vec![Vec::new()];
    for a in first..last {
        for b in a + 1..=last {
            sets.push(vec![(sector(a).0, sector(b - 1).1)]);
        }
    }
    let n = last - first;
    if subsets && n <= MAX_SUBSET_SECTORS {
        for mask in 1u32..(1 << n) {
            let mut runs: Vec<(u64, u64)> = Vec::new();
            for s in (0..n).filter(|s| mask & (1 << s) != 0) {
                let (i, j) = sector(first + s);
                match runs.last_mut() {
                    Some(r) if r.1 == i => r.1 = j,
                    _ => runs.push((i, j)),
                }
            }
            if runs.len() > 1 {
                sets.push(runs);
            }
        }
    }
    sets
}

fn show_runs(runs: &[(u64, u64)]) -> String {
    let v: Vec<String> = runs.iter().map(|(i, j)| format!("[{i}, {j})")).collect();
    v.join(" ")
}

/// One write: `[offset, end)` filled with `byte`.
struct Written {
    offset: u64,
    end: u64,
    byte: u8,
}

impl Written {
    /// `base` with the write's bytes in `runs`, at each size a torn write
    /// may leave: the old, the new, the end of the last run kept.
    fn candidates(&self, base: &[u8], runs: &[(u64, u64)]) -> [Vec<u8>; 3] {
        let old = base.len() as u64;
        let mut d = base.to_vec();
        for (i, j) in runs {
            write_into(&mut d, *i, &vec![self.byte; (j - i) as usize]);
        }
        let kept = runs.last().map_or(old, |r| old.max(r.1));
        [old, old.max(self.end), kept].map(|size| {
            let mut c = d.clone();
            c.resize(size as usize, 0);
            c
        })
    }

    /// The sets of the write's sectors and the size that give `e` from
    /// `base` ([`sector_sets`]). The whole write at its new size is a
    /// version, not a tear.
    fn torn(&self, base: &[u8], e: &Entry, subsets: bool) -> Option<(Vec<(u64, u64)>, u64)> {
        let sets = sector_sets(self.offset, self.end, subsets);
        sets.into_iter().find_map(|runs| {
            let size = self
                .candidates(base, &runs)
                .into_iter()
                .find(|c| matches(c, e))?
                .len() as u64;
            Some((runs, size))
        })
    }
}

/// The paths whose presence, kind or link count differs, if any.
fn names_why(real: &Outcome, nearest: Option<&Outcome>) -> Option<String> {
    let Some(n) = nearest else {
        return Some("nothing predicted".to_string());
    };
    let show = |e: Option<&Entry>| match e {
        None => "absent".to_string(),
        Some(e) if e.kind == EntryKind::File => format!("file nlink={}", e.nlink),
        Some(e) => format!("{:?}", e.kind).to_lowercase(),
    };
    let mut parts = Vec::new();
    let keys: std::collections::BTreeSet<&String> = real.0.keys().chain(n.0.keys()).collect();
    for p in keys {
        let (a, b) = (real.0.get(p), n.0.get(p));
        let same = match (a, b) {
            (Some(a), Some(b)) => a.kind == b.kind && a.nlink == b.nlink,
            (None, None) => true,
            _ => false,
        };
        if !same {
            parts.push(format!("{p} {} (predicted {})", show(a), show(b)));
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The files whose bytes differ from the nearest prediction.
fn combination_why(real: &Outcome, nearest: Option<&Outcome>) -> String {
    let differs = real
        .0
        .iter()
        .filter(|(p, e)| nearest.and_then(|n| n.0.get(*p)) != Some(*e))
        .map(|(p, e)| format!("{p} {} B", e.size))
        .collect::<Vec<_>>();
    format!("{} (each a moment of the workload)", differs.join(", "))
}

#[cfg(test)]
#[path = "families_tests.rs"]
mod tests;
