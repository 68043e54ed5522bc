//! Failures with the same explanation, gathered into vulnerabilities.

use super::{Cause, Failing, Findings, Known, Vulnerability};

#[derive(Default)]
pub(super) struct Groups {
    /// One per vulnerability, in the same order.
    pub known: Vec<Known>,
    vulns: Vec<Vulnerability>,
    no_loss: Vec<usize>,
}

impl Groups {
    pub fn add(&mut self, f: &Failing, cause: Cause, trace: &crate::trace::Trace) {
        let d = match cause {
            Cause::NoLoss if f.duplicate => return,
            Cause::NoLoss => {
                self.no_loss.push(f.id);
                return;
            }
            Cause::Explained(d) => d,
        };
        let after = f
            .point
            .checked_sub(1)
            .and_then(|i| trace.events.get(i))
            .map(ToString::to_string);
        match self.known.iter().position(|k| k.key == d.key) {
            Some(i) => {
                let v = &mut self.vulns[i];
                // A duplicate's state is a member where it was checked.
                if !f.duplicate {
                    v.states.push(f.id);
                }
                if v.points.iter().all(|p| *p > f.point) {
                    v.first_after = after;
                }
                v.points.push(f.point);
                v.events.extend(d.events);
                v.minimal &= d.minimal;
            }
            None => {
                self.known.push(Known {
                    key: d.key,
                    events: d.events.clone(),
                });
                self.vulns.push(Vulnerability {
                    kind: d.kind,
                    summary: d.summary,
                    fix: d.fix,
                    lost: d.lost,
                    kept: d.kept,
                    events: d.events,
                    states: vec![f.id],
                    points: vec![f.point],
                    first_after: after,
                    minimal: d.minimal,
                });
            }
        }
    }

    pub fn finish(mut self, checks: usize) -> Findings {
        for v in &mut self.vulns {
            v.states.sort_unstable();
            v.states.dedup();
            v.points.sort_unstable();
            v.points.dedup();
            v.events.sort_unstable();
            v.events.dedup();
        }
        self.vulns
            .sort_by_key(|v| (v.points.first().copied(), v.states.first().copied()));
        self.no_loss.sort_unstable();
        self.no_loss.dedup();
        Findings {
            vulnerabilities: self.vulns,
            no_loss: self.no_loss,
            checks,
        }
    }
}
