//! Balanced accuracy: the mean per-class recall, so a classifier that always
//! answers the largest class scores `1 / classes`, not the class share.

/// Confusion counts: `counts[truth][predicted]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Confusion {
    /// `counts[truth][predicted]`.
    pub counts: Vec<Vec<usize>>,
}

impl Confusion {
    /// Tallies `truth` against `predicted` (both class indices below `classes`).
    pub fn new(truth: &[usize], predicted: &[usize], classes: usize) -> Self {
        assert_eq!(truth.len(), predicted.len(), "truth and prediction lengths");
        let mut counts = vec![vec![0; classes]; classes];
        for (&t, &p) in truth.iter().zip(predicted) {
            counts[t][p] += 1;
        }
        Self { counts }
    }

    /// Recall of each class; `None` for classes absent from the truth.
    pub fn recalls(&self) -> Vec<Option<f64>> {
        self.counts
            .iter()
            .enumerate()
            .map(|(c, row)| {
                let total: usize = row.iter().sum();
                (total > 0).then(|| row[c] as f64 / total as f64)
            })
            .collect()
    }

    /// Precision of each class; `None` for classes never predicted.
    pub fn precisions(&self) -> Vec<Option<f64>> {
        (0..self.counts.len())
            .map(|c| {
                let predicted: usize = self.counts.iter().map(|row| row[c]).sum();
                (predicted > 0).then(|| self.counts[c][c] as f64 / predicted as f64)
            })
            .collect()
    }

    /// F1 of each class (0 when precision or recall is 0 or undefined but
    /// the class occurs in the truth; `None` when it does not).
    pub fn f1s(&self) -> Vec<Option<f64>> {
        self.recalls()
            .into_iter()
            .zip(self.precisions())
            .map(|(r, p)| {
                let r = r?;
                let p = p.unwrap_or(0.0);
                Some(if p + r > 0.0 {
                    2.0 * p * r / (p + r)
                } else {
                    0.0
                })
            })
            .collect()
    }

    /// Adds another confusion of the same classes.
    pub fn add(&mut self, other: &Confusion) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }

    /// Mean recall over the classes present in the truth (scikit-learn's
    /// `balanced_accuracy_score`). 0 when the truth is empty.
    pub fn balanced_accuracy(&self) -> f64 {
        let present: Vec<f64> = self.recalls().into_iter().flatten().collect();
        if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        }
    }
}

/// Balanced accuracy of `predicted` against `truth`.
pub fn balanced_accuracy(truth: &[usize], predicted: &[usize], classes: usize) -> f64 {
    Confusion::new(truth, predicted, classes).balanced_accuracy()
}

/// Mean and sample standard deviation (n - 1; 0 for fewer than two values).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_accuracy_on_unbalanced_confusion_is_mean_recall() {
        // class 0: 3 of 4 right, class 1: 1 of 2 right, class 2: 1 of 1 right.
        let truth = [0, 0, 0, 0, 1, 1, 2];
        let pred = [0, 0, 0, 1, 1, 0, 2];
        let ba = balanced_accuracy(&truth, &pred, 3);
        assert!((ba - (0.75 + 0.5 + 1.0) / 3.0).abs() < 1e-12, "{ba}");
        // Plain accuracy would be 5/7; balanced accuracy must differ from it.
        assert!((ba - 5.0 / 7.0).abs() > 0.01);
    }

    #[test]
    fn majority_answer_scores_one_over_classes() {
        let truth = [0, 0, 0, 0, 0, 0, 0, 0, 1, 2];
        let pred = [0; 10];
        assert!((balanced_accuracy(&truth, &pred, 3) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_are_not_averaged() {
        // Class 2 never occurs in the truth; it must not count as recall 0.
        let truth = [0, 1];
        let pred = [0, 2];
        assert!((balanced_accuracy(&truth, &pred, 3) - 0.5).abs() < 1e-12);
        assert_eq!(Confusion::new(&truth, &pred, 3).recalls()[2], None);
    }

    #[test]
    fn precision_recall_f1_per_class() {
        let truth = [0, 0, 0, 0, 1, 1, 2];
        let pred = [0, 0, 0, 1, 1, 0, 2];
        let c = Confusion::new(&truth, &pred, 4);
        // Class 0: predicted 4 times, 3 right; class 1: 2 predicted, 1 right.
        assert_eq!(c.precisions()[0], Some(0.75));
        assert_eq!(c.precisions()[1], Some(0.5));
        assert_eq!(c.precisions()[3], None);
        let f1 = c.f1s();
        assert!((f1[0].unwrap() - 0.75).abs() < 1e-12);
        assert_eq!(f1[3], None);
        let mut twice = c.clone();
        twice.add(&c);
        assert_eq!(twice.counts[0][0], 6);
    }

    #[test]
    fn mean_std_uses_sample_deviation() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m - 2.0).abs() < 1e-12 && (s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[4.0]), (4.0, 0.0));
    }
}
