//! Image folders: `root/<class>/*.{jpg,jpeg,png,tif,tiff,bmp}` (labelled by
//! folder name) or a flat folder of images (unlabelled).
//!
//! Layout rule: if any direct subfolder of the root holds images, the root
//! is a class-folder root; images lying directly in such a root belong to
//! no class and are reported as skipped. Otherwise the images directly in
//! the root are one unlabelled set. Everything is sorted so the record order
//! is the same on every machine.
//!
//! The folders are walked by [`seaclr_shared::walk`], the rules the buoy's
//! frame sources follow too: hidden entries (`.name`) and files without an
//! image extension are ignored; symbolic-link loops, second paths to a
//! folder, non-regular files (a FIFO named `x.jpg`) and folders that cannot
//! be listed are skipped with a reason; the walk goes on. Ids and labels are
//! the paths and folder names written with [`escape_path`], which keeps
//! every byte of a non-UTF-8 name.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use seaclr_shared::walk::{self, WalkOptions, escape, escape_path};

pub use seaclr_shared::walk::{IMAGE_EXTENSIONS, is_image_path};

use super::{Item, ItemSource, Skipped};

/// Depth of a class-folder layout: the root's files and its subfolders'.
const LAYOUT_DEPTH: usize = 2;

fn file_item(path: PathBuf, label: Option<String>) -> Item {
    Item {
        id: escape_path(&path),
        label,
        source: ItemSource::File(path),
    }
}

/// Lists the images of a class-folder or flat-folder root. Only the root
/// itself being unreadable is an error.
pub fn scan_folder(root: &Path) -> Result<(Vec<Item>, Vec<Skipped>)> {
    let options = WalkOptions {
        max_depth: LAYOUT_DEPTH,
        ..WalkOptions::default()
    };
    let found = walk::walk(root, &is_image_path, &options)
        .with_context(|| format!("{}: cannot list folder", escape_path(root)))?;
    let mut skipped: Vec<Skipped> = found.skipped.iter().map(Skipped::from).collect();
    let mut loose = Vec::new();
    // Depth-first and sorted: each class's files arrive together, classes
    // in name order.
    let mut classes: Vec<(OsString, Vec<PathBuf>)> = Vec::new();
    for path in found.files {
        let rel: Vec<OsString> = path
            .strip_prefix(root)
            .map(|r| r.iter().map(OsString::from).collect())
            .unwrap_or_default();
        match rel.as_slice() {
            [_] => loose.push(path),
            [class, _] => match classes.last_mut() {
                Some((name, files)) if name == class => files.push(path),
                _ => classes.push((class.clone(), vec![path])),
            },
            _ => {} // Deeper than the layout: not walked.
        }
    }
    if classes.is_empty() {
        return Ok((
            loose.into_iter().map(|p| file_item(p, None)).collect(),
            skipped,
        ));
    }
    skipped.extend(loose.into_iter().map(|p| Skipped {
        path: escape_path(&p),
        reason: "image outside any class folder in a class-folder dataset".into(),
    }));
    let mut items = Vec::new();
    for (name, images) in classes {
        let label = escape(&name);
        items.extend(
            images
                .into_iter()
                .map(|p| file_item(p, Some(label.clone()))),
        );
    }
    Ok((items, skipped))
}
