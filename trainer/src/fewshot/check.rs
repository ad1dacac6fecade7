//! `seaclr fewshot check`: does the device's kNN head, taught one example at
//! a time through `add_example`, classify as well as the evaluation's host
//! kNN?
//!
//! Both sides get the same int8 embeddings (the edge engine's output, centred
//! on its zero point), the same pool (`eval::cli::load_unseen_pool`, so the
//! unseen classes of the split with `seaclr eval`'s per-class cap) and the
//! same seeded draws ([`FewShotDraw`]), so any gap is the head's own doing:
//! integer cosine, its similarity-weighted vote, its memory bounds. The
//! open-set threshold stays disabled: the host kNN has no "unknown" either.

use std::path::PathBuf;

use anyhow::{Result, anyhow, ensure};
use clap::Args;
use rayon::prelude::*;
use seaclr_edge::knn::{KnnError, KnnHead};
use serde::Serialize;

use crate::embedder::Embedder as _;
use crate::eval::classifiers::knn;
use crate::eval::cli::{PoolArgs, load_unseen_pool};
use crate::eval::gram::Gram;
use crate::eval::metrics::{balanced_accuracy, mean_std};
use crate::eval::protocol::{FewShotDraw, indices_by_class};
use crate::quant::Int8Embedder;

/// Arguments of `seaclr fewshot check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The int8 model blob (`.seaclr`).
    #[arg(long)]
    pub model: PathBuf,
    /// The pool and the draws, as `seaclr eval` takes them.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Labelled examples per class taught to the head.
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Host kNN against the device head over the same draws.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    /// Classes in the pool.
    pub classes: usize,
    /// Images in the pool.
    pub images: usize,
    /// Labelled examples per class.
    pub per_class: usize,
    /// Neighbours used by both.
    pub k: usize,
    /// Balanced accuracy of the host kNN, per draw.
    pub host_knn: Vec<f64>,
    /// Balanced accuracy of the device head, per draw.
    pub device_head: Vec<f64>,
    /// Mean and sample std of `host_knn`.
    pub host_mean_std: (f64, f64),
    /// Mean and sample std of `device_head`.
    pub device_mean_std: (f64, f64),
    /// Device mean minus host mean, in percentage points.
    pub difference_points: f64,
    /// Share of test images both answer with the same class.
    pub agreement: f64,
    /// Examples the head refused (all-zero embeddings), over all draws.
    pub refused_examples: usize,
    /// Examples the head evicted to make room, over all draws (0 while the
    /// memory holds every labelled example).
    pub evictions: usize,
}

/// Result of one draw.
struct DrawResult {
    host: f64,
    device: f64,
    agreeing: usize,
    tested: usize,
    refused: usize,
    evictions: usize,
}

/// Runs the comparison on centred int8 `embeddings` with class `labels`
/// (`< classes`).
pub fn compare_heads(
    embeddings: &[Vec<i8>],
    labels: &[usize],
    classes: usize,
    per_class: usize,
    draws: usize,
    k: usize,
    seed: u64,
) -> Result<CheckReport> {
    ensure!(
        embeddings.len() == labels.len(),
        "embeddings and labels differ in length"
    );
    // More classes than the head's table holds fail in `add_class`, by name.
    ensure!(
        classes >= 2,
        "the check needs at least 2 classes, found {classes}"
    );
    ensure!(
        per_class >= 1 && draws >= 1,
        "--per-class and --draws must be at least 1"
    );
    let by_class = indices_by_class(labels, classes);
    let smallest = by_class.iter().map(Vec::len).min().unwrap_or(0);
    ensure!(
        per_class < smallest,
        "the smallest class has {smallest} images: --per-class must be below it to leave a test image"
    );
    let k = k.min(per_class).clamp(1, seaclr_edge::knn::MAX_K);
    // The host side reads cosines from a Gram matrix of unit vectors, exactly
    // as `seaclr eval` does with the dequantized embeddings (a positive scale
    // does not change a cosine).
    let unit: Vec<Vec<f32>> = embeddings
        .iter()
        .map(|e| {
            let v: Vec<f32> = e.iter().map(|&x| x as f32).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter()
                .map(|x| if norm > 0.0 { x / norm } else { 0.0 })
                .collect()
        })
        .collect();
    let cosine = Gram::from_rows(&unit);
    let results: Vec<DrawResult> = (0..draws)
        .into_par_iter()
        .map(|d| {
            let draw = FewShotDraw::new(&by_class, per_class, seed.wrapping_add(d as u64));
            let host = knn(&cosine, draw.task(classes), k);
            let (device, refused, evictions) = teach_and_classify(embeddings, &draw, classes, k)?;
            let agreeing = host.iter().zip(&device).filter(|(a, b)| a == b).count();
            Ok(DrawResult {
                host: balanced_accuracy(&draw.truth, &host, classes),
                // Index `classes` is "unknown": a miss for every class.
                device: balanced_accuracy(&draw.truth, &device, classes + 1),
                agreeing,
                tested: draw.test.len(),
                refused,
                evictions,
            })
        })
        .collect::<Result<_>>()?;
    let host_knn: Vec<f64> = results.iter().map(|r| r.host).collect();
    let device_head: Vec<f64> = results.iter().map(|r| r.device).collect();
    let host_mean_std = mean_std(&host_knn);
    let device_mean_std = mean_std(&device_head);
    Ok(CheckReport {
        classes,
        images: embeddings.len(),
        per_class,
        k,
        difference_points: 100.0 * (device_mean_std.0 - host_mean_std.0),
        agreement: results.iter().map(|r| r.agreeing).sum::<usize>() as f64
            / results.iter().map(|r| r.tested).sum::<usize>().max(1) as f64,
        refused_examples: results.iter().map(|r| r.refused).sum(),
        evictions: results.iter().map(|r| r.evictions).sum(),
        host_knn,
        device_head,
        host_mean_std,
        device_mean_std,
    })
}

/// A fresh device head taught the draw's labelled items one by one; returns
/// its answer for every test item (`classes` for "unknown"), the examples
/// it refused and the evictions.
fn teach_and_classify(
    embeddings: &[Vec<i8>],
    draw: &FewShotDraw,
    classes: usize,
    k: usize,
) -> Result<(Vec<usize>, usize, usize)> {
    let head_error = |e: KnnError| anyhow!("device head: {e}");
    let mut head = Box::new(KnnHead::new());
    head.set_k(k).map_err(head_error)?;
    // Class names only label the table; indices keep long names within the
    // device's 32-byte limit.
    let ids = (0..classes)
        .map(|c| head.add_class(&format!("class-{c}")))
        .collect::<Result<Vec<_>, _>>()
        .map_err(head_error)?;
    let (mut refused, mut evictions) = (0, 0);
    for (&item, &class) in draw.train.iter().zip(&draw.train_labels) {
        match head.add_example(ids[class], &embeddings[item]) {
            Ok(added) => evictions += usize::from(added.evicted.is_some()),
            Err(KnnError::ZeroEmbedding) => refused += 1,
            Err(e) => return Err(head_error(e)),
        }
    }
    let answers = draw
        .test
        .iter()
        .map(|&item| {
            let answer = head.classify(&embeddings[item]).map_err(head_error)?;
            Ok(answer
                .class
                .and_then(|id| ids.iter().position(|&c| c == id))
                .unwrap_or(classes))
        })
        .collect::<Result<_>>()?;
    Ok((answers, refused, evictions))
}

/// `seaclr fewshot check`.
pub fn run_check(args: CheckArgs) -> Result<()> {
    crate::ui::require_int8(&args.model)?;
    let model = Int8Embedder::open(&args.model)?;
    let loading = crate::ui::spinner("loading the pool");
    let pool = load_unseen_pool(&args.pool, model.input_size());
    loading.finish_and_clear();
    let pool = pool?;
    let pixels: Vec<&[u8]> = pool.pixels.iter().map(Vec::as_slice).collect();
    let embeddings = super::cli::embed_centred_with_progress(&model, &pixels)?;
    let report = compare_heads(
        &embeddings,
        &pool.labels,
        pool.class_names.len(),
        args.per_class,
        args.pool.draws,
        args.pool.k,
        args.pool.seed,
    )?;
    if args.json {
        crate::ui::print_json(&report)?;
    } else {
        println!(
            "{} classes, {} images, {} labelled per class, k = {}, {} draws\n\
             host kNN (eval):     {:.3} ± {:.3}\n\
             device head (edge):  {:.3} ± {:.3}\n\
             difference: {:+.2} points; same answer on {:.1}% of test images; \
             {} refused, {} evicted",
            report.classes,
            report.images,
            report.per_class,
            report.k,
            report.host_knn.len(),
            report.host_mean_std.0,
            report.host_mean_std.1,
            report.device_mean_std.0,
            report.device_mean_std.1,
            report.difference_points,
            100.0 * report.agreement,
            report.refused_examples,
            report.evictions
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `classes` clusters on their own axes with per-item jitter: both the
    /// host kNN and the device head must get every test item right.
    fn clusters(classes: usize, per_class: usize) -> (Vec<Vec<i8>>, Vec<usize>) {
        let mut embeddings = Vec::new();
        let mut labels = Vec::new();
        for c in 0..classes {
            for i in 0..per_class {
                let mut e = vec![0i8; 128];
                e[c * 3] = 90;
                e[(c * 3 + 1 + i % 7) % 128] = 20 + (i % 5) as i8;
                e[100 + i % 20] = -((i % 9) as i8);
                embeddings.push(e);
                labels.push(c);
            }
        }
        (embeddings, labels)
    }

    #[test]
    fn separable_clusters_give_perfect_and_identical_answers() {
        let (e, l) = clusters(5, 30);
        let r = compare_heads(&e, &l, 5, 10, 3, 10, 0).unwrap();
        assert_eq!(r.host_knn, vec![1.0; 3]);
        assert_eq!(r.device_head, vec![1.0; 3]);
        assert_eq!(r.agreement, 1.0);
        assert_eq!(r.difference_points, 0.0);
        assert_eq!((r.refused_examples, r.evictions), (0, 0));
        assert_eq!(r.images, 150);
    }

    #[test]
    fn a_class_with_no_signal_scores_chance_on_both_sides() {
        // Class 1's items are copies of class 0's: the two cannot be told
        // apart, so each side gets at most one of them right per item and the
        // balanced accuracy drops below 1 on both.
        let (mut e, l) = clusters(3, 20);
        for i in 0..20 {
            e[20 + i] = e[i].clone();
        }
        let r = compare_heads(&e, &l, 3, 5, 4, 5, 1).unwrap();
        for v in r.host_knn.iter().chain(&r.device_head) {
            assert!(*v < 0.9 && *v > 0.5, "{r:?}");
        }
    }

    /// The committed default blob on the FlowCam demo images (taxa it never
    /// saw): the head taught through `add_example` matches the host kNN
    /// within the 1 point and is well above chance (1/6).
    #[test]
    fn device_head_matches_host_knn_on_flowcam_demo() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let model = Int8Embedder::open(&root.join("models/seaclr-s.seaclr")).unwrap();
        let pool = load_unseen_pool(&PoolArgs::flowcam_demo(), model.input_size()).unwrap();
        let pixels: Vec<&[u8]> = pool.pixels.iter().map(Vec::as_slice).collect();
        let embeddings = model.embed_centred(&pixels).unwrap();
        let r = compare_heads(&embeddings, &pool.labels, 6, 5, 5, 10, 0).unwrap();
        assert_eq!((r.classes, r.images, r.k), (6, 105, 5));
        assert!(r.difference_points.abs() <= 1.0, "{r:?}");
        assert!(r.device_mean_std.0 > 1.0 / 6.0 + 0.15, "{r:?}");
    }

    #[test]
    fn refuses_impossible_requests_with_reasons() {
        let (e, l) = clusters(3, 5);
        let err = compare_heads(&e, &l, 3, 5, 1, 10, 0).unwrap_err();
        assert!(err.to_string().contains("smallest class has 5"), "{err}");
        let err = compare_heads(&e, &l, 1, 2, 1, 10, 0).unwrap_err();
        assert!(err.to_string().contains("at least 2"), "{err}");
    }
}
