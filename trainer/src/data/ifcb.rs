//! IFCB (Imaging FlowCytobot) raw bins: `<stem>.hdr` (text header),
//! `<stem>.adc` (CSV, one row per trigger) and `<stem>.roi` (8-bit gray
//! pixels end to end). The rows are parsed by [`seaclr_shared::ifcb`] (both
//! ADC layouts; the buoy reads bins with the same parser); this module finds
//! the files, checks each ROI against the `.roi` length and reads pixels.
//! Rows with `width * height = 0` carry no image and are not listed.
//!
//! Images are numbered by their 1-based ADC row (the IFCB "target number"),
//! so ids read `<stem>.roi#<row>` and stay stable whatever rows are skipped.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use seaclr_shared::ifcb::{AdcColumns, parse_adc_row};
use seaclr_shared::walk::{escape_path, read_regular_file};

/// Largest `.adc` or `.hdr` read (real ones are kilobytes to a few MiB).
const MAX_TEXT_BYTES: u64 = 256 * 1024 * 1024;

use super::Skipped;

/// One image inside a bin: where its pixels are and how big it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoiEntry {
    /// `<stem>.roi#<row>`.
    pub id: String,
    /// 1-based ADC row number.
    pub row: usize,
    /// The `.roi` file.
    pub roi_path: PathBuf,
    /// Byte offset of the first pixel in the `.roi`.
    pub offset: u64,
    /// ROI width in pixels.
    pub width: u32,
    /// ROI height in pixels.
    pub height: u32,
}

/// The images of one bin plus rows that could not be used.
#[derive(Debug, Default)]
pub struct BinIndex {
    /// Usable ROIs in ADC row order.
    pub entries: Vec<RoiEntry>,
    /// Rows that point outside the `.roi` or cannot be parsed.
    pub skipped: Vec<Skipped>,
}

/// Lists the ROIs of the bin whose `.adc` file is `adc_path`. Missing or
/// unreadable `.adc`/`.roi` files are errors (the caller reports the bin as
/// skipped); bad rows are reported in [`BinIndex::skipped`].
pub fn index_bin(adc_path: &Path) -> Result<BinIndex> {
    let stem = adc_path
        .file_stem()
        .map(seaclr_shared::walk::escape)
        .with_context(|| format!("{}: no file stem", escape_path(adc_path)))?;
    let roi_path = adc_path.with_extension("roi");
    let hdr_path = adc_path.with_extension("hdr");
    let roi_meta = fs::metadata(&roi_path).with_context(|| {
        format!(
            "{}: cannot read the bin's .roi file",
            escape_path(&roi_path)
        )
    })?;
    if !roi_meta.is_file() {
        bail!(
            "{}: the bin's .roi is not a regular file; not opened",
            escape_path(&roi_path)
        );
    }
    let roi_len = roi_meta.len();
    // Text files are read only if regular (a FIFO would block) and bounded.
    let read_text = |path: &Path| -> Result<String, String> {
        let bytes = read_regular_file(path, MAX_TEXT_BYTES).map_err(|e| e.to_string())?;
        // A row that is not UTF-8 fails to parse and is skipped on its own
        // (as the buoy does), instead of losing the whole bin.
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let adc = read_text(adc_path)
        .map_err(|e| anyhow::anyhow!("{}: cannot read ADC file: {e}", escape_path(adc_path)))?;
    let header_columns = match read_text(&hdr_path) {
        Ok(header) => AdcColumns::from_header(&header)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{}: {e}", escape_path(&hdr_path)))?,
        // The header is optional: the column count decides the layout.
        Err(_) => None,
    };

    let mut index = BinIndex::default();
    for (i, line) in adc.lines().enumerate() {
        let row = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let skip = |reason: String| Skipped {
            path: format!("{}#{row}", escape_path(&roi_path)),
            reason,
        };
        let adc_row = match parse_adc_row(line, header_columns) {
            Ok(Some(adc_row)) => adc_row,
            Ok(None) => continue, // A trigger without an image.
            Err(e) => {
                index.skipped.push(skip(format!("ADC row {row}: {e}")));
                continue;
            }
        };
        let (width, height, offset, end) = (
            adc_row.width,
            adc_row.height,
            adc_row.start_byte,
            adc_row.end_byte(),
        );
        if end > roi_len {
            index.skipped.push(skip(format!(
                "ADC row {row}: ROI {width}x{height} at byte {offset} ends at byte {end}, \
                 past the end of the .roi ({roi_len} bytes)"
            )));
            continue;
        }
        index.entries.push(RoiEntry {
            id: format!("{stem}.roi#{row}"),
            row,
            roi_path: roi_path.clone(),
            offset,
            width,
            height,
        });
    }
    Ok(index)
}

/// Reads one ROI's raw pixels (`width * height` bytes).
pub fn read_roi(entry: &RoiEntry) -> Result<Vec<u8>, String> {
    let len = entry.width as usize * entry.height as usize;
    let mut file = fs::File::open(&entry.roi_path).map_err(|e| format!("cannot open .roi: {e}"))?;
    file.seek(SeekFrom::Start(entry.offset))
        .map_err(|e| format!("cannot seek in .roi: {e}"))?;
    let mut pixels = vec![0u8; len];
    file.read_exact(&mut pixels)
        .map_err(|e| format!("cannot read {len} bytes at offset {}: {e}", entry.offset))?;
    Ok(pixels)
}

/// Lists the `.adc` files directly inside `dir`, sorted (regular files
/// only; a FIFO named `x.adc` is not a bin).
pub fn find_bins(dir: &Path) -> Result<Vec<PathBuf>> {
    let options = seaclr_shared::walk::WalkOptions {
        max_depth: 1,
        ..Default::default()
    };
    let found = seaclr_shared::walk::walk(dir, &is_adc, &options)
        .with_context(|| format!("{}: cannot list", escape_path(dir)))?;
    Ok(found.files)
}

/// True for `*.adc` (case-insensitive).
pub fn is_adc(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.as_encoded_bytes().eq_ignore_ascii_case(b"adc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/ifcb");

    #[test]
    fn old_bin_sizes_match_adc_rows() {
        let index = index_bin(&Path::new(DATA).join("IFCB5_2012_028_081515.adc")).unwrap();
        let got: Vec<(usize, u32, u32, u64)> = index
            .entries
            .iter()
            .map(|e| (e.row, e.width, e.height, e.offset))
            .collect();
        // Columns 11, 12, 13 of the ADC rows (awk-verified).
        assert_eq!(
            got,
            vec![
                (1, 96, 45, 1),
                (2, 238, 137, 4321),
                (3, 180, 86, 36927),
                (4, 113, 45, 52407),
                (5, 105, 45, 57492),
                (6, 197, 45, 62217),
            ]
        );
        assert!(index.skipped.is_empty());
        assert_eq!(index.entries[0].id, "IFCB5_2012_028_081515.roi#1");
    }

    #[test]
    fn new_bin_has_19_images_from_named_columns() {
        let index = index_bin(&Path::new(DATA).join("D20130526T095207_IFCB013.adc")).unwrap();
        assert_eq!(index.entries.len(), 19);
        assert!(index.skipped.is_empty());
        let first = &index.entries[0];
        assert_eq!(
            (first.row, first.width, first.height, first.offset),
            (7, 88, 34, 0)
        );
        let last = index.entries.last().unwrap();
        assert_eq!(
            (last.row, last.width, last.height, last.offset),
            (114, 184, 89, 82096)
        );
        // Consecutive ROIs tile the .roi file end to end.
        for pair in index.entries.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert_eq!(a.offset + u64::from(a.width * a.height), b.offset);
        }
    }

    #[test]
    fn rows_past_the_end_and_garbage_rows_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let adc = dir.path().join("bin.adc");
        // Old layout, no header: a good row, a zero-size row, a row past the
        // end, a garbage row.
        let row = |w: &str, h: &str, s: &str| format!("1,0,0,0,0,0,0,0,0,0,0,{w},{h},{s},0,\n");
        let text =
            row("2", "3", "0") + &row("0", "0", "0") + &row("10", "10", "4") + &row("x", "3", "0");
        fs::write(&adc, text).unwrap();
        fs::write(dir.path().join("bin.roi"), [7u8; 20]).unwrap();
        let index = index_bin(&adc).unwrap();
        assert_eq!(index.entries.len(), 1);
        assert_eq!(read_roi(&index.entries[0]).unwrap(), vec![7u8; 6]);
        assert_eq!(index.skipped.len(), 2);
        assert!(index.skipped[0].path.ends_with("bin.roi#3"));
        assert!(
            index.skipped[0].reason.contains("past the end"),
            "{:?}",
            index.skipped
        );
        assert!(index.skipped[1].reason.contains("row 4"));
    }

    #[test]
    fn missing_roi_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let adc = dir.path().join("lonely.adc");
        fs::write(&adc, "1,2,3\n").unwrap();
        let err = format!("{:#}", index_bin(&adc).unwrap_err());
        assert!(err.contains("lonely.roi"), "{err}");
    }
}
