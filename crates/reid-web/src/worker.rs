//! The inference worker: receives [`ToWorker`] messages, chooses and starts a backend, loads the
//! model from the page's origin, embeds images in small batches and finds the people in photos,
//! answering with [`FromWorker`]. A panic is reported as [`FromWorker::Fatal`] so the UI can restart the worker
//! on the CPU without losing queued images.

use futures_channel::mpsc;
use futures_util::StreamExt;
use js_sys::{Function, Promise, Reflect, Uint8Array};
use reid_core::FeatureMatrix;
use reid_pipeline::{
    decode_image, device, people_in, Backend, Device, Embedder, GallerySearch, HogParams, RgbImage,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, Response};

use crate::protocol::{
    choose_backend, looks_like_software_adapter, AdapterInfo, FoundPerson, FromWorker, ModelSource,
    RankedHit, ReadyInfo, ToWorker, MAX_PEOPLE,
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

fn js_error(value: JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}

/// Starts the worker's message loop.
pub fn start() {
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
    post(&FromWorker::Listening);
}

async fn run(mut rx: mpsc::UnboundedReceiver<ToWorker>) {
    let mut embedder: Option<Embedder> = None;
    // What the last `Ready` said: the backend in use; a switched model keeps its backend,
    // reason and adapter.
    let mut ready: Option<ReadyInfo> = None;
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
            ToWorker::Start { requested, model } => match start_backend(requested, &model).await {
                Ok((loaded, info)) => {
                    embedder = Some(loaded);
                    post(&FromWorker::Ready(info.clone()));
                    ready = Some(info);
                }
                Err(message) => post(&FromWorker::Fatal { message }),
            },
            ToWorker::SwitchModel { model } => {
                let name = model.name().to_string();
                let switched = match (&embedder, &ready) {
                    (Some(old), Some(info)) => {
                        let start = now_ms();
                        load_model(&model, old.device().clone()).await.map(
                            |(loaded, bytes, provenance)| {
                                let info = ready_info(
                                    &loaded,
                                    bytes,
                                    provenance,
                                    start,
                                    (info.backend, info.reason.clone(), info.adapter.clone()),
                                );
                                (loaded, info)
                            },
                        )
                    }
                    _ => Err("no model is running yet; try again in a moment".into()),
                };
                match switched {
                    Ok((loaded, info)) => {
                        embedder = Some(loaded);
                        post(&FromWorker::Ready(info.clone()));
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
            } => {
                let start = now_ms();
                let result = match &embedder {
                    Some(e) => search(e, query, &gallery_ids, gallery, k).await,
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
            ToWorker::Benchmark { batch, iters } => {
                // The sizes timed (and reported) are kept within reason.
                let (batch, iters) = (batch.clamp(1, 64), iters.clamp(1, 100));
                post(&match &embedder {
                    Some(e) => match benchmark(e, batch, iters).await {
                        Ok((crops_per_s, iters)) => FromWorker::Benchmarked {
                            backend: in_use(&ready),
                            batch,
                            iters,
                            crops_per_s,
                        },
                        Err(message) => FromWorker::BenchmarkFailed { message },
                    },
                    None => FromWorker::BenchmarkFailed {
                        message: "the model is not loaded".into(),
                    },
                });
            }
            ToWorker::Detect { id, bytes } => post(&match &embedder {
                Some(e) => people(e, id, &bytes).await,
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
                let results = embedder.embed_files(&files).await;
                let ms = (now_ms() - start) / batch.len() as f64;
                for ((id, _), result) in batch.iter().zip(results) {
                    post(&match result {
                        Ok(embedding) => FromWorker::Embedded {
                            id: *id,
                            embedding: embedding.into_values(),
                            ms,
                        },
                        Err(e) => FromWorker::Failed {
                            id: *id,
                            message: e.to_string(),
                        },
                    });
                }
            }
        }
    }
}

/// Decodes photo `id`, finds its people (HOG, on the CPU whatever the backend: it is not yet
/// written as tensor operations) and embeds each on the backend in use.
async fn people(embedder: &Embedder, id: u32, bytes: &[u8]) -> FromWorker {
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
    let mut found = people_in(&photo, &HogParams::default());
    let left_out = found.len().saturating_sub(MAX_PEOPLE);
    found.truncate(MAX_PEOPLE);
    let detect_ms = now_ms() - start;
    let (places, crops): (Vec<_>, Vec<RgbImage>) = found
        .into_iter()
        .map(|p| ((p.bbox, p.score), p.crop))
        .unzip();
    let embeddings = match embedder.embed_images(&crops).await {
        Ok(e) => e,
        Err(e) => {
            return FromWorker::Failed {
                id,
                message: e.to_string(),
            }
        }
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
                embedding: e.into_values(),
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

/// Ranks the gallery for one query on the embedder's device (matrix product and top-k there).
async fn search(
    embedder: &Embedder,
    query: Vec<f32>,
    gallery_ids: &[u32],
    gallery: Vec<f32>,
    k: usize,
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
    let index = GallerySearch::new(&gallery.l2_normalized(), embedder.device())
        .map_err(|e| e.to_string())?;
    let hits = index
        .top_k(&query.l2_normalized(), k)
        .await
        .map_err(|e| e.to_string())?;
    Ok(hits
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(|h| RankedHit {
            id: gallery_ids[h.index],
            score: h.score,
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
    let (embedder, model_bytes, provenance) = load_model(model, device).await?;
    let running = (backend, reason, probe.ok());
    let info = ready_info(&embedder, model_bytes, provenance, start, running);
    Ok((embedder, info))
}

/// The backend the last `Ready` named (the CPU before any).
fn in_use(ready: &Option<ReadyInfo>) -> Backend {
    ready.as_ref().map_or(Backend::Cpu, |r| r.backend)
}

/// What `Ready` says about `embedder`, loaded from a file of `model_bytes` since `start`, on
/// `running`: the backend, why it was chosen, and the WebGPU adapter.
fn ready_info(
    embedder: &Embedder,
    model_bytes: usize,
    provenance: String,
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
        model_bytes,
        provenance,
        load_ms: now_ms() - start,
    }
}

/// Loads `model` onto `device`: the embedder, the file's size and what its card says. A file
/// without a model card, or one that does not load, is refused with the reason.
async fn load_model(
    model: &ModelSource,
    device: Device,
) -> Result<(Embedder, usize, String), String> {
    let fetched;
    let (name, bytes) = match model {
        ModelSource::Url { url } => {
            fetched = fetch_bytes(url).await?;
            (url.as_str(), fetched.as_slice())
        }
        ModelSource::File { name, bytes } => (name.as_str(), bytes.as_slice()),
    };
    let card = reid_pipeline::read_card(bytes)
        .map_err(|e| format!("the model {name} cannot be loaded: {e}"))?;
    let embedder = Embedder::from_burnpack(bytes, device, MAX_BATCH)
        .map_err(|e| format!("the model {name} cannot be loaded: {e}"))?;
    Ok((embedder, bytes.len(), reid_pipeline::card_provenance(&card)))
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
