//! `seaclr bench train`: views per second of a full SimCLR training step
//! (two views, forward, NT-Xent, backward, Adam) on synthetic images, so the
//! number measures the compute backend and nothing else.

use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::config::TrainConfig;
use super::loss::nt_xent;
use super::train::build_optimizer;

/// Result of one benchmark run.
#[derive(Debug, Serialize)]
pub struct TrainBench {
    /// Views (2 per image) processed per second, mean over the timed steps.
    pub views_per_s: f64,
    /// Images per batch.
    pub batch: usize,
    /// Threads of the compute pool (rayon; `RAYON_NUM_THREADS` sets it).
    pub threads: usize,
    /// Backend name.
    pub backend: String,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup_steps: usize,
    /// Mean seconds per step.
    pub seconds_per_step: f64,
    /// Model input side.
    pub image_size: usize,
    /// Model name.
    pub model: String,
    /// Which block path ran: `fused` or `generic` (see `simclr::fused`).
    pub block: String,
    /// The x86-64 features found at run time that the CPU kernels (gemm's
    /// and ours) dispatch on; empty elsewhere.
    pub cpu_features: Vec<String>,
}

/// The SIMD features of this CPU that matter to the training kernels.
pub fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut found = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        let checks = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            (
                "avx512vnni",
                std::arch::is_x86_feature_detected!("avx512vnni"),
            ),
        ];
        found.extend(
            checks
                .into_iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| name.to_string()),
        );
    }
    found
}

/// Two views of `batch` images of `size^2` uniform random pixels in
/// 0..1, drawn from `seed`: NCHW data for a `[2 * batch, 1, size, size]`
/// tensor.
fn synthetic_views(batch: usize, size: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..2 * batch * size * size)
        .map(|_| rng.random_range(0.0..1.0))
        .collect()
}

/// Times `steps` training steps after `warmup` untimed ones.
pub fn bench_train(
    config: &TrainConfig,
    device: Device,
    backend: &str,
    batch: usize,
    steps: usize,
    warmup: usize,
) -> anyhow::Result<TrainBench> {
    let device = device.autodiff();
    let size = config.model.input_size;
    let mut model = config.model.init_seeded(&device, 1);
    let mut optimizer = build_optimizer(config);
    let views = synthetic_views(batch, size, 0);
    let mut timed = 0.0;
    for i in 0..warmup + steps {
        let start = Instant::now();
        let x = Tensor::<4>::from_data(
            TensorData::new(views.clone(), [2 * batch, 1, size, size]),
            &device,
        );
        let (_, z) = model.forward(x);
        let loss = nt_xent(z, config.temperature);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
        // Reading a weight back forces the whole step to finish on lazy backends.
        let _ = model.blocks[0].conv.weight.val().into_data();
        if i >= warmup {
            timed += start.elapsed().as_secs_f64();
        }
    }
    let seconds_per_step = timed / steps.max(1) as f64;
    Ok(TrainBench {
        views_per_s: (2 * batch) as f64 / seconds_per_step,
        batch,
        threads: rayon::current_num_threads(),
        backend: backend.to_string(),
        steps,
        warmup_steps: warmup,
        seconds_per_step,
        image_size: size,
        model: "seaclr-s".into(),
        block: if super::fused::runs_fused(&device) {
            "fused".into()
        } else {
            "generic".into()
        },
        cpu_features: cpu_features(),
    })
}

/// Where the time of one step goes (seconds, mean over `steps`).
#[derive(Debug, Serialize)]
pub struct StepBreakdown {
    /// Forward pass + loss on the autodiff device (records the graph).
    pub forward_s: f64,
    /// Backward pass.
    pub backward_s: f64,
    /// Adam update.
    pub optimizer_s: f64,
    /// Augmenting the batch's 2N views on the worker pool (overlaps training).
    pub augment_s: f64,
    /// Forward pass alone without autodiff (eval mode), for comparison.
    pub inference_forward_s: f64,
}

/// Times the parts of a training step separately.
pub fn bench_breakdown(
    config: &TrainConfig,
    device: Device,
    batch: usize,
    steps: usize,
) -> anyhow::Result<StepBreakdown> {
    use super::augment::{ImageSet, augment_batch};
    use burn::module::Module;
    let plain = device.clone();
    let device = device.autodiff();
    let size = config.model.input_size;
    let mut model = config.model.init_seeded(&device, 1);
    let mut optimizer = build_optimizer(config);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let source = config.augment.source_size;
    let images = ImageSet {
        size: source,
        pixels: (0..batch * source * source).map(|_| rng.random()).collect(),
    };
    let indices: Vec<usize> = (0..batch).collect();
    let mut b = StepBreakdown {
        forward_s: 0.0,
        backward_s: 0.0,
        optimizer_s: 0.0,
        augment_s: 0.0,
        inference_forward_s: 0.0,
    };
    for i in 0..steps + 1 {
        let t = Instant::now();
        let views = augment_batch(&images, &indices, &config.augment, 0, i as u64, size);
        let augment = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let x = Tensor::<4>::from_data(
            TensorData::new(views.clone(), [2 * batch, 1, size, size]),
            &device,
        );
        let (_, z) = model.forward(x);
        let loss = nt_xent(z, config.temperature);
        let _ = loss.clone().into_scalar::<f32>();
        let forward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let backward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        model = optimizer.step(1e-3, model, grads);
        let _ = model.blocks[0].conv.weight.val().into_data();
        let optim = t.elapsed().as_secs_f64();
        let eval = model.valid();
        let t = Instant::now();
        let x = Tensor::<4>::from_data(TensorData::new(views, [2 * batch, 1, size, size]), &plain);
        let _ = eval.embed(x).into_data();
        let inference = t.elapsed().as_secs_f64();
        if i > 0 {
            b.forward_s += forward / steps as f64;
            b.backward_s += backward / steps as f64;
            b.optimizer_s += optim / steps as f64;
            b.augment_s += augment / steps as f64;
            b.inference_forward_s += inference / steps as f64;
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simclr::model::ModelConfig;

    #[test]
    fn bench_reports_a_positive_rate() {
        let mut config = TrainConfig::new();
        config.model = ModelConfig::new()
            .with_input_size(16)
            .with_stage_channels(vec![4, 8]);
        let r = bench_train(&config, Device::flex(), "flex", 4, 2, 1).unwrap();
        assert!(r.views_per_s > 0.0 && r.views_per_s.is_finite());
        assert_eq!((r.batch, r.steps, r.image_size), (4, 2, 16));
        let json = serde_json::to_value(&r).unwrap();
        for key in ["views_per_s", "batch", "threads", "backend"] {
            assert!(json.get(key).is_some(), "{key} missing");
        }
    }

    /// Loss and first-conv weight gradient of one SimCLR step on `device`,
    /// from the seeded initial weights and fixed random views.
    #[cfg(feature = "gpu")]
    fn loss_and_first_gradient(config: &TrainConfig, device: Device) -> (f32, Vec<f32>) {
        use burn::module::Module;
        let device = device.autodiff();
        let (size, batch) = (config.model.input_size, 4);
        // Drawn on the CPU and forked (copied, gradients tracked anew): each
        // backend has its own generator.
        let model = config
            .model
            .init_seeded(&Device::flex().autodiff(), 1)
            .fork(&device);
        let views = synthetic_views(batch, size, 3);
        let x = Tensor::<4>::from_data(TensorData::new(views, [2 * batch, 1, size, size]), &device);
        let (_, z) = model.forward(x);
        let loss = nt_xent(z, config.temperature);
        let grads = loss.backward();
        let g = model.blocks[0].conv.weight.val().grad(&grads).unwrap();
        (
            loss.into_data().try_to_vec::<f32>().unwrap()[0],
            g.into_data().try_to_vec::<f32>().unwrap(),
        )
    }

    /// The wgpu path (only built with `--features gpu`), where a Vulkan
    /// driver is installed (software Vulkan from `mesa-vulkan-drivers`
    /// works on CPU-only machines; set `CUBECL_AUTOTUNE_LEVEL=minimal` to
    /// keep the first-step compile short): burn's generic block operations
    /// on wgpu give the loss and gradient of the fused CPU block, and a
    /// training step runs.
    #[cfg(feature = "gpu")]
    #[test]
    fn wgpu_backend_runs_a_training_step() {
        let icd_dirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"];
        let has_driver = icd_dirs
            .iter()
            .any(|d| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some()));
        if !has_driver {
            eprintln!(
                "SKIPPED wgpu_backend_runs_a_training_step: no Vulkan driver (no ICD in {icd_dirs:?}); install mesa-vulkan-drivers"
            );
            return;
        }
        let mut config = TrainConfig::new();
        config.model = ModelConfig::new()
            .with_input_size(16)
            .with_stage_channels(vec![4, 8]);
        let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        let (gpu_loss, gpu_grad) = loss_and_first_gradient(&config, device.clone());
        let (cpu_loss, cpu_grad) = loss_and_first_gradient(&config, Device::flex());
        assert!(
            (gpu_loss - cpu_loss).abs() <= 1e-4 * cpu_loss.abs().max(1.0),
            "loss: wgpu {gpu_loss}, flex {cpu_loss}"
        );
        let scale = cpu_grad.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        let worst = gpu_grad
            .iter()
            .zip(&cpu_grad)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "wgpu vs flex: loss {gpu_loss} / {cpu_loss}, first conv weight gradient within {worst:e} (largest {scale:e})"
        );
        assert!(
            worst <= 1e-3 * scale,
            "first conv weight gradient: wgpu differs from flex by {worst} (largest {scale})"
        );
        let r = bench_train(&config, device, "wgpu", 4, 1, 0).unwrap();
        assert_eq!(r.block, "generic");
        assert!(r.views_per_s > 0.0 && r.views_per_s.is_finite());
    }

    /// The real measurement (seaclr-s, batch 128): `cargo test -p seaclr-trainer
    /// --lib bench_seaclr_s -- --ignored --nocapture` (same code as `seaclr bench train`).
    #[test]
    #[ignore]
    fn bench_seaclr_s() {
        let steps = std::env::var("SEACLR_BENCH_STEPS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5);
        let r = bench_train(&TrainConfig::new(), Device::flex(), "flex", 128, steps, 1).unwrap();
        println!("{}", serde_json::to_string(&r).unwrap());
        let b = bench_breakdown(&TrainConfig::new(), Device::flex(), 128, 2).unwrap();
        println!("{}", serde_json::to_string(&b).unwrap());
    }
}
