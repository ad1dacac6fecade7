//! A labelled set of preprocessed images to evaluate on, with class indices,
//! capped per class so the pool's Gram matrices stay small.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// Labelled, preprocessed images.
#[derive(Clone, Debug, Default)]
pub struct EvalSet {
    /// Image ids (paths).
    pub ids: Vec<String>,
    /// Class index of each image.
    pub labels: Vec<usize>,
    /// Class names, sorted; `labels` index into them.
    pub class_names: Vec<String>,
    /// `size * size` preprocessed pixels per image.
    pub pixels: Vec<Vec<u8>>,
    /// Images per class before the cap.
    pub class_counts_before_cap: Vec<usize>,
}

impl EvalSet {
    /// Builds the set from `(id, label, pixels)`; images without a label are
    /// an error (evaluation needs labels). At most `max_per_class` images per
    /// class are kept, chosen by a seeded shuffle.
    pub fn from_labelled(
        source: &str,
        items: Vec<(String, Option<String>, Vec<u8>)>,
        max_per_class: Option<usize>,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let mut by_class: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        for (id, label, pixels) in items {
            let Some(label) = label else {
                anyhow::bail!(
                    "{source}: image {id} has no class label; evaluation needs labelled images (class folders or a manifest)"
                )
            };
            by_class.entry(label).or_default().push((id, pixels));
        }
        let mut set = EvalSet::default();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for (c, (name, mut members)) in by_class.into_iter().enumerate() {
            set.class_counts_before_cap.push(members.len());
            if let Some(cap) = max_per_class.filter(|&cap| members.len() > cap) {
                members.shuffle(&mut rng);
                members.truncate(cap);
                members.sort_by(|a, b| a.0.cmp(&b.0));
            }
            set.class_names.push(name);
            for (id, pixels) in members {
                set.ids.push(id);
                set.labels.push(c);
                set.pixels.push(pixels);
            }
        }
        Ok(set)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Images per class after the cap.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        self.labels.iter().for_each(|&c| counts[c] += 1);
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, label: Option<&str>) -> (String, Option<String>, Vec<u8>) {
        (id.into(), label.map(Into::into), vec![0; 4])
    }

    #[test]
    fn classes_are_sorted_and_capped() {
        let items = vec![
            item("a1", Some("b")),
            item("a2", Some("a")),
            item("a3", Some("b")),
            item("a4", Some("b")),
        ];
        let s = EvalSet::from_labelled("x", items, Some(2), 1).unwrap();
        assert_eq!(s.class_names, vec!["a", "b"]);
        assert_eq!(s.class_counts(), vec![1, 2]);
        assert_eq!(s.class_counts_before_cap, vec![1, 3]);
        assert_eq!(s.labels, vec![0, 1, 1]);
    }

    #[test]
    fn unlabelled_images_are_refused_by_name() {
        let err = EvalSet::from_labelled("data/x", vec![item("p.png", None)], None, 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("data/x: image p.png has no class label"),
            "{err}"
        );
    }
}
