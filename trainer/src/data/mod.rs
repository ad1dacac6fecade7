//! Data ingestion: image folders, IFCB raw bins and manifest CSVs, decoded in
//! parallel and preprocessed exactly as the device will see them.
//!
//! Two steps, so millions of images never need to sit in memory:
//! 1. [`scan`] / [`scan_split`] list the images ([`Catalog`] of [`Item`]s:
//!    paths and labels only, cheap);
//! 2. [`Catalog::for_each_chunk`] decodes a chunk at a time with rayon and
//!    hands each chunk ([`Loaded`]) to a callback; [`Catalog::load`] (and
//!    [`load`], [`load_split`]) collect everything for data that fits.
//!
//! Bad input never aborts a run: every file, folder or ROI that cannot be
//! used (empty, truncated, not an image, too small, a decompression bomb, an
//! ADC row past the end of its `.roi`, a FIFO or other non-regular file, a
//! folder that cannot be listed, a symbolic-link loop) becomes a [`Skipped`]
//! with its path and reason. Only a source that cannot be read at all
//! (missing path, unreadable root or manifest) is an error.
//!
//! Paths keep their bytes: items hold `PathBuf`s, and where a path becomes
//! text (ids, labels, CSV cells) it is written with
//! [`seaclr_shared::walk::escape_path`] (non-UTF-8 bytes as `\xHH`, `\` as
//! `\\`), which manifests read back with
//! [`seaclr_shared::walk::unescape_path`].

pub mod cli;
pub mod decode;
pub mod folder;
pub mod ifcb;
pub mod manifest;
pub mod preview;
pub mod split;
pub mod stats;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use seaclr_shared::walk::{self, escape_path, unescape_path};

/// One preprocessed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// File path, or `<stem>.roi#<row>` for an IFCB ROI.
    pub id: String,
    /// Class label (`None` for unlabelled sources).
    pub label: Option<String>,
    /// Original width in pixels, before preprocessing.
    pub width: u32,
    /// Original height in pixels, before preprocessing.
    pub height: u32,
    /// `size * size` preprocessed gray pixels (white 255 background).
    pub pixels: Vec<u8>,
}

/// An input that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// File path (or `<roi path>#<row>` for an IFCB row).
    pub path: String,
    /// Human-readable reason.
    pub reason: String,
}

impl From<&walk::Skipped> for Skipped {
    fn from(s: &walk::Skipped) -> Self {
        Self {
            path: escape_path(&s.path),
            reason: s.reason.to_string(),
        }
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// Images that loaded plus inputs that were skipped.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Records in catalog order (sorted paths, ADC row order).
    pub records: Vec<ImageRecord>,
    /// Inputs that could not be used.
    pub skipped: Vec<Skipped>,
}

impl Loaded {
    /// Sorted distinct labels of the records.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self
            .records
            .iter()
            .filter_map(|r| r.label.clone())
            .collect();
        labels.sort();
        labels.dedup();
        labels
    }
}

/// Seen classes train the encoder; unseen ones judge few-shot transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Group {
    /// Classes the encoder may train on.
    Seen,
    /// Classes held out for transfer evaluation.
    Unseen,
}

/// Subset within a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Subset {
    /// Training images.
    Train,
    /// Validation images.
    Val,
    /// Test images.
    Test,
}

impl Group {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seen => "seen",
            Self::Unseen => "unseen",
        }
    }
}

impl Subset {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
            Self::Test => "test",
        }
    }
}

impl FromStr for Group {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "seen" => Ok(Self::Seen),
            "unseen" => Ok(Self::Unseen),
            other => Err(format!("group must be seen or unseen, got {other:?}")),
        }
    }
}

impl FromStr for Subset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" => Ok(Self::Train),
            "val" => Ok(Self::Val),
            "test" => Ok(Self::Test),
            other => Err(format!("subset must be train, val or test, got {other:?}")),
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Subset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an item's pixels come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemSource {
    /// An encoded image file.
    File(PathBuf),
    /// A raw ROI inside an IFCB `.roi` file.
    Roi(ifcb::RoiEntry),
}

/// An image not yet decoded: its id, label and where to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Becomes [`ImageRecord::id`].
    pub id: String,
    /// Class label.
    pub label: Option<String>,
    /// Where the pixels are.
    pub source: ItemSource,
}

impl Item {
    /// Decodes and preprocesses this item to `size x size`.
    pub fn load(&self, size: usize) -> Result<ImageRecord, Skipped> {
        let result = match &self.source {
            ItemSource::File(path) => {
                read_file_limited(path).and_then(|bytes| decode::preprocess_encoded(&bytes, size))
            }
            ItemSource::Roi(entry) => ifcb::read_roi(entry)
                .and_then(|raw| decode::preprocess_raw(&raw, entry.width, entry.height, size)),
        };
        match result {
            Ok((pixels, original)) => Ok(ImageRecord {
                id: self.id.clone(),
                label: self.label.clone(),
                width: original.width,
                height: original.height,
                pixels,
            }),
            Err(reason) => Err(Skipped {
                path: match &self.source {
                    ItemSource::File(path) => escape_path(path),
                    ItemSource::Roi(entry) => {
                        format!("{}#{}", escape_path(&entry.roi_path), entry.row)
                    }
                },
                reason,
            }),
        }
    }
}

/// Reads an image file: only a regular file (a FIFO would block forever)
/// of at most [`decode::MAX_FILE_BYTES`].
fn read_file_limited(path: &Path) -> Result<Vec<u8>, String> {
    walk::read_regular_file(path, decode::MAX_FILE_BYTES).map_err(|e| e.to_string())
}

/// A listed dataset: images to decode plus inputs already known to be
/// unusable (e.g. ADC rows past the end of their `.roi`).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Images in a deterministic order.
    pub items: Vec<Item>,
    /// Inputs skipped while listing.
    pub skipped: Vec<Skipped>,
}

/// Default number of images decoded per chunk by [`Catalog::load`].
pub const DEFAULT_CHUNK: usize = 4096;

impl Catalog {
    /// Decodes the items `chunk_len` at a time (in parallel within a chunk)
    /// and calls `f` with each chunk's records and skips, in catalog order.
    /// Listing-time skips arrive with the first chunk. Memory stays bounded
    /// by one chunk plus whatever `f` keeps. Stops at the first error `f`
    /// returns.
    pub fn for_each_chunk<F>(&self, size: usize, chunk_len: usize, mut f: F) -> Result<()>
    where
        F: FnMut(Loaded) -> Result<()>,
    {
        if size == 0 {
            bail!("image size must be at least 1");
        }
        let mut pending_skips = self.skipped.clone();
        if self.items.is_empty() {
            return f(Loaded {
                records: Vec::new(),
                skipped: pending_skips,
            });
        }
        for chunk in self.items.chunks(chunk_len.max(1)) {
            let results: Vec<Result<ImageRecord, Skipped>> =
                chunk.par_iter().map(|item| item.load(size)).collect();
            let mut loaded = Loaded {
                records: Vec::with_capacity(results.len()),
                skipped: std::mem::take(&mut pending_skips),
            };
            for result in results {
                match result {
                    Ok(record) => loaded.records.push(record),
                    Err(skip) => loaded.skipped.push(skip),
                }
            }
            f(loaded)?;
        }
        Ok(())
    }

    /// Decodes everything into memory.
    pub fn load(&self, size: usize) -> Result<Loaded> {
        let mut all = Loaded::default();
        self.for_each_chunk(size, DEFAULT_CHUNK, |chunk| {
            all.records.extend(chunk.records);
            all.skipped.extend(chunk.skipped);
            Ok(())
        })?;
        Ok(all)
    }

    /// Sorted distinct labels of the items.
    pub fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = self.items.iter().filter_map(|i| i.label.clone()).collect();
        labels.sort();
        labels.dedup();
        labels
    }
}

/// What [`scan`] found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `root/<class>/*.jpg`.
    ClassFolders,
    /// `root/*.jpg`, unlabelled.
    FlatFolder,
    /// A folder of IFCB bins, or one bin's `.adc`/`.roi`/`.hdr`.
    Ifcb,
    /// A `path,label[,group,subset]` CSV.
    Manifest,
    /// A single image file.
    SingleImage,
}

/// Decides what kind of source `path` is (see [`scan`]).
pub fn detect(path: &Path) -> Result<SourceKind> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("{}: cannot access", escape_path(path)))?;
    if !meta.is_file() && !meta.is_dir() {
        bail!(
            "{}: not a regular file or folder (e.g. a FIFO); not opened",
            escape_path(path)
        );
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if meta.is_file() {
        return match ext.as_str() {
            "csv" => Ok(SourceKind::Manifest),
            "adc" | "roi" | "hdr" => Ok(SourceKind::Ifcb),
            _ if folder::is_image_path(path) => Ok(SourceKind::SingleImage),
            _ => bail!(
                "{}: not a dataset (expected a folder, a .csv manifest, an IFCB .adc/.roi/.hdr or an image)",
                path.display()
            ),
        };
    }
    if !ifcb::find_bins(path)?.is_empty() {
        return Ok(SourceKind::Ifcb);
    }
    let (items, _) = folder::scan_folder(path)?;
    Ok(if items.iter().any(|i| i.label.is_some()) {
        SourceKind::ClassFolders
    } else {
        SourceKind::FlatFolder
    })
}

/// Lists the images at `path`, auto-detecting the source:
/// - a `.csv` file: manifest, paths relative to the CSV's folder;
/// - an `.adc`/`.roi`/`.hdr` file: that IFCB bin;
/// - a folder containing `.adc` files: all its IFCB bins;
/// - a folder with class subfolders of images: labelled by folder name;
/// - a folder of images: unlabelled;
/// - an image file: that image, unlabelled.
pub fn scan(path: &Path) -> Result<Catalog> {
    match detect(path)? {
        SourceKind::Manifest => {
            let base = path.parent().unwrap_or(Path::new("."));
            let rows = manifest::read_manifest(path)?;
            Ok(catalog_from_manifest(
                base,
                rows.into_iter().map(|r| (r.path, r.label)),
            ))
        }
        SourceKind::Ifcb => {
            let bins = if path.is_file() {
                vec![path.with_extension("adc")]
            } else {
                ifcb::find_bins(path)?
            };
            let mut catalog = Catalog::default();
            for adc in bins {
                match ifcb::index_bin(&adc) {
                    Ok(index) => {
                        catalog
                            .items
                            .extend(index.entries.into_iter().map(|e| Item {
                                id: e.id.clone(),
                                label: None,
                                source: ItemSource::Roi(e),
                            }));
                        catalog.skipped.extend(index.skipped);
                    }
                    Err(e) => catalog.skipped.push(Skipped {
                        path: escape_path(&adc),
                        reason: format!("IFCB bin unreadable: {e:#}"),
                    }),
                }
            }
            Ok(catalog)
        }
        SourceKind::ClassFolders | SourceKind::FlatFolder => {
            let (items, skipped) = folder::scan_folder(path)?;
            Ok(Catalog { items, skipped })
        }
        SourceKind::SingleImage => Ok(Catalog {
            items: vec![Item {
                id: escape_path(path),
                label: None,
                source: ItemSource::File(path.to_path_buf()),
            }],
            skipped: Vec::new(),
        }),
    }
}

fn catalog_from_manifest(
    base: &Path,
    rows: impl Iterator<Item = (String, Option<String>)>,
) -> Catalog {
    let items = rows
        .map(|(rel, label)| {
            let path = base.join(unescape_path(&rel));
            Item {
                id: escape_path(&path),
                label,
                source: ItemSource::File(path),
            }
        })
        .collect();
    Catalog {
        items,
        skipped: Vec::new(),
    }
}

/// Lists the images of one group (and optionally one subset) of a split
/// manifest; paths in the manifest are relative to `data_root`. Rows
/// without a group never match.
pub fn scan_split(
    data_root: &Path,
    split_csv: &Path,
    group: Group,
    subset: Option<Subset>,
) -> Result<Catalog> {
    if !data_root.is_dir() {
        bail!("{}: data root is not a folder", data_root.display());
    }
    let rows = manifest::read_manifest(split_csv)?;
    // A wrong data root makes every path miss: say so once, clearly, rather
    // than skipping every image. (A few missing files are ordinary skips.)
    let probes = &rows[..rows.len().min(20)];
    if !probes.is_empty()
        && probes
            .iter()
            .all(|r| !data_root.join(unescape_path(&r.path)).exists())
    {
        bail!(
            "none of the first {} paths of {} exist under {} (e.g. {}); split paths are \
             relative to the data root the split was made from (for splits/planktonset.csv: \
             ../shared/data/planktonset/train)",
            probes.len(),
            split_csv.display(),
            data_root.display(),
            escape_path(&data_root.join(unescape_path(&probes[0].path)))
        );
    }
    let selected = rows
        .into_iter()
        .filter(|r| r.group == Some(group) && subset.is_none_or(|s| r.subset == Some(s)))
        .map(|r| (r.path, r.label));
    Ok(catalog_from_manifest(data_root, selected))
}

/// Loads every image at `path` (see [`scan`] for the accepted layouts),
/// preprocessed to `size x size`.
pub fn load(path: &Path, size: usize) -> Result<Loaded> {
    scan(path)?.load(size)
}

/// Loads one group (and optionally one subset) of a split manifest.
pub fn load_split(
    data_root: &Path,
    split_csv: &Path,
    group: Group,
    subset: Option<Subset>,
    size: usize,
) -> Result<Loaded> {
    scan_split(data_root, split_csv, group, subset)?.load(size)
}

#[cfg(test)]
mod tests;
