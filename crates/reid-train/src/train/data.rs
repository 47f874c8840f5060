//! The training split in memory: every image decoded once (in parallel, on every core), resized
//! to the network's input with the same Pillow-style filter inference uses, and kept as 8-bit RGB
//! with a contiguous identity label. Augmentation then works on bytes in memory, so the loader
//! never waits on the disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use reid_core::parallel::fold_tasks;
use reid_model::{decode_image, resize_bilinear_pil};

/// Decoded, resized training images with their labels.
#[derive(Debug)]
pub struct TrainSet {
    /// `height * width * 3` bytes each (RGB, row-major).
    pub images: Vec<Vec<u8>>,
    /// Identity label of each image, in `0..identities.len()`.
    pub labels: Vec<usize>,
    /// The identities' names (Market-1501 person ids or folder names), in label order.
    pub identities: Vec<String>,
}

impl TrainSet {
    /// Reads `root/bounding_box_train` of a Market-1501 root, or a plain folder
    /// `root/identity/[camera/]*.jpg`.
    pub fn load(root: &Path, height: usize, width: usize) -> anyhow::Result<Self> {
        let files = list(root)?;
        if files.is_empty() {
            bail!("{}: the training split holds no images", root.display());
        }
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        for (_, identity) in &files {
            let next = names.len();
            names.entry(identity.clone()).or_insert(next);
        }
        // Labels in the sorted order of the identities' names (stable across runs).
        let identities: Vec<String> = names.keys().cloned().collect();
        let label_of: BTreeMap<&str, usize> = identities
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let labels = files.iter().map(|(_, id)| label_of[id.as_str()]).collect();
        let images = decode_all(&files, height, width)?;
        Ok(Self {
            images,
            labels,
            identities,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.len()
    }

    /// The attribute labels of every identity, in label order, from `root/attributes.json` (the
    /// synthetic world's): `[classes][labels]`.
    pub fn attribute_targets(&self, root: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
        let path = root.join("attributes.json");
        if !path.is_file() {
            bail!(
                "loss.attribute needs {} (the synthetic world's attribute labels; `reid synth` writes one): set loss.attribute = 0 for other data",
                path.display()
            );
        }
        let table = reid_data::synth::attributes::AttributeTable::read(&path)?;
        self.identities
            .iter()
            .map(|name| {
                let row = name.parse::<u32>().ok().and_then(|pid| table.get(pid));
                row.map(<[f32]>::to_vec).with_context(|| {
                    format!("{}: no attributes for identity {name}", path.display())
                })
            })
            .collect()
    }

    /// Number of identities (classes of the ID loss).
    pub fn classes(&self) -> usize {
        self.identities.len()
    }
}

/// `(file, identity)` pairs of the split.
fn list(root: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    if reid_data::layout::has_train_split(root) {
        let split = reid_data::layout::train_split(root).with_context(|| {
            "reading a dataset's training split (Market-1501 names PPPP_cCsS_FFFFFF_NN.jpg, or MSMT17's lists)"
        })?;
        return Ok(split
            .into_iter()
            .map(|i| (i.path, format!("{:04}", i.name.pid)))
            .collect());
    }
    let entries = reid_data::collect_images(&[root.to_path_buf()])?;
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(identity) = entry.identity else {
            bail!(
                "{}: not in an identity folder; a training folder holds ROOT/identity/[camera/]image.jpg (or is a Market-1501 root with bounding_box_train/)",
                entry.path.display()
            );
        };
        out.push((entry.path, identity));
    }
    Ok(out)
}

fn decode_all(
    files: &[(PathBuf, String)],
    height: usize,
    width: usize,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let one = |path: &Path| -> anyhow::Result<Vec<u8>> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let image = decode_image(&bytes).with_context(|| {
            format!(
                "{}: unreadable training image; remove or replace it",
                path.display()
            )
        })?;
        Ok(resize_bilinear_pil(&image, width as u32, height as u32).into_raw())
    };
    let states = fold_tasks(files.len(), Vec::new, |done: &mut Vec<_>, i| {
        done.push((i, one(&files[i].0)));
    });
    let mut images = vec![Vec::new(); files.len()];
    let mut errors = Vec::new();
    for (i, result) in states.into_iter().flatten() {
        match result {
            Ok(pixels) => images[i] = pixels,
            Err(e) => errors.push((i, e)),
        }
    }
    if let Some((_, first)) = errors.into_iter().min_by_key(|(i, _)| *i) {
        return Err(first);
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, shade: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(20, 40, image::Rgb([shade, 0, 0]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn plain_and_market_layouts_give_sorted_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("bob/c1/a.png"), 10);
        write_png(&dir.path().join("bob/c2/b.png"), 20);
        write_png(&dir.path().join("alice/x.png"), 30);
        let set = TrainSet::load(dir.path(), 64, 32).unwrap();
        assert_eq!(set.identities, vec!["alice", "bob"]);
        assert_eq!(set.labels, vec![0, 1, 1]);
        assert_eq!(set.images[0].len(), 64 * 32 * 3);
        assert_eq!(set.images[0][0], 30);

        let market = tempfile::tempdir().unwrap();
        let train = market.path().join("bounding_box_train");
        write_png(&train.join("0007_c1s1_000001_01.png"), 1);
        write_png(&train.join("0003_c2s1_000001_01.png"), 2);
        let set = TrainSet::load(market.path(), 64, 32).unwrap();
        assert_eq!(set.identities, vec!["0003", "0007"]);
        assert_eq!(set.classes(), 2);
    }

    #[test]
    fn a_broken_image_or_a_loose_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_png(&dir.path().join("bob/a.png"), 10);
        std::fs::write(dir.path().join("bob/broken.jpg"), b"not a jpeg").unwrap();
        let err = format!("{:#}", TrainSet::load(dir.path(), 64, 32).unwrap_err());
        assert!(
            err.contains("broken.jpg") && err.contains("remove or replace"),
            "{err}"
        );

        let loose = tempfile::tempdir().unwrap();
        write_png(&loose.path().join("x.png"), 1);
        let err = format!("{:#}", TrainSet::load(loose.path(), 64, 32).unwrap_err());
        assert!(err.contains("identity folder"), "{err}");
    }
}
