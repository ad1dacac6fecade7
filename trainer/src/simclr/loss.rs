//! NT-Xent, the SimCLR loss (Chen et al. 2020), exactly as in the paper.
//!
//! For `2N` projections `z` where rows `i` and `i + N` are two views of one
//! image: `l_i = -log(exp(s_ip / t) / sum_{k != i} exp(s_ik / t))` with `s`
//! the cosine similarity and `p` the other view of `i`; the loss is the mean
//! of `l_i` over all `2N` anchors (both directions, averaged, not summed).
//!
//! The self-similarity `s_ii` is *masked* (replaced by -inf, so it adds
//! nothing to the sum and gets no gradient); subtracting a large constant
//! instead would let gradient flow through it. The log-sum-exp subtracts the
//! (detached) row maximum for stability.

use burn::tensor::{Bool, Tensor};

/// Mean NT-Xent loss over the `2N` anchors of `z` (`[2N, d]`; rows `i` and
/// `i + N` are positives). Works for any `N >= 1` (a short last batch too).
pub fn nt_xent(z: Tensor<2>, temperature: f64) -> Tensor<1> {
    nt_xent_per_anchor(z, temperature).mean()
}

/// The loss `l_i` of each of the `2N` anchors, `[2N, 1]`.
pub fn nt_xent_per_anchor(z: Tensor<2>, temperature: f64) -> Tensor<2> {
    let [two_n, _] = z.dims();
    assert!(
        two_n >= 2 && two_n % 2 == 0,
        "nt_xent needs an even number (>= 2) of rows, got {two_n}"
    );
    let n = two_n / 2;
    let device = z.device();
    let norm = z
        .clone()
        .powf_scalar(2.0)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    let zn = z.div(norm);
    let logits = zn
        .clone()
        .matmul(zn.clone().transpose())
        .div_scalar(temperature);
    let self_mask = Tensor::<2, Bool>::diag_mask([two_n, two_n], 0, &device).bool_not();
    let logits = logits.mask_fill(self_mask, f32::NEG_INFINITY);
    let row_max = logits.clone().max_dim(1).detach();
    // The positive logit is the same for i -> i+N and i+N -> i.
    let positives = zn
        .clone()
        .narrow(0, 0, n)
        .mul(zn.narrow(0, n, n))
        .sum_dim(1)
        .div_scalar(temperature);
    let positives = Tensor::cat(vec![positives.clone(), positives], 0);
    // l_i = (max_i - pos_i) + log(sum_k exp(s_ik - max_i)): the two large
    // terms cancel per anchor before any summing (identical embeddings give
    // exactly ln(2N - 1) per anchor).
    let log_sum = logits.sub(row_max.clone()).exp().sum_dim(1).log();
    row_max.sub(positives).add(log_sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// Straightforward f64 NT-Xent over rows of `z`, for checking.
    fn reference(z: &[Vec<f64>], t: f64) -> f64 {
        let two_n = z.len();
        let n = two_n / 2;
        let unit: Vec<Vec<f64>> = z
            .iter()
            .map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.iter().map(|x| x / norm).collect()
            })
            .collect();
        let sim = |a: usize, b: usize| {
            unit[a]
                .iter()
                .zip(&unit[b])
                .map(|(x, y)| x * y)
                .sum::<f64>()
                / t
        };
        (0..two_n)
            .map(|i| {
                let p = if i < n { i + n } else { i - n };
                let denom: f64 = (0..two_n)
                    .filter(|&k| k != i)
                    .map(|k| sim(i, k).exp())
                    .sum();
                -(sim(i, p).exp() / denom).ln()
            })
            .sum::<f64>()
            / two_n as f64
    }

    fn tensor(z: &[Vec<f64>], device: &Device) -> Tensor<2> {
        let d = z[0].len();
        let flat: Vec<f32> = z.iter().flatten().map(|&x| x as f32).collect();
        Tensor::from_data(TensorData::new(flat, [z.len(), d]), device)
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().try_into_vec_as::<f32>().unwrap()[0] as f64
    }

    #[test]
    fn identical_embeddings_give_ln_2n_minus_1() {
        let device = Device::flex();
        for n in [1usize, 4, 256] {
            let z: Vec<Vec<f64>> = (0..2 * n).map(|_| vec![0.0, 3.0, 0.0, 0.0]).collect();
            let expected = ((2 * n - 1) as f32).ln();
            // Every anchor's term is ln(2N - 1) to the last bit ...
            let per_anchor = nt_xent_per_anchor(tensor(&z, &device), 0.1)
                .into_data()
                .try_into_vec_as::<f32>()
                .unwrap();
            assert_eq!(per_anchor.len(), 2 * n);
            for l in per_anchor {
                assert!(
                    (l - expected).abs() <= 2.0 * f32::EPSILON * expected.max(1.0),
                    "n={n}: {l} vs {expected}"
                );
            }
            // ... and the mean only adds f32 summation rounding.
            let loss = scalar(nt_xent(tensor(&z, &device), 0.1));
            assert!(
                (loss - expected as f64).abs() < 1e-5 * expected as f64 + 1e-7,
                "n={n}: {loss} vs {expected}"
            );
        }
    }

    #[test]
    fn small_case_matches_hand_computation() {
        // N = 2, t = 0.5, 2-d unit vectors at angles 0, 90, 0, 180 degrees.
        // Anchor 0: positive is 2 (cos 1), negatives 1 (cos 0), 3 (cos -1):
        //   l0 = -ln(e^2 / (e^0 + e^2 + e^-2)).
        // Anchor 1: positive 3 (cos 0 -> e^0); others 0 (cos 0), 2 (cos 0):
        //   l1 = -ln(1 / 3).
        // Anchor 2 mirrors anchor 0; anchor 3: positive 1 (cos 0), others
        //   0 and 2 (cos -1): l3 = -ln(1 / (1 + 2 e^-2)).
        let e = std::f64::consts::E;
        let l0 = -(e.powi(2) / (1.0 + e.powi(2) + e.powi(-2))).ln();
        let l1 = 3f64.ln();
        let l3 = (1.0 + 2.0 * e.powi(-2)).ln();
        let expected = (2.0 * l0 + l1 + l3) / 4.0;
        let z = vec![
            vec![1.0, 0.0],
            vec![0.0, 2.0],
            vec![5.0, 0.0],
            vec![-1.0, 0.0],
        ];
        assert!((reference(&z, 0.5) - expected).abs() < 1e-12);
        let loss = scalar(nt_xent(tensor(&z, &Device::flex()), 0.5));
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }

    #[test]
    fn random_case_matches_reference() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let z: Vec<Vec<f64>> = (0..10)
            .map(|_| (0..5).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let loss = scalar(nt_xent(tensor(&z, &Device::flex()), 0.1));
        let expected = reference(&z, 0.1);
        assert!(
            (loss - expected).abs() < 1e-4 * expected.max(1.0),
            "{loss} vs {expected}"
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let t = 0.5;
        let z: Vec<Vec<f64>> = (0..6)
            .map(|_| (0..4).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        let device = Device::flex().autodiff();
        let zt = tensor(&z, &device).require_grad();
        let loss = nt_xent(zt.clone(), t);
        let grads = loss.backward();
        let g = zt
            .grad(&grads)
            .unwrap()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        let h = 1e-6;
        for i in 0..6 {
            for j in 0..4 {
                let mut plus = z.clone();
                plus[i][j] += h;
                let mut minus = z.clone();
                minus[i][j] -= h;
                let fd = (reference(&plus, t) - reference(&minus, t)) / (2.0 * h);
                let got = g[i * 4 + j] as f64;
                assert!(
                    (fd - got).abs() < 1e-3 * (1.0 + fd.abs()),
                    "d/dz[{i}][{j}]: {got} vs {fd}"
                );
            }
        }
    }

    #[test]
    fn self_similarity_gets_no_gradient_through_the_mask() {
        // With N = 1 the only term per anchor is the positive: loss is exactly
        // 0 for any z, so every gradient must be 0 (a subtracted constant would
        // leave exp(s_ii/t - C) terms that still carry gradient).
        let device = Device::flex().autodiff();
        let zt =
            Tensor::<2>::from_floats([[0.3, -1.0, 2.0], [1.5, 0.2, -0.7]], &device).require_grad();
        let loss = nt_xent(zt.clone(), 0.1);
        assert!(scalar(loss.clone()).abs() < 1e-6);
        let g = zt
            .grad(&loss.backward())
            .unwrap()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!(g.iter().all(|v| v.abs() < 1e-6), "{g:?}");
    }
}
