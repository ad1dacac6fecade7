//! A 2-D map of the embeddings by UMAP, implemented here (McInnes et al.
//! 2018, as umap-learn does it for a few thousand points): the exact 15
//! nearest neighbours by cosine distance from the pool's Gram matrix, the
//! smoothed fuzzy memberships (`rho`, `sigma` by bisection), their fuzzy
//! union, a PCA start scaled to a 10-unit box, then 500 epochs of the
//! attract/repel SGD with 5 negative samples per edge, `min_dist = 0.1`
//! (umap-learn's `a`, `b`) and a learning rate falling linearly from 1.
//! The SGD is single-threaded with a seeded generator, so a map is the same
//! on every run.
//!
//! Why not the `umap-rs` crate (used before): its optimiser moves the points
//! of an array (`head`) but reads the other end of every edge and every
//! negative sample from a separate copy (`tail`) that only ever receives the
//! attractive moves. The copy contracts into a blob and every point is
//! repelled from that blob, so the map came out as a ring (raw pixels
//! most of all) and lost to plain PCA on neighbourhood preservation in 7 of
//! 8 maps. umap-learn passes the same array as head and tail. Its gradients
//! also divide by `a d^(2b) d^2 + 1` where umap-learn has `a d^(2b) + 1`,
//! which weakens both forces at larger distances.
//!
//! The map is kept when it preserves 10-nearest-neighbourhoods at least as
//! well as PCA (our own power iteration), otherwise (and for tiny pools) the
//! map is the PCA one and the report says why.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::gram::{Gram, dot, l2_normalized};

/// Pools smaller than this get a PCA map (UMAP needs a neighbourhood graph).
pub const MIN_UMAP_POINTS: usize = 20;

/// 2-D coordinates and how they were made.
#[derive(Clone, Debug, Serialize)]
pub struct Map2d {
    /// "umap" or "pca".
    pub method: String,
    /// Why PCA was used instead of UMAP, if it was.
    pub note: Option<String>,
    /// One `[x, y]` per item.
    pub points: Vec<[f32; 2]>,
    /// Share of each point's 10 nearest neighbours (cosine, in the embedding)
    /// that are also among its 10 nearest in the map, averaged: how faithful
    /// the map is (1 = neighbourhoods kept).
    pub neighbour_preservation: f64,
    /// The same for the PCA map, for comparison.
    pub pca_neighbour_preservation: f64,
}

/// Neighbours compared by [`neighbour_preservation`].
pub const PRESERVATION_K: usize = 10;

/// Mean share of each item's `PRESERVATION_K` nearest neighbours by cosine
/// that are also its nearest in the 2-D `points`.
pub fn neighbour_preservation(cosine: &Gram, points: &[[f32; 2]]) -> f64 {
    let n = points.len();
    if n < 2 {
        return 1.0;
    }
    let k = PRESERVATION_K.min(n - 1);
    let total: f64 = (0..n)
        .map(|i| {
            let row = cosine.row(i);
            let mut high: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            high.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let d2 = |j: usize| {
                (points[j][0] - points[i][0]).powi(2) + (points[j][1] - points[i][1]).powi(2)
            };
            let mut low: Vec<usize> = (0..n).filter(|&j| j != i).collect();
            low.sort_by(|&a, &b| d2(a).total_cmp(&d2(b)).then(a.cmp(&b)));
            let low_set: std::collections::HashSet<usize> = low[..k].iter().copied().collect();
            high[..k].iter().filter(|j| low_set.contains(j)).count() as f64 / k as f64
        })
        .sum();
    total / n as f64
}

/// First two principal components (power iteration with deflation, no
/// `dim x dim` matrix), of rows already centred or not.
pub fn pca2(rows: &[Vec<f32>]) -> Vec<[f32; 2]> {
    let n = rows.len();
    let Some(d) = rows.first().map(Vec::len) else {
        return Vec::new();
    };
    let mut mean = vec![0.0f32; d];
    for r in rows {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n as f32);
    }
    let centred: Vec<Vec<f32>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect())
        .collect();
    let mut components: Vec<Vec<f32>> = Vec::new();
    for c in 0..2 {
        // Deterministic start that is not orthogonal to typical data.
        let mut v: Vec<f32> = (0..d)
            .map(|i| 1.0 + ((i * 31 + c * 17) % 7) as f32 * 0.1)
            .collect();
        for _ in 0..100 {
            let scores: Vec<f32> = centred.iter().map(|r| dot(r, &v)).collect();
            let mut w = vec![0.0f32; d];
            for (r, s) in centred.iter().zip(&scores) {
                w.iter_mut().zip(r).for_each(|(acc, x)| *acc += s * x);
            }
            for prev in &components {
                let p = dot(&w, prev);
                w.iter_mut().zip(prev).for_each(|(x, q)| *x -= p * q);
            }
            let norm = dot(&w, &w).sqrt();
            if norm == 0.0 {
                break;
            }
            v = w.into_iter().map(|x| x / norm).collect();
        }
        components.push(v);
    }
    centred
        .iter()
        .map(|r| [dot(r, &components[0]), dot(r, &components[1])])
        .collect()
}

/// Maps embeddings to 2-D (UMAP on cosine neighbours, PCA start).
pub fn map_2d(embeddings: &[Vec<f32>], cosine: &Gram) -> Map2d {
    let unit = l2_normalized(embeddings);
    let pca = pca2(&unit);
    let n = unit.len();
    let pca_score = neighbour_preservation(cosine, &pca);
    let fallback = |note: String| Map2d {
        method: "pca".into(),
        note: Some(note),
        points: pca.clone(),
        neighbour_preservation: pca_score,
        pca_neighbour_preservation: pca_score,
    };
    if n < MIN_UMAP_POINTS {
        return fallback(format!(
            "{n} points are too few for UMAP (needs {MIN_UMAP_POINTS})"
        ));
    }
    let points = umap(cosine, &pca, &UmapParams::default());
    if !points.iter().all(|p| p[0].is_finite() && p[1].is_finite()) {
        return fallback("UMAP produced non-finite coordinates".into());
    }
    let score = neighbour_preservation(cosine, &points);
    if score < pca_score {
        fallback(format!(
            "UMAP kept fewer neighbourhoods than PCA ({score:.2} vs {pca_score:.2})"
        ))
    } else {
        Map2d {
            method: "umap".into(),
            note: None,
            points,
            neighbour_preservation: score,
            pca_neighbour_preservation: pca_score,
        }
    }
}

/// UMAP settings (umap-learn's defaults).
#[derive(Clone, Copy, Debug)]
pub struct UmapParams {
    /// Neighbours of the fuzzy graph.
    pub neighbours: usize,
    /// SGD epochs.
    pub epochs: usize,
    /// Negative samples per attractive move.
    pub negative_rate: usize,
    /// Curve `1 / (1 + a d^(2b))`; `a`, `b` fitted by umap-learn for
    /// `min_dist = 0.1`, `spread = 1`.
    pub a: f32,
    /// See `a`.
    pub b: f32,
    /// Seed of the SGD's negative samples.
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        Self {
            neighbours: 15,
            epochs: 500,
            negative_rate: 5,
            a: 1.576_943_5,
            b: 0.895_060_9,
            seed: 0,
        }
    }
}

/// The fuzzy graph: symmetric memberships as directed edges `(i, j, w)`
/// (both directions of every pair).
pub fn fuzzy_graph(cosine: &Gram, neighbours: usize) -> Vec<(usize, usize, f32)> {
    let n = cosine.len();
    let k = neighbours.min(n - 1).max(1);
    let target = (k as f64).log2();
    let mut directed: std::collections::HashMap<(usize, usize), f32> =
        std::collections::HashMap::new();
    for i in 0..n {
        let row = cosine.row(i);
        let mut order: Vec<usize> = (0..n).filter(|&j| j != i).collect();
        order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        let near: Vec<(usize, f64)> = order[..k]
            .iter()
            .map(|&j| (j, (1.0 - row[j] as f64).max(0.0)))
            .collect();
        // rho: distance to the nearest neighbour at a positive distance.
        let rho = near.iter().map(|p| p.1).find(|&d| d > 0.0).unwrap_or(0.0);
        let mean: f64 = near.iter().map(|p| p.1).sum::<f64>() / k as f64;
        let (mut lo, mut hi, mut sigma) = (0.0f64, f64::INFINITY, 1.0f64);
        for _ in 0..64 {
            let sum: f64 = near
                .iter()
                .map(|p| {
                    let d = p.1 - rho;
                    if d > 0.0 { (-d / sigma).exp() } else { 1.0 }
                })
                .sum();
            if (sum - target).abs() < 1e-5 {
                break;
            }
            if sum > target {
                hi = sigma;
                sigma = (lo + hi) / 2.0;
            } else {
                lo = sigma;
                sigma = if hi.is_infinite() {
                    sigma * 2.0
                } else {
                    (lo + hi) / 2.0
                };
            }
        }
        // umap-learn's floor: 1e-3 of the mean neighbour distance.
        sigma = sigma.max(1e-3 * mean).max(1e-12);
        for &(j, d) in &near {
            let w = if d - rho <= 0.0 {
                1.0
            } else {
                (-(d - rho) / sigma).exp()
            };
            directed.insert((i, j), w as f32);
        }
    }
    let mut edges = Vec::new();
    let mut keys: Vec<(usize, usize)> = directed.keys().copied().collect();
    keys.sort_unstable();
    for (i, j) in keys {
        let a = directed[&(i, j)];
        let b = directed.get(&(j, i)).copied().unwrap_or(0.0);
        // Fuzzy union a + b - ab, each unordered pair once, both directions.
        if b > 0.0 && i > j {
            continue;
        }
        let w = a + b - a * b;
        edges.push((i, j, w));
        edges.push((j, i, w));
    }
    edges.sort_unstable_by_key(|x| (x.0, x.1));
    edges
}

/// UMAP layout from the cosine Gram matrix, starting from `init` (PCA).
pub fn umap(cosine: &Gram, init: &[[f32; 2]], params: &UmapParams) -> Vec<[f32; 2]> {
    let n = cosine.len();
    let mut edges = fuzzy_graph(cosine, params.neighbours);
    let max_w = edges.iter().map(|e| e.2).fold(0.0f32, f32::max);
    let epochs = params.epochs.max(1);
    edges.retain(|e| e.2 >= max_w / epochs as f32);
    // Start: the PCA map scaled to [0, 10] on each axis.
    let mut emb: Vec<[f32; 2]> = init.to_vec();
    for d in 0..2 {
        let (lo, hi) = emb
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), p| (a.min(p[d]), b.max(p[d])));
        let scale = if hi > lo { 10.0 / (hi - lo) } else { 0.0 };
        emb.iter_mut().for_each(|p| p[d] = (p[d] - lo) * scale);
    }
    let epochs_per_sample: Vec<f64> = edges.iter().map(|e| (max_w / e.2) as f64).collect();
    let neg_rate = params.negative_rate as f64;
    let epochs_per_negative: Vec<f64> = epochs_per_sample.iter().map(|e| e / neg_rate).collect();
    let mut next_sample = epochs_per_sample.clone();
    let mut next_negative = epochs_per_negative.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let (a, b) = (params.a, params.b);
    let clip = |v: f32| v.clamp(-4.0, 4.0);
    let bar = crate::ui::progress(epochs, "2-D map");
    for epoch in 0..epochs {
        bar.inc(1);
        let alpha = 1.0 - epoch as f32 / epochs as f32;
        let now = epoch as f64;
        for (e, &(i, j, _)) in edges.iter().enumerate() {
            if next_sample[e] > now {
                continue;
            }
            let (dx, dy) = (emb[i][0] - emb[j][0], emb[i][1] - emb[j][1]);
            let d2 = dx * dx + dy * dy;
            if d2 > 0.0 {
                let pb = d2.powf(b);
                let g = -2.0 * a * b * pb / d2 / (a * pb + 1.0);
                let (gx, gy) = (clip(g * dx) * alpha, clip(g * dy) * alpha);
                emb[i][0] += gx;
                emb[i][1] += gy;
                emb[j][0] -= gx;
                emb[j][1] -= gy;
            }
            next_sample[e] += epochs_per_sample[e];
            let negatives = ((now - next_negative[e]) / epochs_per_negative[e]).max(0.0) as usize;
            for _ in 0..negatives {
                let k = rng.random_range(0..n);
                if k == i {
                    continue;
                }
                let (dx, dy) = (emb[i][0] - emb[k][0], emb[i][1] - emb[k][1]);
                let d2 = dx * dx + dy * dy;
                if d2 > 0.0 {
                    let pb = d2.powf(b);
                    let g = 2.0 * b / ((0.001 + d2) * (a * pb + 1.0));
                    emb[i][0] += clip(g * dx) * alpha;
                    emb[i][1] += clip(g * dy) * alpha;
                }
            }
            next_negative[e] += negatives as f64 * epochs_per_negative[e];
        }
    }
    bar.finish_and_clear();
    emb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pca_finds_the_direction_of_largest_spread() {
        // Spread along (1, 1, 0) of 10, along (1, -1, 0) of 1.
        let rows: Vec<Vec<f32>> = (0..21)
            .map(|i| {
                let t = (i as f32 - 10.0) / 10.0;
                let s = if i % 2 == 0 { 0.1 } else { -0.1 };
                vec![10.0 * t + s, 10.0 * t - s, 0.0]
            })
            .collect();
        let p = pca2(&rows);
        // First coordinate tracks t (up to sign), with |first| >> |second|.
        let ratio = p[20][0] / p[0][0];
        assert!((ratio + 1.0).abs() < 1e-3, "{ratio}");
        assert!(
            (p[20][0].abs() - 10.0 * 2f32.sqrt()).abs() < 0.05,
            "{:?}",
            p[20]
        );
        assert!(p.iter().all(|q| q[1].abs() < 0.2));
    }

    #[test]
    fn map_keeps_separated_clusters_apart_and_never_loses_to_pca() {
        let mut rows = Vec::new();
        for c in 0..3 {
            for i in 0..20 {
                // Distinct points: a small class-independent wiggle.
                let t = i as f32 / 20.0;
                let mut v = vec![
                    0.1 * t,
                    0.1 * (1.0 - t),
                    0.05 * (t * 7.0).sin(),
                    0.05 * (t * 5.0).cos(),
                    0.0,
                ];
                v[c] += 1.0;
                rows.push(v);
            }
        }
        let cos = Gram::from_rows(&l2_normalized(&rows));
        let m = map_2d(&rows, &cos);
        assert_eq!(m.points.len(), 60);
        assert!(m.neighbour_preservation >= m.pca_neighbour_preservation);
        assert!(m.method == "umap" || m.note.is_some());
        // Each point's nearest other point in the map is from its own class.
        for i in 0..60 {
            let nearest = (0..60)
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let da =
                        (m.points[a][0] - m.points[i][0]).hypot(m.points[a][1] - m.points[i][1]);
                    let db =
                        (m.points[b][0] - m.points[i][0]).hypot(m.points[b][1] - m.points[i][1]);
                    da.total_cmp(&db)
                })
                .unwrap();
            assert_eq!(nearest / 20, i / 20, "point {i}");
        }
    }

    /// Eight classes in 24-D with a class-independent spread: the map is a
    /// UMAP (not the PCA fallback), beats PCA on neighbourhoods, is the same
    /// on a second run, and is no ring: its classes are compact.
    #[test]
    fn umap_beats_pca_is_reproducible_and_clusters() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut rows = Vec::new();
        for c in 0..8 {
            for _ in 0..40 {
                let mut v: Vec<f32> = (0..24).map(|_| rng.random_range(-0.2..0.2)).collect();
                v[c] += 1.0;
                v[8 + c] += 0.5;
                rows.push(v);
            }
        }
        let cos = Gram::from_rows(&l2_normalized(&rows));
        let m = map_2d(&rows, &cos);
        assert_eq!(m.method, "umap", "{:?}", m.note);
        assert!(
            m.neighbour_preservation >= m.pca_neighbour_preservation,
            "{} vs {}",
            m.neighbour_preservation,
            m.pca_neighbour_preservation
        );
        assert_eq!(map_2d(&rows, &cos).points, m.points);
        // Each point's 5 nearest map neighbours are mostly of its class.
        let mut same = 0;
        for i in 0..rows.len() {
            let mut by: Vec<usize> = (0..rows.len()).filter(|&j| j != i).collect();
            let d =
                |j: usize| (m.points[j][0] - m.points[i][0]).hypot(m.points[j][1] - m.points[i][1]);
            by.sort_by(|&a, &b| d(a).total_cmp(&d(b)));
            same += by[..5].iter().filter(|&&j| j / 40 == i / 40).count();
        }
        assert!(same as f64 / (5.0 * rows.len() as f64) > 0.9, "{same}");
    }

    #[test]
    fn preservation_is_one_for_an_exact_copy_and_low_for_a_shuffle() {
        let rows: Vec<Vec<f32>> = (0..30)
            .map(|i| vec![(i as f32 * 0.1).cos(), (i as f32 * 0.1).sin()])
            .collect();
        let cos = Gram::from_rows(&l2_normalized(&rows));
        let same: Vec<[f32; 2]> = rows.iter().map(|r| [r[0], r[1]]).collect();
        assert_eq!(neighbour_preservation(&cos, &same), 1.0);
        let shuffled: Vec<[f32; 2]> = (0..30).map(|i| same[(i * 7) % 30]).collect();
        assert!(neighbour_preservation(&cos, &shuffled) < 0.5);
    }
}
