//! The seed's "average angular distance": mean cosine distance `1 - cos`
//! over all pairs within each class (diagonal) and between each pair of
//! classes (off-diagonal). A good encoder has a small diagonal and a large
//! off-diagonal.

use serde::Serialize;

use super::gram::Gram;

/// Class-by-class mean cosine distances.
#[derive(Clone, Debug, Serialize)]
pub struct DistanceMatrix {
    /// Class names, in matrix order.
    pub classes: Vec<String>,
    /// `mean[a][b]`: mean `1 - cos` over pairs with one item in `a` and one in `b`
    /// (distinct items; `NaN` is never produced: a class with one item has 0 within).
    pub mean: Vec<Vec<f64>>,
    /// Mean of the diagonal.
    pub mean_within: f64,
    /// Mean of the off-diagonal entries.
    pub mean_between: f64,
}

/// Computes the matrix from a cosine Gram matrix and the class of each item.
pub fn class_distances(cosine: &Gram, labels: &[usize], class_names: &[String]) -> DistanceMatrix {
    let k = class_names.len();
    let mut sum = vec![vec![0.0f64; k]; k];
    let mut count = vec![vec![0u64; k]; k];
    for i in 0..labels.len() {
        let row = cosine.row(i);
        for j in (i + 1)..labels.len() {
            let (a, b) = (labels[i], labels[j]);
            let d = 1.0 - row[j] as f64;
            sum[a][b] += d;
            count[a][b] += 1;
            if a != b {
                sum[b][a] += d;
                count[b][a] += 1;
            }
        }
    }
    let mean: Vec<Vec<f64>> = (0..k)
        .map(|a| {
            (0..k)
                .map(|b| {
                    if count[a][b] > 0 {
                        sum[a][b] / count[a][b] as f64
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    let mean_within = if k > 0 {
        (0..k).map(|a| mean[a][a]).sum::<f64>() / k as f64
    } else {
        0.0
    };
    let pairs = k * k.saturating_sub(1);
    let mean_between = if pairs > 0 {
        (0..k)
            .flat_map(|a| (0..k).filter(move |&b| b != a).map(move |b| (a, b)))
            .map(|(a, b)| mean[a][b])
            .sum::<f64>()
            / pairs as f64
    } else {
        0.0
    };
    DistanceMatrix {
        classes: class_names.to_vec(),
        mean,
        mean_within,
        mean_between,
    }
}

/// Leaf order of an average-linkage (UPGMA) clustering of the classes on
/// the off-diagonal entries of `mean` (symmetric), so that similar classes
/// sit side by side. Plain `O(k^3)`, fine for a few hundred classes; ties
/// merge the lowest indices first, so the order is deterministic.
pub fn cluster_order(mean: &[Vec<f64>]) -> Vec<usize> {
    let k = mean.len();
    // Active clusters: (members in leaf order, size).
    let mut clusters: Vec<Option<Vec<usize>>> = (0..k).map(|i| Some(vec![i])).collect();
    let mut dist: Vec<Vec<f64>> = (0..k)
        .map(|a| (0..k).map(|b| (mean[a][b] + mean[b][a]) / 2.0).collect())
        .collect();
    for _ in 1..k {
        let mut best = (f64::INFINITY, 0, 0);
        for a in 0..k {
            if clusters[a].is_none() {
                continue;
            }
            for b in a + 1..k {
                if clusters[b].is_some() && dist[a][b] < best.0 {
                    best = (dist[a][b], a, b);
                }
            }
        }
        let (_, a, b) = best;
        let (na, nb) = (
            clusters[a].as_ref().map_or(0, Vec::len) as f64,
            clusters[b].as_ref().map_or(0, Vec::len) as f64,
        );
        for c in 0..k {
            if c != a && c != b && clusters[c].is_some() {
                let d = (na * dist[a][c] + nb * dist[b][c]) / (na + nb);
                dist[a][c] = d;
                dist[c][a] = d;
            }
        }
        let merged_b = clusters[b].take().unwrap_or_default();
        if let Some(m) = clusters[a].as_mut() {
            m.extend(merged_b);
        }
    }
    clusters.into_iter().flatten().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::gram::l2_normalized;

    #[test]
    fn cluster_order_puts_close_classes_side_by_side() {
        // Classes 0 and 2 are close, 1 and 3 are close, the pairs far apart.
        let d = |a: usize, b: usize| {
            if a == b {
                0.0
            } else if a % 2 == b % 2 {
                0.1
            } else {
                0.9
            }
        };
        let m: Vec<Vec<f64>> = (0..4).map(|a| (0..4).map(|b| d(a, b)).collect()).collect();
        let order = cluster_order(&m);
        assert_eq!(order.len(), 4);
        let pos = |c: usize| order.iter().position(|&x| x == c).unwrap();
        assert_eq!(pos(0).abs_diff(pos(2)), 1, "{order:?}");
        assert_eq!(pos(1).abs_diff(pos(3)), 1, "{order:?}");
        assert_eq!(cluster_order(&[vec![0.0]]), vec![0]);
    }

    #[test]
    fn distances_match_hand_computed_values() {
        // Class 0: x-axis twice (distance 0); class 1: y-axis and the diagonal.
        let rows = vec![
            vec![1.0, 0.0],
            vec![2.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 1.0],
        ];
        let cos = Gram::from_rows(&l2_normalized(&rows));
        let m = class_distances(&cos, &[0, 0, 1, 1], &["a".into(), "b".into()]);
        let h = 1.0 - std::f64::consts::FRAC_1_SQRT_2;
        assert!(m.mean[0][0].abs() < 1e-6);
        assert!((m.mean[1][1] - h).abs() < 1e-6);
        // Between: two pairs at distance 1 (x vs y) and two at h (x vs diagonal).
        assert!((m.mean[0][1] - (1.0 + h) / 2.0).abs() < 1e-6);
        assert_eq!(m.mean[0][1], m.mean[1][0]);
        assert!((m.mean_within - h / 2.0).abs() < 1e-6);
        assert!((m.mean_between - (1.0 + h) / 2.0).abs() < 1e-6);
    }
}
