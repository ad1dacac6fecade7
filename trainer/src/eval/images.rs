//! Per class, in the embedding space (cosine to the class centre, the mean
//! of the class's unit vectors): the 5 images closest to the centre (what the
//! encoder thinks is typical), the 5 furthest (outliers or label noise) and
//! the 5 images of other classes closest to it (likely confusions). Shown as
//! PNG image grids.

use std::io::Cursor;

use serde::Serialize;

use super::gram::Gram;

/// Images per row of each grid.
pub const PER_GRID: usize = 5;

/// One picked image.
#[derive(Clone, Debug, Serialize)]
pub struct Pick {
    /// Pool index.
    pub index: usize,
    /// Image id (path).
    pub id: String,
    /// Its class.
    pub class: String,
    /// Cosine similarity to the class centre.
    pub similarity: f64,
}

/// The three picks for one class.
#[derive(Clone, Debug, Serialize)]
pub struct ClassPicks {
    /// Class name.
    pub class: String,
    /// Closest members to the centre, closest first.
    pub closest: Vec<Pick>,
    /// Furthest members from the centre, furthest first.
    pub furthest: Vec<Pick>,
    /// Closest non-members to the centre, closest first.
    pub closest_other: Vec<Pick>,
}

/// Cosine similarity of every item to each class centre, from the cosine Gram
/// alone: `u_i . c / |c|` with `c` the mean unit vector of the class.
pub fn centre_similarities(cosine: &Gram, labels: &[usize], classes: usize) -> Vec<Vec<f64>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
    labels
        .iter()
        .enumerate()
        .for_each(|(i, &c)| members[c].push(i));
    members
        .iter()
        .map(|m| {
            if m.is_empty() {
                return vec![0.0; labels.len()];
            }
            let sq: f64 = m
                .iter()
                .flat_map(|&a| m.iter().map(move |&b| cosine.get(a, b) as f64))
                .sum::<f64>()
                / (m.len() * m.len()) as f64;
            let norm = sq.max(1e-24).sqrt();
            (0..labels.len())
                .map(|i| {
                    m.iter().map(|&j| cosine.get(i, j) as f64).sum::<f64>() / m.len() as f64 / norm
                })
                .collect()
        })
        .collect()
}

/// The picks for every class.
pub fn pick_images(
    cosine: &Gram,
    labels: &[usize],
    ids: &[String],
    class_names: &[String],
) -> Vec<ClassPicks> {
    let sims = centre_similarities(cosine, labels, class_names.len());
    let pick = |i: usize, c: usize| Pick {
        index: i,
        id: ids[i].clone(),
        class: class_names[labels[i]].clone(),
        similarity: sims[c][i],
    };
    (0..class_names.len())
        .map(|c| {
            let by_sim = |mut v: Vec<usize>| {
                v.sort_by(|&a, &b| sims[c][b].total_cmp(&sims[c][a]).then(a.cmp(&b)));
                v
            };
            let own = by_sim((0..labels.len()).filter(|&i| labels[i] == c).collect());
            let other = by_sim((0..labels.len()).filter(|&i| labels[i] != c).collect());
            ClassPicks {
                class: class_names[c].clone(),
                closest: own.iter().take(PER_GRID).map(|&i| pick(i, c)).collect(),
                furthest: own
                    .iter()
                    .rev()
                    .take(PER_GRID)
                    .map(|&i| pick(i, c))
                    .collect(),
                closest_other: other.iter().take(PER_GRID).map(|&i| pick(i, c)).collect(),
            }
        })
        .collect()
}

/// A one-row PNG of square gray images (`size x size` each) with 2-pixel
/// white gaps.
pub fn grid_png(images: &[&[u8]], size: usize) -> anyhow::Result<Vec<u8>> {
    let gap = 2;
    let width = (images.len().max(1) * (size + gap) - gap) as u32;
    let mut grid = image::GrayImage::from_pixel(width, size as u32, image::Luma([255]));
    for (k, im) in images.iter().enumerate() {
        anyhow::ensure!(
            im.len() == size * size,
            "image {k} has {} pixels, expected {}",
            im.len(),
            size * size
        );
        for y in 0..size {
            for x in 0..size {
                grid.put_pixel(
                    (k * (size + gap) + x) as u32,
                    y as u32,
                    image::Luma([im[y * size + x]]),
                );
            }
        }
    }
    let mut png = Vec::new();
    grid.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(png)
}

/// A `size x size` gray image scaled to `side x side` (area-like
/// triangle filter), for thumbnails.
pub fn thumbnail(pixels: &[u8], size: usize, side: usize) -> anyhow::Result<Vec<u8>> {
    let img =
        image::GrayImage::from_raw(size as u32, size as u32, pixels.to_vec()).ok_or_else(|| {
            anyhow::anyhow!(
                "image has {} pixels, expected {}",
                pixels.len(),
                size * size
            )
        })?;
    if side == size {
        return Ok(img.into_raw());
    }
    Ok(image::imageops::resize(
        &img,
        side as u32,
        side as u32,
        image::imageops::FilterType::Triangle,
    )
    .into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::gram::l2_normalized;

    #[test]
    fn picks_follow_the_class_centre() {
        // Class 0 around the x-axis, one outlier at 45 degrees; class 1 on y,
        // one member leaning towards x (the closest "other" for class 0).
        let rows = vec![
            vec![1.0, 0.0],
            vec![1.0, 0.05],
            vec![1.0, -0.05],
            vec![1.0, 1.0],
            vec![0.0, 1.0],
            vec![0.3, 1.0],
        ];
        let labels = [0, 0, 0, 0, 1, 1];
        let ids: Vec<String> = (0..6).map(|i| format!("img{i}")).collect();
        let names = vec!["x".to_string(), "y".to_string()];
        let cos = Gram::from_rows(&l2_normalized(&rows));
        let picks = pick_images(&cos, &labels, &ids, &names);
        assert_eq!(picks[0].furthest[0].id, "img3");
        assert_eq!(picks[0].closest.len(), 4);
        assert!(picks[0].closest[0].similarity > picks[0].closest[3].similarity);
        assert_eq!(picks[0].closest_other[0].id, "img5");
        assert_eq!(picks[1].closest_other[0].id, "img3");
    }

    #[test]
    fn grid_is_a_png_of_the_right_size() {
        let a = vec![0u8; 16];
        let b = vec![128u8; 16];
        let png = grid_png(&[&a, &b], 4).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(img.dimensions(), (10, 4));
        assert_eq!(img.get_pixel(0, 0).0, [0]);
        assert_eq!(img.get_pixel(4, 0).0, [255]);
        assert_eq!(img.get_pixel(6, 3).0, [128]);
        assert!(grid_png(&[&a[..3]], 4).is_err());
    }
}
