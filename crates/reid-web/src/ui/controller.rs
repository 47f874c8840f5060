//! Owns the inference worker: starts it, sends it images (to embed whole, or photos to find
//! the people in), turns its answers into [`Action`]s,
//! and restarts it on the CPU when WebGPU fails, re-sending every image still waiting so none
//! is lost. When the user switches to their own model file, every image read so far is embedded
//! again by the new model once it runs (embeddings of two models cannot be compared).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use js_sys::Uint8Array;
use reid_core::Backend;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{ErrorEvent, File, MessageEvent, Response, Url, Worker};
use yew::UseReducerDispatcher;

use super::state::{Action, AppState, Item, ItemStatus};
use crate::protocol::{FromWorker, ModelSource, ToWorker};

/// Files larger than this are refused before they are read (memory stays bounded).
pub const MAX_FILE_BYTES: f64 = 200.0 * 1024.0 * 1024.0;

struct WorkerHandle {
    worker: Worker,
    _onmessage: Closure<dyn FnMut(MessageEvent)>,
    _onerror: Closure<dyn FnMut(ErrorEvent)>,
}

#[derive(Default)]
struct Inner {
    worker: Option<WorkerHandle>,
    /// Bumped at each (re)start; answers from an older worker are ignored.
    generation: u32,
    requested: Option<Backend>,
    running: Option<Backend>,
    /// The worker said it listens; until then messages to it would be lost.
    listening: bool,
    /// Images sent and not yet answered, kept to re-send after a restart.
    pending: BTreeMap<u32, Rc<Vec<u8>>>,
    /// Images to search for people (photos), not to embed whole.
    photos: BTreeSet<u32>,
    /// Every image read from the user's disk (the browser's handle, not a copy), to embed again
    /// when the model changes.
    files: BTreeMap<u32, File>,
    /// The model being tried in place of the running one.
    switching: Option<ModelSource>,
    next_id: u32,
    /// Why the model cannot run, once there is nothing left to try: pictures added after that
    /// are refused with this reason instead of waiting for ever.
    stopped: Option<String>,
}

/// The UI's handle on the worker.
pub struct Controller {
    dispatch: UseReducerDispatcher<AppState>,
    /// The model the worker runs (and loads again after a restart).
    model: RefCell<ModelSource>,
    inner: RefCell<Inner>,
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

impl Controller {
    pub fn new(dispatch: UseReducerDispatcher<AppState>, model_url: &str) -> Rc<Self> {
        Rc::new(Self {
            dispatch,
            model: RefCell::new(ModelSource::Url {
                url: model_url.to_string(),
            }),
            inner: RefCell::new(Inner::default()),
        })
    }

    /// (Re)starts the worker with `requested` (None: let it choose) and re-sends waiting images.
    pub fn start(self: &Rc<Self>, requested: Option<Backend>) {
        let mut inner = self.inner.borrow_mut();
        if let Some(old) = inner.worker.take() {
            old.worker.terminate();
        }
        inner.generation += 1;
        inner.requested = requested;
        inner.running = None;
        inner.listening = false;
        inner.stopped = None;
        inner.switching = None;
        let generation = inner.generation;
        let worker = match Worker::new("./worker_loader.js") {
            Ok(worker) => worker,
            Err(e) => {
                let message = format!("the browser refused to start the inference worker: {e:?}");
                inner.stopped = Some(message.clone());
                drop(inner);
                self.dispatch.dispatch(Action::Worker {
                    message: FromWorker::Fatal { message },
                    at_ms: now_ms(),
                });
                return;
            }
        };
        let weak: Weak<Self> = Rc::downgrade(self);
        let onmessage = {
            let weak = weak.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                if let Some(c) = weak.upgrade() {
                    c.on_message(generation, event.data());
                }
            })
        };
        let onerror = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            if let Some(c) = weak.upgrade() {
                c.on_fatal(
                    generation,
                    format!("the inference worker failed: {}", event.message()),
                );
            }
        });
        worker.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        worker.set_onerror(Some(onerror.as_ref().unchecked_ref()));
        let handle = WorkerHandle {
            worker,
            _onmessage: onmessage,
            _onerror: onerror,
        };
        inner.worker = Some(handle);
    }

    /// Adds the user's files: each gets a card at once, then is read and sent to the worker,
    /// to be embedded whole (a picture of one person) or, with `find_people`, searched for the
    /// people in it (a photo), each of whom is embedded.
    pub fn add_files(self: &Rc<Self>, files: Vec<File>, find_people: bool) {
        let mut items = Vec::new();
        let mut to_read = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            for file in files {
                let id = inner.next_id;
                inner.next_id += 1;
                let url = Url::create_object_url_with_blob(&file).unwrap_or_default();
                let status = if file.size() > MAX_FILE_BYTES {
                    ItemStatus::Failed(format!(
                        "the file is {:.0} MB, more than the {:.0} MB this page reads",
                        file.size() / 1048576.0,
                        MAX_FILE_BYTES / 1048576.0
                    ))
                } else {
                    to_read.push((id, file.clone()));
                    inner.files.insert(id, file.clone());
                    if find_people {
                        inner.photos.insert(id);
                    }
                    ItemStatus::Waiting
                };
                items.push(Item {
                    id,
                    name: file.name(),
                    url,
                    crop: None,
                    status,
                });
            }
        }
        self.dispatch.dispatch(Action::Added(items));
        self.read_and_submit(to_read);
    }

    /// Reads each file and sends it to the worker.
    fn read_and_submit(self: &Rc<Self>, files: Vec<(u32, File)>) {
        for (id, file) in files {
            let this = self.clone();
            spawn_local(async move {
                match JsFuture::from(file.array_buffer()).await {
                    Ok(buffer) => this.submit(id, Uint8Array::new(&buffer).to_vec()),
                    Err(e) => this.dispatch.dispatch(Action::Unreadable {
                        id,
                        message: format!("the file could not be read: {e:?}"),
                    }),
                }
            });
        }
    }

    /// Offers the user's model file to the worker in place of the running model. If it runs,
    /// every image is embedded again with it; if not, the running model stays and a notice says
    /// why.
    pub fn use_model(self: &Rc<Self>, file: File) {
        let name = file.name();
        if file.size() > MAX_FILE_BYTES {
            self.dispatch.dispatch(Action::ModelRefused(format!(
                "the model {name} is {:.0} MB, more than the {:.0} MB this page reads",
                file.size() / 1048576.0,
                MAX_FILE_BYTES / 1048576.0
            )));
            return;
        }
        let this = self.clone();
        spawn_local(async move {
            let bytes = match JsFuture::from(file.array_buffer()).await {
                Ok(buffer) => Uint8Array::new(&buffer).to_vec(),
                Err(e) => {
                    this.dispatch.dispatch(Action::ModelRefused(format!(
                        "the model {name} could not be read: {e:?}"
                    )));
                    return;
                }
            };
            let model = ModelSource::File {
                name: name.clone(),
                bytes,
            };
            let mut inner = this.inner.borrow_mut();
            let Some(handle) = inner.worker.as_ref().filter(|_| inner.listening) else {
                drop(inner);
                this.dispatch.dispatch(Action::ModelRefused(
                    "the app is still starting; pick the model again in a moment".into(),
                ));
                return;
            };
            post(
                &handle.worker,
                &ToWorker::SwitchModel {
                    model: model.clone(),
                },
            );
            inner.switching = Some(model);
            drop(inner);
            this.dispatch.dispatch(Action::ModelSwitching(name));
        });
    }

    /// Forgets every image (their files included).
    pub fn forget_images(&self) {
        let mut inner = self.inner.borrow_mut();
        inner.files.clear();
        inner.pending.clear();
        inner.photos.clear();
    }

    /// Adds the demo pictures shipped with the app (`demo/index.json` lists them), fetched from
    /// the page's own origin like the model.
    pub fn add_demo(self: &Rc<Self>) {
        let this = self.clone();
        spawn_local(async move {
            match demo_files().await {
                Ok(files) => this.add_files(files, false),
                Err(message) => this.dispatch.dispatch(Action::Notice(format!(
                    "the demo pictures could not be loaded: {message}"
                ))),
            }
        });
    }

    /// Asks the worker to rank `gallery` (id and embedding of each image) by similarity to the
    /// image `query_id`; the answer arrives as an [`Action::Worker`].
    pub fn search(&self, query_id: u32, query: &[f32], gallery: &[(u32, Rc<Vec<f32>>)]) {
        let inner = self.inner.borrow();
        let Some(handle) = inner.worker.as_ref().filter(|_| inner.listening) else {
            self.dispatch.dispatch(Action::Worker {
                message: FromWorker::SearchFailed {
                    query_id,
                    message: "the model is still starting; try again in a moment".into(),
                },
                at_ms: now_ms(),
            });
            return;
        };
        self.dispatch.dispatch(Action::SearchStarted { query_id });
        post(
            &handle.worker,
            &ToWorker::Search {
                query_id,
                query: query.to_vec(),
                gallery_ids: gallery.iter().map(|(id, _)| *id).collect(),
                gallery: gallery
                    .iter()
                    .flat_map(|(_, e)| e.iter().copied())
                    .collect(),
                k: gallery.len(),
            },
        );
    }

    /// Asks the worker to time the model on its backend (`batch` crops, a few passes); the
    /// answer arrives as an [`Action::Worker`].
    pub fn benchmark(&self, batch: usize) {
        let inner = self.inner.borrow();
        let Some(handle) = inner.worker.as_ref().filter(|_| inner.listening) else {
            self.dispatch.dispatch(Action::Worker {
                message: FromWorker::BenchmarkFailed {
                    message: "the model is still starting; try again in a moment".into(),
                },
                at_ms: now_ms(),
            });
            return;
        };
        self.dispatch.dispatch(Action::BenchmarkStarted);
        post(&handle.worker, &ToWorker::Benchmark { batch, iters: 5 });
    }

    fn submit(&self, id: u32, bytes: Vec<u8>) {
        let mut inner = self.inner.borrow_mut();
        if let Some(reason) = inner.stopped.clone() {
            drop(inner);
            self.dispatch.dispatch(Action::Unreadable {
                id,
                message: format!("not embedded: {reason}"),
            });
            return;
        }
        if let Some(handle) = inner.worker.as_ref().filter(|_| inner.listening) {
            post(&handle.worker, &job(&inner.photos, id, bytes.clone()));
        }
        inner.pending.insert(id, Rc::new(bytes));
    }

    fn on_message(self: &Rc<Self>, generation: u32, data: JsValue) {
        let message = match serde_wasm_bindgen::from_value::<FromWorker>(data) {
            Ok(m) => m,
            Err(e) => FromWorker::Fatal {
                message: format!("unreadable message from the worker: {e}"),
            },
        };
        {
            let mut inner = self.inner.borrow_mut();
            if generation != inner.generation {
                return;
            }
            match &message {
                FromWorker::Embedded { id, .. }
                | FromWorker::Failed { id, .. }
                | FromWorker::People { id, .. } => {
                    inner.pending.remove(id);
                }
                FromWorker::Ready(info) => {
                    inner.running = Some(info.backend);
                    if let Some(model) = inner.switching.take() {
                        // The new model runs: it is the one to load after a restart, and every
                        // image read so far (not waiting for an answer) is embedded again.
                        *self.model.borrow_mut() = model;
                        let again: Vec<(u32, File)> = inner
                            .files
                            .iter()
                            .filter(|(id, _)| !inner.pending.contains_key(id))
                            .map(|(&id, file)| (id, file.clone()))
                            .collect();
                        drop(inner);
                        self.dispatch.dispatch(Action::Worker {
                            message,
                            at_ms: now_ms(),
                        });
                        self.dispatch.dispatch(Action::Reembedding(
                            again.iter().map(|(id, _)| *id).collect(),
                        ));
                        self.read_and_submit(again);
                        return;
                    }
                }
                FromWorker::ModelRefused { name, message } => {
                    inner.switching = None;
                    let notice = format!(
                        "Your model {name} cannot be used ({message}); the previous model still runs."
                    );
                    drop(inner);
                    self.dispatch.dispatch(Action::ModelRefused(notice));
                    return;
                }
                FromWorker::Ranked { .. }
                | FromWorker::SearchFailed { .. }
                | FromWorker::Benchmarked { .. }
                | FromWorker::BenchmarkFailed { .. } => {}
                FromWorker::Listening => {
                    // Start the backend, then (re)send every image still waiting.
                    inner.listening = true;
                    if let Some(handle) = &inner.worker {
                        post(
                            &handle.worker,
                            &ToWorker::Start {
                                requested: inner.requested,
                                model: self.model.borrow().clone(),
                            },
                        );
                        for (&id, bytes) in &inner.pending {
                            post(&handle.worker, &job(&inner.photos, id, bytes.to_vec()));
                        }
                    }
                    return;
                }
                FromWorker::Fatal { message } => {
                    let message = message.clone();
                    drop(inner);
                    self.on_fatal(generation, message);
                    return;
                }
            }
        }
        self.dispatch.dispatch(Action::Worker {
            message,
            at_ms: now_ms(),
        });
    }

    /// The worker cannot go on. If it was (or may have been) on WebGPU, restart on the CPU
    /// and re-send the waiting images; on the CPU there is nothing left to try.
    fn on_fatal(self: &Rc<Self>, generation: u32, message: String) {
        let (retry, waiting) = {
            let inner = self.inner.borrow();
            if generation != inner.generation {
                return;
            }
            let maybe_gpu = inner.running == Some(Backend::WebGpu)
                || (inner.running.is_none() && inner.requested != Some(Backend::Cpu));
            (maybe_gpu, inner.pending.len())
        };
        if retry {
            self.dispatch.dispatch(Action::Restarted {
                notice: format!(
                    "{message}. Restarted on the CPU; {waiting} waiting image(s) sent again."
                ),
            });
            self.start(Some(Backend::Cpu));
        } else {
            let mut inner = self.inner.borrow_mut();
            inner.pending.clear();
            inner.stopped = Some(message.clone());
            drop(inner);
            self.dispatch.dispatch(Action::Worker {
                message: FromWorker::Fatal { message },
                at_ms: now_ms(),
            });
        }
    }
}

async fn fetch_ok(url: &str) -> Result<Response, String> {
    let window = web_sys::window().ok_or("no window")?;
    let response: Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .map_err(|e| format!("{url}: {e:?}"))?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    Ok(response)
}

/// The demo pictures as files, as if the user had picked them.
async fn demo_files() -> Result<Vec<File>, String> {
    let index = fetch_ok("demo/index.json").await?;
    let json = JsFuture::from(index.json().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("demo/index.json: {e:?}"))?;
    let names = js_sys::Reflect::get(&json, &JsValue::from_str("images"))
        .ok()
        .filter(js_sys::Array::is_array)
        .map(|v| js_sys::Array::from(&v))
        .ok_or("demo/index.json has no list of images")?;
    let mut files = Vec::new();
    for name in names.iter() {
        let name = name.as_string().ok_or("demo/index.json lists a non-name")?;
        let response = fetch_ok(&format!("demo/{name}")).await?;
        let blob = JsFuture::from(response.blob().map_err(|e| format!("{e:?}"))?)
            .await
            .map_err(|e| format!("{name}: {e:?}"))?;
        let file = File::new_with_blob_sequence(&js_sys::Array::of1(&blob), &name)
            .map_err(|e| format!("{name}: {e:?}"))?;
        files.push(file);
    }
    Ok(files)
}

/// What to ask of the worker for image `id`: find its people (a photo) or embed it whole.
fn job(photos: &BTreeSet<u32>, id: u32, bytes: Vec<u8>) -> ToWorker {
    if photos.contains(&id) {
        ToWorker::Detect { id, bytes }
    } else {
        ToWorker::Embed { id, bytes }
    }
}

fn post(worker: &Worker, message: &ToWorker) {
    match serde_wasm_bindgen::to_value(message) {
        Ok(value) => {
            if let Err(e) = worker.post_message(&value) {
                web_sys::console::error_1(&e);
            }
        }
        Err(e) => web_sys::console::error_1(&format!("cannot send a message: {e}").into()),
    }
}
