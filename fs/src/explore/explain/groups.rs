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
    pub fn add(&mut self, f: &Failing, cause: Cause) {
        let d = match cause {
            Cause::NoLoss => {
                self.no_loss.push(f.id);
                return;
            }
            Cause::Explained(d) => d,
        };
        match self.known.iter().position(|k| k.key == d.key) {
            Some(i) => {
                let v = &mut self.vulns[i];
                v.states.push(f.id);
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
                    minimal: d.minimal,
                });
            }
        }
    }

    pub fn finish(mut self, checks: usize) -> Findings {
        for v in &mut self.vulns {
            v.states.sort_unstable();
            v.points.sort_unstable();
            v.points.dedup();
            v.events.sort_unstable();
            v.events.dedup();
        }
        self.vulns
            .sort_by_key(|v| (v.points.first().copied(), v.states.first().copied()));
        self.no_loss.sort_unstable();
        Findings {
            vulnerabilities: self.vulns,
            no_loss: self.no_loss,
            checks,
        }
    }
}
