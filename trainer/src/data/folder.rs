//! Image folders: `root/<class>/*.{jpg,jpeg,png,tif,tiff,bmp}` (labelled by
//! folder name) or a flat folder of images (unlabelled).
//!
//! Layout rule: if any direct subfolder of the root holds images, the root
//! is a class-folder root; images lying directly in such a root belong to
//! no class and are reported as skipped. Otherwise the images directly in
//! the root are one unlabelled set. Hidden entries (`.name`) are ignored, as
//! are files without an image extension. Everything is sorted so the
//! record order is the same on every machine.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{Item, ItemSource, Skipped};

/// File extensions treated as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "bmp"];

/// True when the path has an image extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Sorted (files, dirs) directly in `dir`, hidden entries left out.
fn list(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for entry in
        fs::read_dir(dir).with_context(|| format!("{}: cannot list folder", dir.display()))?
    {
        let entry = entry.with_context(|| format!("{}: cannot list folder", dir.display()))?;
        let path = entry.path();
        if is_hidden(&path) {
            continue;
        }
        // Follows symlinks, so linked class folders work.
        if path.is_dir() {
            dirs.push(path);
        } else {
            files.push(path);
        }
    }
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

fn file_item(path: PathBuf, label: Option<String>) -> Item {
    Item {
        id: path.display().to_string(),
        label,
        source: ItemSource::File(path),
    }
}

/// Lists the images of a class-folder or flat-folder root.
pub fn scan_folder(root: &Path) -> Result<(Vec<Item>, Vec<Skipped>)> {
    let (files, dirs) = list(root)?;
    let mut classes = Vec::new();
    for dir in dirs {
        let (class_files, _) = list(&dir)?;
        let images: Vec<PathBuf> = class_files
            .into_iter()
            .filter(|p| is_image_path(p))
            .collect();
        if !images.is_empty() {
            classes.push((dir, images));
        }
    }
    let loose: Vec<PathBuf> = files.into_iter().filter(|p| is_image_path(p)).collect();
    if classes.is_empty() {
        return Ok((
            loose.into_iter().map(|p| file_item(p, None)).collect(),
            Vec::new(),
        ));
    }
    let skipped = loose
        .into_iter()
        .map(|p| Skipped {
            path: p.display().to_string(),
            reason: "image outside any class folder in a class-folder dataset".into(),
        })
        .collect();
    let mut items = Vec::new();
    for (dir, images) in classes {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        items.extend(
            images
                .into_iter()
                .map(|p| file_item(p, Some(label.clone()))),
        );
    }
    Ok((items, skipped))
}
