//! Few-shot label store images for the device, built on the host.
//!
//! `seaclr fewshot build` embeds labelled images with the int8 edge engine
//! (the very code the buoy runs, so stored and live embeddings match bit for
//! bit), stores `--per-class` examples per class through
//! [`seaclr_edge::store::LabelStore`] and writes the raw flash region the
//! device boots with. `seaclr fewshot inspect` mounts such an image and
//! lists it. `seaclr fewshot calibrate-threshold` picks the open-set
//! threshold.
//!
//! # Image geometry (the device must use the same)
//! - Region: [`REGION_SIZE`] = 393,216 bytes = two halves of 48 erase pages
//!   of 4,096 bytes ([`seaclr_edge::store::DEFAULT_HALF_SIZE`]); erased bytes
//!   are `0xFF`.
//! - Flash words (`WRITE_SIZE`) of 4 bytes: records are padded to 4 bytes.
//!   A device flash with another write size refuses the image
//!   (`StoreError::Geometry`) instead of misreading it.
//! - Head: [`seaclr_edge::knn::KnnHead`], 1,000 examples of 128 int8 values,
//!   64 classes. One example costs 148 bytes of flash.

pub mod check;
pub mod cli;

use std::path::Path;

use anyhow::{Context, bail};
use seaclr_edge::knn::{Evicted, KnnError, KnnHead, Q15_ONE, cosine_q15};
use seaclr_edge::store::mock_flash::MockFlash;
use seaclr_edge::store::{DEFAULT_REGION_SIZE, LabelStore, MountReport, StoreError};
use seaclr_shared::labels::{ClassId, MAX_CLASS_NAME};

/// Bytes of a label store image.
pub const REGION_SIZE: usize = DEFAULT_REGION_SIZE;
/// Flash write size the image is laid out for.
pub const WRITE_SIZE: usize = 4;
/// Erase page of the image.
pub const ERASE_SIZE: usize = 4096;
/// The flash model used to build and read images on the host.
pub type ImageFlash<'a> = MockFlash<'a, WRITE_SIZE, ERASE_SIZE>;

/// One labelled embedding (int8, centred on the engine's output zero point).
#[derive(Clone, Debug)]
pub struct LabelledEmbedding {
    /// Where it came from (file path).
    pub id: String,
    /// Class name.
    pub label: String,
    /// The embedding.
    pub embedding: Vec<i8>,
}

/// What `build_image` stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildSummary {
    /// Class name and examples stored, in class id order.
    pub classes: Vec<(String, usize)>,
    /// Insertions that evicted an example (or were refused as redundant).
    pub evictions: usize,
    /// Bytes of the live half in use.
    pub used_bytes: usize,
}

/// Builds a store image: every class of `examples` (in order of first
/// appearance) with its first `per_class` examples.
pub fn build_image(
    examples: &[LabelledEmbedding],
    per_class: usize,
) -> anyhow::Result<(Vec<u8>, BuildSummary)> {
    if per_class == 0 {
        bail!("--per-class must be at least 1");
    }
    let mut memory = vec![0xFFu8; REGION_SIZE];
    let mut head = Box::new(KnnHead::new());
    let mut evictions = 0;
    let used_bytes = {
        let mut flash = ImageFlash::new(&mut memory);
        let (mut store, _) = LabelStore::mount_or_format(&mut flash, &mut *head)
            .map_err(|e| anyhow::anyhow!("formatting the image: {e}"))?;
        let mut taken: Vec<(String, ClassId, usize)> = Vec::new();
        for ex in examples {
            let pos = match taken.iter().position(|(n, _, _)| *n == ex.label) {
                Some(p) => p,
                None => {
                    if ex.label.len() > MAX_CLASS_NAME {
                        bail!(
                            "class name {:?} is {} bytes; the device allows {MAX_CLASS_NAME}",
                            ex.label,
                            ex.label.len()
                        );
                    }
                    let class = store
                        .add_class(&mut *head, &ex.label)
                        .map_err(|e| anyhow::anyhow!("class {:?}: {e}", ex.label))?;
                    taken.push((ex.label.clone(), class, 0));
                    taken.len() - 1
                }
            };
            let (_, class, count) = &mut taken[pos];
            if *count >= per_class {
                continue;
            }
            let added = match store.add_example(&mut *head, *class, &ex.embedding) {
                Ok(added) => added,
                Err(StoreError::Label(KnnError::ZeroEmbedding)) => {
                    tracing::warn!("skipped {}: its embedding is all zeros", ex.id);
                    continue;
                }
                Err(e) => bail!("{}: {e}", ex.id),
            };
            if added.evicted.is_some() {
                evictions += 1;
            }
            if !matches!(added.evicted, Some(Evicted::Incoming)) {
                *count += 1;
            }
        }
        store.usage().used
    };
    let summary = BuildSummary {
        classes: head
            .classes()
            .map(|c| {
                (
                    head.class_name(c).unwrap_or("").to_string(),
                    head.class_count(c),
                )
            })
            .collect(),
        evictions,
        used_bytes,
    };
    Ok((memory, summary))
}

/// A mounted image: the head and what mount reported.
pub struct Mounted {
    /// The label memory the device would boot with.
    pub head: Box<KnnHead>,
    /// Mount's findings (dirty tail, fallback, generation).
    pub report: MountReport,
    /// Bytes of the live half in use.
    pub used_bytes: usize,
}

/// Mounts an image read from `path` (for error messages).
pub fn mount_image(bytes: &mut [u8], path: &Path) -> anyhow::Result<Mounted> {
    if bytes.len() != REGION_SIZE {
        bail!(
            "{}: {} bytes, but a label store image is {REGION_SIZE} bytes",
            path.display(),
            bytes.len()
        );
    }
    let mut head = Box::new(KnnHead::new());
    let mut flash = ImageFlash::new(bytes);
    let (store, report) = LabelStore::mount(&mut flash, &mut *head)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let used_bytes = store.usage().used;
    Ok(Mounted {
        head,
        report,
        used_bytes,
    })
}

/// Reads and mounts an image file.
pub fn read_image(path: &Path) -> anyhow::Result<(Vec<u8>, Mounted)> {
    let mut bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mounted = mount_image(&mut bytes, path)?;
    Ok((bytes, mounted))
}

/// A human-readable listing of a mounted image.
pub fn describe(m: &Mounted) -> String {
    use std::fmt::Write;
    let h = &m.head;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "label store: generation {}, half {}, {} of {} bytes used, {} records",
        m.report.generation,
        m.report.half,
        m.used_bytes,
        REGION_SIZE / 2,
        m.report.records
    );
    if m.report.dirty_tail || m.report.fell_back {
        let _ = writeln!(
            s,
            "warning: damage detected (dirty tail: {}, older half used: {})",
            m.report.dirty_tail, m.report.fell_back
        );
    }
    let t = h.threshold_q15();
    if t <= -Q15_ONE {
        let _ = writeln!(s, "unknown threshold: disabled");
    } else {
        let _ = writeln!(
            s,
            "unknown threshold: {:.4} (q15 {t})",
            t as f64 / Q15_ONE as f64
        );
    }
    let _ = writeln!(
        s,
        "{} classes, {} examples (capacity {})",
        h.classes().count(),
        h.len(),
        h.capacity()
    );
    for c in h.classes() {
        let _ = writeln!(
            s,
            "  {:>2}  {:<32}  {}",
            c.0,
            h.class_name(c).unwrap_or("?"),
            h.class_count(c)
        );
    }
    s
}

/// The outcome of threshold calibration.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// The chosen threshold, Q15.
    pub threshold_q15: i32,
    /// Labelled examples whose class is in the store.
    pub used: usize,
    /// Labelled examples skipped (class not in the store, or no other
    /// example of their class to compare with).
    pub skipped: usize,
    /// Fraction of `used` whose own-class similarity is below the
    /// threshold (at most the target).
    pub false_unknown: f64,
}

/// Picks the open-set threshold from labelled data: for each labelled
/// example of a stored class, its best similarity to the stored examples of
/// its own class, leaving itself out (a stored example with identical
/// bytes). The threshold is the largest value that declares at most
/// `target` of these "unknown". On the device the best similarity is taken
/// over all classes, which is at least the own-class one, so the real
/// false-unknown rate on such data is at most the target.
pub fn calibrate_threshold(
    head: &KnnHead,
    labelled: &[LabelledEmbedding],
    target: f64,
) -> anyhow::Result<Calibration> {
    if !(0.0..1.0).contains(&target) {
        bail!("--target-false-unknown must be in [0, 1), got {target}");
    }
    let stored: Vec<(ClassId, Vec<i8>, u32)> = head
        .examples()
        .map(|(_, c, e)| {
            let v: Vec<i8> = e.iter().map(|&b| b as i8).collect();
            let n = v.iter().map(|&x| (x as i32 * x as i32) as u32).sum();
            (c, v, n)
        })
        .collect();
    let mut sims = Vec::new();
    let mut skipped = 0;
    for ex in labelled {
        let Some(class) = head.find_class(&ex.label) else {
            skipped += 1;
            continue;
        };
        let n_q: u32 = ex
            .embedding
            .iter()
            .map(|&x| (x as i32 * x as i32) as u32)
            .sum();
        let best = stored
            .iter()
            .filter(|(c, v, _)| *c == class && *v != ex.embedding)
            .map(|(_, v, n)| {
                let d: i32 = v
                    .iter()
                    .zip(&ex.embedding)
                    .map(|(&a, &b)| a as i32 * b as i32)
                    .sum();
                cosine_q15(d, n_q, *n)
            })
            .max();
        match best {
            Some(s) if n_q > 0 => sims.push(s),
            _ => skipped += 1,
        }
    }
    if sims.is_empty() {
        bail!(
            "no labelled example belongs to a class of the store (with another stored example to compare)"
        );
    }
    sims.sort_unstable();
    let index = ((target * sims.len() as f64).floor() as usize).min(sims.len() - 1);
    let threshold_q15 = sims[index];
    let below = sims.iter().filter(|&&s| s < threshold_q15).count();
    Ok(Calibration {
        threshold_q15,
        used: sims.len(),
        skipped,
        false_unknown: below as f64 / sims.len() as f64,
    })
}

/// Writes `threshold_q15` into an image (an atomic `SetThreshold` record,
/// exactly as the device would log it).
pub fn set_image_threshold(
    bytes: &mut [u8],
    path: &Path,
    threshold_q15: i32,
) -> anyhow::Result<()> {
    let mut head = Box::new(KnnHead::new());
    let mut flash = ImageFlash::new(bytes);
    let (mut store, _) = LabelStore::mount(&mut flash, &mut *head)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    store
        .set_threshold(&mut *head, threshold_q15)
        .map_err(|e| anyhow::anyhow!("{}: storing the threshold: {e}", path.display()))
}

#[cfg(test)]
mod tests;
