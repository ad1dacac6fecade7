//! The transfer protocol on classes the encoder never saw.
//!
//! **Few-shot:** for each `n` labelled images per class, `draws` seeded
//! draws; in each draw every class's images are shuffled, the first `n` are
//! labelled and all the others are the test set. kNN uses
//! `k_eff = min(k, n)`: with more neighbours than labelled examples per class
//! the vote is forced to include other classes, so at `n = 1` it is 1-NN.
//! An `n` is run only when every class keeps at least one test image
//! (`n < smallest class`); skipped sizes are listed in the results.
//!
//! **The seed's curve:** one seeded shuffle of the whole pool, 65 % train pool
//! and 35 % test; classifiers trained on the first `n` of the train pool
//! (not stratified) for `n` = 30..90 step 10, 100..900 step 100,
//! 1000..3000 step 200, capped by the train pool; kNN with `min(k, n)`.
//!
//! All numbers are balanced accuracies (mean recall over classes).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use super::classifiers::{LogisticParams, SvcParams, Task, knn, logistic, svc_rbf};
use super::gram::PoolKernels;
use super::metrics::{Confusion, mean_std};

/// Labelled images per class of the few-shot protocol.
pub const DEFAULT_SHOTS: [usize; 7] = [1, 2, 5, 10, 20, 50, 100];

/// Training sizes of the seed's curve: 30..90 step 10, 100..900 step 100,
/// 1000..3000 step 200.
pub fn seed_curve_sizes() -> Vec<usize> {
    (30..=90)
        .step_by(10)
        .chain((100..=900).step_by(100))
        .chain((1000..=3000).step_by(200))
        .collect()
}

/// How to run the protocol.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Labelled images per class to try.
    pub shots: Vec<usize>,
    /// Seeded draws per size.
    pub draws: usize,
    /// kNN neighbours (clipped as described in the module docs).
    pub k: usize,
    /// Base seed; draw `d` uses `seed + d`.
    pub seed: u64,
    /// Training sizes of the seed's curve (capped by the pool).
    pub curve_sizes: Vec<usize>,
    /// Fraction of the pool in the curve's train pool.
    pub curve_train_fraction: f64,
    /// Labelled images per class of the confusion matrices (the largest
    /// size run that is not above it).
    pub confusion_shots: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            shots: DEFAULT_SHOTS.to_vec(),
            draws: 10,
            k: 10,
            seed: 0,
            curve_sizes: seed_curve_sizes(),
            curve_train_fraction: 0.65,
            confusion_shots: 10,
        }
    }
}

/// Mean and spread of one score over draws.
#[derive(Clone, Debug, Serialize)]
pub struct Stat {
    /// Mean over draws.
    pub mean: f64,
    /// Sample standard deviation over draws.
    pub std: f64,
    /// Every draw's value.
    pub values: Vec<f64>,
}

impl Stat {
    fn from_values(values: Vec<f64>) -> Self {
        let (mean, std) = mean_std(&values);
        Self { mean, std, values }
    }
}

/// Few-shot results at one `n`.
#[derive(Clone, Debug, Serialize)]
pub struct ShotResult {
    /// Labelled images per class.
    pub n_per_class: usize,
    /// Neighbours the kNN used.
    pub knn_k: usize,
    /// kNN (cosine) balanced accuracy.
    pub knn: Stat,
    /// Logistic regression balanced accuracy.
    pub logistic: Stat,
    /// RBF SVC balanced accuracy.
    pub svc: Stat,
}

/// One point of the seed's curve.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    /// Labelled training images (all classes together).
    pub n_train: usize,
    /// Classes present among them.
    pub classes_seen: usize,
    /// kNN balanced accuracy.
    pub knn: f64,
    /// Logistic regression balanced accuracy.
    pub logistic: f64,
    /// RBF SVC balanced accuracy.
    pub svc: f64,
}

/// Per-class results of one classifier, summed over the draws.
#[derive(Clone, Debug, Serialize)]
pub struct ClassifierConfusion {
    /// "knn", "logistic" or "svc".
    pub classifier: String,
    /// `counts[truth][predicted]`, summed over all draws' test images.
    pub counts: Vec<Vec<usize>>,
    /// Per class: share of its test images given its label.
    pub recall: Vec<Option<f64>>,
    /// Per class: share of the images given its label that are of it.
    pub precision: Vec<Option<f64>>,
    /// Per class: harmonic mean of precision and recall.
    pub f1: Vec<Option<f64>>,
    /// Mean F1 over classes.
    pub macro_f1: f64,
}

impl ClassifierConfusion {
    fn new(classifier: &str, c: Confusion) -> Self {
        let f1 = c.f1s();
        let present: Vec<f64> = f1.iter().flatten().copied().collect();
        Self {
            classifier: classifier.into(),
            recall: c.recalls(),
            precision: c.precisions(),
            macro_f1: present.iter().sum::<f64>() / present.len().max(1) as f64,
            f1,
            counts: c.counts,
        }
    }
}

/// Confusion matrices of the three classifiers at one few-shot size.
#[derive(Clone, Debug, Serialize)]
pub struct ConfusionResult {
    /// Labelled images per class.
    pub n_per_class: usize,
    /// Draws summed.
    pub draws: usize,
    /// kNN, logistic, SVC.
    pub classifiers: Vec<ClassifierConfusion>,
}

/// The full protocol's output for one embedder.
#[derive(Clone, Debug, Serialize)]
pub struct TransferResult {
    /// Few-shot results per `n`.
    pub few_shot: Vec<ShotResult>,
    /// Sizes that were not run, and why.
    pub skipped_shots: Vec<String>,
    /// The seed's curve.
    pub curve: Vec<CurvePoint>,
    /// Images in the curve's train pool.
    pub curve_train_pool: usize,
    /// Images in the curve's test set.
    pub curve_test: usize,
    /// Confusion matrices and per-class scores at `settings.confusion_shots`.
    pub confusion: Option<ConfusionResult>,
}

/// Confusions of the three classifiers on one task.
fn score_all(
    kernels: &PoolKernels,
    task: Task<'_>,
    truth: &[usize],
    k: usize,
    seed: u64,
) -> anyhow::Result<[Confusion; 3]> {
    let classes = task.classes;
    let k_pred = knn(&kernels.cosine, task, k);
    let l_pred = logistic(&kernels.standardized, task, LogisticParams::default());
    let gamma = 1.0 / kernels.dim.max(1) as f64;
    let s_pred = svc_rbf(
        &kernels.standardized,
        task,
        SvcParams {
            c: 1.0,
            gamma,
            seed,
        },
    )?;
    Ok([
        Confusion::new(truth, &k_pred, classes),
        Confusion::new(truth, &l_pred, classes),
        Confusion::new(truth, &s_pred, classes),
    ])
}

/// One seeded few-shot draw: in every class the items are shuffled, the
/// first `n` are labelled, all the others are test items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FewShotDraw {
    /// Pool indices of the labelled items, class by class.
    pub train: Vec<usize>,
    /// Class of each labelled item.
    pub train_labels: Vec<usize>,
    /// Pool indices of the test items.
    pub test: Vec<usize>,
    /// Class of each test item.
    pub truth: Vec<usize>,
}

impl FewShotDraw {
    /// The draw of `n` per class for `seed` (draw `d` of a run uses
    /// `settings.seed + d`), from the pool indices of each class.
    pub fn new(by_class: &[Vec<usize>], n: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((n as u64) << 32));
        let mut draw = FewShotDraw {
            train: vec![],
            train_labels: vec![],
            test: vec![],
            truth: vec![],
        };
        for (c, items) in by_class.iter().enumerate() {
            let mut items = items.clone();
            items.shuffle(&mut rng);
            for (pos, &i) in items.iter().enumerate() {
                if pos < n {
                    draw.train.push(i);
                    draw.train_labels.push(c);
                } else {
                    draw.test.push(i);
                    draw.truth.push(c);
                }
            }
        }
        draw
    }

    /// The draw as a classification task over `classes` classes.
    pub fn task(&self, classes: usize) -> Task<'_> {
        Task {
            train: &self.train,
            train_labels: &self.train_labels,
            test: &self.test,
            classes,
        }
    }
}

/// Pool indices of each class, from the class of every pool item.
pub fn indices_by_class(labels: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &c) in labels.iter().enumerate() {
        by_class[c].push(i);
    }
    by_class
}

/// Runs the few-shot protocol and the seed's curve on one pool.
/// `labels[i]` is the class of pool item `i` (`< classes`).
pub fn run(
    kernels: &PoolKernels,
    labels: &[usize],
    classes: usize,
    settings: &Settings,
) -> anyhow::Result<TransferResult> {
    anyhow::ensure!(
        labels.len() == kernels.cosine.len(),
        "labels and pool differ in length"
    );
    anyhow::ensure!(
        classes >= 2,
        "transfer needs at least two classes, found {classes}"
    );
    let by_class = indices_by_class(labels, classes);
    let smallest = by_class.iter().map(Vec::len).min().unwrap_or(0);
    let mut few_shot = Vec::new();
    let mut skipped_shots = Vec::new();
    let runnable = |n: usize| n > 0 && n < smallest;
    let confusion_n = settings
        .shots
        .iter()
        .copied()
        .filter(|&n| runnable(n) && n <= settings.confusion_shots)
        .max()
        .or_else(|| {
            settings
                .shots
                .iter()
                .copied()
                .filter(|&n| runnable(n))
                .min()
        });
    let mut confusion = None;
    let train_pool_len = (((labels.len() as f64) * settings.curve_train_fraction).round() as usize)
        .min(labels.len());
    let curve_points = settings
        .curve_sizes
        .iter()
        .filter(|&&n| n <= train_pool_len)
        .count();
    let runs = settings.shots.iter().filter(|&&n| runnable(n)).count() * settings.draws;
    let bar = crate::ui::progress(runs + curve_points, "few-shot");
    for &n in &settings.shots {
        if n == 0 || n >= smallest {
            skipped_shots.push(format!(
                "n = {n}: the smallest class has {smallest} images, so n must be below {smallest} to leave a test image"
            ));
            continue;
        }
        let knn_k = settings.k.min(n).max(1);
        let confusions: Vec<[Confusion; 3]> = (0..settings.draws)
            .into_par_iter()
            .map(|d| {
                let seed = settings.seed.wrapping_add(d as u64);
                let draw = FewShotDraw::new(&by_class, n, seed);
                let task = draw.task(classes);
                let scores = score_all(kernels, task, &draw.truth, knn_k, seed);
                bar.inc(1);
                scores
            })
            .collect::<anyhow::Result<_>>()?;
        let column = |m: usize| {
            Stat::from_values(
                confusions
                    .iter()
                    .map(|s| s[m].balanced_accuracy())
                    .collect(),
            )
        };
        if Some(n) == confusion_n {
            let mut sum: [Confusion; 3] = confusions[0].clone();
            for c in &confusions[1..] {
                for m in 0..3 {
                    sum[m].add(&c[m]);
                }
            }
            let [k, l, s] = sum;
            confusion = Some(ConfusionResult {
                n_per_class: n,
                draws: confusions.len(),
                classifiers: vec![
                    ClassifierConfusion::new("knn", k),
                    ClassifierConfusion::new("logistic", l),
                    ClassifierConfusion::new("svc", s),
                ],
            });
        }
        few_shot.push(ShotResult {
            n_per_class: n,
            knn_k,
            knn: column(0),
            logistic: column(1),
            svc: column(2),
        });
    }

    // The seed's curve.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(settings.seed));
    let (train_pool, test) = order.split_at(train_pool_len);
    let truth: Vec<usize> = test.iter().map(|&i| labels[i]).collect();
    let sizes: Vec<usize> = settings
        .curve_sizes
        .iter()
        .copied()
        .filter(|&n| n <= train_pool.len())
        .collect();
    let curve = sizes
        .par_iter()
        .map(|&n| {
            let train = &train_pool[..n];
            let train_labels: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
            let mut present = vec![false; classes];
            train_labels.iter().for_each(|&c| present[c] = true);
            let task = Task {
                train,
                train_labels: &train_labels,
                test,
                classes,
            };
            let [knn, logistic, svc] =
                score_all(kernels, task, &truth, settings.k.min(n), settings.seed)?
                    .map(|c| c.balanced_accuracy());
            bar.inc(1);
            Ok(CurvePoint {
                n_train: n,
                classes_seen: present.iter().filter(|&&p| p).count(),
                knn,
                logistic,
                svc,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    bar.finish_and_clear();
    Ok(TransferResult {
        few_shot,
        skipped_shots,
        curve,
        curve_train_pool: train_pool.len(),
        curve_test: test.len(),
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `classes` tight clusters on orthogonal axes with `per_class` items each.
    fn clustered(classes: usize, per_class: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for c in 0..classes {
            for i in 0..per_class {
                let mut v = vec![0.05 * ((i % 5) as f32); classes];
                v[c] = 3.0 + 0.1 * (i % 3) as f32;
                rows.push(v);
                labels.push(c);
            }
        }
        (rows, labels)
    }

    #[test]
    fn curve_sizes_match_the_seed() {
        let s = seed_curve_sizes();
        assert_eq!(&s[..8], &[30, 40, 50, 60, 70, 80, 90, 100]);
        assert_eq!(s.len(), 7 + 9 + 11);
        assert_eq!(*s.last().unwrap(), 3000);
    }

    #[test]
    fn separable_pool_scores_one_and_small_classes_cap_n() {
        let (rows, labels) = clustered(3, 12);
        let kernels = PoolKernels::new(&rows);
        let settings = Settings {
            draws: 3,
            ..Settings::default()
        };
        let r = run(&kernels, &labels, 3, &settings).unwrap();
        let ns: Vec<usize> = r.few_shot.iter().map(|s| s.n_per_class).collect();
        assert_eq!(ns, vec![1, 2, 5, 10]);
        assert_eq!(r.skipped_shots.len(), 3);
        for s in &r.few_shot {
            assert_eq!(s.knn.values.len(), 3);
            assert_eq!(s.knn_k, s.n_per_class.min(10));
            for stat in [&s.knn, &s.logistic, &s.svc] {
                assert_eq!(stat.mean, 1.0, "n = {} {:?}", s.n_per_class, s);
                assert_eq!(stat.std, 0.0);
            }
        }
        // Confusion at n = 10 (the default), perfect and summed over 3 draws.
        let conf = r.confusion.as_ref().unwrap();
        assert_eq!(conf.n_per_class, 10);
        assert_eq!(conf.classifiers.len(), 3);
        assert_eq!(conf.classifiers[0].counts[1][1], 3 * 2);
        assert_eq!(conf.classifiers[2].f1, vec![Some(1.0); 3]);
        // 36 items: train pool 23, test 13; sizes 30.. do not fit.
        assert_eq!((r.curve_train_pool, r.curve_test), (23, 13));
        assert!(r.curve.is_empty());
    }

    #[test]
    fn chance_level_labels_score_near_chance() {
        // Labels unrelated to the (identical-looking) embeddings.
        let rows: Vec<Vec<f32>> = (0..120)
            .map(|i| vec![1.0 + (i % 7) as f32 * 0.01, 1.0, (i % 11) as f32 * 0.01])
            .collect();
        let labels: Vec<usize> = (0..120).map(|i| (i * 37 / 3) % 2).collect();
        let kernels = PoolKernels::new(&rows);
        let settings = Settings {
            shots: vec![10],
            draws: 10,
            ..Settings::default()
        };
        let r = run(&kernels, &labels, 2, &settings).unwrap();
        for stat in [
            &r.few_shot[0].knn,
            &r.few_shot[0].logistic,
            &r.few_shot[0].svc,
        ] {
            assert!((stat.mean - 0.5).abs() < 0.15, "{}", stat.mean);
        }
        assert_eq!(
            r.curve.iter().map(|p| p.n_train).collect::<Vec<_>>(),
            vec![30, 40, 50, 60, 70]
        );
    }

    #[test]
    fn draws_are_reproducible_and_seed_dependent() {
        let rows: Vec<Vec<f32>> = (0..60)
            .map(|i| vec![(i % 13) as f32, (i % 7) as f32, 1.0])
            .collect();
        let labels: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let kernels = PoolKernels::new(&rows);
        let settings = Settings {
            shots: vec![2],
            draws: 4,
            ..Settings::default()
        };
        let a = run(&kernels, &labels, 3, &settings).unwrap();
        let b = run(&kernels, &labels, 3, &settings).unwrap();
        assert_eq!(a.few_shot[0].knn.values, b.few_shot[0].knn.values);
        let c = run(
            &kernels,
            &labels,
            3,
            &Settings {
                seed: 99,
                ..settings
            },
        )
        .unwrap();
        assert_ne!(a.few_shot[0].knn.values, c.few_shot[0].knn.values);
    }
}
