//! The simulated operator and the scoring of a run against folder labels,
//! shared by the host board (`seaclr-buoy run`) and the Cortex-M board
//! (`seaclr-buoy frames` writes the operator's console script for it,
//! `seaclr-buoy score` scores its UART log). The ground truth stays here,
//! on the host: it never enters the device code.

use std::collections::BTreeMap;

/// Console class names must be tokens: keep letters, digits, `_-.`.
pub fn class_token(name: &str) -> String {
    let t: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(seaclr_shared::labels::MAX_CLASS_NAME)
        .collect();
    if t.is_empty() { "class".into() } else { t }
}

/// An operator who labels the first `per_class` classified frames of each
/// class (known from the folder names) through the console.
#[derive(Debug, Default)]
pub struct Operator {
    per_class: usize,
    done: BTreeMap<String, usize>,
    /// The last frame labelled (0: none yet).
    pub last_label_frame: u64,
}

impl Operator {
    /// An operator labelling `per_class` frames per class (0: none).
    pub fn new(per_class: usize) -> Self {
        Self {
            per_class,
            ..Self::default()
        }
    }

    /// The console lines to type after frame `number` (of class `truth`)
    /// was classified; `has_class` says whether the buoy knows a class.
    pub fn commands(
        &mut self,
        number: u64,
        truth: &str,
        has_class: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let name = class_token(truth);
        let done = self.done.entry(name.clone()).or_insert(0);
        if *done >= self.per_class {
            return Vec::new();
        }
        let mut lines = Vec::new();
        if !has_class(&name) {
            lines.push(format!("addclass {name}"));
        }
        lines.push(format!("label {number} {name}"));
        lines
    }

    /// Records that the label of frame `number` (class `truth`) was acknowledged.
    pub fn acknowledged(&mut self, number: u64, truth: &str) {
        *self.done.entry(class_token(truth)).or_insert(0) += 1;
        self.last_label_frame = number;
    }

    /// Frames labelled, and classes seen.
    pub fn labelled(&self) -> (usize, usize) {
        (self.done.values().sum(), self.done.len())
    }

    /// Frames labelled per class: as asked, or (for an operator rebuilt
    /// from a log with `new(0)`) the most any class got.
    pub fn per_class(&self) -> usize {
        self.per_class
            .max(self.done.values().copied().max().unwrap_or(0))
    }
}

/// One frame as the scoring sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scored {
    /// Frame number since boot.
    pub number: u64,
    /// Classified at all (a model was on and the frame usable).
    pub classified: bool,
    /// Below the open-set threshold.
    pub unknown: bool,
    /// The class the buoy answered.
    pub class: Option<String>,
    /// The folder label, as a console token.
    pub truth: Option<String>,
}

/// Correct answers out of frames with a known truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames scored.
    pub total: u64,
    /// Answered with their folder's class.
    pub correct: u64,
}

impl Tally {
    /// `correct / total` (0 for no frames).
    pub fn fraction(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// Scores the classified frames numbered `from+1..=to`.
pub fn score(frames: &[Scored], from: u64, to: u64) -> Tally {
    let mut t = Tally::default();
    for f in frames {
        if f.number > from && f.number <= to && f.classified && f.truth.is_some() {
            t.total += 1;
            if !f.unknown && f.class == f.truth {
                t.correct += 1;
            }
        }
    }
    t
}

/// The summary lines about the operator and the accuracy after labelling.
pub fn accuracy_lines(frames: &[Scored], operator: &Operator) -> Vec<String> {
    let last = operator.last_label_frame;
    if last == 0 {
        return Vec::new();
    }
    let (labelled, classes) = operator.labelled();
    let mut out = vec![format!(
        "operator labelled {labelled} frames ({} per class, {classes} classes) up to frame {last}",
        operator.per_class()
    )];
    let (before, after) = (score(frames, 0, last), score(frames, last, u64::MAX));
    if after.total > 0 {
        out.push(format!(
            "accuracy after labelling: {}/{} = {:.1}% on frames {}..{} (chance {:.1}%; during labelling {:.1}%)",
            after.correct,
            after.total,
            100.0 * after.fraction(),
            last + 1,
            frames.len(),
            100.0 / classes.max(1) as f64,
            100.0 * before.fraction()
        ));
    }
    out
}

/// Reads a frame log line as the device prints it
/// (`frame N ID: CLASS conf X sim Y[ UNKNOWN]`).
pub fn parse_log_line(line: &str) -> Option<(u64, bool, Option<String>)> {
    let rest = line.strip_prefix("frame ")?;
    let (number, rest) = rest.split_once(' ')?;
    let number = number.parse().ok()?;
    let (head, tail) = rest.rsplit_once(" conf ")?;
    let (_, class) = head.rsplit_once(": ")?;
    tail.split_once(" sim ")?;
    let unknown = tail.ends_with(" UNKNOWN");
    let class = (class != "-").then(|| class.to_string());
    Some((number, unknown, class))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_labels_the_first_frames_of_each_class() {
        let mut op = Operator::new(2);
        assert_eq!(
            op.commands(1, "a b", |_| false),
            ["addclass a_b", "label 1 a_b"]
        );
        op.acknowledged(1, "a b");
        assert_eq!(op.commands(2, "a b", |_| true), ["label 2 a_b"]);
        op.acknowledged(2, "a b");
        assert!(op.commands(3, "a b", |_| true).is_empty());
        assert_eq!(op.labelled(), (2, 1));
        assert_eq!(op.last_label_frame, 2);
    }

    #[test]
    fn log_lines_are_read_back_and_scored() {
        let lines = [
            "frame 1 x/a/1.png: a conf 0.50 sim 0.90",
            "frame 2 x/b/2.png: a conf 0.40 sim 0.30 UNKNOWN",
            "frame 3 x/b: c/3.png: b conf 0.60 sim 0.95",
            "frame 4 bad skipped: preprocessing failed: x",
            "frame 5 y.png: - conf 0.00 sim 0.00 UNKNOWN",
        ];
        let parsed: Vec<_> = lines.iter().filter_map(|l| parse_log_line(l)).collect();
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[2], (3, false, Some("b".into())));
        assert_eq!(parsed[3], (5, true, None));
        let truth = ["a", "b", "b", "", "a"];
        let frames: Vec<Scored> = parsed
            .into_iter()
            .map(|(n, unknown, class)| Scored {
                number: n,
                classified: true,
                unknown,
                class,
                truth: Some(truth[n as usize - 1].to_string()),
            })
            .collect();
        assert_eq!(
            score(&frames, 0, 5),
            Tally {
                total: 4,
                correct: 2
            }
        );
    }
}
