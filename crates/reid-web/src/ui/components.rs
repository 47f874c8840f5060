//! The components the user sees, named after what they show.

use std::rc::Rc;

use reid_core::cosine_similarity;
use wasm_bindgen::JsCast;
use web_sys::{DragEvent, File, FileList, HtmlAnchorElement, HtmlInputElement};
use yew::prelude::*;

use super::state::{
    cost_words, significant, Benchmark, Engine, Item, ItemStatus, ModelEntry, Search, SearchStatus,
};
use super::timeline::Timeline;

pub fn files_of(list: Option<FileList>) -> Vec<File> {
    let Some(list) = list else { return Vec::new() };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

#[derive(Properties, PartialEq)]
pub struct BackendStatusProps {
    pub engine: Engine,
    pub first_embedding_ms: Option<f64>,
    pub notices: Rc<Vec<String>>,
}

/// Which backend runs the model, why, and how fast it got going.
#[function_component(BackendStatus)]
pub fn backend_status(props: &BackendStatusProps) -> Html {
    let body = match &props.engine {
        Engine::Starting => {
            html! { <p id="backend" data-backend="starting">{ "Starting the model…" }</p> }
        }
        Engine::Failed(message) => html! {
            <p id="engine-error" class="error">{ format!("The model cannot run: {message}") }</p>
        },
        Engine::Ready(info) => html! {
            <>
                <p id="backend" data-backend={info.backend.label().to_ascii_lowercase()}>
                    { "Running on " }<strong>{ info.backend.label() }</strong>{ ": " }{ &info.reason }
                </p>
                <p class="model">
                    { format!(
                        "Model: {} ({}), {}-d embeddings from {}x{} crops, {:.1} MB, ready in {:.0} ms.",
                        info.architecture, info.provenance, info.dim, info.input[0], info.input[1], info.model_bytes as f64 / 1e6, info.load_ms
                    ) }
                    if let Some(adapter) = &info.adapter {
                        { format!(" WebGPU adapter: {}.", adapter.description) }
                    }
                </p>
                if let Some(a) = &info.aggregator {
                    <p id="aggregator" data-kind={a.kind.clone()} data-dim={a.dim.to_string()}>
                        { format!(
                            "Temporal aggregator: {} from {} ({} learned parameters), {}-d embeddings: each video track is its frames through it, each picture a one-frame track.",
                            a.label, a.name, a.params, a.dim
                        ) }
                    </p>
                }
            </>
        },
    };
    html! {
        <section class="status">
            { body }
            if let Some(ms) = props.first_embedding_ms {
                <p id="first-embedding" data-ms={format!("{ms:.0}")}>
                    { format!("First embedding {:.2} s after the page loaded.", ms / 1000.0) }
                </p>
            }
            { for props.notices.iter().map(|n| html! { <p class="notice">{ n }</p> }) }
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct ModelPickerProps {
    pub switching: Option<String>,
    pub refused: Option<String>,
    pub on_model: Callback<File>,
    /// The models run in this session, to switch back to.
    pub models: Rc<Vec<ModelEntry>>,
    pub engine: Engine,
    pub on_known: Callback<usize>,
}

/// Where the user picks their own model file (written by `reid import` or `reid export`); it
/// is read here, on this device, like the pictures.
#[function_component(ModelPicker)]
pub fn model_picker(props: &ModelPickerProps) -> Html {
    let onchange = {
        let on_model = props.on_model.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Some(file) = files_of(input.files()).into_iter().next() {
                on_model.emit(file);
            }
            input.set_value("");
        })
    };
    html! {
        <section class="model-picker">
            <label>
                { "Use your own model: " }
                <input id="model-input" type="file" accept=".bpk" onchange={onchange}
                    disabled={props.switching.is_some()} />
            </label>
            <span class="hint">
                { " a .bpk file from " }<code>{ "reid import" }</code>{ " (torchreid or fast-reid checkpoints) or " }
                <code>{ "reid export" }</code>{ ", or a temporal aggregator for video tracks from " }<code>{ "reid temporal" }</code>
                { "; it stays on this device, and every picture and video is embedded again with it." }
            </span>
            <ModelList models={props.models.clone()} engine={props.engine.clone()}
                switching={props.switching.is_some()} on_known={props.on_known.clone()} />
            if let Some(name) = &props.switching {
                <p id="model-switching">{ format!("Loading {name}…") }</p>
            }
            if let Some(message) = &props.refused {
                <p id="model-refused" class="error">{ message }</p>
            }
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct ModelListProps {
    models: Rc<Vec<ModelEntry>>,
    engine: Engine,
    switching: bool,
    on_known: Callback<usize>,
}

/// The models run in this session (the shipped one first), which of them runs, and a button to
/// run each again.
#[function_component(ModelList)]
fn model_list(props: &ModelListProps) -> Html {
    let Engine::Ready(info) = &props.engine else {
        return html! {};
    };
    if props.models.len() < 2 {
        return html! {};
    }
    let running = |m: &ModelEntry| {
        if m.aggregator {
            info.aggregator
                .as_ref()
                .is_some_and(|a| a.fingerprint == m.fingerprint)
        } else {
            info.fingerprint == m.fingerprint
        }
    };
    html! {
        <>
        <p class="models-title">{ "Models run in this session" }</p>
        <ol id="models" aria-label="Models run in this session">
            { for props.models.iter().enumerate().map(|(i, m)| {
                let on_click = {
                    let on_known = props.on_known.clone();
                    Callback::from(move |_| on_known.emit(i))
                };
                let on = running(m);
                html! {
                    <li data-name={m.name.clone()} data-running={on.to_string()}>
                        <strong>{ &m.name }</strong>
                        <span class="hint">{ format!(" {}", m.summary) }</span>
                        if on {
                            <span class="running">{ " running" }</span>
                        } else {
                            { " " }
                            <button class="use-model" onclick={on_click} disabled={props.switching}>{ "Use" }</button>
                        }
                    </li>
                }
            }) }
        </ol>
        </>
    }
}

#[derive(Properties, PartialEq)]
pub struct DropZoneProps {
    pub on_files: Callback<Vec<File>>,
    /// Whether pictures added are photos to find the people in.
    pub find_people: bool,
    pub on_find_people: Callback<bool>,
    /// The user's camera label for the files they add next (empty: from each file).
    pub camera: String,
    pub on_camera: Callback<String>,
}

/// A file's path in the folder it was picked with (`webkitRelativePath`, which web-sys does not
/// bind); empty for a file picked on its own.
pub fn relative_path(file: &File) -> String {
    js_sys::Reflect::get(file, &"webkitRelativePath".into())
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// Whether a file in a picked folder is one the page reads (a picture or a video), by its
/// type or name: a folder also holds notes, sidecars and the like, which are skipped.
fn readable(file: &File) -> bool {
    let name = file.name().to_ascii_lowercase();
    file.type_().starts_with("image/")
        || [".jpg", ".jpeg", ".png", ".webp", ".bmp"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || super::controller::is_video(file)
}

/// Where the user drops or picks images.
#[function_component(DropZone)]
pub fn drop_zone(props: &DropZoneProps) -> Html {
    let hover = use_state(|| false);
    let on_change = {
        let on_files = props.on_files.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            on_files.emit(files_of(input.files()));
            input.set_value("");
        })
    };
    let on_folder = {
        let on_files = props.on_files.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let mut files: Vec<(String, File)> = files_of(input.files())
                .into_iter()
                .filter(readable)
                .map(|f| (relative_path(&f), f))
                .collect();
            // In the folder's order, which the browser does not keep.
            files.sort_by(|a, b| a.0.cmp(&b.0));
            on_files.emit(files.into_iter().map(|(_, f)| f).collect());
            input.set_value("");
        })
    };
    let on_camera = {
        let on_camera = props.on_camera.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            on_camera.emit(input.value());
        })
    };
    let on_drag_over = {
        let hover = hover.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            hover.set(true);
        })
    };
    let on_drag_leave = {
        let hover = hover.clone();
        Callback::from(move |_: DragEvent| hover.set(false))
    };
    let on_drop = {
        let on_files = props.on_files.clone();
        let hover = hover.clone();
        Callback::from(move |e: DragEvent| {
            e.prevent_default();
            hover.set(false);
            on_files.emit(files_of(e.data_transfer().and_then(|d| d.files())));
        })
    };
    let on_toggle = {
        let on_find_people = props.on_find_people.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            on_find_people.emit(input.checked());
        })
    };
    html! {
        <>
            <label class={classes!("drop-zone", (*hover).then_some("hover"))}
                ondragover={on_drag_over} ondragleave={on_drag_leave} ondrop={on_drop}>
                <input id="file-input" type="file" multiple=true
                    accept=".jpg,.jpeg,.png,.webp,.bmp,image/*,.webm,.mp4,.ogv,video/*" onchange={on_change} />
                if props.find_people {
                    <span>{ "Drop photos here, or click to pick them: the people in each are found and each becomes a picture of its own." }</span>
                } else {
                    <span>{ "Drop pictures of people here, or click to pick them (two or more to compare)." }</span>
                }
                <span class="hint">{ " Videos are followed frame by frame: each person followed becomes one entry." }</span>
            </label>
            <p class="sources">
                <label>
                    { "Add a folder: " }
                    <input id="folder-input" type="file" webkitdirectory=true multiple=true onchange={on_folder} />
                </label>
                <label>
                    { " Camera: " }
                    <input id="camera" type="text" size="14" placeholder="from the names" value={props.camera.clone()}
                        oninput={on_camera} />
                </label>
                <span class="hint">
                    { " the camera of the files you add next; left empty, Market-1501 names give theirs (c3), a video its name, a folder its own name" }
                </span>
            </p>
            <super::camera::CameraRecorder on_clip={props.on_files.reform(|file: File| vec![file])} />
            <p class="find-people">
                <label>
                    <input id="find-people" type="checkbox" checked={props.find_people} onchange={on_toggle} />
                    { " Find the people in each picture" }
                </label>
                <span class="hint">
                    { " for photos of scenes (the HOG people detector, on this device's CPU); off, each picture is one person" }
                </span>
            </p>
        </>
    }
}

#[derive(Properties, PartialEq)]
pub struct ThumbProps {
    pub item: Item,
    /// `thumb` (64 x 128) or `mini` (24 x 48).
    pub class: &'static str,
}

/// An item's picture: the user's file, or for a person found in a photo, the person's part of
/// it (the photo scaled and shifted behind a person-shaped box, as `object-fit: cover` would
/// show the crop: no pixels are copied).
#[function_component(Thumb)]
pub fn thumb(props: &ThumbProps) -> Html {
    let item = &props.item;
    let Some(crop) = item.crop else {
        return html! { <img class={props.class} src={item.url.clone()} alt={item.name.clone()} title={item.name.clone()} /> };
    };
    let (w, h) = if props.class == "mini" {
        (24.0, 48.0)
    } else {
        (64.0, 128.0)
    };
    html! {
        <div class={classes!(props.class, "crop")} role="img" aria-label={item.name.clone()}
            title={item.name.clone()} style={crop.style(&item.url, w, h)}></div>
    }
}

#[derive(Properties, PartialEq)]
pub struct ItemsProps {
    pub items: Rc<Vec<Item>>,
}

#[derive(Properties, PartialEq)]
pub struct ImageListProps {
    pub items: Rc<Vec<Item>>,
    /// Called with an embedded image's id when the user asks who else looks like it.
    pub on_search: Callback<u32>,
    /// Called with a video's id when the user stops following people through it.
    pub on_stop: Callback<u32>,
    /// Called with a followed video's id to pick a person in its frames.
    pub on_frames: Callback<u32>,
}

/// A card per image: thumbnail, name, whether it was embedded or why not, and a button to
/// rank the others by similarity to it.
#[function_component(ImageList)]
pub fn image_list(props: &ImageListProps) -> Html {
    if props.items.is_empty() {
        return html! {};
    }
    html! {
        <ul class="items">
            { for props.items.iter().map(|item| {
                let (state, text, class) = match &item.status {
                    ItemStatus::Waiting => ("waiting", "embedding…".to_string(), ""),
                    ItemStatus::Done { ms, .. } => match item.frames {
                        Some(n) => ("done", format!("seen in {n} frames"), ""),
                        // A person from a gallery file or kept gallery was not timed here.
                        None if *ms == 0.0 => ("done", "embedded".to_string(), ""),
                        None => ("done", format!("embedded ({ms:.0} ms)"), ""),
                    },
                    ItemStatus::Photo { people: 0, detect_ms, .. } => (
                        "photo",
                        format!("no person found (detector {detect_ms:.0} ms)"),
                        "",
                    ),
                    ItemStatus::Photo { people, left_out, detect_ms } => (
                        "photo",
                        format!(
                            "{people} {} found{} (detector {detect_ms:.0} ms)",
                            if *people == 1 { "person" } else { "people" },
                            if *left_out > 0 {
                                format!(", {left_out} less sure ones left out")
                            } else {
                                String::new()
                            }
                        ),
                        "",
                    ),
                    ItemStatus::Video { done, total, tracks: None, fps, .. } => (
                        "video",
                        format!("following people: frame {done} of {total} ({} frames/s)", significant(*fps)),
                        "",
                    ),
                    ItemStatus::Video { done, tracks: Some(tracks), left_out, fps, cost, .. } => (
                        "followed",
                        format!(
                            "{tracks} {} followed through {done} frames ({} frames/s; {}){}",
                            if *tracks == 1 { "person" } else { "people" },
                            significant(*fps),
                            cost_words(cost),
                            if *left_out > 0 {
                                format!(", {left_out} shorter tracks left out")
                            } else {
                                String::new()
                            }
                        ),
                        "",
                    ),
                    ItemStatus::Failed(message) => ("failed", message.clone(), "error"),
                };
                let (tracks, frames, fps) = match item.status {
                    ItemStatus::Video { done, tracks, fps, .. } => (
                        tracks.map(|t| t.to_string()),
                        Some(done.to_string()),
                        Some(format!("{fps:.2}")),
                    ),
                    _ => (None, None, None),
                };
                let is_video = matches!(item.status, ItemStatus::Video { .. });
                let running = matches!(item.status, ItemStatus::Video { tracks: None, .. });
                let video = item.source.filter(|_| item.crop.is_none())
                    .and_then(|s| props.items.iter().find(|i| i.id == s))
                    .map(|v| v.name.clone());
                let (people, detect_ms) = match item.status {
                    ItemStatus::Photo { people, detect_ms, .. } => {
                        (Some(people.to_string()), Some(format!("{detect_ms:.1}")))
                    }
                    ItemStatus::Video { cost, .. } => (None, Some(format!("{:.1}", cost.detect_ms))),
                    _ => (None, None),
                };
                let (worker_ms, beside) = match item.status {
                    ItemStatus::Video { cost, .. } => {
                        (Some(format!("{:.1}", cost.worker_ms)), Some(cost.beside.to_string()))
                    }
                    _ => (None, None),
                };
                let place = item.crop.map(|c| {
                    let [x, y, w, h] = c.bbox;
                    format!("{x},{y},{w},{h}")
                });
                let photo = item.crop.and_then(|c| props.items.iter().find(|i| i.id == c.photo))
                    .map(|p| p.name.clone());
                let is_photo = matches!(item.status, ItemStatus::Photo { .. });
                html! {
                    <li class={classes!("item", is_photo.then_some("photo"), is_video.then_some("video"))}
                        data-name={item.name.clone()}
                        data-state={state} data-people={people} data-detect-ms={detect_ms} data-box={place}
                        data-photo={photo} data-video={video} data-tracks={tracks} data-frames={frames}
                        data-fps={fps} data-worker-ms={worker_ms} data-beside={beside}
                        data-camera={item.seen.as_ref().map(|s| s.camera.clone())}>
                        if matches!(item.status, ItemStatus::Failed(_)) {
                            <div class="thumb missing">{ "✕" }</div>
                        } else if is_video {
                            <div class="thumb film" role="img" aria-label={format!("video {}", item.name)}>{ "▶" }</div>
                        } else if is_photo {
                            <img class="thumb photo" src={item.url.clone()} alt={item.name.clone()} />
                        } else {
                            <Thumb item={item.clone()} class="thumb" />
                        }
                        <div class="name" title={item.name.clone()}>{ &item.name }</div>
                        <div class={classes!("state", class)}>{ text }</div>
                        if let Some(seen) = item.seen.as_ref().filter(|_| !is_video && !is_photo) {
                            <div class="seen" title="camera and time">{ seen.label() }</div>
                        }
                        if matches!(item.status, ItemStatus::Done { .. }) {
                            <button class="search" onclick={
                                let (on_search, id) = (props.on_search.clone(), item.id);
                                Callback::from(move |_| on_search.emit(id))
                            }>{ "Find this person" }</button>
                        }
                        if matches!(item.status, ItemStatus::Video { tracks: Some(t), .. } if t > 0) {
                            <button class="frames" onclick={
                                let (on_frames, id) = (props.on_frames.clone(), item.id);
                                Callback::from(move |_| on_frames.emit(id))
                            }>{ "Pick a person in a frame" }</button>
                        }
                        if running {
                            <button class="stop" onclick={
                                let (on_stop, id) = (props.on_stop.clone(), item.id);
                                Callback::from(move |_| on_stop.emit(id))
                            }>{ "Stop here" }</button>
                        }
                    </li>
                }
            }) }
        </ul>
    }
}

fn done(items: &[Item]) -> Vec<(&Item, &Rc<Vec<f32>>)> {
    items
        .iter()
        .filter_map(|i| match &i.status {
            ItemStatus::Done { embedding, .. } => Some((i, embedding)),
            _ => None,
        })
        .collect()
}

/// Colour of a similarity cell: from white (0 or less) to deep green (1).
fn cell_colour(s: f32) -> String {
    let t = s.clamp(0.0, 1.0);
    format!("hsl(150, 55%, {:.0}%)", 97.0 - 55.0 * t)
}

/// The cosine-similarity matrix of all embedded images.
#[function_component(SimilarityMatrix)]
pub fn similarity_matrix(props: &ItemsProps) -> Html {
    let mut done = done(&props.items);
    // Embeddings of one model only: while a new model re-embeds, the last one's width wins.
    if let Some(dim) = done.last().map(|(_, e)| e.len()) {
        done.retain(|(_, e)| e.len() == dim);
    }
    if done.len() < 2 {
        return html! { <p class="hint">{ "Add at least two pictures to compare them." }</p> };
    }
    html! {
        <section class="matrix">
            <h2>{ "Cosine similarity" }</h2>
            <p class="hint">{ "1 means the same appearance; values are not probabilities." }</p>
            <table id="similarity">
                <thead>
                    <tr>
                        <th></th>
                        { for done.iter().map(|(item, _)| html! {
                            <th><Thumb item={(*item).clone()} class="mini" /></th>
                        }) }
                    </tr>
                </thead>
                <tbody>
                    { for done.iter().map(|(row, a)| html! {
                        <tr data-name={row.name.clone()}>
                            <th><Thumb item={(*row).clone()} class="mini" /></th>
                            { for done.iter().map(|(_, b)| {
                                let s = cosine_similarity(a, b);
                                html! {
                                    <td data-value={format!("{s:.7}")} style={format!("background:{}", cell_colour(s))}>
                                        { format!("{s:.3}") }
                                    </td>
                                }
                            }) }
                        </tr>
                    }) }
                </tbody>
            </table>
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct ExportProps {
    pub items: Rc<Vec<Item>>,
    pub engine: Engine,
}

/// Saves the embeddings as JSON on the user's disk (no upload: a local download).
#[function_component(ExportButton)]
pub fn export_button(props: &ExportProps) -> Html {
    let onclick = {
        let items = props.items.clone();
        let engine = props.engine.clone();
        Callback::from(move |_| {
            let backend = match &engine {
                Engine::Ready(info) => info.backend.label().to_ascii_lowercase(),
                _ => String::new(),
            };
            let images: Vec<serde_json::Value> = done(&items)
                .iter()
                .map(
                    |(item, e)| match item.crop {
                        Some(c) => serde_json::json!({ "name": item.name, "box": c.bbox, "embedding": e.as_slice() }),
                        None => serde_json::json!({ "name": item.name, "embedding": e.as_slice() }),
                    },
                )
                .collect();
            let json = serde_json::json!({ "backend": backend, "images": images }).to_string();
            let _ = download("embeddings.json", &json.into(), "application/json");
        })
    };
    html! {
        <button id="export" {onclick} disabled={done(&props.items).is_empty()}>
            { "Save embeddings (JSON)" }
        </button>
    }
}

/// Hands `content` (a string or bytes) to the browser as a download named `name`.
pub fn download(
    name: &str,
    content: &wasm_bindgen::JsValue,
    mime: &str,
) -> Result<(), wasm_bindgen::JsValue> {
    let parts = js_sys::Array::of1(content);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_buffer_source_sequence_and_options(&parts, &options)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)?;
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let anchor: HtmlAnchorElement = document.create_element("a")?.dyn_into()?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    web_sys::Url::revoke_object_url(&url)
}

#[derive(Properties, PartialEq)]
pub struct RankedListProps {
    pub items: Rc<Vec<Item>>,
    pub search: Option<Search>,
    /// The similarity a match needs: those under it are dimmed and left off the timeline.
    pub threshold: f32,
    pub on_threshold: Callback<f32>,
    /// Whether the search is re-ranked (k-reciprocal).
    pub rerank: bool,
    pub on_rerank: Callback<bool>,
}

/// The gallery ranked for the chosen image, best first, with the worker's scores, the
/// threshold and re-ranking controls, and where and when the matches were seen.
#[function_component(RankedList)]
pub fn ranked_list(props: &RankedListProps) -> Html {
    let Some(search) = &props.search else {
        return html! {};
    };
    let item = |id: u32| props.items.iter().find(|i| i.id == id);
    let Some(query) = item(search.query_id) else {
        return html! {};
    };
    let on_threshold = {
        let on_threshold = props.on_threshold.clone();
        Callback::from(move |e: InputEvent| {
            let input: HtmlInputElement = e.target_unchecked_into();
            if let Ok(t) = input.value().parse::<f32>() {
                on_threshold.emit(t.clamp(0.0, 1.0));
            }
        })
    };
    let on_rerank = {
        let on_rerank = props.on_rerank.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            on_rerank.emit(input.checked());
        })
    };
    let threshold = props.threshold;
    let controls = html! {
        <p class="search-controls">
            <label>
                { "Threshold " }
                <input id="threshold" type="range" min="0" max="1" step="0.01" value={format!("{threshold:.2}")}
                    oninput={on_threshold} aria-describedby="threshold-value" />
                <output id="threshold-value">{ format!(" {threshold:.2}") }</output>
            </label>
            <label>
                <input id="rerank" type="checkbox" checked={props.rerank} onchange={on_rerank} />
                { " Re-rank (k-reciprocal: neighbours that list each other count more)" }
            </label>
        </p>
    };
    let body = match &search.status {
        SearchStatus::Running => html! { <p class="hint">{ "Ranking…" }</p> },
        SearchStatus::Failed(message) => html! { <p class="error">{ message }</p> },
        SearchStatus::Done { hits, backend, ms } => {
            let reranked = hits.iter().any(|h| h.distance.is_some());
            let above = hits.iter().filter(|h| h.score >= threshold).count();
            let how = if reranked {
                "ordered by k-reciprocal re-ranked distance (scores are cosine similarity, 1 = same appearance)"
            } else {
                "by cosine similarity (1 = same appearance)"
            };
            html! {
                <>
                    <p class="hint" id="ranked-by" data-backend={backend.label()} data-reranked={reranked.to_string()}
                        data-above={above.to_string()}>
                        { format!("Ranked on {} in {ms:.0} ms {how}; {above} of {} at or above the threshold.", backend.label(), hits.len()) }
                    </p>
                    <Timeline items={props.items.clone()} hits={hits.clone()} threshold={threshold} query={search.query_id} />
                    <ol id="ranked">
                        { for hits.iter().filter_map(|h| item(h.id).map(|i| (i, h))).map(|(i, h)| html! {
                            <li data-name={i.name.clone()} data-score={format!("{:.7}", h.score)}
                                data-distance={h.distance.map(|d| format!("{d:.7}"))}
                                class={classes!((h.score < threshold).then_some("below"))}>
                                <Thumb item={i.clone()} class="thumb" />
                                <div class="name" title={i.name.clone()}>{ &i.name }</div>
                                <div class="score">{ format!("{:.3}", h.score) }</div>
                                if let Some(seen) = &i.seen {
                                    <div class="seen">{ seen.label() }</div>
                                }
                            </li>
                        }) }
                    </ol>
                </>
            }
        }
    };
    html! {
        <section class="search-result" data-query={query.name.clone()}>
            <h2>{ format!("Who looks like {}?", query.name) }</h2>
            { controls }
            { body }
        </section>
    }
}

#[derive(Properties, PartialEq)]
pub struct SpeedProps {
    pub engine: Engine,
    pub benchmark: Option<Benchmark>,
    pub on_measure: Callback<()>,
}

/// "Measure speed": crops per second of the model on the backend in use, on this device.
#[function_component(Speed)]
pub fn speed(props: &SpeedProps) -> Html {
    let ready = matches!(props.engine, Engine::Ready(_));
    let running = props.benchmark == Some(Benchmark::Running);
    let on_click = {
        let on_measure = props.on_measure.clone();
        Callback::from(move |_| on_measure.emit(()))
    };
    let result = match &props.benchmark {
        None => html! {},
        Some(Benchmark::Running) => html! { <span id="benchmark-result">{ " measuring…" }</span> },
        Some(Benchmark::Done {
            backend,
            batch,
            passes,
            crops_per_s,
            tracklet_ms,
        }) => html! {
            <span id="benchmark-result" data-crops-per-s={format!("{crops_per_s:.4}")} data-passes={passes.to_string()}
                data-tracklet-ms={tracklet_ms.map(|ms| format!("{ms:.4}"))}>
                { format!(" {} crops/s on the {} ({passes} timed {} of {batch} crops, from pixels to embeddings).",
                    significant(*crops_per_s), backend.label(), if *passes == 1 { "batch" } else { "batches" }) }
                if let Some(ms) = tracklet_ms {
                    { format!(" The temporal aggregator takes {} ms per 16-frame track (median of 31).", significant(*ms)) }
                }
            </span>
        },
        Some(Benchmark::Failed(message)) => html! {
            <span id="benchmark-result" class="error">{ format!(" The measurement failed: {message}") }</span>
        },
    };
    html! {
        <p class="speed">
            <button id="benchmark" onclick={on_click} disabled={!ready || running}>{ "Measure speed" }</button>
            { result }
        </p>
    }
}
