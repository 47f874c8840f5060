//! The inference worker: receives [`ToWorker`] messages, chooses and starts a backend, loads the
//! model from the page's origin, embeds images in small batches, finds the people in photos and
//! follows them through videos' frames (one tracker per video), passing every embedding through
//! the temporal aggregator when the user chose one, answering with [`FromWorker`]. A panic is reported as [`FromWorker::Fatal`] so the UI can restart the worker
//! on the CPU without losing queued images.

use futures_channel::mpsc;
use futures_util::StreamExt;
use js_sys::{Function, Promise, Reflect, Uint8Array};
use std::collections::BTreeMap;

use reid_core::{k_reciprocal_rerank, BBox, FeatureMatrix, Metric, RerankParams, TrackerConfig};
use reid_pipeline::{
    decode_image, device, is_aggregator_file, thumbnail_png, Backend, Device, Embedder,
    GallerySearch, Heat, HogParams, PeopleDetector, RgbImage, TrackletAggregator, VideoTracker,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};

use crate::gallery_file::fingerprint;
use crate::js::js_error;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, Response};

use crate::protocol::{
    choose_backend, looks_like_software_adapter, AdapterInfo, AggregatorInfo, FoundBoxes,
    FoundPerson, FromWorker, HeatMap, ModelSource, RankedHit, ReadyInfo, ToWorker, VideoTrack,
    MAX_PEOPLE,
};

/// Most images embedded in one forward pass in the browser.
const MAX_BATCH: usize = 8;

fn scope() -> DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn now_ms() -> f64 {
    scope().performance().map_or(0.0, |p| p.now())
}

fn post(message: &FromWorker) {
    match serde_wasm_bindgen::to_value(message) {
        Ok(value) => {
            let _ = scope().post_message(&value);
        }
        Err(e) => web_sys::console::error_1(&format!("cannot send a message: {e}").into()),
    }
}

/// Runs the module's static constructors once (burn's GPU compiler registers its IR dialects
/// through `inventory`). Without an explicit call wasm-ld takes the module for a "command"
/// and runs them all at the start of every exported function: each message, callback and
/// allocation the browser made into the worker ran them again, 25 to 50 ms a video frame.
fn run_constructors() {
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    // SAFETY: the linker's function that runs the constructors, called once, before any code
    // that reads what they register.
    unsafe { __wasm_call_ctors() }
}

/// Starts the worker's message loop.
pub fn start() {
    run_constructors();
    std::panic::set_hook(Box::new(|info| {
        post(&FromWorker::Fatal {
            message: format!("the inference worker stopped: {info}"),
        });
    }));
    let (tx, rx) = mpsc::unbounded::<ToWorker>();
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        match serde_wasm_bindgen::from_value::<ToWorker>(event.data()) {
            Ok(message) => {
                let _ = tx.unbounded_send(message);
            }
            Err(e) => post(&FromWorker::Fatal {
                message: format!("the worker received a message it does not understand: {e}"),
            }),
        }
    });
    scope().set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    onmessage.forget();
    spawn_local(run(rx));
    crate::requests::keep_record();
    post(&FromWorker::Listening);
}

async fn run(mut rx: mpsc::UnboundedReceiver<ToWorker>) {
    let mut embedder: Option<Embedder> = None;
    // What the last `Ready` said: the backend in use; a switched model keeps its backend,
    // reason and adapter.
    let mut ready: Option<ReadyInfo> = None;
    let mut aggregator: Option<Aggregator> = None;
    let mut videos: BTreeMap<u32, VideoJob> = BTreeMap::new();
    // OpenCV's HOG people detector on the backend in use (made when first needed, after each
    // start of a backend).
    let mut hog: Option<PeopleDetector> = None;
    let mut deferred: Option<ToWorker> = None;
    loop {
        let message = match deferred.take() {
            Some(m) => m,
            None => match rx.next().await {
                Some(m) => m,
                None => return,
            },
        };
        match message {
            ToWorker::Start {
                requested,
                model,
                aggregator: chosen,
            } => match start_backend(requested, &model).await {
                Ok((loaded, mut info)) => {
                    // The aggregator chosen before a restart; if it no longer loads, the
                    // model runs without it and the user is told.
                    if let Some(source) = chosen {
                        match load_aggregator(&source, &loaded).await {
                            Ok(a) => {
                                info.aggregator = Some(a.info.clone());
                                aggregator = Some(a);
                            }
                            Err(message) => post(&FromWorker::ModelRefused {
                                name: source.name().to_string(),
                                message,
                            }),
                        }
                    }
                    embedder = Some(loaded);
                    hog = None;
                    post(&FromWorker::Ready(Box::new(info.clone())));
                    ready = Some(info);
                }
                Err(message) => post(&FromWorker::Fatal { message }),
            },
            ToWorker::SwitchModel { model } if is_model_aggregator(&model) => {
                let name = model.name().to_string();
                let loaded = match (&embedder, &ready) {
                    (Some(e), Some(info)) => {
                        load_aggregator(&model, e).await.map(|a| (a, info.clone()))
                    }
                    _ => Err("no model is running yet; try again in a moment".into()),
                };
                match loaded {
                    Ok((a, mut info)) => {
                        info.aggregator = Some(a.info.clone());
                        aggregator = Some(a);
                        post(&FromWorker::Ready(Box::new(ReadyInfo {
                            aggregator_switched: true,
                            requests: crate::requests::made(),
                            ..info.clone()
                        })));
                        ready = Some(info);
                    }
                    Err(message) => post(&FromWorker::ModelRefused { name, message }),
                }
            }
            ToWorker::SwitchModel { model } => {
                let name = model.name().to_string();
                let switched = match (&embedder, &ready) {
                    (Some(old), Some(info)) => {
                        let start = now_ms();
                        load_model(&model, old.device().clone())
                            .await
                            .map(|(loaded, file)| {
                                let info = ready_info(
                                    &loaded,
                                    file,
                                    start,
                                    (info.backend, info.reason.clone(), info.adapter.clone()),
                                );
                                (loaded, info)
                            })
                    }
                    _ => Err("no model is running yet; try again in a moment".into()),
                };
                match switched {
                    Ok((loaded, mut info)) => {
                        // An aggregator reads one network's embeddings: a network of another
                        // width leaves it out.
                        if let Some(a) = aggregator.take() {
                            if a.aggregator.d_input() == loaded.embedding_dim() {
                                info.aggregator = Some(a.info.clone());
                                aggregator = Some(a);
                            }
                        }
                        embedder = Some(loaded);
                        post(&FromWorker::Ready(Box::new(info.clone())));
                        ready = Some(info);
                    }
                    Err(message) => post(&FromWorker::ModelRefused { name, message }),
                }
            }
            ToWorker::Search {
                query_id,
                query,
                gallery_ids,
                gallery,
                k,
                rerank,
            } => {
                let start = now_ms();
                let result = match &embedder {
                    Some(e) => search(e, query, &gallery_ids, gallery, k, rerank).await,
                    None => Err("the model is not loaded".into()),
                };
                post(&match result {
                    Ok(hits) => FromWorker::Ranked {
                        query_id,
                        hits,
                        backend: in_use(&ready),
                        ms: now_ms() - start,
                    },
                    Err(message) => FromWorker::SearchFailed { query_id, message },
                });
            }
            ToWorker::EvalEmbed { run, first, files } => post(&match &embedder {
                Some(e) => eval_embed(e, run, first, &files).await,
                None => FromWorker::EvalFailed {
                    run,
                    index: Some(first),
                    message: "the model is not loaded".into(),
                },
            }),
            ToWorker::Evaluate {
                run,
                query,
                gallery,
                rerank,
            } => {
                let start = now_ms();
                post(&match crate::evaluation::evaluate(query, gallery, rerank) {
                    Ok(report) => FromWorker::Evaluated {
                        run,
                        report: Box::new(report),
                        ms: now_ms() - start,
                    },
                    Err(message) => FromWorker::EvalFailed {
                        run,
                        index: None,
                        message,
                    },
                });
            }
            ToWorker::Explain {
                run,
                query,
                gallery,
            } => post(&match &embedder {
                Some(e) => explain(e, run, &query, &gallery).await,
                None => FromWorker::EvalFailed {
                    run,
                    index: None,
                    message: "the model is not loaded".into(),
                },
            }),
            ToWorker::Forget => {
                videos.clear();
                post(&FromWorker::Forgotten);
            }
            ToWorker::Benchmark { batch, iters } => {
                // The sizes timed (and reported) are kept within reason.
                let (batch, iters) = (batch.clamp(1, 64), iters.clamp(1, 100));
                let measured = match &embedder {
                    Some(e) => match benchmark(e, batch, iters).await {
                        Ok(rate) => match &aggregator {
                            Some(a) => tracklet_ms(&a.aggregator).await.map(|ms| (rate, Some(ms))),
                            None => Ok((rate, None)),
                        },
                        Err(message) => Err(message),
                    },
                    None => Err("the model is not loaded".to_string()),
                };
                post(&match measured {
                    Ok(((crops_per_s, iters), tracklet_ms)) => FromWorker::Benchmarked {
                        backend: in_use(&ready),
                        batch,
                        iters,
                        crops_per_s,
                        tracklet_ms,
                    },
                    Err(message) => FromWorker::BenchmarkFailed { message },
                });
            }
            ToWorker::VideoFrame {
                id,
                index,
                time_s,
                width,
                height,
                rgba,
                found,
            } => {
                let Some(e) = &embedder else {
                    post(&FromWorker::Failed {
                        id,
                        message: "the model is not loaded".into(),
                    });
                    continue;
                };
                if index == 0 {
                    videos.remove(&id);
                }
                let job = match videos.entry(id) {
                    std::collections::btree_map::Entry::Occupied(job) => job.into_mut(),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        match VideoTracker::new(TrackerConfig::default(), true) {
                            Ok(tracker) => slot.insert(VideoJob {
                                tracker,
                                times: Vec::new(),
                                size: [width, height],
                            }),
                            Err(e) => {
                                post(&FromWorker::Failed {
                                    id,
                                    message: e.to_string(),
                                });
                                continue;
                            }
                        }
                    }
                };
                let frame = VideoFrame {
                    index,
                    time_s,
                    width,
                    height,
                    rgba,
                    found,
                };
                let detector = hog
                    .get_or_insert_with(|| PeopleDetector::for_backend(in_use(&ready), e.device()));
                let answer = track_frame(id, job, e, detector, frame).await;
                if matches!(answer, FromWorker::Failed { .. }) {
                    videos.remove(&id);
                }
                post(&answer);
            }
            ToWorker::FindPeople {
                ticket,
                width,
                height,
                rgba,
            } => {
                let start = now_ms();
                post(&match rgba_to_rgb(width, height, &rgba) {
                    Some(picture) => match frame_people(&PeopleDetector::Cpu, &picture).await {
                        Ok(people) => FromWorker::PeopleFound {
                            ticket,
                            found: FoundBoxes::new(&people, now_ms() - start),
                        },
                        Err(e) => FromWorker::FindFailed {
                            ticket,
                            message: format!("finding people: {e}"),
                        },
                    },
                    None => FromWorker::FindFailed {
                        ticket,
                        message: format!(
                            "{} bytes are not a {width}x{height} RGBA picture",
                            rgba.len()
                        ),
                    },
                });
            }
            ToWorker::VideoEnd { id } => {
                let answer = match (videos.remove(&id), &embedder) {
                    (Some(job), Some(_)) => video_tracks(id, job, aggregator.as_ref()).await,
                    (None, Some(_)) => FromWorker::Tracks {
                        id,
                        tracks: Vec::new(),
                        left_out: 0,
                        frames: 0,
                    },
                    (_, None) => FromWorker::Failed {
                        id,
                        message: "the model is not loaded".into(),
                    },
                };
                post(&answer);
            }
            ToWorker::Detect { id, bytes } => post(&match &embedder {
                Some(e) => {
                    let detector = hog.get_or_insert_with(|| {
                        PeopleDetector::for_backend(in_use(&ready), e.device())
                    });
                    people(e, detector, aggregator.as_ref(), id, &bytes).await
                }
                None => FromWorker::Failed {
                    id,
                    message: "the model is not loaded".into(),
                },
            }),
            ToWorker::Embed { id, bytes } => {
                // Take what else is already queued, up to a batch.
                let mut batch = vec![(id, bytes)];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(ToWorker::Embed { id, bytes }) => batch.push((id, bytes)),
                        Ok(other) => {
                            deferred = Some(other);
                            break;
                        }
                        _ => break,
                    }
                }
                let Some(embedder) = &embedder else {
                    for (id, _) in batch {
                        post(&FromWorker::Failed {
                            id,
                            message: "the model is not loaded".into(),
                        });
                    }
                    continue;
                };
                let start = now_ms();
                let files: Vec<&[u8]> = batch.iter().map(|(_, b)| b.as_slice()).collect();
                let results: Vec<Result<Vec<f32>, String>> = embedder
                    .embed_files(&files)
                    .await
                    .into_iter()
                    .map(|r| r.map(|e| e.into_values()).map_err(|e| e.to_string()))
                    .collect();
                let results = match &aggregator {
                    Some(a) => a.pictures(results).await,
                    None => results,
                };
                let ms = (now_ms() - start) / batch.len() as f64;
                for ((id, _), result) in batch.iter().zip(results) {
                    post(&match result {
                        Ok(embedding) => FromWorker::Embedded {
                            id: *id,
                            embedding,
                            ms,
                        },
                        Err(message) => FromWorker::Failed { id: *id, message },
                    });
                }
            }
        }
    }
}

/// The Evaluate page's pictures from `first` on, embedded by the image network alone; the
/// first that cannot be is named by its index.
async fn eval_embed(
    embedder: &Embedder,
    run: u32,
    first: u32,
    files: &[serde_bytes::ByteBuf],
) -> FromWorker {
    let slices: Vec<&[u8]> = files.iter().map(|f| f.as_slice()).collect();
    let (mut embeddings, mut dim) = (Vec::new(), 0);
    for (i, result) in embedder.embed_files(&slices).await.into_iter().enumerate() {
        match result {
            Ok(e) => {
                dim = e.values().len();
                embeddings.extend_from_slice(e.values());
            }
            Err(e) => {
                return FromWorker::EvalFailed {
                    run,
                    index: Some(first + i as u32),
                    message: e.to_string(),
                }
            }
        }
    }
    FromWorker::EvalEmbedded {
        run,
        embeddings,
        dim,
    }
}

/// Decodes a query and a gallery picture and splits their similarity over the regions of each.
async fn explain(embedder: &Embedder, run: u32, query: &[u8], gallery: &[u8]) -> FromWorker {
    let start = now_ms();
    let failed = |index: Option<u32>, message: String| FromWorker::EvalFailed {
        run,
        index,
        message,
    };
    let (q, g) = match (decode_image(query), decode_image(gallery)) {
        (Ok(q), Ok(g)) => (q, g),
        (Err(e), _) => return failed(Some(0), e.to_string()),
        (_, Err(e)) => return failed(Some(1), e.to_string()),
    };
    let heat = |h: Heat| HeatMap {
        width: h.width,
        height: h.height,
        values: h.values,
    };
    match embedder.explain_pair(q, g).await {
        Ok(pair) => FromWorker::Explained {
            run,
            similarity: pair.similarity,
            query: heat(pair.first),
            gallery: heat(pair.second),
            ms: now_ms() - start,
        },
        Err(e) => failed(None, e.to_string()),
    }
}

/// Decodes photo `id`, finds its people (HOG, on the backend in use: tensor operations on
/// WebGPU) and embeds each on the backend in use (through the aggregator, as one-frame tracks,
/// when there is one).
async fn people(
    embedder: &Embedder,
    detector: &PeopleDetector,
    aggregator: Option<&Aggregator>,
    id: u32,
    bytes: &[u8],
) -> FromWorker {
    let start = now_ms();
    let photo = match decode_image(bytes) {
        Ok(photo) => photo,
        Err(e) => {
            return FromWorker::Failed {
                id,
                message: e.to_string(),
            }
        }
    };
    let mut found = match detector.people_in(&photo, &HogParams::default()).await {
        Ok(found) => found,
        Err(e) => {
            return FromWorker::Failed {
                id,
                message: format!("finding people: {e}"),
            }
        }
    };
    let left_out = found.len().saturating_sub(MAX_PEOPLE);
    found.truncate(MAX_PEOPLE);
    let detect_ms = now_ms() - start;
    let (places, crops): (Vec<_>, Vec<RgbImage>) = found
        .into_iter()
        .map(|p| ((p.bbox, p.score), p.crop))
        .unzip();
    let embeddings = match embedder.embed_images(&crops).await {
        Ok(e) => e.into_iter().map(|e| Ok(e.into_values())).collect(),
        Err(e) => {
            return FromWorker::Failed {
                id,
                message: e.to_string(),
            }
        }
    };
    let embeddings = match aggregator {
        Some(a) => a.pictures(embeddings).await,
        None => embeddings,
    };
    let embeddings = match embeddings.into_iter().collect::<Result<Vec<_>, String>>() {
        Ok(e) => e,
        Err(message) => return FromWorker::Failed { id, message },
    };
    FromWorker::People {
        id,
        width: photo.width(),
        height: photo.height(),
        people: places
            .into_iter()
            .zip(embeddings)
            .map(|((b, score), e)| FoundPerson {
                bbox: [b.x, b.y, b.w, b.h],
                score: score as f32,
                embedding: e,
            })
            .collect(),
        left_out,
        detect_ms,
        ms: now_ms() - start,
    }
}

/// Timed passes of the benchmark stop once they have taken this long (after at least one).
const BENCHMARK_BUDGET_MS: f64 = 10_000.0;

/// Embeds `batch` synthetic crops at the model's input size up to `iters` times after a warm-up
/// pass, stopping once the timed passes have taken [`BENCHMARK_BUDGET_MS`]; returns crops per
/// second and the passes timed.
async fn benchmark(
    embedder: &Embedder,
    batch: usize,
    iters: usize,
) -> Result<(f64, usize), String> {
    let [height, width] = [
        embedder.config().input.height,
        embedder.config().input.width,
    ];
    let crops: Vec<RgbImage> = (0..batch)
        .filter_map(|i| {
            let pixels = (0..height * width * 3)
                .map(|k| (k * 7 + i * 13) as u8)
                .collect();
            RgbImage::from_raw(width as u32, height as u32, pixels)
        })
        .collect();
    embedder
        .embed_images(&crops)
        .await
        .map_err(|e| e.to_string())?;
    let start = now_ms();
    let mut passes = 0;
    while passes < iters && (passes == 0 || now_ms() - start < BENCHMARK_BUDGET_MS) {
        embedder
            .embed_images(&crops)
            .await
            .map_err(|e| e.to_string())?;
        passes += 1;
    }
    Ok((
        (batch * passes) as f64 / ((now_ms() - start) / 1000.0),
        passes,
    ))
}

/// The aggregator's median time, in ms, over 31 aggregations of a 16-frame track (after one
/// warm-up), each from the frame embeddings to the track's unit vector read back (`reid
/// temporal` times the network alone on a ready tensor, without a warm-up).
async fn tracklet_ms(aggregator: &TrackletAggregator) -> Result<f64, String> {
    let d = aggregator.d_input();
    let frames: Vec<Vec<f32>> = (0..16)
        .map(|t| {
            (0..d)
                .map(|k| ((t * 31 + k * 7) % 97) as f32 / 97.0 - 0.5)
                .collect()
        })
        .collect();
    let mut times = Vec::with_capacity(31);
    for pass in 0..32 {
        let start = now_ms();
        aggregator
            .embed(&frames)
            .await
            .map_err(|e| format!("the aggregator failed: {e}"))?;
        if pass > 0 {
            times.push(now_ms() - start);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Ranks the gallery for one query on the embedder's device (matrix product and top-k there).
async fn search(
    embedder: &Embedder,
    query: Vec<f32>,
    gallery_ids: &[u32],
    gallery: Vec<f32>,
    k: usize,
    rerank: bool,
) -> Result<Vec<RankedHit>, String> {
    let dim = query.len();
    let query = FeatureMatrix::new(query, dim).map_err(|e| format!("query: {e}"))?;
    let gallery = FeatureMatrix::new(gallery, dim).map_err(|e| format!("gallery: {e}"))?;
    if gallery.rows() != gallery_ids.len() {
        return Err(format!(
            "{} gallery ids for {} gallery rows",
            gallery_ids.len(),
            gallery.rows()
        ));
    }
    let (query, gallery) = (query.l2_normalized(), gallery.l2_normalized());
    let index = GallerySearch::new(&gallery, embedder.device()).map_err(|e| e.to_string())?;
    let k = if rerank { gallery.rows() } else { k };
    let hits = index
        .top_k(&query, k)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .unwrap_or_default();
    if !rerank {
        return Ok(hits
            .into_iter()
            .map(|h| RankedHit {
                id: gallery_ids[h.index],
                score: h.score,
                distance: None,
            })
            .collect());
    }
    let distance = k_reciprocal_rerank(&query, &gallery, Metric::Cosine, RerankParams::default())
        .map_err(|e| format!("re-ranking: {e}"))?;
    // `reid search --rerank`'s order: by distance, ties by gallery row.
    let mut rows: Vec<(usize, f32)> = hits.into_iter().map(|h| (h.index, h.score)).collect();
    rows.sort_by(|a, b| distance[a.0].total_cmp(&distance[b.0]).then(a.0.cmp(&b.0)));
    Ok(rows
        .into_iter()
        .map(|(row, score)| RankedHit {
            id: gallery_ids[row],
            score,
            distance: Some(distance[row]),
        })
        .collect())
}

async fn start_backend(
    requested: Option<Backend>,
    model: &ModelSource,
) -> Result<(Embedder, ReadyInfo), String> {
    let start = now_ms();
    let probe = probe_webgpu().await;
    let (mut backend, mut reason) = choose_backend(requested, &probe);
    let device = match device(backend).await {
        Ok(device) => device,
        Err(e) => {
            reason = format!("{e}; the CPU runs the model instead");
            backend = Backend::Cpu;
            device(Backend::Cpu).await.map_err(|e| e.to_string())?
        }
    };
    let (embedder, file) = load_model(model, device).await?;
    let running = (backend, reason, probe.ok());
    let info = ready_info(&embedder, file, start, running);
    Ok((embedder, info))
}

/// The backend the last `Ready` named (the CPU before any).
fn in_use(ready: &Option<ReadyInfo>) -> Backend {
    ready.as_ref().map_or(Backend::Cpu, |r| r.backend)
}

/// What `Ready` says about `embedder`, loaded from `file` since `start`, on `running`: the
/// backend, why it was chosen, and the WebGPU adapter.
fn ready_info(
    embedder: &Embedder,
    file: ModelFile,
    start: f64,
    (backend, reason, adapter): (Backend, String, Option<AdapterInfo>),
) -> ReadyInfo {
    let config = embedder.config();
    ReadyInfo {
        backend,
        reason,
        adapter,
        architecture: config.backbone.label(),
        dim: embedder.embedding_dim(),
        input: [config.input.height, config.input.width],
        model_bytes: file.bytes,
        fingerprint: file.fingerprint,
        provenance: file.provenance,
        load_ms: now_ms() - start,
        aggregator: None,
        aggregator_switched: false,
        requests: crate::requests::made(),
    }
}

/// The temporal aggregator in use, and what `Ready` says of it.
struct Aggregator {
    aggregator: TrackletAggregator,
    info: AggregatorInfo,
}

impl Aggregator {
    /// Pictures' embeddings (or why each failed) through the aggregator as one-frame tracks,
    /// in one pass; a failure of the pass fails every picture.
    async fn pictures(
        &self,
        results: Vec<Result<Vec<f32>, String>>,
    ) -> Vec<Result<Vec<f32>, String>> {
        let ok: Vec<Vec<f32>> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        let mut through = match self.aggregator.embed_pictures(&ok).await {
            Ok(e) => e.into_iter(),
            Err(e) => {
                let message = format!("the aggregator failed: {e}");
                return results
                    .into_iter()
                    .map(|r| r.and(Err(message.clone())))
                    .collect();
            }
        };
        results
            .into_iter()
            .map(|r| {
                r.and_then(|_| {
                    through.next().flatten().ok_or_else(|| {
                        "the aggregator's embedding of this picture is zero or not a number".into()
                    })
                })
            })
            .collect()
    }
}

/// Whether the user's file is a temporal aggregator's rather than an image network's.
fn is_model_aggregator(model: &ModelSource) -> bool {
    matches!(model, ModelSource::File { bytes, .. } if is_aggregator_file(bytes))
}

/// Loads the temporal aggregator in `source` for the embeddings of `embedder`'s network.
async fn load_aggregator(source: &ModelSource, embedder: &Embedder) -> Result<Aggregator, String> {
    let name = source.name().to_string();
    let bytes = source_bytes(source).await?;
    let aggregator = TrackletAggregator::from_burnpack(
        &bytes,
        embedder.device().clone(),
        embedder.embedding_dim(),
    )
    .map_err(|e| format!("the aggregator {name} cannot be used: {e}"))?;
    let info = AggregatorInfo {
        name,
        kind: aggregator.kind().name().to_string(),
        label: aggregator.kind().label().to_string(),
        dim: aggregator.embedding_dim(),
        params: aggregator.learned_params(),
        fingerprint: fingerprint(&bytes),
    };
    Ok(Aggregator { aggregator, info })
}

/// A video being tracked: its tracker, when each frame tracked so far is shown, and the
/// frames' size (every frame must have it).
struct VideoJob {
    tracker: VideoTracker,
    times: Vec<f64>,
    size: [u32; 2],
}

/// One video frame as the page sent it.
struct VideoFrame {
    index: u32,
    time_s: f64,
    width: u32,
    height: u32,
    rgba: Vec<u8>,
    /// Its people, when a second worker found them.
    found: Option<FoundBoxes>,
}

/// Finds the people in `frame` (HOG at OpenCV's default threshold, on the backend in use),
/// embeds them and tracks them with the rest of the video; a frame of the wrong size or out of
/// order, or a failed device, ends the video.
async fn track_frame(
    id: u32,
    job: &mut VideoJob,
    embedder: &Embedder,
    detector: &PeopleDetector,
    frame: VideoFrame,
) -> FromWorker {
    let start = now_ms();
    let id_failed = |message: String| FromWorker::Failed { id, message };
    let VideoFrame {
        index,
        time_s,
        width,
        height,
        rgba,
        found,
    } = frame;
    let checked = if [width, height] != job.size {
        Err(format!(
            "frame {index} is {width}x{height}, the video's first was {}x{}",
            job.size[0], job.size[1]
        ))
    } else if index as usize != job.times.len() {
        Err(format!(
            "frame {index} came after {} frames: frames were lost",
            job.times.len()
        ))
    } else {
        rgba_to_rgb(width, height, &rgba).ok_or_else(|| {
            format!(
                "frame {index} holds {} bytes, not the {width}x{height} RGBA picture it claims",
                rgba.len()
            )
        })
    };
    let picture = match checked {
        Ok(p) => p,
        Err(message) => return id_failed(message),
    };
    // Found beside this worker, the time is the other worker's (not part of `ms`).
    let (boxes, detect_ms) = match found {
        Some(found) => match found.people() {
            Ok(boxes) => (boxes, found.ms),
            Err(e) => return id_failed(format!("frame {index}: {e}")),
        },
        None => {
            let detect_start = now_ms();
            match frame_people(detector, &picture).await {
                Ok(boxes) => (boxes, now_ms() - detect_start),
                Err(e) => return id_failed(format!("frame {index}: finding people: {e}")),
            }
        }
    };
    match job
        .tracker
        .next_frame(Some(embedder), Some(&picture), &boxes)
        .await
    {
        Ok(tracks) => {
            job.times.push(time_s);
            FromWorker::FrameTracked {
                id,
                index,
                people: boxes.len(),
                followed: tracks.observations.len(),
                boxes: tracks
                    .observations
                    .iter()
                    .flat_map(|o| {
                        let b = o.bbox;
                        [o.track_id as f32, b.x, b.y, b.w, b.h]
                    })
                    .collect(),
                detect_ms,
                ms: now_ms() - start,
            }
        }
        Err(e) => id_failed(format!("frame {index}: {e}")),
    }
}

/// The people in a video frame, as the tracker takes them: HOG at OpenCV's defaults, every
/// box kept (margin 0). Both workers find them so, the inference worker itself or the people
/// finder beside it.
async fn frame_people(
    detector: &PeopleDetector,
    frame: &RgbImage,
) -> Result<Vec<(BBox, f32)>, String> {
    detector
        .boxes(frame, &HogParams::default(), 0.0)
        .await
        .map_err(|e| e.to_string())
}

/// `width` x `height` RGBA bytes as an RGB picture; `None` when the sizes disagree or are 0.
fn rgba_to_rgb(width: u32, height: u32, rgba: &[u8]) -> Option<RgbImage> {
    let pixels = (width as usize).checked_mul(height as usize)?;
    if pixels == 0 || rgba.len() != pixels.checked_mul(4)? {
        return None;
    }
    let rgb = rgba
        .chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect();
    RgbImage::from_raw(width, height, rgb)
}

/// Ends video `id`: its tracks, longest first, each with its time span, best view and
/// embedding (the aggregator's when there is one, else the quality-weighted mean).
async fn video_tracks(id: u32, job: VideoJob, aggregator: Option<&Aggregator>) -> FromWorker {
    let frames = job.times.len() as u32;
    let (mut tracklets, views) = job.tracker.finish();
    tracklets.sort_by(|a, b| {
        b.frames_seen
            .cmp(&a.frames_seen)
            .then(a.track_id.cmp(&b.track_id))
    });
    let left_out = tracklets.len().saturating_sub(MAX_PEOPLE);
    tracklets.truncate(MAX_PEOPLE);
    // The tracker counts frames from 1.
    let time = |frame: u64| {
        usize::try_from(frame)
            .ok()
            .and_then(|f| job.times.get(f.checked_sub(1)?))
            .copied()
            .unwrap_or(0.0)
    };
    let mut tracks = Vec::new();
    for t in tracklets {
        let embedding = match aggregator {
            Some(a) => match a.aggregator.embed_tracklet(&t).await {
                Ok(e) => e,
                Err(e) => {
                    return FromWorker::Failed {
                        id,
                        message: format!("the aggregator failed: {e}"),
                    }
                }
            },
            None => t.embedding(),
        };
        // A track whose people were never embedded (no crop) has nothing to search by.
        let Some(embedding) = embedding else { continue };
        tracks.push(VideoTrack {
            track: t.track_id,
            span_s: [time(t.first_frame), time(t.last_frame)],
            frames: t.frames_seen,
            thumbnail: views
                .get(&t.track_id)
                .map(thumbnail_png)
                .unwrap_or_default(),
            embedding,
        });
    }
    FromWorker::Tracks {
        id,
        tracks,
        left_out,
        frames,
    }
}

/// The bytes of a model file: fetched from the page's origin, or the user's.
async fn source_bytes(model: &ModelSource) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    Ok(match model {
        ModelSource::Url { url } => std::borrow::Cow::Owned(fetch_bytes(url).await?),
        ModelSource::File { bytes, .. } => std::borrow::Cow::Borrowed(bytes.as_slice()),
    })
}

/// Loads `model` onto `device`: the embedder, the file's size and what its card says. A file
/// without a model card, or one that does not load, is refused with the reason.
/// What `Ready` tells of a model's file.
struct ModelFile {
    bytes: usize,
    fingerprint: String,
    provenance: String,
}

async fn load_model(model: &ModelSource, device: Device) -> Result<(Embedder, ModelFile), String> {
    let name = model.name();
    let bytes = &*source_bytes(model).await?;
    let card = reid_pipeline::read_card(bytes)
        .map_err(|e| format!("the model {name} cannot be loaded: {e}"))?;
    let embedder = Embedder::from_burnpack(bytes, device, MAX_BATCH)
        .map_err(|e| format!("the model {name} cannot be loaded: {e}"))?;
    let file = ModelFile {
        bytes: bytes.len(),
        fingerprint: fingerprint(bytes),
        provenance: reid_pipeline::card_provenance(&card),
    };
    Ok((embedder, file))
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let response: Response = JsFuture::from(scope().fetch_with_str(url))
        .await
        .map_err(|e| format!("cannot fetch the model {url}: {}", js_error(e)))?
        .unchecked_into();
    if !response.ok() {
        return Err(format!(
            "cannot fetch the model {url}: HTTP {}",
            response.status()
        ));
    }
    let buffer = JsFuture::from(response.array_buffer().map_err(js_error)?)
        .await
        .map_err(|e| format!("cannot read the model {url}: {}", js_error(e)))?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Asks the browser for a WebGPU adapter and describes it, without creating a device.
async fn probe_webgpu() -> Result<AdapterInfo, String> {
    let get = |target: &JsValue, key: &str| Reflect::get(target, &JsValue::from_str(key));
    let navigator = get(&js_sys::global(), "navigator").map_err(js_error)?;
    let gpu = get(&navigator, "gpu").map_err(js_error)?;
    if gpu.is_undefined() || gpu.is_null() {
        return Err("this browser does not expose WebGPU".into());
    }
    let request: Function = get(&gpu, "requestAdapter")
        .map_err(js_error)?
        .dyn_into()
        .map_err(|_| "navigator.gpu.requestAdapter is not a function".to_string())?;
    let promise: Promise = request
        .call0(&gpu)
        .map_err(js_error)?
        .dyn_into()
        .map_err(|_| "requestAdapter did not return a promise".to_string())?;
    let adapter = JsFuture::from(promise).await.map_err(js_error)?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("the browser offered no WebGPU adapter".into());
    }
    let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
    let text = |key: &str| {
        get(&info, key)
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let parts: Vec<String> = ["vendor", "architecture", "device", "description"]
        .iter()
        .map(|k| text(k))
        .filter(|s| !s.is_empty())
        .collect();
    let description = if parts.is_empty() {
        "unnamed adapter".to_string()
    } else {
        parts.join(" / ")
    };
    let fallback = [
        get(&info, "isFallbackAdapter"),
        get(&adapter, "isFallbackAdapter"),
    ]
    .into_iter()
    .any(|v| v.ok().and_then(|v| v.as_bool()).unwrap_or(false));
    Ok(AdapterInfo {
        software: fallback || looks_like_software_adapter(&description),
        description,
    })
}
