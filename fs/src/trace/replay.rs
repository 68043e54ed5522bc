//! Replaying a trace on a fresh in-memory model: the state after any prefix
//! of the events, with its pending operations and its durable store,
//! exactly as the recording volume had them.

use super::{Applied, ApplyError, Event, Header, TraceError, TraceOp};
use crate::model::{
    Attrs, Config, Effect, Image, ImageInode, Kind, MemStore, Model, NewInode, PendingOp, ROOT,
};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;

/// A model and its durable store, advanced one event at a time.
#[derive(Debug)]
pub struct Replayer {
    model: Model,
    store: MemStore,
    applied: usize,
    /// `(first sequence number, event number)` of each event that recorded
    /// operations, ascending: an operation came from the last entry whose
    /// first sequence number is at most its own.
    origins: Vec<(u64, u64)>,
}

fn bad_header(what: impl Into<String>) -> TraceError {
    TraceError::Format {
        line: 1,
        what: what.into(),
    }
}

impl Replayer {
    /// The state the recording started from.
    pub fn new(header: &Header) -> Result<Replayer, TraceError> {
        let mut image = Image::default();
        for i in &header.inodes {
            let size = match i.kind {
                Kind::File => i.size,
                _ => 0,
            };
            image.inodes.insert(
                i.ino,
                ImageInode {
                    kind: i.kind,
                    attrs: i.attrs,
                    size,
                    target: i.target.as_ref().map(|t| t.0.clone()),
                    xattrs: i
                        .xattrs
                        .iter()
                        .map(|x| (x.name.0.clone(), x.value.0.clone()))
                        .collect(),
                },
            );
            if i.kind == Kind::Dir {
                image.entries.insert(i.ino, BTreeMap::new());
            }
        }
        for e in &header.entries {
            image
                .entries
                .get_mut(&e.dir)
                .ok_or_else(|| bad_header(format!("entry in #{}, not a directory", e.dir)))?
                .insert(e.name.0.clone(), e.ino);
        }
        let cfg = Config {
            persistence: header.model,
            ..Config::default()
        };
        let model = Model::from_image(cfg, &image).map_err(bad_header)?;

        let root_attrs = image
            .inodes
            .get(&ROOT)
            .map_or(Attrs::default(), |i| i.attrs);
        let mut store = MemStore::new(root_attrs);
        let mut queue = VecDeque::from([ROOT]);
        let mut seen = std::collections::BTreeSet::from([ROOT]);
        while let Some(dir) = queue.pop_front() {
            for (name, ino) in image.entries.get(&dir).into_iter().flatten() {
                let Some(i) = image.inodes.get(ino) else {
                    continue;
                };
                store.apply(&Effect::Link {
                    dir,
                    name: name.clone(),
                    ino: *ino,
                    init: NewInode {
                        kind: i.kind,
                        attrs: i.attrs,
                        target: i.target.clone(),
                    },
                });
                if i.kind == Kind::Dir && seen.insert(*ino) {
                    queue.push_back(*ino);
                }
            }
        }
        for i in &header.inodes {
            for x in &i.xattrs {
                store.apply(&Effect::SetXattr {
                    ino: i.ino,
                    name: x.name.0.clone(),
                    value: Some(x.value.0.clone()),
                });
            }
        }
        for i in header.inodes.iter().filter(|i| i.kind == Kind::File) {
            if let Some(d) = &i.data {
                if d.0.len() as u64 > i.size {
                    return Err(bad_header(format!(
                        "#{}: {} bytes of data for size {}",
                        i.ino,
                        d.0.len(),
                        i.size
                    )));
                }
                store.apply(&Effect::Write {
                    ino: i.ino,
                    offset: 0,
                    data: d.0.clone(),
                });
            }
            for e in &i.extents {
                if e.offset.saturating_add(e.data.0.len() as u64) > i.size {
                    return Err(bad_header(format!(
                        "#{}: {} bytes at {} for size {}",
                        i.ino,
                        e.data.0.len(),
                        e.offset,
                        i.size
                    )));
                }
                store.apply(&Effect::Write {
                    ino: i.ino,
                    offset: e.offset,
                    data: e.data.0.clone(),
                });
            }
            store.apply(&Effect::Extend {
                ino: i.ino,
                size: i.size,
            });
        }
        Ok(Replayer {
            model,
            store,
            applied: 0,
            origins: Vec::new(),
        })
    }

    /// Events applied so far.
    pub fn applied(&self) -> usize {
        self.applied
    }

    /// The live model after the applied events.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The durable store after the applied events.
    pub fn durable(&self) -> &MemStore {
        &self.store
    }

    /// The operations not yet durable, in order.
    pub fn pending(&self) -> Vec<PendingOp> {
        self.model.pending_ops()
    }

    /// The number of the trace event that recorded the operation with
    /// sequence number `seq` (`None` for one from before the trace).
    pub fn event_of(&self, seq: u64) -> Option<u64> {
        let i = self.origins.partition_point(|(first, _)| *first <= seq);
        i.checked_sub(1).map(|i| self.origins[i].1)
    }

    /// Applies the next event, as the recording volume applied it
    /// ([`TraceOp::apply`]), with its effects into the in-memory store.
    pub fn apply(&mut self, ev: &Event) -> Result<(), TraceError> {
        let fail = |what: String| TraceError::Replay { n: ev.n, what };
        let store = &mut self.store;
        let mut sink = |e: &[Effect]| {
            store.apply_all(e);
            Ok::<(), Infallible>(())
        };
        let before = self.model.seq_watermark();
        let applied = match ev.op.apply(&self.model, &mut sink) {
            Ok(a) => a,
            Err(ApplyError::Model(e)) => return Err(fail(e.to_string())),
            Err(ApplyError::Store(never)) => match never {},
        };
        match (&ev.op, applied) {
            (TraceOp::Create { ino, .. }, Applied::Stat(st)) if st.ino != *ino => {
                return Err(fail(format!(
                    "created inode #{} where the recording made #{ino}",
                    st.ino
                )));
            }
            (TraceOp::Writeback { ino }, Applied::WroteBack(done)) if done != Some(*ino) => {
                return Err(fail(match done {
                    Some(i) => {
                        format!("the oldest dirty file is #{i}, the recording wrote back #{ino}")
                    }
                    None => "nothing is dirty to write back".into(),
                }));
            }
            _ => {}
        }
        if self.model.seq_watermark() > before {
            self.origins.push((before, ev.n));
        }
        self.applied += 1;
        Ok(())
    }
}
