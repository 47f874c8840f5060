//! `reid eval`: Rank-k, mAP and mINP under the Market-1501 protocol (junk identity -1 ignored,
//! same identity and camera as the query removed) or CUHK03's single-gallery-shot one, from
//! saved features or from a Market-1501 folder embedded with a model.
//!
//! Saved features are a folder of four files, the format `--save-features` writes:
//! `query.npy` and `gallery.npy` (float32 matrices, one row per image, NumPy's `.npy`), and
//! `query.txt` and `gallery.txt` (the Market-1501 file name of each row, one per line).
//!
//! With `--tracklets` the rows are video frames named in MARS's convention
//! (`0001C1T0001F001.jpg`): the frames of each tracklet (identity, camera, tracklet number)
//! are averaged into one feature and the tracklets are evaluated with the same protocol (video
//! ReID, as on MARS).
//!
//! On a synthetic dataset (`reid synth`, with its `attributes.json`) it also says how often a
//! wrong best match is the query's look-alike, against chance.
//!
//! `--cmc-plot FILE` draws the CMC curve; `--visualize N` draws the ranked lists of the N
//! queries with the lowest AP (it needs the pictures: `--dataset`, or `--images ROOT` with
//! `--features`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::report::{Picture, RankedResult};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use reid_core::naming::{parse_market1501, parse_mars};
use reid_core::{
    distance_matrix, evaluate_queries, k_reciprocal_rerank, pool_tracklets, query_expansion,
    summarize, FeatureMatrix, Labels, Metric, Protocol, QueryExpansion, QueryMetrics, RerankParams,
};
use reid_data::layout::test_splits;
use reid_data::market1501::LabelledImage;
use reid_model::{baseline, decode_image};
use reid_pipeline::{device, Backend, Embedder};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MetricArg {
    /// 1 - cosine similarity.
    Cosine,
    /// Squared Euclidean distance.
    Euclidean,
}

/// A feature that needs no model.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BaselineArg {
    /// HSV colour histograms over 6 horizontal stripes (8 x 3 x 3 bins each, 432-d).
    HsvHistogram,
}

/// Which evaluation protocol.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProtocolArg {
    /// Market-1501 / DukeMTMC-reID / MSMT17: all gallery images, junk -1 ignored.
    Market1501,
    /// CUHK03 classic: single-gallery-shot CMC averaged over 10 random draws (seeded).
    Cuhk03,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["features", "dataset"]))]
pub struct EvalArgs {
    /// Folder of saved features (query.npy, gallery.npy, query.txt, gallery.txt).
    #[arg(long)]
    features: Option<PathBuf>,
    /// Dataset root to embed with --model: Market-1501 layout (query/, bounding_box_test/; also
    /// DukeMTMC-reID and CUHK03-NP's detected/ or labeled/) or MSMT17 (its list_*.txt).
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Model file used with --dataset.
    #[arg(long, default_value_os_t = super::default_model())]
    model: PathBuf,
    /// With --dataset: embed with a non-learned baseline feature instead of --model.
    #[arg(long, value_enum, requires = "dataset")]
    baseline: Option<BaselineArg>,
    /// With --dataset: also write the features in the saved-features format to this folder.
    #[arg(long)]
    save_features: Option<PathBuf>,
    /// Distance between features.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    metric: MetricArg,
    /// Re-rank with k-reciprocal encoding (k1 = 20, k2 = 6, lambda = 0.3) before evaluating.
    #[arg(long)]
    rerank: bool,
    /// Alpha query expansion (fast-reid's `aqe`: k = 10, alpha = 3, once) before ranking.
    #[arg(long)]
    query_expansion: bool,
    /// Evaluation protocol.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Market1501)]
    protocol: ProtocolArg,
    /// Longest CMC rank computed.
    #[arg(long, default_value_t = 50)]
    max_rank: usize,
    /// Crops per forward pass with --dataset.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Print the metrics as JSON.
    #[arg(long)]
    json: bool,
    /// Write the CMC curve to this PNG file.
    #[arg(long, value_name = "FILE")]
    cmc_plot: Option<PathBuf>,
    /// Draw the ranked lists (top 10) of the N queries with the lowest AP.
    #[arg(long, value_name = "N")]
    visualize: Option<usize>,
    /// Where --visualize writes its PNG.
    #[arg(long, value_name = "FILE", default_value = "worst-queries.png")]
    visualize_out: PathBuf,
    /// With --features: rows are MARS-named video frames; average each tracklet's frames and
    /// evaluate tracklets.
    #[arg(long, conflicts_with = "dataset")]
    tracklets: bool,
    /// With --features: the dataset root holding the pictures named in query.txt and
    /// gallery.txt, for --visualize (Market-1501: query/ and bounding_box_test/; MARS with
    /// --tracklets: bbox_test/PPPP/).
    #[arg(long, value_name = "ROOT")]
    images: Option<PathBuf>,
}

/// One side (query or gallery): features and the Market-1501 labels of each row.
struct Side {
    features: FeatureMatrix,
    pids: Vec<i64>,
    camids: Vec<i64>,
    /// The picture of each row, when known.
    paths: Option<Vec<PathBuf>>,
}

impl Side {
    fn labels(&self) -> Labels<'_> {
        Labels {
            pids: &self.pids,
            camids: &self.camids,
        }
    }
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let (query, gallery) = match (&args.features, &args.dataset) {
        (Some(dir), _) => (
            load_side(dir, "query", args.images.as_deref(), args.tracklets)?,
            load_side(dir, "gallery", args.images.as_deref(), args.tracklets)?,
        ),
        (None, Some(root)) => {
            let model = args.baseline.is_none().then_some(args.model.as_path());
            embed_dataset(root, model, args.batch, args.save_features.as_deref())?
        }
        (None, None) => bail!("give --features DIR or --dataset DIR"),
    };
    let metric = match args.metric {
        MetricArg::Cosine => Metric::Cosine,
        MetricArg::Euclidean => Metric::SquaredEuclidean,
    };
    let (query, gallery) = if args.query_expansion {
        let (features_q, features_g) = query_expansion(
            &query.features,
            &gallery.features,
            QueryExpansion::default(),
        )?;
        (
            Side {
                features: features_q,
                ..query
            },
            Side {
                features: features_g,
                ..gallery
            },
        )
    } else {
        (query, gallery)
    };
    let distances = if args.rerank {
        k_reciprocal_rerank(
            &query.features,
            &gallery.features,
            metric,
            RerankParams::default(),
        )?
    } else {
        distance_matrix(&query.features, &gallery.features, metric)?
    };
    let protocol = Protocol {
        max_rank: args.max_rank,
        ..match args.protocol {
            ProtocolArg::Market1501 => Protocol::market1501(),
            ProtocolArg::Cuhk03 => Protocol::cuhk03(0),
        }
    };
    if args.visualize.is_some() && (query.paths.is_none() || gallery.paths.is_none()) {
        bail!("--visualize needs the pictures: use --dataset, or --images ROOT with --features");
    }
    // Per-query metrics once: the summary and the worst queries both come from them.
    let per_query = evaluate_queries(&distances, query.labels(), gallery.labels(), &protocol)?;
    let m = summarize(&per_query)?;
    if args.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}%", 100.0 * v));
        println!(
            "{} queries ({} skipped: no true match), {} gallery images, {:?} distance{}",
            m.valid_queries + m.skipped_queries,
            m.skipped_queries,
            gallery.pids.len(),
            metric,
            if args.rerank {
                ", k-reciprocal re-ranking"
            } else {
                ""
            }
        );
        println!(
            "Rank-1 {}  Rank-5 {}  Rank-10 {}  mAP {:.2}%  mINP {:.2}%",
            pct(m.rank(1)),
            pct(m.rank(5)),
            pct(m.rank(10)),
            100.0 * m.map,
            100.0 * m.minp
        );
        let attributes = args.dataset.as_ref().map(|d| d.join("attributes.json"));
        if let Some(path) = attributes.filter(|p| p.exists()) {
            let bytes = std::fs::read(&path)?;
            let family =
                super::lookalike::families(&bytes).with_context(|| path.display().to_string())?;
            let c = super::lookalike::confusion(
                &distances,
                query.labels(),
                gallery.labels(),
                protocol.junk_pid,
                &family,
            );
            if c.errors > 0 {
                let share = c.on_lookalike as f64 / c.errors as f64;
                println!(
                    "Look-alikes (attributes.json): {} queries have one in the gallery; {} of their {} wrong best matches are a look-alike ({:.1}%, against {:.1}% for a random wrong match: {:.1}x)",
                    c.queries,
                    c.on_lookalike,
                    c.errors,
                    100.0 * share,
                    100.0 * c.chance,
                    share / c.chance.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
    if let Some(path) = &args.cmc_plot {
        let title = format!(
            "CMC, {:?} distance{}",
            metric,
            if args.rerank { ", re-ranked" } else { "" }
        );
        crate::report::save_png(&crate::report::cmc_plot(&m, &title), path)?;
        eprintln!("wrote the CMC curve to {}", path.display());
    }
    if let Some(n) = args.visualize {
        let rows = worst_queries(&distances, &per_query, &query, &gallery, &protocol, n)?;
        crate::report::save_png(&crate::report::ranked_lists(&rows), &args.visualize_out)?;
        eprintln!(
            "wrote the ranked lists of the {} worst queries to {}",
            rows.len(),
            args.visualize_out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One row per tracklet: the mean of its frames' features, labelled by its identity and camera,
/// in order of first appearance; its picture is its first frame (MARS keeps the query and
/// gallery frames in `bbox_test/PPPP/`).
fn tracklet_side(
    frames: &FeatureMatrix,
    names: &[&str],
    txt: &Path,
    images: Option<&Path>,
    side: &str,
) -> anyhow::Result<Side> {
    let mut index: std::collections::HashMap<(i64, u32, u32), usize> = Default::default();
    let (mut labels, mut pids, mut camids, mut firsts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (line, name) in names.iter().enumerate() {
        let name = name.trim();
        let parsed =
            parse_mars(name).with_context(|| format!("{} line {}", txt.display(), line + 1))?;
        let next = index.len();
        let t = *index
            .entry((parsed.pid, parsed.camid, parsed.tracklet))
            .or_insert_with(|| {
                pids.push(parsed.pid);
                camids.push(i64::from(parsed.camid));
                firsts.push(name.to_string());
                next
            });
        labels.push(t);
    }
    let features = pool_tracklets(frames, &labels, None)
        .with_context(|| format!("cannot pool the {side} tracklets"))?;
    let paths = images.map(|root| {
        firsts
            .iter()
            .map(|n| {
                root.join("bbox_test")
                    .join(n.get(..4).unwrap_or_default())
                    .join(n)
            })
            .collect()
    });
    Ok(Side {
        features,
        pids,
        camids,
        paths,
    })
}

/// The `n` valid queries with the lowest AP (ties: query order) and their first 10 results.
fn worst_queries(
    distances: &[f32],
    per_query: &[Option<QueryMetrics>],
    query: &Side,
    gallery: &Side,
    protocol: &Protocol,
    n: usize,
) -> anyhow::Result<Vec<crate::report::RankedRow>> {
    let (qpaths, gpaths) = match (&query.paths, &gallery.paths) {
        (Some(q), Some(g)) => (q, g),
        _ => bail!("--visualize needs the pictures"),
    };
    let ng = gallery.pids.len();
    let worst = reid_core::worst_queries(
        distances,
        per_query,
        query.labels(),
        gallery.labels(),
        protocol.junk_pid,
        n,
        10,
    );
    Ok(worst
        .into_iter()
        .map(|w| {
            let q = w.query;
            let row = &distances[q * ng..(q + 1) * ng];
            let name = qpaths[q].file_name().unwrap_or_default().to_string_lossy();
            crate::report::RankedRow {
                query: Picture::File(qpaths[q].clone()),
                caption: format!("{name}  AP {:.1}%", 100.0 * w.ap),
                results: w
                    .ranked
                    .into_iter()
                    .enumerate()
                    .map(|(i, g)| RankedResult {
                        picture: Picture::File(gpaths[g].clone()),
                        verdict: Some(gallery.pids[g] == query.pids[q]),
                        label: format!("#{} {:.3}", i + 1, row[g]),
                        detail: format!("c{}", gallery.camids[g]),
                    })
                    .collect(),
            }
        })
        .collect())
}

fn load_side(
    dir: &Path,
    side: &str,
    images: Option<&Path>,
    tracklets: bool,
) -> anyhow::Result<Side> {
    let npy = dir.join(format!("{side}.npy"));
    let txt = dir.join(format!("{side}.txt"));
    let bytes = std::fs::read(&npy).with_context(|| format!("cannot read {}", npy.display()))?;
    let features = FeatureMatrix::from_npy(&bytes).with_context(|| format!("{}", npy.display()))?;
    let names =
        std::fs::read_to_string(&txt).with_context(|| format!("cannot read {}", txt.display()))?;
    let names: Vec<&str> = names.lines().filter(|l| !l.trim().is_empty()).collect();
    if names.len() != features.rows() {
        bail!(
            "{} lists {} names but {} has {} rows",
            txt.display(),
            names.len(),
            npy.display(),
            features.rows()
        );
    }
    if tracklets {
        return tracklet_side(&features, &names, &txt, images, side);
    }
    let mut pids = Vec::with_capacity(names.len());
    let mut camids = Vec::with_capacity(names.len());
    for (line, name) in names.iter().enumerate() {
        let parsed = parse_market1501(name.trim())
            .with_context(|| format!("{} line {}", txt.display(), line + 1))?;
        pids.push(parsed.pid);
        camids.push(i64::from(parsed.camid));
    }
    let folder = if side == "query" {
        "query"
    } else {
        "bounding_box_test"
    };
    let paths = images.map(|root| {
        names
            .iter()
            .map(|n| root.join(folder).join(n.trim()))
            .collect()
    });
    Ok(Side {
        features,
        pids,
        camids,
        paths,
    })
}

/// Rank-1/5/10, mAP and mINP of `model` on a Market-1501 root (cosine distance, the
/// Market-1501 protocol): what `reid eval --dataset ROOT --model MODEL` prints.
pub fn dataset_metrics(root: &Path, model: &Path) -> anyhow::Result<reid_core::RankMetrics> {
    let (query, gallery) = embed_dataset(root, Some(model), 32, None)?;
    let distances = distance_matrix(&query.features, &gallery.features, Metric::Cosine)?;
    let per_query = evaluate_queries(
        &distances,
        query.labels(),
        gallery.labels(),
        &Protocol::market1501(),
    )?;
    Ok(summarize(&per_query)?)
}

/// Embeds a Market-1501 root's query and gallery with `model`, or with the HSV histogram when
/// there is none.
fn embed_dataset(
    root: &Path,
    model: Option<&Path>,
    batch: usize,
    save_features: Option<&Path>,
) -> anyhow::Result<(Side, Side)> {
    if save_features.is_some() && reid_data::msmt17::is_msmt17(root) {
        // The saved-features format labels rows by Market-1501 file names.
        bail!("--save-features writes Market-1501 names; MSMT17's images are named otherwise");
    }
    let (query, gallery) = test_splits(root)?;
    let embedder = match model {
        None => None,
        Some(model) => {
            let model = super::read_model(model)?;
            let device = pollster::block_on(device(Backend::Cpu))?;
            Some(Embedder::from_burnpack(&model, device, batch)?)
        }
    };
    let bar = ProgressBar::new((query.len() + gallery.len()) as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let mut sides = Vec::new();
    for (label, images) in [("query", &query), ("gallery", &gallery)] {
        bar.set_message(label);
        let features = match &embedder {
            Some(embedder) => embed_all(embedder, images, batch, &bar)?,
            None => histograms(images, &bar)?,
        };
        let side = Side {
            features,
            pids: images.iter().map(|i| i.name.pid).collect(),
            camids: images.iter().map(|i| i.name.camid.into()).collect(),
            paths: Some(images.iter().map(|i| i.path.clone()).collect()),
        };
        if let Some(out) = save_features {
            std::fs::create_dir_all(out)?;
            std::fs::write(out.join(format!("{label}.npy")), side.features.to_npy())?;
            let names: Vec<String> = images
                .iter()
                .map(|i| {
                    i.path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            std::fs::write(out.join(format!("{label}.txt")), names.join("\n") + "\n")?;
        }
        sides.push(side);
    }
    bar.finish_and_clear();
    let gallery = sides.pop().expect("two sides");
    let query = sides.pop().expect("two sides");
    Ok((query, gallery))
}

/// The HSV stripe histogram of each image (a file that cannot be decoded is an error).
fn histograms(images: &[LabelledImage], bar: &ProgressBar) -> anyhow::Result<FeatureMatrix> {
    let mut data = Vec::with_capacity(images.len() * baseline::DIM);
    for image in images {
        let bytes = std::fs::read(&image.path)
            .with_context(|| format!("cannot read {}", image.path.display()))?;
        let decoded = decode_image(&bytes).with_context(|| format!("{}", image.path.display()))?;
        data.extend(baseline::hsv_stripe_histogram(&decoded));
        bar.inc(1);
    }
    Ok(FeatureMatrix::new(data, baseline::DIM)?)
}

fn embed_all(
    embedder: &Embedder,
    images: &[LabelledImage],
    batch: usize,
    bar: &ProgressBar,
) -> anyhow::Result<FeatureMatrix> {
    let mut data = Vec::with_capacity(images.len() * embedder.embedding_dim());
    for chunk in images.chunks(batch.max(1)) {
        let files: Vec<Vec<u8>> = chunk
            .iter()
            .map(|i| {
                std::fs::read(&i.path).with_context(|| format!("cannot read {}", i.path.display()))
            })
            .collect::<Result<_, _>>()?;
        let slices: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
        for (image, result) in chunk
            .iter()
            .zip(pollster::block_on(embedder.embed_files(&slices)))
        {
            let embedding = result.with_context(|| format!("{}", image.path.display()))?;
            data.extend_from_slice(embedding.values());
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(FeatureMatrix::new(data, embedder.embedding_dim())?)
}
