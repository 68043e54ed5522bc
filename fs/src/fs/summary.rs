//! What a power cut lost, counted exactly.

use crate::model::crash::CrashState;
use crate::model::{Ino, Op, PendingOp, Survival};

/// What a cut did.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CutSummary {
    pub policy: String,
    pub seed: u64,
    /// The crash state, in a line.
    pub description: String,
    pub ops_pending: usize,
    /// Operations dropped entirely.
    pub ops_lost: usize,
    /// Operations that survived in part: some of their data, or their data
    /// without the size change, or the size change without the data.
    pub ops_partial: usize,
    /// Bytes of data written and lost: whole dropped writes, the data of
    /// writes whose metadata alone survived, the sectors of torn writes
    /// that did not persist.
    pub bytes_lost: u64,
    /// Inodes that lost data or an attribute change.
    pub files_lost: usize,
    /// Dropped namespace operations (create, link, unlink, rename).
    pub names_lost: usize,
    /// The first [`LOST_LISTED`] operations lost in whole or in part.
    pub lost: Vec<String>,
}

/// How many dropped operations a [`CutSummary`] lists.
pub const LOST_LISTED: usize = 50;

/// What a crash state loses of the pending operations.
pub(super) struct Loss {
    pub bytes: u64,
    pub files: std::collections::BTreeSet<Ino>,
    pub names: usize,
    /// Operations kept only in part.
    pub partial: usize,
    pub listed: Vec<String>,
}

impl Loss {
    pub fn of(pending: &[PendingOp], state: &CrashState, describe: impl Fn(&Op) -> String) -> Loss {
        let mut loss = Loss {
            bytes: 0,
            files: Default::default(),
            names: 0,
            partial: 0,
            listed: Vec::new(),
        };
        let mut kept = state.kept.iter().peekable();
        for (i, p) in pending.iter().enumerate() {
            let how = match kept.peek() {
                Some((k, how)) if *k == i => {
                    kept.next();
                    Some(how)
                }
                _ => None,
            };
            let (bytes, whole) = match how {
                None => (p.op.data_len(), true),
                Some(Survival::Full) => (0, false),
                Some(Survival::MetaOnly) => (p.op.data_len(), false),
                Some(Survival::Torn { persisted, .. }) => (torn_loss(&p.op, persisted), false),
                Some(Survival::DataOnly { persisted }) => (torn_loss(&p.op, persisted), false),
            };
            let size_lost = matches!(how, Some(Survival::DataOnly { .. })) && p.op.changes_size();
            if !whole && bytes == 0 && !size_lost {
                continue;
            }
            if !whole {
                loss.partial += 1;
            }
            loss.bytes += bytes;
            if let Some(ino) = p.op.inode() {
                loss.files.insert(ino);
            }
            if whole && p.op.dir().is_some() {
                loss.names += 1;
            }
            if loss.listed.len() < LOST_LISTED {
                let part = match (whole, size_lost) {
                    (true, _) => "",
                    (false, true) => " (size change lost)",
                    (false, false) => " (in part)",
                };
                loss.listed.push(format!("{}{part}", describe(&p.op)));
            }
        }
        loss
    }
}

/// Bytes of a torn write outside the sectors that persisted.
fn torn_loss(op: &Op, persisted: &[(u64, u64)]) -> u64 {
    let Op::Write { offset, data, .. } = op else {
        return 0;
    };
    let (start, end) = (*offset, offset.saturating_add(data.len() as u64));
    let kept: u64 = persisted
        .iter()
        .map(|&(a, b)| b.min(end).saturating_sub(a.max(start)))
        .sum();
    (end - start).saturating_sub(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn torn_loss_counts_the_bytes_outside_persisted_sectors() {
        let op = Op::Write {
            ino: 2,
            offset: 100,
            data: Bytes::from(vec![0u8; 1000]),
            size_before: 0,
        };
        assert_eq!(torn_loss(&op, &[]), 1000);
        assert_eq!(torn_loss(&op, &[(0, 512)]), 1000 - 412);
        assert_eq!(torn_loss(&op, &[(0, 512), (1024, 1536)]), 1000 - 412 - 76);
        assert_eq!(torn_loss(&op, &[(0, 2048)]), 0);
    }
}
