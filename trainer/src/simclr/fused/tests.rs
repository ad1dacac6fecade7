//! The fused CPU block against burn's generic operations: same outputs,
//! batch statistics and gradients, on random shapes (proptest) and on the
//! shapes of `seaclr-s`.

use burn::tensor::{Device, Tensor, TensorData};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

use super::{BlockParams, block_train_generic, has_fused_kernels};

#[derive(Debug, Clone, Copy)]
struct Case {
    batch: usize,
    height: usize,
    width: usize,
    in_channels: usize,
    out_channels: usize,
    stride: usize,
    seed: u64,
}

/// Everything the two paths produce, as plain vectors.
struct Results {
    output: Vec<f32>,
    mean: Vec<f32>,
    variance: Vec<f32>,
    input_grad: Vec<f32>,
    weight_grad: Vec<f32>,
    gamma_grad: Vec<f32>,
    beta_grad: Vec<f32>,
}

fn random(rng: &mut impl Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

fn vec_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Runs one path on `case`'s random data with loss `sum(output * r)`.
fn run(case: Case, fused: bool) -> Results {
    let device = Device::flex().autodiff();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case.seed);
    let Case {
        batch: n,
        height: h,
        width: w,
        in_channels: ci,
        out_channels: co,
        ..
    } = case;
    let x = Tensor::<4>::from_data(
        TensorData::new(random(&mut rng, n * h * w * ci, -1.0, 1.0), [n, h, w, ci]),
        &device,
    )
    .require_grad();
    let weight = Tensor::<4>::from_data(
        TensorData::new(random(&mut rng, co * ci * 9, -0.5, 0.5), [co, ci, 3, 3]),
        &device,
    )
    .require_grad();
    let gamma =
        Tensor::<1>::from_floats(random(&mut rng, co, 0.5, 1.5).as_slice(), &device).require_grad();
    let beta = Tensor::<1>::from_floats(random(&mut rng, co, -0.3, 0.3).as_slice(), &device)
        .require_grad();
    let params = BlockParams {
        weight: weight.clone(),
        gamma: gamma.clone(),
        beta: beta.clone(),
        stride: case.stride,
        epsilon: 1e-5,
    };
    let out = if fused {
        super::flex::block_train_fused(x.clone(), params)
    } else {
        block_train_generic(x.clone(), params)
    };
    let dims = out.output.dims();
    let r = Tensor::<4>::from_data(
        TensorData::new(random(&mut rng, dims.iter().product(), -1.0, 1.0), dims),
        &device,
    );
    let loss = (out.output.clone() * r).sum();
    let grads = loss.backward();
    Results {
        output: vec_of(out.output),
        mean: vec_of(out.mean),
        variance: vec_of(out.variance),
        input_grad: vec_of(x.grad(&grads).unwrap()),
        weight_grad: vec_of(weight.grad(&grads).unwrap()),
        gamma_grad: vec_of(gamma.grad(&grads).unwrap()),
        beta_grad: vec_of(beta.grad(&grads).unwrap()),
    }
}

/// Largest difference relative to the reference's largest magnitude.
fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

/// The tolerance: both paths sum the same products in f32 in other orders.
/// (With very few samples per channel BatchNorm divides by a tiny standard
/// deviation and amplifies those rounding differences: 2 samples gave up to
/// 4.5e-4. The property therefore asks for at least 8 samples per channel;
/// training batches have thousands.)
const TOLERANCE: f32 = 2e-4;

/// Output pixels of the whole batch: the samples behind each batch statistic.
fn samples(c: &Case) -> usize {
    c.batch * ((c.height - 1) / c.stride + 1) * ((c.width - 1) / c.stride + 1)
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let fused = run(case, true);
    let generic = run(case, false);
    for (name, a, b) in [
        ("output", &fused.output, &generic.output),
        ("mean", &fused.mean, &generic.mean),
        ("variance", &fused.variance, &generic.variance),
        ("input gradient", &fused.input_grad, &generic.input_grad),
        ("weight gradient", &fused.weight_grad, &generic.weight_grad),
        ("gamma gradient", &fused.gamma_grad, &generic.gamma_grad),
        ("beta gradient", &fused.beta_grad, &generic.beta_grad),
    ] {
        let e = relative_error(a, b);
        prop_assert!(e < TOLERANCE, "{name}: relative error {e} for {case:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn fused_block_equals_burns_generic_operations(
        batch in 1usize..5,
        height in 1usize..10,
        width in 1usize..10,
        in_channels in 1usize..6,
        out_channels in 1usize..7,
        stride in 1usize..3,
        seed in any::<u64>(),
    ) {
        let case = Case { batch, height, width, in_channels, out_channels, stride, seed };
        prop_assume!(samples(&case) >= 8);
        check(case)?;
    }
}

/// Named cases: the first and the last block of `seaclr-s` (one input
/// channel; 96 -> 128 at 4x4), 1x1 images (every tap but the centre is
/// padding), and a batch large enough to be split across threads.
#[test]
fn fused_block_regression_cases() {
    let cases = [
        (2, 16, 16, 1, 16, 2),
        (3, 4, 4, 96, 128, 1),
        (8, 1, 1, 3, 4, 1),
        (64, 8, 8, 8, 12, 2),
    ];
    for (i, (batch, height, width, in_channels, out_channels, stride)) in
        cases.into_iter().enumerate()
    {
        check(Case {
            batch,
            height,
            width,
            in_channels,
            out_channels,
            stride,
            seed: i as u64,
        })
        .unwrap();
    }
}

#[test]
fn the_cpu_backend_takes_the_fused_path_and_only_it() {
    assert!(has_fused_kernels(&Device::flex()));
    assert!(has_fused_kernels(&Device::flex().autodiff()));
    #[cfg(feature = "ndarray")]
    assert!(!has_fused_kernels(&Device::ndarray().autodiff()));
}
