//! Contact sheet: preprocessed images, one row per class, so a person can
//! look at exactly what the encoder will see.
//!
//! Each row holds the first `per_class` readable images of a class (sorted
//! paths, so the sheet is reproducible); unlabelled data fills rows of
//! `per_class` images in listing order. Tiles are separated by a 2-pixel
//! mid-gray gutter, which cannot be mistaken for the white background.
//! Labels are not drawn on the image; [`Preview::rows`] names each row and
//! the CLI prints that legend.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use image::{GrayImage, Luma};
use rayon::prelude::*;

use super::{Catalog, Item, Skipped};

/// Gutter width between tiles, in pixels.
pub const GUTTER: u32 = 2;
/// Gutter value (mid-gray, distinct from the white background).
pub const GUTTER_VALUE: u8 = 128;

/// A rendered contact sheet.
pub struct Preview {
    /// The sheet.
    pub image: GrayImage,
    /// Row names (class labels, or `unlabelled`) with the number of tiles.
    pub rows: Vec<(String, usize)>,
    /// Images that could not be shown.
    pub skipped: Vec<Skipped>,
}

/// Builds a contact sheet of the catalog at `size x size` per tile.
pub fn render(
    catalog: &Catalog,
    size: usize,
    per_class: usize,
    max_rows: usize,
) -> Result<Preview> {
    if per_class == 0 || size == 0 || max_rows == 0 {
        bail!("--per-class, --size and --max-rows must be at least 1");
    }
    // Candidate items per row, in order.
    let mut groups: BTreeMap<String, Vec<&Item>> = BTreeMap::new();
    let mut unlabelled: Vec<&Item> = Vec::new();
    for item in &catalog.items {
        match &item.label {
            Some(label) => groups.entry(label.clone()).or_default().push(item),
            None => unlabelled.push(item),
        }
    }
    let mut row_items: Vec<(String, Vec<&Item>)> = groups.into_iter().collect();
    for chunk in unlabelled.chunks(per_class) {
        row_items.push(("unlabelled".into(), chunk.to_vec()));
    }
    row_items.truncate(max_rows);

    let mut skipped = catalog.skipped.clone();
    let mut rows: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    for (name, items) in row_items {
        let mut tiles = Vec::new();
        // Decode a row's worth at a time; unreadable files are replaced by
        // the next images of the class.
        for batch in items.chunks(per_class) {
            let loaded: Vec<_> = batch.par_iter().map(|i| i.load(size)).collect();
            for result in loaded {
                match result {
                    Ok(record) if tiles.len() < per_class => tiles.push(record.pixels),
                    Ok(_) => {}
                    Err(skip) => skipped.push(skip),
                }
            }
            if tiles.len() >= per_class {
                break;
            }
        }
        rows.push((name, tiles));
    }
    if rows.iter().all(|(_, t)| t.is_empty()) {
        bail!("no readable images to preview");
    }

    let size32 = size as u32;
    let width = per_class as u32 * (size32 + GUTTER) + GUTTER;
    let height = rows.len() as u32 * (size32 + GUTTER) + GUTTER;
    let mut image = GrayImage::from_pixel(width, height, Luma([GUTTER_VALUE]));
    for (r, (_, tiles)) in rows.iter().enumerate() {
        for (c, tile) in tiles.iter().enumerate() {
            let x0 = GUTTER + c as u32 * (size32 + GUTTER);
            let y0 = GUTTER + r as u32 * (size32 + GUTTER);
            for (i, &p) in tile.iter().enumerate() {
                let (x, y) = ((i % size) as u32, (i / size) as u32);
                image.put_pixel(x0 + x, y0 + y, Luma([p]));
            }
        }
    }
    Ok(Preview {
        image,
        rows: rows.into_iter().map(|(n, t)| (n, t.len())).collect(),
        skipped,
    })
}

/// Saves the sheet as PNG (format from the extension; PNG keeps the exact
/// preprocessed bytes).
pub fn save(preview: &Preview, out: &Path) -> Result<()> {
    preview
        .image
        .save(out)
        .with_context(|| format!("{}: cannot write preview", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn one_row_per_class_with_exact_tiles() {
        let dir = tempfile::tempdir().unwrap();
        for (class, value) in [("a", 0u8), ("b", 100)] {
            fs::create_dir_all(dir.path().join(class)).unwrap();
            for i in 0..3 {
                image::GrayImage::from_pixel(4, 4, Luma([value]))
                    .save(dir.path().join(class).join(format!("{i}.png")))
                    .unwrap();
            }
        }
        fs::write(dir.path().join("a/0bad.png"), b"junk").unwrap();
        let catalog = crate::data::scan(dir.path()).unwrap();
        let preview = render(&catalog, 4, 2, 10).unwrap();
        assert_eq!(
            preview.rows,
            vec![("a".to_string(), 2), ("b".to_string(), 2)]
        );
        assert_eq!(preview.image.dimensions(), (2 * 6 + 2, 2 * 6 + 2));
        assert_eq!(preview.image.get_pixel(0, 0).0[0], GUTTER_VALUE);
        assert_eq!(preview.image.get_pixel(2, 2).0[0], 0); // row a
        assert_eq!(preview.image.get_pixel(8, 8).0[0], 100); // row b
        assert_eq!(preview.skipped.len(), 1);
    }
}
