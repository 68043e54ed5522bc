//! An explanation in words: its facts, a summary and the fix, and the key
//! that groups repeated bugs.

use super::{Explanation, Fact, Point, VulnKind};
use crate::model::{NsKind, Op, Survival};
use crate::trace::TraceOp;

/// An explanation as reported.
pub(in crate::explore) struct Described {
    pub kind: VulnKind,
    pub minimal: bool,
    /// Kind and operations by name and path: equal for the same bug at
    /// another crash point or in another iteration.
    pub key: String,
    pub summary: String,
    pub fix: String,
    pub lost: Vec<Fact>,
    pub kept: Vec<Fact>,
    pub events: Vec<u64>,
}

/// What an fsync must reach to make an operation durable.
#[derive(Clone, PartialEq, Eq)]
enum Target {
    File(String),
    Dir(String),
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((dir, _)) => dir.to_string(),
    }
}

/// The file, or the directory of the name, that pending operation `i`
/// changed, with the paths its event named.
fn target(at: &Point, i: usize) -> Target {
    let ev = at.event(i);
    let path = |k: usize| {
        ev.and_then(|e| e.paths.get(k))
            .cloned()
            .unwrap_or_else(|| at.labels.get(i).cloned().unwrap_or_default())
    };
    match at.pending.get(i).map(|p| &p.op) {
        Some(Op::Names { what, .. }) => match what {
            NsKind::Rename | NsKind::RenameTo | NsKind::Link => Target::Dir(parent(&path(1))),
            _ => Target::Dir(parent(&path(0))),
        },
        _ => Target::File(path(0)),
    }
}

fn targets(at: &Point, idx: impl Iterator<Item = usize>) -> String {
    let mut out: Vec<Target> = Vec::new();
    for t in idx.map(|i| target(at, i)) {
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.iter()
        .map(|t| match t {
            Target::File(p) => p.clone(),
            Target::Dir(d) => format!("directory {d}"),
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn label(at: &Point, i: usize) -> String {
    at.labels.get(i).cloned().unwrap_or_default()
}

fn joined(at: &Point, idx: impl Iterator<Item = usize>) -> String {
    idx.map(|i| label(at, i)).collect::<Vec<_>>().join(" and ")
}

/// `, before #N mark "L"`: the first mark after the lost operations and
/// before the crash (the promise the loss breaks), if any.
fn before_mark(at: &Point, lost: &[(usize, Option<Survival>)]) -> String {
    let last = lost
        .iter()
        .filter_map(|(i, _)| at.event(*i).map(|e| e.n))
        .max()
        .unwrap_or(0);
    at.trace.events[..at.k.min(at.trace.events.len())]
        .iter()
        .find(|e| e.n > last && matches!(e.op, TraceOp::Mark { .. }))
        .map(|e| format!(", before {e}"))
        .unwrap_or_default()
}

pub(in crate::explore) fn describe(at: &Point, e: &Explanation) -> Described {
    let lost_idx = || e.lost.iter().map(|(i, _)| *i);
    let lost: Vec<Fact> = e
        .lost
        .iter()
        .map(|(i, h)| at.fact(*i, h.as_ref()))
        .collect();
    let kept: Vec<Fact> = e
        .later
        .iter()
        .map(|i| at.fact(*i, Some(&Survival::Full)))
        .collect();
    let shapes = |idx: &mut dyn Iterator<Item = usize>| {
        idx.map(|i| at.shape(i)).collect::<Vec<_>>().join(", ")
    };
    let key = format!(
        "{}|{}|{}",
        e.kind,
        shapes(&mut lost_idx()),
        shapes(&mut e.later.iter().copied())
    );
    let (summary, fix) = match e.kind {
        VulnKind::Ordering => (
            format!(
                "{} can persist before {}",
                joined(at, e.later.iter().copied()),
                joined(at, lost_idx())
            ),
            format!(
                "fsync {} before {}",
                targets(at, lost_idx()),
                e.later.first().map(|i| label(at, *i)).unwrap_or_default()
            ),
        ),
        VulnKind::Durability => (
            lost.iter()
                .map(|f| match f.fate.as_str() {
                    "dropped" => format!("{} lost", f.op),
                    fate => format!("{} persisted in part ({fate})", f.op),
                })
                .collect::<Vec<_>>()
                .join("; "),
            format!(
                "fsync {} after {}{}",
                targets(at, lost_idx()),
                lost_idx()
                    .next_back()
                    .map(|i| label(at, i))
                    .unwrap_or_default(),
                before_mark(at, &e.lost)
            ),
        ),
        VulnKind::Atomicity => (
            format!("{} can persist in part", joined(at, lost_idx())),
            "make the update atomic: write it to a new file, fsync that and rename it over \
             the old one (then fsync the directory), or checksum it and discard a torn copy \
             on recovery"
                .to_string(),
        ),
    };
    let mut events: Vec<u64> = lost.iter().filter_map(|f| f.event).collect();
    events.dedup();
    Described {
        kind: e.kind,
        minimal: e.minimal,
        key,
        summary,
        fix,
        lost,
        kept,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn the_parent_of_a_path_is_its_directory_and_the_root_is_slash() {
        assert_eq!(parent("/f5"), "/");
        assert_eq!(parent("/d/x"), "/d");
        assert_eq!(parent("x"), "/");
    }
}
