//! The three few-shot classifiers, all reading a pool's Gram matrices by
//! index (see [`super::gram`]):
//!
//! - kNN with cosine similarity and majority vote (ties go to the class with
//!   the larger summed similarity, then to the nearest neighbour's class);
//! - multinomial logistic regression (softmax, L2 with scikit-learn's default
//!   `C = 1`, a constant bias feature), solved in its dual form
//!   `w = X^T alpha` by Nesterov-accelerated full-batch gradient descent with
//!   step `1 / L` from the exact Lipschitz bound; this is the same optimum as
//!   the primal problem but costs `n^2` per step instead of `n * dim`;
//! - an RBF support vector classifier: `smartcore`'s binary `SVC` (LaSVM
//!   solver) per pair of classes, one-vs-one voting like libsvm (done here
//!   rather than with smartcore's `MultiClassSVC`, whose tie-break follows
//!   `HashMap` order and so varies between runs), fed a precomputed kernel
//!   table so the `dim`-sized distance work happens once per task.

use std::sync::Arc;

use anyhow::Context;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::svm::Kernel;
use smartcore::svm::svc::{SVC, SVCParameters};

use super::gram::Gram;

/// One classification problem over a pool: indices into the pool's Gram
/// matrices, and class indices of the training items.
#[derive(Clone, Copy, Debug)]
pub struct Task<'a> {
    /// Pool indices of the labelled items.
    pub train: &'a [usize],
    /// Class of each labelled item (`< classes`).
    pub train_labels: &'a [usize],
    /// Pool indices to predict.
    pub test: &'a [usize],
    /// Number of classes.
    pub classes: usize,
}

impl Task<'_> {
    /// The only class present in the training labels, if there is just one.
    fn single_class(&self) -> Option<usize> {
        let first = *self.train_labels.first()?;
        self.train_labels
            .iter()
            .all(|&c| c == first)
            .then_some(first)
    }
}

/// kNN on cosine similarity (`cosine` = Gram of unit vectors), `k` clipped to
/// the number of labelled items.
pub fn knn(cosine: &Gram, task: Task<'_>, k: usize) -> Vec<usize> {
    let k = k.clamp(1, task.train.len().max(1));
    task.test
        .iter()
        .map(|&t| {
            let row = cosine.row(t);
            let mut neighbours: Vec<(f32, usize)> = task
                .train
                .iter()
                .enumerate()
                .map(|(pos, &i)| (row[i], pos))
                .collect();
            // Most similar first; equal similarities keep training order.
            neighbours.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut votes = vec![(0usize, 0.0f32); task.classes];
            let mut order = Vec::new();
            for &(sim, pos) in neighbours.iter().take(k) {
                let c = task.train_labels[pos];
                if votes[c].0 == 0 {
                    order.push(c);
                }
                votes[c].0 += 1;
                votes[c].1 += sim;
            }
            let mut best = order[0];
            for &c in &order[1..] {
                let (bv, bs) = votes[best];
                let (cv, cs) = votes[c];
                if cv > bv || (cv == bv && cs > bs) {
                    best = c;
                }
            }
            best
        })
        .collect()
}

/// Settings of the logistic regression.
#[derive(Clone, Copy, Debug)]
pub struct LogisticParams {
    /// Inverse regularisation strength, as scikit-learn's `C`.
    pub c: f64,
    /// Gradient steps.
    pub iterations: usize,
}

impl Default for LogisticParams {
    fn default() -> Self {
        Self {
            c: 1.0,
            iterations: 300,
        }
    }
}

/// Largest eigenvalue of a symmetric positive semi-definite matrix (power iteration).
fn largest_eigenvalue(k: &[f64], n: usize) -> f64 {
    let mut v = vec![1.0 / (n as f64).sqrt(); n];
    let mut lambda = 0.0;
    for _ in 0..50 {
        let w: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| k[i * n + j] * v[j]).sum())
            .collect();
        let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        lambda = norm;
        v = w.into_iter().map(|x| x / norm).collect();
    }
    lambda
}

/// Multinomial logistic regression on the linear kernel `dots` (Gram of the
/// standardised features); returns the predicted class of each test item.
pub fn logistic(dots: &Gram, task: Task<'_>, params: LogisticParams) -> Vec<usize> {
    if let Some(c) = task.single_class() {
        return vec![c; task.test.len()];
    }
    let (n, kc) = (task.train.len(), task.classes);
    // Kernel of the training items, with a constant feature 1 for the bias.
    let kernel: Vec<f64> = task
        .train
        .iter()
        .flat_map(|&i| task.train.iter().map(move |&j| dots.get(i, j) as f64 + 1.0))
        .collect();
    let lambda = 1.0 / (params.c * n as f64);
    // Softmax cross-entropy has Hessian <= 1/2 in the logits, so the mean loss
    // is (lambda_max(K) / (2 n) + lambda)-smooth in w; 1.05 covers the power
    // iteration's small underestimate.
    let lipschitz = 1.05 * largest_eigenvalue(&kernel, n) / (2.0 * n as f64) + lambda;
    let step = 1.0 / lipschitz;
    let mut alpha = vec![0.0f64; n * kc];
    let mut previous = alpha.clone();
    let mut logits = vec![0.0f64; n * kc];
    for t in 0..params.iterations {
        let momentum = t as f64 / (t as f64 + 3.0);
        let look: Vec<f64> = alpha
            .iter()
            .zip(&previous)
            .map(|(a, p)| a + momentum * (a - p))
            .collect();
        // logits = K look
        for i in 0..n {
            let krow = &kernel[i * n..(i + 1) * n];
            let out = &mut logits[i * kc..(i + 1) * kc];
            out.iter_mut().for_each(|o| *o = 0.0);
            for (j, &kij) in krow.iter().enumerate() {
                for (o, &a) in out.iter_mut().zip(&look[j * kc..(j + 1) * kc]) {
                    *o += kij * a;
                }
            }
        }
        let mut next = look.clone();
        for i in 0..n {
            let row = &logits[i * kc..(i + 1) * kc];
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = row.iter().map(|z| (z - max).exp()).collect();
            let total: f64 = exp.iter().sum();
            for c in 0..kc {
                let target = if task.train_labels[i] == c { 1.0 } else { 0.0 };
                let grad = (exp[c] / total - target) / n as f64 + lambda * look[i * kc + c];
                next[i * kc + c] -= step * grad;
            }
        }
        previous = std::mem::replace(&mut alpha, next);
    }
    task.test
        .iter()
        .map(|&t| {
            let mut scores = vec![0.0f64; kc];
            for (j, &i) in task.train.iter().enumerate() {
                let kij = dots.get(t, i) as f64 + 1.0;
                for (s, &a) in scores.iter_mut().zip(&alpha[j * kc..(j + 1) * kc]) {
                    *s += kij * a;
                }
            }
            argmax(&scores)
        })
        .collect()
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Settings of the RBF SVC.
#[derive(Clone, Copy, Debug)]
pub struct SvcParams {
    /// Penalty `C` (scikit-learn's default is 1).
    pub c: f64,
    /// Kernel width in `exp(-gamma |a - b|^2)`; scikit-learn's "auto" is `1 / dim`.
    pub gamma: f64,
    /// Seed of the solver's visiting order.
    pub seed: u64,
}

/// An RBF kernel looked up in a table: each smartcore "feature vector" is the
/// one-element row `[local index]`, local indices `0..train` being the
/// training items and the rest the test items.
struct TableKernel {
    /// `values[row * train + col]` for any row and a training column.
    values: Arc<Vec<f64>>,
    train: usize,
}

impl std::fmt::Debug for TableKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableKernel({} training items)", self.train)
    }
}

impl Kernel for TableKernel {
    fn apply(&self, x_i: &Vec<f64>, x_j: &Vec<f64>) -> Result<f64, smartcore::error::Failed> {
        let (i, j) = (x_i[0] as usize, x_j[0] as usize);
        let (row, col) = if j < self.train { (i, j) } else { (j, i) };
        if col >= self.train {
            return Err(smartcore::error::Failed::predict(
                "kernel between two test items",
            ));
        }
        Ok(self.values[row * self.train + col])
    }
}

/// RBF SVC on the standardised features (`dots` = their Gram matrix).
pub fn svc_rbf(dots: &Gram, task: Task<'_>, params: SvcParams) -> anyhow::Result<Vec<usize>> {
    if let Some(c) = task.single_class() {
        return Ok(vec![c; task.test.len()]);
    }
    let n = task.train.len();
    let all: Vec<usize> = task.train.iter().chain(task.test).copied().collect();
    let values: Vec<f64> = all
        .iter()
        .flat_map(|&a| {
            task.train
                .iter()
                .map(move |&b| (-params.gamma * dots.squared_distance(a, b) as f64).exp())
        })
        .collect();
    let values = Arc::new(values);
    let rows = |locals: &[usize]| {
        DenseMatrix::from_2d_vec(&locals.iter().map(|&i| vec![i as f64]).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("svc index matrix: {e}"))
    };
    let test_locals: Vec<usize> = (n..n + task.test.len()).collect();
    if test_locals.is_empty() {
        return Ok(Vec::new());
    }
    let x_test = rows(&test_locals)?;
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); task.classes];
    task.train_labels
        .iter()
        .enumerate()
        .for_each(|(i, &c)| by_class[c].push(i));
    let present: Vec<usize> = (0..task.classes)
        .filter(|&c| !by_class[c].is_empty())
        .collect();
    // One-vs-one like libsvm: a binary SVC per pair of classes, then votes;
    // ties go to the larger summed margin, then to the lower class index.
    let mut votes = vec![vec![(0u32, 0.0f64); task.classes]; task.test.len()];
    for (pa, &a) in present.iter().enumerate() {
        for &b in &present[pa + 1..] {
            let locals: Vec<usize> = by_class[a].iter().chain(&by_class[b]).copied().collect();
            // smartcore maps the larger label to the positive side.
            let y: Vec<i32> = locals
                .iter()
                .map(|&i| if task.train_labels[i] == b { 1 } else { -1 })
                .collect();
            let x = rows(&locals)?;
            let svc_params = SVCParameters::default()
                .with_c(params.c)
                .with_kernel(TableKernel {
                    values: Arc::clone(&values),
                    train: n,
                })
                .with_seed(Some(params.seed));
            let model = SVC::fit(&x, &y, &svc_params)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("fitting the RBF SVC for classes {a} and {b}"))?;
            let decision = model
                .decision_function(&x_test)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("evaluating the RBF SVC")?;
            for (v, d) in votes.iter_mut().zip(decision) {
                let (winner, margin) = if d > 0.0 { (b, d) } else { (a, -d) };
                v[winner].0 += 1;
                v[winner].1 += margin;
            }
        }
    }
    Ok(votes
        .iter()
        .map(|v| {
            let mut best = present[0];
            for &c in &present[1..] {
                if v[c].0 > v[best].0 || (v[c].0 == v[best].0 && v[c].1 > v[best].1) {
                    best = c;
                }
            }
            best
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::gram::{Gram, l2_normalized};
    use crate::eval::metrics::balanced_accuracy;

    /// Points around `centre` with small deterministic offsets.
    fn cluster(centre: &[f32], count: usize, spread: f32) -> Vec<Vec<f32>> {
        (0..count)
            .map(|i| {
                centre
                    .iter()
                    .enumerate()
                    .map(|(d, &c)| c + spread * (((i * 7 + d * 3) % 11) as f32 / 11.0 - 0.5))
                    .collect()
            })
            .collect()
    }

    /// Three well-separated clusters in 4-D: 6 training and 6 test points each.
    /// Pool rows, train indices, train labels, test indices, test labels.
    type Split = (
        Vec<Vec<f32>>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
        Vec<usize>,
    );

    fn separated() -> Split {
        let centres = [
            [5.0, 0.0, 0.0, 1.0],
            [0.0, 5.0, 0.0, 1.0],
            [0.0, 0.0, 5.0, 1.0],
        ];
        let mut rows = Vec::new();
        let (mut train, mut train_y, mut test, mut test_y) = (vec![], vec![], vec![], vec![]);
        for (c, centre) in centres.iter().enumerate() {
            for (i, p) in cluster(centre, 12, 0.5).into_iter().enumerate() {
                if i < 6 {
                    train.push(rows.len());
                    train_y.push(c);
                } else {
                    test.push(rows.len());
                    test_y.push(c);
                }
                rows.push(p);
            }
        }
        (rows, train, train_y, test, test_y)
    }

    #[test]
    fn all_classifiers_are_perfect_on_separated_clusters() {
        let (rows, train, train_y, test, test_y) = separated();
        let task = Task {
            train: &train,
            train_labels: &train_y,
            test: &test,
            classes: 3,
        };
        let cosine = Gram::from_rows(&l2_normalized(&rows));
        let dots = Gram::from_rows(&rows);
        let k = knn(&cosine, task, 5);
        assert_eq!(balanced_accuracy(&test_y, &k, 3), 1.0);
        let l = logistic(&dots, task, LogisticParams::default());
        assert_eq!(balanced_accuracy(&test_y, &l, 3), 1.0);
        let s = svc_rbf(
            &dots,
            task,
            SvcParams {
                c: 1.0,
                gamma: 0.25,
                seed: 1,
            },
        )
        .unwrap();
        assert_eq!(balanced_accuracy(&test_y, &s, 3), 1.0);
    }

    #[test]
    fn knn_misses_exactly_the_test_point_inside_the_other_class() {
        // Class 0 along +x, class 1 along +y; one class-0 test point sits on
        // class 1's training points, so kNN gets 3 of 4 for class 0 and 4 of 4
        // for class 1: balanced accuracy (0.75 + 1) / 2.
        let rows = vec![
            vec![1.0, 0.0],
            vec![1.0, 0.1],
            vec![1.0, -0.1],
            vec![0.0, 1.0],
            vec![0.1, 1.0],
            vec![-0.1, 1.0],
            // test, class 0
            vec![2.0, 0.05],
            vec![3.0, -0.2],
            vec![1.0, 0.02],
            vec![0.02, 1.0],
            // test, class 1
            vec![0.0, 2.0],
            vec![0.2, 3.0],
            vec![-0.05, 1.0],
            vec![0.01, 0.9],
        ];
        let train = [0, 1, 2, 3, 4, 5];
        let train_y = [0, 0, 0, 1, 1, 1];
        let test: Vec<usize> = (6..14).collect();
        let truth = [0, 0, 0, 0, 1, 1, 1, 1];
        let cosine = Gram::from_rows(&l2_normalized(&rows));
        let task = Task {
            train: &train,
            train_labels: &train_y,
            test: &test,
            classes: 2,
        };
        let predicted = knn(&cosine, task, 3);
        assert_eq!(predicted, vec![0, 0, 0, 1, 1, 1, 1, 1]);
        assert_eq!(balanced_accuracy(&truth, &predicted, 2), 0.875);
    }

    #[test]
    fn knn_tie_goes_to_larger_summed_similarity() {
        // k = 2 with one neighbour of each class: the more similar one wins.
        let rows = vec![
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 0.8],
            vec![0.7, 1.0],
        ];
        let cosine = Gram::from_rows(&l2_normalized(&rows));
        let task = Task {
            train: &[0, 1],
            train_labels: &[0, 1],
            test: &[2, 3],
            classes: 2,
        };
        assert_eq!(knn(&cosine, task, 2), vec![0, 1]);
    }

    #[test]
    fn rbf_svc_separates_xor_that_no_linear_model_can() {
        // XOR: classes by the sign of x*y, clusters at the four corners.
        let mut rows = Vec::new();
        let (mut train, mut train_y, mut test, mut test_y) = (vec![], vec![], vec![], vec![]);
        for (corner, class) in [
            ([3.0, 3.0], 0),
            ([-3.0, -3.0], 0),
            ([3.0, -3.0], 1),
            ([-3.0, 3.0], 1),
        ] {
            for (i, p) in cluster(&corner, 10, 1.0).into_iter().enumerate() {
                if i < 5 {
                    train.push(rows.len());
                    train_y.push(class);
                } else {
                    test.push(rows.len());
                    test_y.push(class);
                }
                rows.push(p);
            }
        }
        let dots = Gram::from_rows(&rows);
        let task = Task {
            train: &train,
            train_labels: &train_y,
            test: &test,
            classes: 2,
        };
        let svc = svc_rbf(
            &dots,
            task,
            SvcParams {
                c: 10.0,
                gamma: 0.1,
                seed: 3,
            },
        )
        .unwrap();
        assert_eq!(balanced_accuracy(&test_y, &svc, 2), 1.0);
        // A linear model cannot do this: at least one corner cluster is wrong.
        let lin = logistic(&dots, task, LogisticParams::default());
        assert!(balanced_accuracy(&test_y, &lin, 2) <= 0.75);
    }

    #[test]
    fn logistic_follows_the_symmetric_linear_boundary() {
        // Mirror-symmetric classes: the optimum boundary is exactly x = 0, so
        // points just either side of it, far along y, fall on the right side.
        let rows = vec![
            vec![-1.0, 1.0],
            vec![-1.0, -1.0],
            vec![-2.0, 0.0],
            vec![1.0, 1.0],
            vec![1.0, -1.0],
            vec![2.0, 0.0],
            vec![-0.5, 4.0],
            vec![0.5, -4.0],
            vec![-3.0, 0.1],
            vec![0.3, 2.0],
        ];
        let dots = Gram::from_rows(&rows);
        let task = Task {
            train: &[0, 1, 2, 3, 4, 5],
            train_labels: &[0, 0, 0, 1, 1, 1],
            test: &[6, 7, 8, 9],
            classes: 2,
        };
        let params = LogisticParams {
            c: 100.0,
            iterations: 500,
        };
        assert_eq!(logistic(&dots, task, params), vec![0, 1, 0, 1]);
    }

    #[test]
    fn one_training_class_predicts_it_everywhere() {
        let rows = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let dots = Gram::from_rows(&rows);
        let task = Task {
            train: &[0, 1],
            train_labels: &[2, 2],
            test: &[2],
            classes: 3,
        };
        assert_eq!(logistic(&dots, task, LogisticParams::default()), vec![2]);
        let params = SvcParams {
            c: 1.0,
            gamma: 1.0,
            seed: 0,
        };
        assert_eq!(svc_rbf(&dots, task, params).unwrap(), vec![2]);
    }
}
