//! Reproducible seen/unseen class split plus train/val/test within classes.
//!
//! The encoder trains on seen classes; few-shot transfer is judged on unseen
//! ones. Determinism: classes and paths are sorted before any draw, and all
//! draws come from one `ChaCha8Rng` seeded with `--seed`, in a fixed order
//! (first the unseen pick, then each class's shuffle in label order). The
//! same listing and arguments therefore give a byte-identical CSV.
//!
//! The split works on the listing (file names), not on decoded pixels:
//! unreadable files stay in the manifest and are skipped, with a reason,
//! when it is loaded.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use seaclr_shared::walk::{escape, escape_path};

use super::manifest::{ManifestRow, write_manifest};
use super::{Catalog, Group, ItemSource, Subset};

/// How the unseen classes are chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnseenChoice {
    /// Draw this many classes at random among the eligible ones.
    Count(usize),
    /// Exactly these classes.
    Named(Vec<String>),
}

impl std::str::FromStr for UnseenChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(n) = s.trim().parse::<usize>() {
            return Ok(Self::Count(n));
        }
        let names: Vec<String> = s
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Err("expected a number or a comma-separated list of classes".into());
        }
        Ok(Self::Named(names))
    }
}

/// Split parameters.
#[derive(Debug, Clone)]
pub struct SplitOptions {
    /// Which classes are unseen.
    pub unseen: UnseenChoice,
    /// RNG seed.
    pub seed: u64,
    /// A class drawn as unseen must have at least this many images.
    pub min_unseen_images: usize,
    /// Wildcard patterns (`*` matches any run of characters) of classes that
    /// must never be drawn as unseen (vague classes such as `*_other`).
    pub exclude_unseen: Vec<String>,
    /// Fraction of each class for validation.
    pub val: f64,
    /// Fraction of each class for test.
    pub test: f64,
}

/// The split: rows sorted by path, and the unseen classes.
#[derive(Debug, Clone)]
pub struct Split {
    /// One row per image, sorted by path.
    pub rows: Vec<ManifestRow>,
    /// Unseen class names, sorted.
    pub unseen: Vec<String>,
}

impl Split {
    /// The manifest CSV bytes.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        write_manifest(&self.rows)
    }
}

/// `*` wildcard match (no other special characters).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// Builds the split of a labelled catalog. Paths in the rows are relative to
/// `root` with `/` separators, each component written with
/// [`seaclr_shared::walk::escape`] so non-UTF-8 names keep their bytes.
pub fn make_split(catalog: &Catalog, root: &Path, options: &SplitOptions) -> Result<Split> {
    if !(0.0..=1.0).contains(&options.val)
        || !(0.0..=1.0).contains(&options.test)
        || options.val + options.test > 1.0
    {
        bail!(
            "--val ({}) and --test ({}) must be fractions summing to at most 1",
            options.val,
            options.test
        );
    }
    let mut classes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for item in &catalog.items {
        let label = item.label.clone().with_context(|| {
            format!(
                "{}: unlabelled image; a split needs labelled classes",
                item.id
            )
        })?;
        let ItemSource::File(path) = &item.source else {
            bail!(
                "{}: only image files can be split (IFCB bins are unlabelled)",
                item.id
            );
        };
        let rel = path.strip_prefix(root).with_context(|| {
            format!(
                "{}: not inside the root {}",
                escape_path(path),
                escape_path(root)
            )
        })?;
        // Each component keeps its bytes (escaped; `/` never occurs in one).
        let rel: Vec<String> = rel.components().map(|c| escape(c.as_os_str())).collect();
        classes.entry(label).or_default().push(rel.join("/"));
    }
    if classes.is_empty() {
        bail!("no labelled images found");
    }
    for paths in classes.values_mut() {
        paths.sort();
        paths.dedup();
    }

    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let mut unseen: Vec<String> = match &options.unseen {
        UnseenChoice::Named(names) => {
            for name in names {
                if !classes.contains_key(name) {
                    bail!("unseen class {name:?} is not in the data");
                }
            }
            names.clone()
        }
        UnseenChoice::Count(n) => {
            let mut eligible: Vec<&String> = classes
                .iter()
                .filter(|(name, paths)| {
                    paths.len() >= options.min_unseen_images
                        && !options
                            .exclude_unseen
                            .iter()
                            .any(|p| wildcard_match(p, name))
                })
                .map(|(name, _)| name)
                .collect();
            if eligible.len() < *n {
                bail!(
                    "asked for {n} unseen classes but only {} classes have at least {} images \
                     and match no exclusion pattern",
                    eligible.len(),
                    options.min_unseen_images
                );
            }
            if *n >= classes.len() {
                bail!("asked for {n} unseen classes: no seen class would be left");
            }
            eligible.shuffle(&mut rng);
            eligible.into_iter().take(*n).cloned().collect()
        }
    };
    unseen.sort();
    unseen.dedup();

    let mut rows = Vec::new();
    for (label, paths) in &classes {
        let group = if unseen.binary_search(label).is_ok() {
            Group::Unseen
        } else {
            Group::Seen
        };
        let mut shuffled = paths.clone();
        shuffled.shuffle(&mut rng);
        let n = shuffled.len();
        let n_test = ((n as f64) * options.test).round() as usize;
        let n_val = (((n as f64) * options.val).round() as usize).min(n - n_test);
        for (i, path) in shuffled.into_iter().enumerate() {
            let subset = if i < n_test {
                Subset::Test
            } else if i < n_test + n_val {
                Subset::Val
            } else {
                Subset::Train
            };
            rows.push(ManifestRow {
                path,
                label: Some(label.clone()),
                group: Some(group),
                subset: Some(subset),
            });
        }
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Split { rows, unseen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn dataset(counts: &[(&str, usize)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (class, n) in counts {
            fs::create_dir_all(dir.path().join(class)).unwrap();
            for i in 0..*n {
                // Listing only: contents are never decoded by the split.
                fs::write(dir.path().join(class).join(format!("{i:03}.jpg")), b"x").unwrap();
            }
        }
        dir
    }

    fn options(unseen: UnseenChoice, seed: u64) -> SplitOptions {
        SplitOptions {
            unseen,
            seed,
            min_unseen_images: 5,
            exclude_unseen: vec!["*_other".into(), "detritus*".into()],
            val: 0.1,
            test: 0.2,
        }
    }

    fn split_csv(root: &Path, opts: &SplitOptions) -> Vec<u8> {
        let catalog = crate::data::scan(root).unwrap();
        make_split(&catalog, root, opts).unwrap().to_csv().unwrap()
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*_other", "copepod_other"));
        assert!(!wildcard_match("*_other", "other_copepod"));
        assert!(wildcard_match("detritus*", "detritus_blob"));
        assert!(wildcard_match("a*b*c", "axxbyyc"));
        assert!(!wildcard_match("a*b*c", "ac"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
    }

    #[test]
    fn same_seed_same_bytes_other_seed_differs() {
        let counts: Vec<(String, usize)> =
            (0..12).map(|i| (format!("class{i:02}"), 10 + i)).collect();
        let counts: Vec<(&str, usize)> = counts.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        let dir = dataset(&counts);
        let a = split_csv(dir.path(), &options(UnseenChoice::Count(4), 42));
        let b = split_csv(dir.path(), &options(UnseenChoice::Count(4), 42));
        assert_eq!(a, b);
        let c = split_csv(dir.path(), &options(UnseenChoice::Count(4), 43));
        assert_ne!(a, c);
        // Same listing in a different folder (different absolute paths) gives
        // the same relative manifest.
        let dir2 = dataset(&counts);
        assert_eq!(
            a,
            split_csv(dir2.path(), &options(UnseenChoice::Count(4), 42))
        );
    }

    #[test]
    fn unseen_pick_respects_minimum_and_exclusions() {
        let dir = dataset(&[
            ("a", 10),
            ("b", 10),
            ("c", 3),
            ("copepod_other", 50),
            ("detritus", 50),
            ("d", 6),
        ]);
        let catalog = crate::data::scan(dir.path()).unwrap();
        for seed in 0..20 {
            let split =
                make_split(&catalog, dir.path(), &options(UnseenChoice::Count(2), seed)).unwrap();
            assert_eq!(split.unseen.len(), 2);
            for class in &split.unseen {
                assert!(["a", "b", "d"].contains(&class.as_str()), "{class}");
            }
        }
        let err =
            make_split(&catalog, dir.path(), &options(UnseenChoice::Count(4), 0)).unwrap_err();
        assert!(err.to_string().contains("only 3 classes"), "{err}");
    }

    #[test]
    fn subsets_partition_each_class() {
        let dir = dataset(&[("a", 20), ("b", 10), ("c", 7)]);
        let catalog = crate::data::scan(dir.path()).unwrap();
        let split = make_split(
            &catalog,
            dir.path(),
            &options(UnseenChoice::Named(vec!["b".into()]), 1),
        )
        .unwrap();
        assert_eq!(split.rows.len(), 37);
        let count = |label: &str, subset: Subset| {
            split
                .rows
                .iter()
                .filter(|r| r.label.as_deref() == Some(label) && r.subset == Some(subset))
                .count()
        };
        assert_eq!(
            (
                count("a", Subset::Train),
                count("a", Subset::Val),
                count("a", Subset::Test)
            ),
            (14, 2, 4)
        );
        assert_eq!(
            (
                count("b", Subset::Train),
                count("b", Subset::Val),
                count("b", Subset::Test)
            ),
            (7, 1, 2)
        );
        assert!(
            split
                .rows
                .iter()
                .all(|r| (r.label.as_deref() == Some("b")) == (r.group == Some(Group::Unseen)))
        );
        assert!(split.rows.windows(2).all(|w| w[0].path < w[1].path));
        assert!(split.rows[0].path.starts_with("a/"));
        let err = make_split(
            &catalog,
            dir.path(),
            &options(UnseenChoice::Named(vec!["zzz".into()]), 1),
        )
        .unwrap_err();
        assert!(err.to_string().contains("zzz"));
    }

    #[test]
    fn unseen_choice_parses() {
        assert_eq!(
            "15".parse::<UnseenChoice>().unwrap(),
            UnseenChoice::Count(15)
        );
        assert_eq!(
            "a, b".parse::<UnseenChoice>().unwrap(),
            UnseenChoice::Named(vec!["a".into(), "b".into()])
        );
        assert!(",".parse::<UnseenChoice>().is_err());
    }
}
