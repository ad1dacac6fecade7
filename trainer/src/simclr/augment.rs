//! SimCLR augmentations on CPU worker threads, with per-image random
//! parameters and exact determinism.
//!
//! The recipe is the seed's (rotation +-180 degrees with white fill, random
//! resized crop scale 0.08-1 ratio 3/4-4/3, brightness 0.2, Gaussian blur
//! kernel 2k+1 with k in 0..=5 and sigma in 0.1-2), with the seed's bug fixed:
//! every image draws its own parameters for each of its two views (the seed
//! drew one set per batch, so a whole batch got the same transform).
//!
//! Every view's parameters come from a ChaCha8 stream keyed by
//! `(seed, epoch, image index, view)`, so a batch is the same whatever the
//! thread count or prefetch depth, and a resumed run sees exactly the data a
//! straight run would have seen.
//!
//! Source resolution: training images are preprocessed at `source_size`
//! (default 128 = 2 x the 64 px model input), and rotation, crop, flips and
//! the resize down to the model input are done as ONE inverse mapping with
//! bilinear sampling (supersampled when shrinking). Cropping 8 % of the area
//! of a 64 px image would upsample an 18 px patch 3.5x; from 128 px it is a
//! 36 px patch, close to the seed's 128 px input detail. Pixels are worked
//! on as darkness `x = (255 - p) / 255`, so the white fill of rotation and
//! crop is 0, exactly what the encoder sees for background.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::bail;
use burn::config::Config;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Augmentation recipe; defaults are the seed's.
#[derive(Config, Debug, PartialEq)]
pub struct AugmentConfig {
    /// Side at which training images are preprocessed before augmentation.
    #[config(default = 128)]
    pub source_size: usize,
    /// Rotation drawn uniformly from `[-rotation_degrees, rotation_degrees]`.
    #[config(default = 180.0)]
    pub rotation_degrees: f64,
    /// Random resized crop: smallest fraction of the image area.
    #[config(default = 0.08)]
    pub crop_scale_min: f64,
    /// Random resized crop: largest fraction of the image area.
    #[config(default = 1.0)]
    pub crop_scale_max: f64,
    /// Random resized crop: smallest aspect ratio (w/h).
    #[config(default = 0.75)]
    pub crop_ratio_min: f64,
    /// Random resized crop: largest aspect ratio (w/h).
    #[config(default = 1.3333333333333333)]
    pub crop_ratio_max: f64,
    /// Brightness factor drawn from `[1 - b, 1 + b]` (torchvision semantics).
    #[config(default = 0.2)]
    pub brightness: f64,
    /// Contrast factor drawn from `[1 - c, 1 + c]`; 0 disables it (seed).
    #[config(default = 0.0)]
    pub contrast: f64,
    /// Blur kernel is `2k + 1`, `k` uniform in `0..=blur_max_k` (k = 0: none).
    #[config(default = 5)]
    pub blur_max_k: usize,
    /// Smallest blur sigma.
    #[config(default = 0.1)]
    pub blur_sigma_min: f64,
    /// Largest blur sigma.
    #[config(default = 2.0)]
    pub blur_sigma_max: f64,
    /// Probability of a horizontal flip (seed: none).
    #[config(default = 0.0)]
    pub hflip_probability: f64,
    /// Probability of a vertical flip (seed: none).
    #[config(default = 0.0)]
    pub vflip_probability: f64,
}

impl AugmentConfig {
    /// Rejects ranges that cannot be sampled.
    pub fn validate(&self) -> anyhow::Result<()> {
        let finite = [
            self.rotation_degrees,
            self.crop_scale_min,
            self.crop_scale_max,
            self.crop_ratio_min,
            self.crop_ratio_max,
            self.brightness,
            self.contrast,
            self.blur_sigma_min,
            self.blur_sigma_max,
            self.hflip_probability,
            self.vflip_probability,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            bail!("augment: every value must be a finite number (no nan or inf): {self:?}");
        }
        let ok = self.source_size >= 8
            && self.rotation_degrees >= 0.0
            && 0.0 < self.crop_scale_min
            && self.crop_scale_min <= self.crop_scale_max
            && self.crop_scale_max <= 1.0
            && 0.0 < self.crop_ratio_min
            && self.crop_ratio_min <= self.crop_ratio_max
            && (0.0..1.0).contains(&self.brightness)
            && (0.0..1.0).contains(&self.contrast)
            && 0.0 < self.blur_sigma_min
            && self.blur_sigma_min <= self.blur_sigma_max
            && (0.0..=1.0).contains(&self.hflip_probability)
            && (0.0..=1.0).contains(&self.vflip_probability);
        if !ok {
            bail!("augment: a range is empty or out of bounds: {self:?}");
        }
        Ok(())
    }

    /// Draws one view's parameters.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> ViewParams {
        let s = self.source_size as f64;
        let angle = if self.rotation_degrees > 0.0 {
            rng.random_range(-self.rotation_degrees..=self.rotation_degrees)
        } else {
            0.0
        };
        // torchvision RandomResizedCrop.get_params: 10 tries, then a centre crop.
        let area = s * s;
        let (lr_min, lr_max) = (self.crop_ratio_min.ln(), self.crop_ratio_max.ln());
        let mut crop = None;
        for _ in 0..10 {
            let target = area * rng.random_range(self.crop_scale_min..=self.crop_scale_max);
            let ratio = if lr_max > lr_min {
                rng.random_range(lr_min..lr_max).exp()
            } else {
                lr_min.exp()
            };
            let w = (target * ratio).sqrt().round();
            let h = (target / ratio).sqrt().round();
            if 0.0 < w && w <= s && 0.0 < h && h <= s {
                let x0 = rng.random_range(0..=(s - w) as usize) as f64;
                let y0 = rng.random_range(0..=(s - h) as usize) as f64;
                crop = Some([x0, y0, w, h]);
                break;
            }
        }
        let crop = crop.unwrap_or_else(|| {
            let r = 1.0f64.clamp(self.crop_ratio_min, self.crop_ratio_max);
            let (w, h) = if r < 1.0 {
                (s, (s / r).round().min(s))
            } else {
                ((s * r).round().min(s), s)
            };
            [((s - w) / 2.0).floor(), ((s - h) / 2.0).floor(), w, h]
        });
        let brightness = 1.0 + rng.random_range(-self.brightness..=self.brightness);
        let contrast = 1.0 + rng.random_range(-self.contrast..=self.contrast);
        let blur_k = rng.random_range(0..=self.blur_max_k);
        let blur_sigma = rng.random_range(self.blur_sigma_min..=self.blur_sigma_max);
        let hflip = rng.random_bool(self.hflip_probability);
        let vflip = rng.random_bool(self.vflip_probability);
        ViewParams {
            angle_degrees: angle,
            crop,
            hflip,
            vflip,
            brightness,
            contrast,
            blur_k,
            blur_sigma,
        }
    }
}

/// The random parameters of one view of one image.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewParams {
    /// Counter-clockwise rotation about the image centre.
    pub angle_degrees: f64,
    /// Crop `[x0, y0, w, h]` in source pixels (of the rotated image).
    pub crop: [f64; 4],
    /// Mirror left-right.
    pub hflip: bool,
    /// Mirror top-bottom.
    pub vflip: bool,
    /// Intensity multiplier.
    pub brightness: f64,
    /// Contrast blend factor (1: unchanged).
    pub contrast: f64,
    /// Blur kernel half-width (0: no blur).
    pub blur_k: usize,
    /// Blur sigma.
    pub blur_sigma: f64,
}

impl ViewParams {
    /// The parameters that leave an image as it is (up to resampling).
    pub fn identity(source_size: usize) -> Self {
        let s = source_size as f64;
        ViewParams {
            angle_degrees: 0.0,
            crop: [0.0, 0.0, s, s],
            hflip: false,
            vflip: false,
            brightness: 1.0,
            contrast: 1.0,
            blur_k: 0,
            blur_sigma: 1.0,
        }
    }
}

/// The random stream of one view: independent of batch layout and threads.
pub fn view_rng(seed: u64, epoch: u64, index: u64, view: u64) -> ChaCha8Rng {
    let mut h = splitmix(seed);
    for v in [epoch, index, view] {
        h = splitmix(h ^ v);
    }
    ChaCha8Rng::seed_from_u64(h)
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Applies `params` to a `src_size^2` preprocessed image, writing the
/// `out_size^2` encoder input (darkness in 0..1) into `out`.
pub fn apply(src: &[u8], src_size: usize, params: &ViewParams, out_size: usize, out: &mut [f32]) {
    debug_assert_eq!(src.len(), src_size * src_size);
    debug_assert_eq!(out.len(), out_size * out_size);
    resample(src, src_size, params, out_size, out);
    // Colour jitter on intensity i = 1 - x (torchvision: multiply, clamp).
    if params.brightness != 1.0 {
        let b = params.brightness as f32;
        out.iter_mut()
            .for_each(|x| *x = 1.0 - ((1.0 - *x) * b).clamp(0.0, 1.0));
    }
    if params.contrast != 1.0 {
        let c = params.contrast as f32;
        let mean_intensity = out.iter().map(|x| 1.0 - x).sum::<f32>() / out.len() as f32;
        out.iter_mut().for_each(|x| {
            let i = (c * (1.0 - *x) + (1.0 - c) * mean_intensity).clamp(0.0, 1.0);
            *x = 1.0 - i;
        });
    }
    if params.blur_k > 0 {
        gaussian_blur(out, out_size, params.blur_k, params.blur_sigma);
    }
}

/// Rotation, crop, flips and resize in one pass: bilinear samples on an
/// `ss x ss` grid per output pixel (supersampled when shrinking so thin
/// structures do not alias away), white outside the image. The sample
/// positions are affine in the grid indices, so each row starts from one
/// computed position and steps by a constant.
fn resample(src: &[u8], src_size: usize, params: &ViewParams, out_size: usize, out: &mut [f32]) {
    let s = src_size as f64;
    let c = (s - 1.0) / 2.0;
    let (sin, cos) = params.angle_degrees.to_radians().sin_cos();
    let [x0, y0, cw, ch] = params.crop;
    let (step_x, step_y) = (cw / out_size as f64, ch / out_size as f64);
    let ss = (step_x.max(step_y).ceil() as usize).clamp(1, 4);
    let grid = out_size * ss;
    // Crop fraction of grid index i: (i + 0.5) / grid, mirrored by a flip.
    let inv = 1.0 / grid as f64;
    let frac = |flip: bool| {
        if flip {
            (1.0 - 0.5 * inv, -inv)
        } else {
            (0.5 * inv, inv)
        }
    };
    let ((fx0, dfx), (fy0, dfy)) = (frac(params.hflip), frac(params.vflip));
    // Offsets from the rotation centre, in source pixel-centre coordinates.
    let (du0, ddu) = (x0 + fx0 * cw - 0.5 - c, dfx * cw);
    let (dv0, ddv) = (y0 + fy0 * ch - 0.5 - c, dfy * ch);
    let last = src_size as isize - 1;
    let pixel = |x: isize, y: isize| -> f32 {
        if x < 0 || y < 0 || x > last || y > last {
            255.0 // white fill
        } else {
            src[y as usize * src_size + x as usize] as f32
        }
    };
    let mut sums = vec![0.0f32; out_size];
    for oy in 0..out_size {
        sums.fill(0.0);
        for sy in 0..ss {
            let dv = dv0 + (oy * ss + sy) as f64 * ddv;
            // Inverse rotation back into the source image.
            let (row_x, row_y) = (c - sin * dv + cos * du0, c + cos * dv + sin * du0);
            let (step_px, step_py) = (cos * ddu, sin * ddu);
            for (ox, sum) in sums.iter_mut().enumerate() {
                for sx in 0..ss {
                    let i = (ox * ss + sx) as f64;
                    let (px, py) = (row_x + i * step_px, row_y + i * step_py);
                    let (fx, fy) = (px.floor(), py.floor());
                    let (ax, ay) = ((px - fx) as f32, (py - fy) as f32);
                    let (ix, iy) = (fx as isize, fy as isize);
                    let (top, bottom) = if ix >= 0 && iy >= 0 && ix < last && iy < last {
                        let at = iy as usize * src_size + ix as usize;
                        let p = |k: usize| src[k] as f32;
                        (
                            p(at) + (p(at + 1) - p(at)) * ax,
                            p(at + src_size) + (p(at + src_size + 1) - p(at + src_size)) * ax,
                        )
                    } else {
                        (
                            pixel(ix, iy) + (pixel(ix + 1, iy) - pixel(ix, iy)) * ax,
                            pixel(ix, iy + 1) + (pixel(ix + 1, iy + 1) - pixel(ix, iy + 1)) * ax,
                        )
                    };
                    *sum += top + (bottom - top) * ay;
                }
            }
        }
        // Darkness of the mean grey value of the pixel's samples.
        let scale = 1.0 / (255.0 * (ss * ss) as f32);
        for (o, sum) in out[oy * out_size..][..out_size].iter_mut().zip(&sums) {
            *o = 1.0 - sum * scale;
        }
    }
}

/// Separable Gaussian blur, kernel `2k + 1`, reflect padding (torchvision).
fn gaussian_blur(img: &mut [f32], size: usize, k: usize, sigma: f64) {
    let kernel: Vec<f32> = {
        let raw: Vec<f64> = (0..=2 * k)
            .map(|i| {
                let d = i as f64 - k as f64;
                (-d * d / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|v| (v / sum) as f32).collect()
    };
    let reflect = |i: isize| -> usize {
        let n = size as isize;
        let mut i = i;
        // Reflect without repeating the edge; loop covers kernels wider than the image.
        loop {
            if i < 0 {
                i = -i;
            } else if i >= n {
                i = 2 * (n - 1) - i;
            } else {
                return i as usize;
            }
            if n == 1 {
                return 0;
            }
        }
    };
    // Source index of each padded position -k..size+k, computed once.
    let padded: Vec<usize> = (0..size + 2 * k)
        .map(|p| reflect(p as isize - k as isize))
        .collect();
    // Rows: pad each row, then add the shifted copies (vectorises over x).
    let mut tmp = vec![0.0f32; size * size];
    let mut row = vec![0.0f32; size + 2 * k];
    for (src, dst) in img.chunks_exact(size).zip(tmp.chunks_exact_mut(size)) {
        row.iter_mut().zip(&padded).for_each(|(r, &i)| *r = src[i]);
        for (t, &w) in kernel.iter().enumerate() {
            dst.iter_mut()
                .zip(&row[t..t + size])
                .for_each(|(d, v)| *d += w * v);
        }
    }
    // Columns: each output row is a weighted sum of reflected tmp rows.
    for (y, dst) in img.chunks_exact_mut(size).enumerate() {
        dst.fill(0.0);
        for (t, &w) in kernel.iter().enumerate() {
            let src = &tmp[padded[y + t] * size..][..size];
            dst.iter_mut().zip(src).for_each(|(d, v)| *d += w * v);
        }
    }
}

/// Preprocessed images of one size, stored end to end.
pub struct ImageSet {
    /// Side of each square image.
    pub size: usize,
    /// `len() * size * size` bytes.
    pub pixels: Vec<u8>,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / (self.size * self.size).max(1)
    }
    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.size * self.size;
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Builds the `[2N, 1, S, S]` input of one step: rows `0..N` are view 0 of
/// `indices`, rows `N..2N` view 1. `stream` keys the randomness (the epoch
/// for training, a fixed tag for validation).
pub fn augment_batch(
    images: &ImageSet,
    indices: &[usize],
    config: &AugmentConfig,
    seed: u64,
    stream: u64,
    out_size: usize,
) -> Vec<f32> {
    let n = indices.len();
    let per = out_size * out_size;
    let mut buf = vec![0.0f32; 2 * n * per];
    buf.par_chunks_mut(per).enumerate().for_each(|(row, out)| {
        let (view, slot) = (row / n, row % n);
        let index = indices[slot];
        let mut rng = view_rng(seed, stream, index as u64, view as u64);
        let params = config.sample(&mut rng);
        apply(images.image(index), images.size, &params, out_size, out);
    });
    buf
}

/// The shuffled image order of one epoch.
pub fn epoch_order(seed: u64, epoch: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(splitmix(
        splitmix(seed) ^ 0xE90C ^ epoch as u64,
    )));
    order
}

/// One prepared training step.
pub struct Batch {
    /// Global step this batch belongs to.
    pub step: usize,
    /// Epoch of the step.
    pub epoch: usize,
    /// Images in the batch (N; the tensor holds 2N views).
    pub images: usize,
    /// `[2N, 1, S, S]` encoder input.
    pub views: Vec<f32>,
}

/// Prepares batches for steps `start..end` on a background thread (which
/// fans each batch out to a rayon pool of `workers` threads) and keeps up
/// to `prefetch` of them ready.
pub struct BatchLoader {
    receiver: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

/// What the loader needs to know about the run.
#[derive(Clone)]
pub struct LoaderPlan {
    /// Augmentation recipe.
    pub augment: AugmentConfig,
    /// Run seed.
    pub seed: u64,
    /// Images per batch.
    pub batch_size: usize,
    /// Model input side.
    pub out_size: usize,
    /// First step to produce.
    pub start_step: usize,
    /// One past the last step.
    pub end_step: usize,
    /// Worker threads (0: all cores).
    pub workers: usize,
    /// Batches kept ready.
    pub prefetch: usize,
}

impl BatchLoader {
    /// Starts the producer thread.
    pub fn start(images: Arc<ImageSet>, plan: LoaderPlan) -> anyhow::Result<Self> {
        let per_epoch = (images.len() / plan.batch_size).max(1);
        if images.len() < plan.batch_size {
            bail!(
                "{} training images are fewer than one batch of {}",
                images.len(),
                plan.batch_size
            );
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(plan.workers)
            .thread_name(|i| format!("seaclr-augment-{i}"))
            .build()?;
        let (sender, receiver): (SyncSender<Batch>, Receiver<Batch>) =
            sync_channel(plan.prefetch.max(1));
        let handle = std::thread::Builder::new()
            .name("seaclr-loader".into())
            .spawn(move || {
                let mut order: Option<(usize, Vec<usize>)> = None;
                for step in plan.start_step..plan.end_step {
                    let epoch = step / per_epoch;
                    let b = step % per_epoch;
                    if order.as_ref().map(|(e, _)| *e) != Some(epoch) {
                        order = Some((epoch, epoch_order(plan.seed, epoch, images.len())));
                    }
                    let indices = &order.as_ref().expect("set above").1
                        [b * plan.batch_size..(b + 1) * plan.batch_size];
                    let views = pool.install(|| {
                        augment_batch(
                            &images,
                            indices,
                            &plan.augment,
                            plan.seed,
                            epoch as u64,
                            plan.out_size,
                        )
                    });
                    let batch = Batch {
                        step,
                        epoch,
                        images: indices.len(),
                        views,
                    };
                    if sender.send(batch).is_err() {
                        return; // the trainer stopped
                    }
                }
            })?;
        Ok(BatchLoader {
            receiver: Some(receiver),
            handle: Some(handle),
        })
    }

    /// Next batch, or `None` once `end_step` is reached.
    pub fn next_batch(&self) -> Option<Batch> {
        self.receiver.as_ref()?.recv().ok()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.receiver.take(); // unblocks the producer's send
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_image(size: usize) -> Vec<u8> {
        // White background, dark asymmetric "L" shape.
        let mut im = vec![255u8; size * size];
        for y in size / 4..3 * size / 4 {
            im[y * size + size / 4] = 0;
            im[y * size + size / 4 + 1] = 0;
        }
        for x in size / 4..size / 2 {
            im[(3 * size / 4) * size + x] = 0;
        }
        im
    }

    #[test]
    fn identity_at_same_size_reproduces_the_image() {
        let im = blob_image(32);
        let mut out = vec![0.0; 32 * 32];
        apply(&im, 32, &ViewParams::identity(32), 32, &mut out);
        for (p, x) in im.iter().zip(&out) {
            assert!((crate::float_encoder::pixel_to_input(*p) - x).abs() < 1e-5);
        }
    }

    #[test]
    fn rotation_by_90_degrees_permutes_pixels() {
        let im = blob_image(16);
        let mut out = vec![0.0; 16 * 16];
        let params = ViewParams {
            angle_degrees: 90.0,
            ..ViewParams::identity(16)
        };
        apply(&im, 16, &params, 16, &mut out);
        // Output (x, y) samples source (cos*du - sin*dv, sin*du + cos*dv) = (c - dv, c + du).
        for y in 0..16 {
            for x in 0..16 {
                let (sx, sy) = (15 - y, x);
                let expected = crate::float_encoder::pixel_to_input(im[sy * 16 + sx]);
                assert!((out[y * 16 + x] - expected).abs() < 1e-4, "({x},{y})");
            }
        }
    }

    #[test]
    fn rotation_fills_corners_with_white() {
        let im = vec![0u8; 32 * 32]; // all dark
        let mut out = vec![0.0; 32 * 32];
        let params = ViewParams {
            angle_degrees: 45.0,
            ..ViewParams::identity(32)
        };
        apply(&im, 32, &params, 32, &mut out);
        assert_eq!(out[0], 0.0, "corner must be white fill (darkness 0)");
        assert!((out[16 * 32 + 16] - 1.0).abs() < 1e-6, "centre stays dark");
    }

    #[test]
    fn blur_keeps_mean_and_smooths() {
        let mut im = vec![0.0f32; 15 * 15];
        im[7 * 15 + 7] = 1.0;
        gaussian_blur(&mut im, 15, 3, 1.0);
        let sum: f32 = im.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert!(im[7 * 15 + 7] < 0.5 && im[7 * 15 + 8] > 0.0);
    }

    #[test]
    fn sampled_parameters_respect_the_recipe() {
        let config = AugmentConfig::new();
        for i in 0..500 {
            let p = config.sample(&mut view_rng(1, 0, i, 0));
            assert!((-180.0..=180.0).contains(&p.angle_degrees));
            let [x0, y0, w, h] = p.crop;
            assert!(x0 >= 0.0 && y0 >= 0.0 && x0 + w <= 128.0 && y0 + h <= 128.0);
            let area = w * h / (128.0 * 128.0);
            assert!((0.07..=1.0).contains(&area), "area {area}");
            assert!((0.8..=1.2).contains(&p.brightness));
            assert!(p.blur_k <= 5 && (0.1..=2.0).contains(&p.blur_sigma));
            assert!(!p.hflip && !p.vflip);
        }
    }

    #[test]
    fn each_image_and_view_gets_its_own_parameters() {
        // The seed drew one set per batch: identical images in one batch came
        // out identical. Here they must differ, view 0 vs view 1 too.
        let size = 32;
        let im = blob_image(size);
        let images = ImageSet {
            size,
            pixels: [im.clone(), im].concat(),
        };
        let config = AugmentConfig::new().with_source_size(size);
        let views = augment_batch(&images, &[0, 1], &config, 5, 0, 16);
        let per = 16 * 16;
        let rows: Vec<&[f32]> = views.chunks(per).collect();
        assert_ne!(
            rows[0], rows[1],
            "two images of one batch got the same transform"
        );
        assert_ne!(rows[0], rows[2], "two views of one image are identical");
    }

    #[test]
    fn batches_are_deterministic_and_thread_independent() {
        let size = 32;
        let images = ImageSet {
            size,
            pixels: (0..6).flat_map(|_| blob_image(size)).collect(),
        };
        let config = AugmentConfig::new().with_source_size(size);
        let a = augment_batch(&images, &[3, 1, 4], &config, 9, 2, 16);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| augment_batch(&images, &[3, 1, 4], &config, 9, 2, 16));
        assert_eq!(a, b);
        let c = augment_batch(&images, &[3, 1, 4], &config, 9, 3, 16);
        assert_ne!(a, c, "another epoch must give other views");
    }

    #[test]
    fn loader_yields_the_planned_steps_in_order() {
        let size = 16;
        let images = Arc::new(ImageSet {
            size,
            pixels: (0..10).flat_map(|_| blob_image(size)).collect(),
        });
        let plan = LoaderPlan {
            augment: AugmentConfig::new().with_source_size(size),
            seed: 1,
            batch_size: 4,
            out_size: 8,
            start_step: 3,
            end_step: 7,
            workers: 2,
            prefetch: 2,
        };
        let loader = BatchLoader::start(images.clone(), plan.clone()).unwrap();
        let mut steps = Vec::new();
        while let Some(b) = loader.next_batch() {
            assert_eq!(b.views.len(), 2 * 4 * 64);
            // 10 images / batch 4 = 2 steps per epoch.
            assert_eq!(b.epoch, b.step / 2);
            let order = epoch_order(1, b.epoch, 10);
            let idx = &order[(b.step % 2) * 4..(b.step % 2 + 1) * 4];
            assert_eq!(
                b.views,
                augment_batch(&images, idx, &plan.augment, 1, b.epoch as u64, 8)
            );
            steps.push(b.step);
        }
        assert_eq!(steps, vec![3, 4, 5, 6]);
    }
}
