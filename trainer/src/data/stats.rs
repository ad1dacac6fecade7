//! Dataset statistics: image and class counts, size distributions and
//! unreadable inputs. Computed by streaming ([`Catalog::for_each_chunk`]),
//! so only counts and sizes are kept in memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use super::{Catalog, Skipped, SourceKind};

/// Upper bounds (exclusive) of the size histogram bins; the last bin is
/// open-ended. Powers of two: plankton sizes span orders of magnitude.
pub const HISTOGRAM_EDGES: [u32; 7] = [16, 32, 64, 128, 256, 512, 1024];

/// Min / median / max and a histogram of one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// Smallest value (0 when empty).
    pub min: u32,
    /// Median (lower median for an even count; 0 when empty).
    pub median: u32,
    /// Largest value (0 when empty).
    pub max: u32,
    /// Counts per bin of [`HISTOGRAM_EDGES`] (one more bin than edges).
    pub histogram: Vec<usize>,
}

impl Distribution {
    /// Summarises `values` (sorted in place).
    pub fn of(values: &mut [u32]) -> Self {
        values.sort_unstable();
        let mut histogram = vec![0usize; HISTOGRAM_EDGES.len() + 1];
        for &v in values.iter() {
            let bin = HISTOGRAM_EDGES
                .iter()
                .position(|&e| v < e)
                .unwrap_or(HISTOGRAM_EDGES.len());
            histogram[bin] += 1;
        }
        Self {
            min: values.first().copied().unwrap_or(0),
            median: values
                .get(values.len().saturating_sub(1) / 2)
                .copied()
                .unwrap_or(0),
            max: values.last().copied().unwrap_or(0),
            histogram,
        }
    }

    /// Bin labels matching [`Self::histogram`] (`"0-15"`, ..., `"1024+"`).
    pub fn bin_labels() -> Vec<String> {
        let mut labels = Vec::new();
        let mut lo = 0;
        for &edge in &HISTOGRAM_EDGES {
            labels.push(format!("{lo}-{}", edge - 1));
            lo = edge;
        }
        labels.push(format!("{lo}+"));
        labels
    }

    fn to_json(&self) -> Value {
        let bins: Vec<Value> = Self::bin_labels()
            .into_iter()
            .zip(&self.histogram)
            .map(|(range, count)| json!({ "range": range, "count": count }))
            .collect();
        json!({ "min": self.min, "median": self.median, "max": self.max, "histogram": bins })
    }
}

/// Everything `seaclr data stats` reports.
#[derive(Debug, Clone)]
pub struct Stats {
    /// What kind of source was read.
    pub kind: SourceKind,
    /// Images decoded successfully.
    pub images: usize,
    /// Images per class label (sorted by label).
    pub per_class: BTreeMap<String, usize>,
    /// Images without a label.
    pub unlabelled: usize,
    /// Original widths.
    pub width: Distribution,
    /// Original heights.
    pub height: Distribution,
    /// Inputs that could not be used.
    pub errors: Vec<Skipped>,
}

/// Computes statistics for the dataset at `path` (any layout [`super::scan`]
/// accepts). Images are decoded in full, so a file counts only if it loads.
pub fn compute(path: &Path) -> Result<Stats> {
    compute_with_progress(path, |_, _| {})
}

/// Images decoded between two calls of the progress callback.
const PROGRESS_CHUNK: usize = 512;

/// [`compute`], calling `progress(done, total)` as images are decoded.
pub fn compute_with_progress(path: &Path, mut progress: impl FnMut(usize, usize)) -> Result<Stats> {
    let kind = super::detect(path)?;
    let catalog: Catalog = super::scan(path)?;
    let total = catalog.items.len();
    let mut done = 0;
    let mut per_class = BTreeMap::new();
    let mut unlabelled = 0;
    let mut widths = Vec::with_capacity(catalog.items.len());
    let mut heights = Vec::with_capacity(catalog.items.len());
    let mut errors = Vec::new();
    // Size 8: stats only need the original sizes; decoding dominates anyway.
    catalog.for_each_chunk(8, PROGRESS_CHUNK, |chunk| {
        done = (done + PROGRESS_CHUNK).min(total);
        progress(done, total);
        for record in chunk.records {
            widths.push(record.width);
            heights.push(record.height);
            match record.label {
                Some(label) => *per_class.entry(label).or_insert(0) += 1,
                None => unlabelled += 1,
            }
        }
        errors.extend(chunk.skipped);
        Ok(())
    })?;
    Ok(Stats {
        kind,
        images: widths.len(),
        per_class,
        unlabelled,
        width: Distribution::of(&mut widths),
        height: Distribution::of(&mut heights),
        errors,
    })
}

impl Stats {
    /// Number of distinct class labels.
    pub fn classes(&self) -> usize {
        self.per_class.len()
    }

    /// One JSON object: `images`, `classes`, `per_class`, `unlabelled`,
    /// `width`, `height` (min/median/max/histogram), `errors` (path, reason).
    pub fn to_json(&self) -> Value {
        json!({
            "kind": format!("{:?}", self.kind),
            "images": self.images,
            "classes": self.classes(),
            "per_class": self.per_class,
            "unlabelled": self.unlabelled,
            "width": self.width.to_json(),
            "height": self.height.to_json(),
            "errors": self.errors.iter()
                .map(|s| json!({ "path": s.path, "reason": s.reason }))
                .collect::<Vec<_>>(),
        })
    }

    /// A human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "source:     {:?}", self.kind);
        let _ = writeln!(s, "images:     {}", self.images);
        let _ = writeln!(s, "classes:    {}", self.classes());
        if self.unlabelled > 0 {
            let _ = writeln!(s, "unlabelled: {}", self.unlabelled);
        }
        let _ = writeln!(s, "unreadable: {}", self.errors.len());
        for (name, dist) in [("width", &self.width), ("height", &self.height)] {
            let _ = writeln!(
                s,
                "{name:<7} min {} / median {} / max {} px",
                dist.min, dist.median, dist.max
            );
            for (range, count) in Distribution::bin_labels().iter().zip(&dist.histogram) {
                if *count > 0 {
                    let _ = writeln!(s, "    {range:>9} px: {count}");
                }
            }
        }
        if !self.per_class.is_empty() {
            let _ = writeln!(s, "per class:");
            let width = self.per_class.keys().map(String::len).max().unwrap_or(0);
            for (label, count) in &self.per_class {
                let _ = writeln!(s, "    {label:<width$} {count:>7}");
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "unreadable files:");
            for e in &self.errors {
                let _ = writeln!(s, "    {e}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_median_and_bins() {
        let d = Distribution::of(&mut [300, 10, 50, 40, 2000]);
        assert_eq!((d.min, d.median, d.max), (10, 50, 2000));
        assert_eq!(d.histogram, vec![1, 0, 2, 0, 0, 1, 0, 1]);
        assert_eq!(Distribution::bin_labels()[0], "0-15");
        assert_eq!(Distribution::bin_labels()[7], "1024+");
        let empty = Distribution::of(&mut []);
        assert_eq!((empty.min, empty.median, empty.max), (0, 0, 0));
    }

    #[test]
    fn ifcb_stats_json() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/ifcb"
        ));
        let json = compute(path).unwrap().to_json();
        assert_eq!(json["images"], 25);
        assert_eq!(json["classes"], 0);
        assert_eq!(json["unlabelled"], 25);
        assert_eq!(json["width"]["max"], 238);
        assert_eq!(json["height"]["min"], 33);
        assert_eq!(json["errors"].as_array().unwrap().len(), 0);
    }
}
