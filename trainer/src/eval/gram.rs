//! Gram matrices (all pairwise dot products) of a pool of embeddings, and the
//! per-pool feature transforms they are built from.
//!
//! Every classifier here needs only dot products: cosine similarity for kNN
//! (dot products of unit vectors), the linear kernel for logistic regression
//! in its dual form, and squared distances `|a|^2 + |b|^2 - 2 a.b` for the RBF
//! kernel. Computing one matrix per pool serves all draws and sizes, which
//! keeps 4096-dimensional raw-pixel baselines affordable.

use rayon::prelude::*;

/// Symmetric `n x n` matrix of dot products, row-major.
#[derive(Clone, Debug)]
pub struct Gram {
    n: usize,
    data: Vec<f32>,
}

/// Dot product with eight independent accumulators so it vectorises.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

impl Gram {
    /// All pairwise dot products of `rows` (which must share one length).
    pub fn from_rows(rows: &[Vec<f32>]) -> Self {
        let n = rows.len();
        let upper: Vec<Vec<f32>> = (0..n)
            .into_par_iter()
            .map(|i| (i..n).map(|j| dot(&rows[i], &rows[j])).collect())
            .collect();
        let mut data = vec![0.0f32; n * n];
        for (i, row) in upper.iter().enumerate() {
            for (off, &v) in row.iter().enumerate() {
                let j = i + off;
                data[i * n + j] = v;
                data[j * n + i] = v;
            }
        }
        Self { n, data }
    }

    /// Number of rows (and columns).
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the pool is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Entry `(i, j)`.
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.n + j]
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// Squared Euclidean distance between items `i` and `j`.
    pub fn squared_distance(&self, i: usize, j: usize) -> f32 {
        (self.get(i, i) + self.get(j, j) - 2.0 * self.get(i, j)).max(0.0)
    }
}

/// Scales each row to unit length (a zero row stays zero), so dot products
/// become cosine similarities.
pub fn l2_normalized(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    rows.iter()
        .map(|r| {
            let norm = dot(r, r).sqrt();
            if norm > 0.0 {
                r.iter().map(|v| v / norm).collect()
            } else {
                r.clone()
            }
        })
        .collect()
}

/// Z-scores every feature with the mean and standard deviation over all rows
/// of the pool (no labels are used); constant features become 0. This is the
/// "standardised" input of the SVC and linear classifiers.
pub fn standardized(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let (d, n) = (first.len(), rows.len() as f64);
    let mut mean = vec![0.0f64; d];
    for r in rows {
        for (m, &v) in mean.iter_mut().zip(r) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let mut var = vec![0.0f64; d];
    for r in rows {
        for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let inv_std: Vec<f64> = var
        .iter()
        .map(|s| {
            let sd = (s / n).sqrt();
            if sd > 1e-12 { 1.0 / sd } else { 0.0 }
        })
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&mean)
                .zip(&inv_std)
                .map(|((&v, m), is)| ((v as f64 - m) * is) as f32)
                .collect()
        })
        .collect()
}

/// The two Gram matrices every evaluation of one pool needs.
pub struct PoolKernels {
    /// Cosine similarities of the embeddings (for kNN, distances, images).
    pub cosine: Gram,
    /// Dot products of the standardised embeddings (logistic regression, SVC).
    pub standardized: Gram,
    /// Embedding dimension (the SVC's `gamma = 1 / dim`, scikit-learn's "auto").
    pub dim: usize,
}

impl PoolKernels {
    /// Builds both matrices from raw embeddings.
    pub fn new(embeddings: &[Vec<f32>]) -> Self {
        let dim = embeddings.first().map_or(0, Vec::len);
        Self {
            cosine: Gram::from_rows(&l2_normalized(embeddings)),
            standardized: Gram::from_rows(&standardized(embeddings)),
            dim,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gram_holds_dot_products_and_distances() {
        let rows = [vec![1.0, 0.0, 2.0], vec![0.0, 3.0, 1.0], vec![1.0; 11]];
        let g = Gram::from_rows(&rows[..2]);
        assert_eq!(g.get(0, 1), 2.0);
        assert_eq!(g.get(1, 0), 2.0);
        assert_eq!(g.get(1, 1), 10.0);
        assert_eq!(g.squared_distance(0, 1), 1.0 + 9.0 + 1.0);
        assert_eq!(dot(&rows[2], &rows[2]), 11.0);
    }

    #[test]
    fn normalised_rows_give_cosines_and_standardised_features_are_z_scores() {
        let rows = vec![vec![3.0, 4.0, 5.0], vec![0.0, 0.0, 5.0]];
        let unit = l2_normalized(&rows);
        assert!((dot(&unit[0], &unit[0]) - 1.0).abs() < 1e-6);
        let z = standardized(&rows);
        assert_eq!(z[0], vec![1.0, 1.0, 0.0]);
        assert_eq!(z[1], vec![-1.0, -1.0, 0.0]);
    }
}
