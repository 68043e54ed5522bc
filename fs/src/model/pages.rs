//! The page rule: which data of the pending operations a crash may keep.
//!
//! The page cache writes a file's data back by pages, and a page carries
//! every write made to it up to the moment it was written back; a page
//! caught mid-writeback, or several writebacks of one page still in the
//! device's volatile cache, may leave its sectors at different versions.
//! So each **sector** of a file holds a version of itself: the durable
//! bytes, or its bytes after some write to it up to the crash, never a
//! later write's bytes without the earlier writes that sector held.
//! In terms of operations: on every sector, the operations whose data
//! reached it are a prefix, in order, of those whose data part covers it
//! ([`Op::data_range`]: writes, punched holes, a shrinking truncate's
//! zeroed page tail). Size changes are metadata and follow the model's
//! rules on their own ([`Survival::DataOnly`] keeps data without them).
//!
//! [`page_rule`] turns any choice of surviving operations into the nearest
//! legal one by dropping data: once an operation's bytes are missing on a
//! sector, every later operation's bytes on that sector are dropped too.
//! Every policy and the enumeration pass their states through it.

use super::op::{Op, PendingOp, Survival};
use super::types::Ino;
use std::collections::HashMap;

/// Sectors (indices) whose later data is dropped, per inode.
type Closed = HashMap<Ino, std::collections::BTreeSet<u64>>;

/// `kept` (ascending indices into `pending`) restricted by the page rule at
/// `sector`-byte sectors, and how many operations lost data to it.
pub fn page_rule(
    pending: &[PendingOp],
    kept: Vec<(usize, Survival)>,
    sector: u64,
) -> (Vec<(usize, Survival)>, usize) {
    let sector = sector.max(1);
    let mut closed: Closed = HashMap::new();
    let mut out = Vec::with_capacity(kept.len());
    let mut changed = 0;
    let mut kept = kept.into_iter().peekable();
    for (i, p) in pending.iter().enumerate() {
        let how = match kept.peek() {
            Some((j, _)) if *j == i => kept.next().map(|(_, h)| h),
            _ => None,
        };
        if let (Op::Truncate { ino, size }, Some(h)) = (&p.op, &how) {
            if keeps_size(h) {
                // The blocks past the new end are freed: sectors wholly past
                // it start again from nothing.
                if let Some(shut) = closed.get_mut(ino) {
                    shut.retain(|k| *k < size.div_ceil(sector));
                }
                out.push((i, h.clone()));
                continue;
            }
        }
        let (Some((start, end)), Some(ino)) = (p.op.data_range(), p.op.inode()) else {
            if let Some(h) = how {
                out.push((i, h));
            }
            continue;
        };
        let shut = closed.entry(ino).or_default();
        let persisted = persisted_of(how.as_ref(), start, end);
        let mut allowed: Vec<(u64, u64)> = Vec::new();
        for k in start / sector..end.div_ceil(sector) {
            let (a, b) = ((k * sector).max(start), ((k + 1) * sector).min(end));
            let has = persisted.iter().any(|&(s, e)| s <= a && b <= e);
            if has && !shut.contains(&k) {
                match allowed.last_mut() {
                    Some(r) if r.1 == a => r.1 = b,
                    _ => allowed.push((a, b)),
                }
            } else {
                shut.insert(k);
            }
        }
        let Some(how) = how else { continue };
        let next = survival(how.clone(), &allowed, start, end);
        if next.as_ref() != Some(&how) {
            changed += 1;
        }
        if let Some(n) = next {
            out.push((i, n));
        }
    }
    (out, changed)
}

/// True when `how` keeps the operation's size change.
pub(crate) fn keeps_size(how: &Survival) -> bool {
    !matches!(how, Survival::DataOnly { .. })
}

/// The byte ranges of `[start, end)` that `how` puts on disk.
fn persisted_of(how: Option<&Survival>, start: u64, end: u64) -> Vec<(u64, u64)> {
    match how {
        None => Vec::new(),
        Some(Survival::Full) => vec![(start, end)],
        Some(Survival::MetaOnly) => Vec::new(),
        Some(Survival::Torn { persisted, .. } | Survival::DataOnly { persisted }) => {
            persisted.clone()
        }
    }
}

/// `how` with its data restricted to `allowed`; `None` when nothing is
/// left of it.
fn survival(how: Survival, allowed: &[(u64, u64)], start: u64, end: u64) -> Option<Survival> {
    let all = allowed == [(start, end)];
    let size_kept = keeps_size(&how);
    Some(match (size_kept, all, allowed.is_empty()) {
        (true, true, _) => match how {
            Survival::MetaOnly => Survival::MetaOnly,
            _ => Survival::Full,
        },
        (true, false, true) => Survival::MetaOnly,
        (true, false, false) => match how {
            Survival::MetaOnly => Survival::MetaOnly,
            Survival::Torn { garbage, .. } => Survival::Torn {
                persisted: allowed.to_vec(),
                garbage,
            },
            _ => Survival::Torn {
                persisted: allowed.to_vec(),
                garbage: None,
            },
        },
        (false, _, true) => return None,
        (false, _, false) => Survival::DataOnly {
            persisted: allowed.to_vec(),
        },
    })
}

#[cfg(test)]
#[path = "pages_tests.rs"]
mod tests;
