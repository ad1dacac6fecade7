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
    /// CPU threads available to the process.
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
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let views: Vec<f32> = (0..2 * batch * size * size)
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
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
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        backend: backend.to_string(),
        steps,
        warmup_steps: warmup,
        seconds_per_step,
        image_size: size,
        model: "seaclr-s".into(),
    })
}
