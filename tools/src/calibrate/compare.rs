//! Real against predicted, per crash point: coverage is the common
//! outcomes plus the *allowed* ones (real outcomes outside the enumeration
//! that the model allows, [`super::member`]) over the real ones; any other
//! real outcome is a false negative. Precision is the common outcomes over
//! the predicted ones. Totals add the counts of every point before dividing
//! (each crash point weighs by its outcomes).
//! States where the real filesystem did not mount, could not be read or
//! failed `fsck -n` are not outcomes: they are counted apart.

use super::PointOutcomes;
use super::families::Sorted;
use super::outcome::Outcome;
use std::collections::BTreeMap;

/// Distinct-outcome counts at one point (or summed over many).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Distinct real outcomes.
    pub real: usize,
    /// Distinct predicted outcomes.
    pub predicted: usize,
    /// Outcomes on both sides.
    pub common: usize,
    /// Real crash states that did not mount, read or pass fsck.
    pub inconsistent: usize,
    /// Real block-level states checked (distinct images or not).
    pub real_states: usize,
    /// Real outcomes outside the prediction that the model allows: a legal
    /// crash state gives them ([`super::member`]). Absent in older runs.
    #[serde(default)]
    pub allowed: usize,
    /// Predicted outcomes no enumerated real state showed that a real
    /// device state built for them gives ([`super::reach`]). Absent in
    /// older runs.
    #[serde(default)]
    pub reached: usize,
}

impl Counts {
    /// 1 when there is no real outcome.
    pub fn coverage(&self) -> f64 {
        ratio(self.common + self.allowed, self.real)
    }
    /// 1 when nothing is predicted.
    pub fn precision(&self) -> f64 {
        ratio(self.common + self.reached, self.predicted)
    }
    pub fn false_negatives(&self) -> usize {
        self.real - self.common - self.allowed
    }
    pub fn add(&mut self, o: &Counts) {
        self.real += o.real;
        self.predicted += o.predicted;
        self.common += o.common;
        self.inconsistent += o.inconsistent;
        self.real_states += o.real_states;
        self.allowed += o.allowed;
        self.reached += o.reached;
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// A real outcome the model cannot produce, with its nearest prediction.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FalseNegative {
    pub point: String,
    pub real: Outcome,
    /// The predicted outcome that differs from it in the fewest paths.
    pub nearest: Option<Outcome>,
    /// `path: real vs nearest predicted`, one line per differing path.
    pub diff: String,
    /// Its family (generated workloads only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sorted: Option<Sorted>,
    /// Set when the model allows it after all: the legal crash state that
    /// gives it ([`super::member`]). Such an outcome is not a false
    /// negative; it is listed to show the search's work.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<String>,
}

/// A predicted outcome no enumerated real state showed, and the real
/// device state that gives it ([`super::reach`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reached {
    pub point: String,
    pub outcome: Outcome,
    pub how: String,
}

/// A predicted outcome no real state showed and none was built for: what
/// the model predicted, the state that predicted it, and why reach found
/// no real device state for it ([`super::reach::Miss`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unreached {
    pub point: String,
    pub outcome: Outcome,
    /// The kind of predicted crash state that gave it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub why: &'static str,
}

/// One crash point compared.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PointResult {
    pub point: String,
    #[serde(flatten)]
    pub counts: Counts,
    pub coverage: f64,
    pub precision: f64,
    /// Why inconsistent states failed, with how many.
    pub inconsistent_reasons: Vec<(String, usize)>,
    /// Predicted outcomes no real state showed, by the kind of the first
    /// crash state that gave each ([`state_kind`]): where precision is lost.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unseen: BTreeMap<String, usize>,
    /// The same unseen outcomes by why no device state was built for them
    /// ([`super::reach::Miss`]).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub unreached: BTreeMap<String, usize>,
}

/// The kind of an enumerated crash state, from its description
/// (`durafs::model::enumerate`): the part before the colon (`drop-all`,
/// `prefix`, `omit`, `size lost`, `torn`, ...); for a torn state also how
/// its sectors were chosen, and `without size` when its size change was
/// lost. Notes of the model's rules (after a `;`) are left out.
pub fn state_kind(description: &str) -> String {
    let head = description.split(';').next().unwrap_or_default();
    let Some((kind, rest)) = head.split_once(':') else {
        return head.trim().to_string();
    };
    if kind != "torn" {
        return kind.to_string();
    }
    // `torn: OP persisted LABEL, RANGES[, with ...][, without ...]`
    let label = rest
        .split_once(" persisted ")
        .and_then(|(_, l)| l.split_once(", ").map(|(l, _)| l))
        .unwrap_or("?");
    let mut out = format!("torn ({label})");
    if rest.contains("(data-first)") {
        out.push_str(", data-first");
    }
    if rest.contains("without its size change") {
        out.push_str(", without size");
    }
    out
}

/// Compares one point of each side (the same mark).
pub fn compare_point(
    real: &PointOutcomes,
    predicted: &PointOutcomes,
) -> (PointResult, Vec<FalseNegative>) {
    let common = real
        .outcomes
        .keys()
        .filter(|o| predicted.outcomes.contains_key(*o))
        .count();
    let counts = Counts {
        real: real.outcomes.len(),
        predicted: predicted.outcomes.len(),
        common,
        inconsistent: real.inconsistent.values().sum(),
        real_states: real.states,
        allowed: 0,
        reached: 0,
    };
    let label = format!("{}:{}", real.point.index, real.point.label);
    let mut unseen: BTreeMap<String, usize> = BTreeMap::new();
    for o in predicted.outcomes.keys() {
        if !real.outcomes.contains_key(o) {
            let kind = predicted.kinds.get(o).map_or("?", String::as_str);
            *unseen.entry(kind.to_string()).or_insert(0) += 1;
        }
    }
    let fns = real
        .outcomes
        .keys()
        .filter(|o| !predicted.outcomes.contains_key(*o))
        .map(|o| {
            let nearest = predicted
                .outcomes
                .keys()
                .min_by_key(|p| o.diff(p).lines().count())
                .cloned();
            let diff = match &nearest {
                Some(n) => o.diff(n),
                None => o.describe(),
            };
            FalseNegative {
                point: label.clone(),
                real: o.clone(),
                nearest,
                diff,
                sorted: None,
                allowed: None,
            }
        })
        .collect();
    let result = PointResult {
        point: label,
        counts,
        coverage: counts.coverage(),
        precision: counts.precision(),
        inconsistent_reasons: real
            .inconsistent
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
        unseen,
        unreached: BTreeMap::new(),
    };
    (result, fns)
}

#[cfg(test)]
mod tests {
    use super::super::outcome::{Entry, EntryKind};
    use super::super::points::Point;
    use super::*;

    fn outcome(size: u64) -> Outcome {
        let mut o = Outcome::default();
        o.0.insert(
            "A".into(),
            Entry {
                kind: EntryKind::File,
                size,
                nlink: 1,
                mode: 0o644,
                target: None,
                digest: size,
            },
        );
        o
    }

    fn side(sizes: &[u64], inconsistent: usize) -> PointOutcomes {
        let mut p = PointOutcomes::new(Point {
            index: 0,
            label: "start".into(),
        });
        for s in sizes {
            p.add(outcome(*s));
            p.add(outcome(*s));
        }
        for _ in 0..inconsistent {
            p.add_inconsistent("mount failed: EUCLEAN");
        }
        p
    }

    #[test]
    fn coverage_and_precision_count_distinct_outcomes() {
        let real = side(&[0, 10, 20], 2);
        let predicted = side(&[0, 10, 30, 40, 50], 0);
        let (r, fns) = compare_point(&real, &predicted);
        assert_eq!(
            r.counts,
            Counts {
                real: 3,
                predicted: 5,
                common: 2,
                inconsistent: 2,
                real_states: 8,
                allowed: 0,
                reached: 0,
            }
        );
        assert!((r.coverage - 2.0 / 3.0).abs() < 1e-9);
        assert!((r.precision - 0.4).abs() < 1e-9);
        assert_eq!(fns.len(), 1);
        assert_eq!(fns[0].real, outcome(20));
        assert!(fns[0].diff.contains("size=20"), "{}", fns[0].diff);
        assert_eq!(
            r.inconsistent_reasons,
            vec![("mount failed: EUCLEAN".into(), 2)]
        );
    }

    #[test]
    fn unseen_predictions_are_counted_by_the_kind_of_state_that_gave_them() {
        let real = side(&[0], 0);
        let mut predicted = side(&[0], 0);
        let torn = "torn: op #7 (write A [0, 1024)) persisted a run of its sectors, [512, 1024), without its size change; 1 operation lost data on sectors an earlier loss rolled back";
        predicted.add_from(outcome(5), state_kind(torn));
        predicted.add_from(
            outcome(6),
            state_kind("prefix: kept up to op #3 (create in dir #1: A), dropped op #4 (write #2 [0, 1)) and the 0 after"),
        );
        predicted.add_from(
            outcome(6),
            state_kind("drop-all: all 2 unsynced operations lost"),
        );
        let (r, _) = compare_point(&real, &predicted);
        let want: BTreeMap<String, usize> = [
            ("prefix".to_string(), 1),
            ("torn (a run of its sectors), without size".to_string(), 1),
        ]
        .into();
        assert_eq!(r.unseen, want);
    }

    #[test]
    fn nothing_real_or_nothing_predicted_counts_as_one_and_totals_add_counts() {
        let (r, fns) = compare_point(&side(&[], 1), &side(&[], 0));
        assert_eq!((r.coverage, r.precision), (1.0, 1.0));
        assert!(fns.is_empty());
        let mut total = Counts::default();
        total.add(
            &compare_point(&side(&[1], 0), &side(&[1, 2, 3, 4], 0))
                .0
                .counts,
        );
        total.add(&compare_point(&side(&[1, 2, 3], 0), &side(&[9], 0)).0.counts);
        assert_eq!((total.real, total.predicted, total.common), (4, 5, 1));
        assert!((total.coverage() - 0.25).abs() < 1e-9);
        assert_eq!(total.false_negatives(), 3);
    }
}
