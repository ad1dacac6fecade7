//! A 2-D map of the embeddings: UMAP through the `umap-rs` crate (fed the
//! exact cosine nearest neighbours from the pool's Gram matrix and a PCA
//! start), kept only when it preserves 10-nearest-neighbourhoods at least as
//! well as plain PCA (our own power iteration); otherwise, for tiny pools, or
//! if UMAP fails, the map is the PCA one and the report says why.
//! umap-rs optimises with unseeded parallel SGD, so the map's layout varies
//! slightly between runs; the numbers in the report do not depend on it.

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

/// Maps embeddings to 2-D (UMAP with cosine neighbours, PCA start).
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
    match std::panic::catch_unwind(|| umap(&unit, cosine, &pca)) {
        Ok(Ok(points)) => {
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
        Ok(Err(e)) => fallback(format!("UMAP failed: {e}")),
        Err(_) => fallback("UMAP panicked".into()),
    }
}

fn umap(unit: &[Vec<f32>], cosine: &Gram, pca: &[[f32; 2]]) -> anyhow::Result<Vec<[f32; 2]>> {
    use ndarray::Array2;
    let (n, d) = (unit.len(), unit[0].len());
    let neighbours = 15.min(n - 1);
    let mut knn_indices = Array2::<u32>::zeros((n, neighbours));
    let mut knn_dists = Array2::<f32>::zeros((n, neighbours));
    for i in 0..n {
        let row = cosine.row(i);
        let mut order: Vec<usize> = (0..n).collect();
        // Itself first (distance 0), then by decreasing similarity.
        order.sort_by(|&a, &b| {
            (b == i)
                .cmp(&(a == i))
                .then(row[b].total_cmp(&row[a]))
                .then(a.cmp(&b))
        });
        for (slot, &j) in order.iter().take(neighbours).enumerate() {
            knn_indices[[i, slot]] = j as u32;
            // Euclidean distance between unit vectors.
            knn_dists[[i, slot]] = if j == i {
                0.0
            } else {
                (2.0 - 2.0 * row[j]).max(0.0).sqrt()
            };
        }
    }
    let data = Array2::from_shape_vec((n, d), unit.iter().flatten().copied().collect())?;
    // Scale the PCA start to a 10-unit box as umap-learn does with its init.
    let span = pca
        .iter()
        .flat_map(|p| p.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-6);
    let init = Array2::from_shape_vec(
        (n, 2),
        pca.iter()
            .flat_map(|p| [p[0] / span * 10.0, p[1] / span * 10.0])
            .collect(),
    )?;
    let config = umap_rs::UmapConfig {
        graph: umap_rs::GraphParams {
            n_neighbors: neighbours,
            ..Default::default()
        },
        ..Default::default()
    };
    let fitted = umap_rs::Umap::new(config).fit(
        data.view(),
        knn_indices.view(),
        knn_dists.view(),
        init.view(),
    );
    let emb = fitted.embedding();
    let points: Vec<[f32; 2]> = (0..n).map(|i| [emb[[i, 0]], emb[[i, 1]]]).collect();
    anyhow::ensure!(
        points.iter().all(|p| p[0].is_finite() && p[1].is_finite()),
        "some points were disconnected"
    );
    Ok(points)
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
