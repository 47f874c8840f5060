//! Owns the inference worker: starts it, sends it images (to embed whole, or photos to find
//! the people in) and videos' frames (decoded here by the browser, a few a second, one frame
//! in flight at a time; on the CPU path each frame's people are found first by a second
//! worker, [`Finder`], while this one tracks the frame before), turns its answers into
//! [`Action`]s,
//! and restarts it on the CPU when WebGPU fails, re-sending every image still waiting and
//! following again every video not finished, so none is lost. When the user switches to their
//! own model file (or a temporal aggregator), every image and video read so far is embedded
//! again once it runs (embeddings of two models cannot be compared).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::{Rc, Weak};

use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;
use js_sys::{Promise, Uint8Array};
use reid_core::Backend;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    AddEventListenerOptions, Blob, BlobPropertyBag, CanvasRenderingContext2d, ErrorEvent,
    EventTarget, File, HtmlCanvasElement, HtmlVideoElement, MessageEvent, Response, Url, Worker,
};
use yew::UseReducerDispatcher;

use super::finder::Finder;
use super::state::{
    Action, AppState, FollowedPerson, FrameBoxes, Item, ItemStatus, ModelEntry, VideoBoxes,
    VideoCost,
};
use crate::gallery_file::{Gallery, ModelStamp};
use crate::protocol::{FoundBoxes, FromWorker, ModelSource, ReadyInfo, ToWorker, VideoTrack};
use crate::seen::{camera_of, folder_of, when_of, Seen};

/// Files larger than this are refused before they are read (memory stays bounded). Videos are
/// not read whole: the browser streams them.
pub const MAX_FILE_BYTES: f64 = 200.0 * 1024.0 * 1024.0;

/// Frames a second of video that are followed (a faster source is sampled).
pub const SAMPLE_FPS: f64 = 5.0;

/// Most frames followed of one video (10 minutes at [`SAMPLE_FPS`]); the rest is left out.
pub const MAX_VIDEO_FRAMES: u32 = 3000;

/// Frames wider than this are scaled down before detection (HOG finds people from 128 pixels
/// tall; a 1920 x 1080 frame at 960 x 540 keeps people of 256 pixels and more).
pub const MAX_VIDEO_WIDTH: u32 = 960;

/// The worker's answer about a video being followed.
enum VideoAnswer {
    /// Frame `index` was tracked, in `ms` of the worker's time, `detect_ms` of them finding
    /// the people.
    Frame {
        index: u32,
        /// The people followed in the frame (see `FromWorker::FrameTracked`).
        boxes: Vec<f32>,
        detect_ms: f64,
        ms: f64,
    },
    /// The video's tracks, after `VideoEnd`.
    Tracks {
        tracks: Vec<VideoTrack>,
        left_out: usize,
        frames: u32,
    },
    Failed(String),
}

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
    /// Every image and video read from the user's disk (the browser's handle, not a copy), to
    /// embed again when the model changes.
    files: BTreeMap<u32, File>,
    /// Which of `files` are videos.
    videos: BTreeSet<u32>,
    /// Videos being followed, each with its loop's number and the channel the loop reads the
    /// worker's answers from. A video followed again gets a new loop; the old one sees that
    /// it is no longer the video's and stops before sending another frame.
    following: BTreeMap<u32, (u32, mpsc::UnboundedSender<VideoAnswer>)>,
    /// Numbers the loops.
    next_loop: u32,
    /// Videos to follow again once a restarted worker listens.
    refollow: Vec<u32>,
    /// Videos the user stopped: followed up to the frame reached.
    stopping: BTreeSet<u32>,
    /// The model being tried in place of the running one.
    switching: Option<ModelSource>,
    /// Its file, for the list of models run in this session.
    switching_file: Option<File>,
    next_id: u32,
    /// Why the model cannot run, once there is nothing left to try: pictures added after that
    /// are refused with this reason instead of waiting for ever.
    stopped: Option<String>,
    /// Where the worker's answers to the Evaluate page go (its loop's channel); a restart or
    /// "forget everything" closes it, which ends the loop.
    evaluation: Option<mpsc::UnboundedSender<FromWorker>>,
    /// On the CPU path, the second worker that finds the people in video frames beside this
    /// one (started when the CPU backend is ready, so that it listens before a video comes).
    finder: Option<Rc<Finder>>,
}

/// The UI's handle on the worker.
pub struct Controller {
    dispatch: UseReducerDispatcher<AppState>,
    /// The model the worker runs (and loads again after a restart).
    model: RefCell<ModelSource>,
    /// The temporal aggregator in use, if the user chose one (loaded again after a restart).
    aggregator: RefCell<Option<ModelSource>>,
    /// Every model run in this session, in the order first run, each with the user's file
    /// (`None`: the shipped model, fetched from the app's origin), to switch back to.
    library: RefCell<Vec<(ModelEntry, Option<File>)>>,
    /// The shipped model's address.
    shipped: String,
    inner: RefCell<Inner>,
}

/// Reads a file the user picked, refusing one larger than [`MAX_FILE_BYTES`] before reading.
pub(super) async fn read_file(file: &File) -> Result<Vec<u8>, String> {
    if file.size() > MAX_FILE_BYTES {
        return Err(format!(
            "the file is {:.0} MB, more than the {:.0} MB this page reads",
            file.size() / 1048576.0,
            MAX_FILE_BYTES / 1048576.0
        ));
    }
    JsFuture::from(file.array_buffer())
        .await
        .map(|buffer| Uint8Array::new(&buffer).to_vec())
        .map_err(|e| format!("the file could not be read: {}", crate::js::js_error(e)))
}

pub(super) fn now_ms() -> f64 {
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
            aggregator: RefCell::new(None),
            library: RefCell::new(Vec::new()),
            shipped: model_url.to_string(),
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
        inner.switching_file = None;
        inner.evaluation = None;
        // Their loops end (the channels close) and the new worker follows them from the start.
        let running: Vec<u32> = std::mem::take(&mut inner.following).into_keys().collect();
        inner.refollow.extend(running);
        let generation = inner.generation;
        let worker = match Worker::new(WORKER_SCRIPT) {
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
    /// people in it (a photo), each of whom is embedded. `camera` is the user's label for these
    /// files' camera (empty: from each file's name or folder, see [`camera_of`]).
    pub fn add_files(self: &Rc<Self>, files: Vec<File>, find_people: bool, camera: &str) {
        let mut items = Vec::new();
        let mut to_read = Vec::new();
        let mut to_follow = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            for file in files {
                let id = inner.next_id;
                inner.next_id += 1;
                let url = Url::create_object_url_with_blob(&file).unwrap_or_default();
                let video = is_video(&file);
                let name = file.name();
                let relative = super::components::relative_path(&file);
                let seen = Seen {
                    camera: camera_of(camera, &name, folder_of(&relative), video),
                    when: when_of(&name, file.last_modified()),
                };
                let status = if video {
                    to_follow.push(id);
                    inner.files.insert(id, file.clone());
                    inner.videos.insert(id);
                    ItemStatus::Waiting
                } else if file.size() > MAX_FILE_BYTES {
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
                    name,
                    url,
                    crop: None,
                    source: None,
                    frames: None,
                    seen: Some(seen),
                    status,
                });
            }
        }
        self.dispatch.dispatch(Action::Added(items));
        self.read_and_submit(to_read);
        for id in to_follow {
            self.follow(id);
        }
    }

    /// Adds the people of a gallery (`from`: an opened file, the one kept on this device) and
    /// returns their ids. Made by the running model (`running`, the same stamp), they keep
    /// their embeddings as saved; made by another, their pictures are embedded again, and a
    /// notice says so. Either way each picture is kept as a file of its own, so a model the
    /// user switches to later embeds it again like any picture.
    pub fn add_gallery(
        self: &Rc<Self>,
        gallery: Gallery,
        running: Option<&ModelStamp>,
        from: &str,
    ) -> Vec<u32> {
        let same = running == Some(&gallery.model);
        let mut items = Vec::with_capacity(gallery.entries.len());
        let mut to_read = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            for entry in gallery.entries {
                let id = inner.next_id;
                inner.next_id += 1;
                let options = web_sys::FilePropertyBag::new();
                options.set_type(&entry.picture_type);
                let file = File::new_with_u8_array_sequence_and_options(
                    &js_sys::Array::of1(&Uint8Array::from(entry.picture.as_slice())),
                    &entry.name,
                    &options,
                );
                let (url, status) = match file {
                    Ok(file) => {
                        inner.files.insert(id, file.clone());
                        let url = Url::create_object_url_with_blob(&file).unwrap_or_default();
                        let status = if same {
                            ItemStatus::Done {
                                embedding: Rc::new(entry.embedding),
                                ms: 0.0,
                            }
                        } else {
                            to_read.push((id, file));
                            ItemStatus::Waiting
                        };
                        (url, status)
                    }
                    Err(e) => (
                        String::new(),
                        ItemStatus::Failed(format!(
                            "the picture could not be kept: {}",
                            crate::js::js_error(e)
                        )),
                    ),
                };
                items.push(Item {
                    id,
                    name: entry.name,
                    url,
                    crop: None,
                    source: None,
                    frames: entry.frames,
                    seen: entry.seen,
                    status,
                });
            }
        }
        if !same {
            self.dispatch.dispatch(Action::Notice(format!(
                "{}{} was made with another model ({}, {}-wide embeddings{}): its {} pictures are \
                 embedded again with the running one{}.",
                from[..1].to_uppercase(),
                &from[1..],
                gallery.model.architecture,
                gallery.model.dim,
                if gallery.model.aggregator.is_some() {
                    ", through a temporal aggregator"
                } else {
                    ""
                },
                items.len(),
                if gallery.heads_blurred {
                    " (their heads were blurred when saved, so they may rank a little differently)"
                } else {
                    ""
                },
            )));
        }
        let ids = items.iter().map(|i| i.id).collect();
        self.dispatch.dispatch(Action::Added(items));
        self.read_and_submit(to_read);
        ids
    }

    /// Follows the people through video `id` (one of `files`) in the background; a video the
    /// browser cannot play, or one the worker fails on, gets its reason.
    fn follow(self: &Rc<Self>, id: u32) {
        let Some(file) = self.inner.borrow().files.get(&id).cloned() else {
            return;
        };
        let (this_loop, answers) = {
            let mut inner = self.inner.borrow_mut();
            let (tx, rx) = mpsc::unbounded();
            inner.next_loop += 1;
            let this_loop = inner.next_loop;
            inner.following.insert(id, (this_loop, tx));
            (this_loop, rx)
        };
        let this = self.clone();
        spawn_local(async move {
            if let Err(message) = this.follow_video(id, &file, this_loop, answers).await {
                let mut inner = this.inner.borrow_mut();
                // A newer loop (the worker restarted, or a new model) reports for itself.
                if inner.following.get(&id).map(|(n, _)| *n) != Some(this_loop) {
                    return;
                }
                inner.following.remove(&id);
                inner.stopping.remove(&id);
                drop(inner);
                this.dispatch.dispatch(Action::Unreadable { id, message });
            }
        });
    }

    /// Stops following video `id` at the frame reached: the people followed so far stay.
    pub fn stop_video(&self, id: u32) {
        self.inner.borrow_mut().stopping.insert(id);
    }

    /// A channel for the worker's answers to the Evaluate page, replacing (and so ending)
    /// the one before.
    pub(super) fn evaluation_answers(&self) -> mpsc::UnboundedReceiver<FromWorker> {
        let (tx, rx) = mpsc::unbounded();
        self.inner.borrow_mut().evaluation = Some(tx);
        rx
    }

    /// Sends `message` if the worker listens; `false` if not (it is restarting).
    pub(super) fn send(&self, message: &ToWorker) -> bool {
        let inner = self.inner.borrow();
        match inner.worker.as_ref().filter(|_| inner.listening) {
            Some(handle) => {
                post(&handle.worker, message);
                true
            }
            None => false,
        }
    }

    /// Decodes video `id` in a `<video>` element (shown small in a corner while it runs, so
    /// the user sees what is being read), a frame every 1/[`SAMPLE_FPS`] s, and
    /// has the worker follow its people; ends with the tracks as items. Returns quietly when
    /// the worker restarts (the new one follows the video from the start).
    async fn follow_video(
        self: &Rc<Self>,
        id: u32,
        file: &File,
        this_loop: u32,
        mut answers: mpsc::UnboundedReceiver<VideoAnswer>,
    ) -> Result<(), String> {
        let js = |e: JsValue| format!("{e:?}");
        let document = web_sys::window()
            .and_then(|w| w.document())
            .ok_or("no document")?;
        let video: HtmlVideoElement = document
            .create_element("video")
            .map_err(js)?
            .unchecked_into();
        let url = Url::create_object_url_with_blob(file).map_err(js)?;
        let _preview = Preview {
            video: video.clone(),
            url: url.clone(),
        };
        video.set_muted(true);
        video.set_preload("auto");
        video.set_class_name("preview");
        let _ = video.set_attribute("aria-hidden", "true");
        if let Some(body) = document.body() {
            body.append_child(&video).map_err(js)?;
        }
        video.set_src(&url);
        if event(&video, "loadeddata").await.is_err() {
            return Err(media_error(&video));
        }
        let mut duration = video.duration();
        if duration == f64::INFINITY {
            // A clip recorded by a browser (MediaRecorder's WebM, the camera's) does not say
            // its length: seeking past its end has the browser read it through and learn it.
            video.set_current_time(1e9);
            if event(&video, "seeked").await.is_err() {
                return Err(media_error(&video));
            }
            duration = video.duration();
            video.set_current_time(0.0);
            if event(&video, "seeked").await.is_err() {
                return Err(media_error(&video));
            }
        }
        if !(duration.is_finite() && duration > 0.0) {
            return Err("the video has no length the browser can read".into());
        }
        let (vw, vh) = (video.video_width(), video.video_height());
        if vw == 0 || vh == 0 {
            return Err("the video has no picture".into());
        }
        let width = vw.min(MAX_VIDEO_WIDTH);
        let height = ((vh as f64 * width as f64 / vw as f64).round() as u32).max(1);
        let total = ((duration * SAMPLE_FPS).ceil() as u32).clamp(1, MAX_VIDEO_FRAMES);
        let canvas: HtmlCanvasElement = document
            .create_element("canvas")
            .map_err(js)?
            .unchecked_into();
        canvas.set_width(width);
        canvas.set_height(height);
        let options = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&options, &"willReadFrequently".into(), &true.into());
        let context: CanvasRenderingContext2d = canvas
            .get_context_with_context_options("2d", &options)
            .map_err(js)?
            .ok_or("the browser gives no 2D canvas")?
            .unchecked_into();
        let start = now_ms();
        // The workers' time over the frames answered: finding people, and the inference
        // worker's; whether a second worker found the people.
        let cost = Cell::new((0.0f64, 0.0f64));
        let beside = Cell::new(false);
        let mean = |done: u32| {
            let (detect, all) = cost.get();
            let n = done.max(1) as f64;
            VideoCost {
                detect_ms: detect / n,
                worker_ms: all / n,
                beside: beside.get(),
            }
        };
        let fps = |done: u32| {
            let seconds = (now_ms() - start) / 1000.0;
            if seconds > 0.0 {
                done as f64 / seconds
            } else {
                0.0
            }
        };
        let progress = |done: u32| Action::VideoProgress {
            id,
            done,
            total,
            fps: fps(done),
            cost: mean(done),
        };
        // Waits for the worker's answer to frame `index` and shows the progress: `Ok(false)`
        // when the worker restarted.
        // Each frame answered: when it is shown, and its people's boxes.
        let frame_boxes = RefCell::new(Vec::<FrameBoxes>::new());
        let frame_times = RefCell::new(Vec::<f64>::new());
        let mut answer = async |index: u32| match frame_answer(&mut answers, index).await {
            Some(Ok((boxes, detect_ms, ms))) => {
                let (detect, all) = cost.get();
                cost.set((detect + detect_ms, all + ms));
                frame_boxes.borrow_mut().push(FrameBoxes {
                    time_s: frame_times
                        .borrow()
                        .get(index as usize)
                        .copied()
                        .unwrap_or_default(),
                    boxes: boxes
                        .chunks_exact(5)
                        .map(|b| (b[0] as u64, [b[1], b[2], b[3], b[4]]))
                        .collect(),
                });
                self.dispatch.dispatch(progress(index + 1));
                Ok(true)
            }
            Some(Err(message)) => Err(message),
            None => Ok(false),
        };
        self.dispatch.dispatch(progress(0));
        // The worker restarted, the video was forgotten or it is followed by a newer loop.
        let superseded = |this: &Self| {
            this.inner.borrow().following.get(&id).map(|(n, _)| *n) != Some(this_loop)
        };
        // On the CPU path a second worker finds the people in frame n + 1 while the inference
        // worker embeds and tracks frame n (the frame decoded meanwhile waits here).
        let finder = {
            let inner = self.inner.borrow();
            inner
                .finder
                .clone()
                .filter(|_| inner.running == Some(Backend::Cpu))
        };
        type AtFinder = (u32, f64, Vec<u8>, oneshot::Receiver<Option<FoundBoxes>>);
        let mut at_finder: Option<AtFinder> = None;
        // Seeks the video to frame `index`: its time, and the end of the seek to await.
        let seek = |index: u32| {
            let t = (index as f64 / SAMPLE_FPS + 0.01)
                .min(duration - 0.001)
                .max(0.0);
            let seeked = next_event(&video, "seeked");
            video.set_current_time(t);
            (t, seeked)
        };
        let mut seeking = Some(seek(0));
        let mut sent = 0u32;
        let mut stop = false;
        // One turn a frame, and a last one that hands on the frame still at the finder.
        for index in 0..=total {
            if superseded(self) {
                return Ok(());
            }
            stop |= index == total || self.inner.borrow().stopping.contains(&id);
            let decoded = match seeking.take().filter(|_| !stop) {
                None => None,
                Some((t, seeked)) => {
                    if seeked.await.is_err() {
                        return Err(format!("{} (at {t:.1} s)", media_error(&video)));
                    }
                    context
                        .draw_image_with_html_video_element_and_dw_and_dh(
                            &video,
                            0.0,
                            0.0,
                            width as f64,
                            height as f64,
                        )
                        .map_err(js)?;
                    let rgba = context
                        .get_image_data(0.0, 0.0, width as f64, height as f64)
                        .map_err(js)?
                        .data()
                        .0;
                    let time_s = video.current_time();
                    // The browser decodes the next frame while the workers work on this one.
                    if index + 1 < total {
                        seeking = Some(seek(index + 1));
                    }
                    Some((time_s, rgba))
                }
            };
            let handed = match (&finder, &decoded) {
                (Some(f), Some((_, rgba))) => f.find(width, height, rgba),
                _ => None,
            };
            // Frames for the inference worker, in order: the one the finder had (with its
            // people, or without when the finder failed), then this one if it went straight.
            let mut ready = Vec::with_capacity(2);
            if let Some((i, time_s, rgba, found)) = at_finder.take() {
                ready.push((i, time_s, rgba, found.await.ok().flatten()));
            }
            match (decoded, handed) {
                (Some((time_s, rgba)), Some(found)) => {
                    at_finder = Some((index, time_s, rgba, found));
                }
                (Some((time_s, rgba)), None) => ready.push((index, time_s, rgba, None)),
                (None, _) => {}
            }
            for (i, time_s, rgba, found) in ready {
                // One frame in flight: the next was decoded while the worker tracked this one.
                if i > 0 && !answer(i - 1).await? {
                    return Ok(());
                }
                frame_times.borrow_mut().push(time_s);
                beside.set(beside.get() || found.is_some());
                let frame = ToWorker::VideoFrame {
                    id,
                    index: i,
                    time_s,
                    width,
                    height,
                    rgba,
                    found,
                };
                if superseded(self) || !self.send(&frame) {
                    return Ok(());
                }
                sent = i + 1;
            }
            if stop {
                break;
            }
        }
        if sent > 0 && !answer(sent - 1).await? {
            return Ok(());
        }
        if !self.send(&ToWorker::VideoEnd { id }) {
            return Ok(());
        }
        loop {
            match answers.next().await {
                Some(VideoAnswer::Tracks {
                    tracks,
                    left_out,
                    frames,
                }) => {
                    let people = tracks
                        .into_iter()
                        .map(|t| FollowedPerson {
                            track: t.track,
                            url: png_url(&t.thumbnail),
                            span_s: t.span_s,
                            frames: t.frames,
                            embedding: t.embedding,
                        })
                        .collect();
                    if superseded(self) {
                        return Ok(());
                    }
                    let mut inner = self.inner.borrow_mut();
                    inner.following.remove(&id);
                    inner.stopping.remove(&id);
                    drop(inner);
                    self.dispatch.dispatch(Action::VideoTracks {
                        id,
                        people,
                        boxes: Rc::new(VideoBoxes {
                            size: [width, height],
                            frames: frame_boxes.take(),
                        }),
                        left_out,
                        frames,
                        fps: fps(frames),
                        cost: mean(frames),
                    });
                    return Ok(());
                }
                Some(VideoAnswer::Failed(message)) => return Err(message),
                Some(VideoAnswer::Frame { .. }) => {}
                None => return Ok(()),
            }
        }
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
        let picked = file.clone();
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
            this.switch_to(model, Some(picked), name);
        });
    }

    /// Asks the worker to run `model` in place of the running one (`file`: the user's, for the
    /// session's list; `name` for the page).
    fn switch_to(&self, model: ModelSource, file: Option<File>, name: String) {
        let mut inner = self.inner.borrow_mut();
        let Some(handle) = inner.worker.as_ref().filter(|_| inner.listening) else {
            drop(inner);
            self.dispatch.dispatch(Action::ModelRefused(
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
        inner.switching_file = file;
        drop(inner);
        self.dispatch.dispatch(Action::ModelSwitching(name));
    }

    /// Runs model `index` of the session's list again: a file of the user's is read again from
    /// their disk, the shipped model fetched again from the app's origin (the service worker's
    /// copy when offline). Every picture and video is embedded again, as for a new file.
    pub fn use_known_model(self: &Rc<Self>, index: usize) {
        let Some((entry, file)) = self.library.borrow().get(index).cloned() else {
            return;
        };
        if let Some(file) = file {
            self.use_model(file);
            return;
        }
        let model = ModelSource::Url {
            url: self.shipped.clone(),
        };
        self.switch_to(model, None, entry.name);
    }

    /// Adds the model a `Ready` reports to the session's list: the shipped model at the first
    /// start, and each model or aggregator the user switched to (once each, by fingerprint).
    fn remember(&self, generation: u32, info: &ReadyInfo) {
        let (switched, file) = {
            let mut inner = self.inner.borrow_mut();
            if generation != inner.generation {
                return;
            }
            let switched = inner.switching.is_some();
            (switched, inner.switching_file.take().filter(|_| switched))
        };
        let entry = match (&info.aggregator, info.aggregator_switched) {
            (Some(a), true) => ModelEntry {
                name: file.as_ref().map_or_else(|| a.name.clone(), File::name),
                aggregator: true,
                summary: format!("temporal aggregator: {}, {}-d", a.label, a.dim),
                fingerprint: a.fingerprint.clone(),
            },
            _ => ModelEntry {
                name: file.as_ref().map_or_else(
                    || {
                        let name = self.shipped.rsplit('/').next().unwrap_or(&self.shipped);
                        format!("{name} (shipped with the app)")
                    },
                    File::name,
                ),
                aggregator: false,
                summary: format!(
                    "{}, {}-d embeddings, {:.1} MB",
                    info.architecture,
                    info.dim,
                    info.model_bytes as f64 / 1e6
                ),
                fingerprint: info.fingerprint.clone(),
            },
        };
        let mut library = self.library.borrow_mut();
        // A restart reloads what ran: only the first start and the user's switches are new.
        if (!switched && !library.is_empty())
            || library
                .iter()
                .any(|(e, _)| e.fingerprint == entry.fingerprint)
        {
            return;
        }
        library.push((entry, file));
        let entries = library.iter().map(|(e, _)| e.clone()).collect();
        drop(library);
        self.dispatch.dispatch(Action::ModelsKnown(entries));
    }

    /// Forgets every image and video (their files included); videos being followed stop.
    pub fn forget_everything(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.files.clear();
            inner.pending.clear();
            inner.photos.clear();
            inner.videos.clear();
            inner.following.clear();
            inner.refollow.clear();
            inner.stopping.clear();
            inner.evaluation = None;
        }
        // A worker that is restarting keeps nothing of the user's: say so at once.
        if !self.send(&ToWorker::Forget) {
            self.dispatch.dispatch(Action::Worker {
                message: FromWorker::Forgotten,
                at_ms: now_ms(),
            });
        }
    }

    /// Adds the demo pictures shipped with the app (`demo/index.json` lists them), fetched from
    /// the page's own origin like the model.
    pub fn add_demo(self: &Rc<Self>) {
        let this = self.clone();
        spawn_local(async move {
            match demo_files().await {
                Ok(files) => this.add_files(files, false, ""),
                Err(message) => this.dispatch.dispatch(Action::Notice(format!(
                    "the demo pictures could not be loaded: {message}"
                ))),
            }
        });
    }

    /// Adds the demo clip shipped with the app (`demo/scene.webm`), fetched from the page's own
    /// origin, as if the user had picked it.
    pub fn add_demo_video(self: &Rc<Self>) {
        let this = self.clone();
        spawn_local(async move {
            let file = async {
                let response = fetch_ok("demo/scene.webm").await?;
                let blob = JsFuture::from(response.blob().map_err(|e| format!("{e:?}"))?)
                    .await
                    .map_err(|e| format!("scene.webm: {e:?}"))?;
                let options = web_sys::FilePropertyBag::new();
                options.set_type("video/webm");
                File::new_with_blob_sequence_and_options(
                    &js_sys::Array::of1(&blob),
                    "scene.webm",
                    &options,
                )
                .map_err(|e| format!("scene.webm: {e:?}"))
            };
            match file.await {
                Ok(file) => this.add_files(vec![file], false, ""),
                Err(message) => this.dispatch.dispatch(Action::Notice(format!(
                    "the demo video could not be loaded: {message}"
                ))),
            }
        });
    }

    /// Asks the worker to rank `gallery` (id and embedding of each image) by similarity to the
    /// image `query_id`, or with `rerank` by k-reciprocal re-ranked distance; the answer
    /// arrives as an [`Action::Worker`].
    pub fn search(
        &self,
        query_id: u32,
        query: &[f32],
        gallery: &[(u32, Rc<Vec<f32>>)],
        rerank: bool,
    ) {
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
                rerank,
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
        if let FromWorker::Ready(info) = &message {
            self.remember(generation, info);
        }
        {
            let mut inner = self.inner.borrow_mut();
            if generation != inner.generation {
                return;
            }
            match &message {
                FromWorker::EvalEmbedded { .. }
                | FromWorker::Evaluated { .. }
                | FromWorker::Explained { .. }
                | FromWorker::EvalFailed { .. } => {
                    if let Some(tx) = &inner.evaluation {
                        let _ = tx.unbounded_send(message);
                    }
                    return;
                }
                FromWorker::FrameTracked { id, .. } => {
                    if let (
                        Some((_, tx)),
                        FromWorker::FrameTracked {
                            index,
                            boxes,
                            detect_ms,
                            ms,
                            ..
                        },
                    ) = (inner.following.get(id), message)
                    {
                        let _ = tx.unbounded_send(VideoAnswer::Frame {
                            index,
                            boxes,
                            detect_ms,
                            ms,
                        });
                    }
                    return;
                }
                FromWorker::Tracks { id, .. } => {
                    if let (
                        Some((_, tx)),
                        FromWorker::Tracks {
                            tracks,
                            left_out,
                            frames,
                            ..
                        },
                    ) = (inner.following.get(id), message)
                    {
                        let _ = tx.unbounded_send(VideoAnswer::Tracks {
                            tracks,
                            left_out,
                            frames,
                        });
                    }
                    return;
                }
                FromWorker::Failed { id, message: why } if inner.following.contains_key(id) => {
                    // The video's loop reports it.
                    if let Some((_, tx)) = inner.following.get(id) {
                        let _ = tx.unbounded_send(VideoAnswer::Failed(why.clone()));
                    }
                    return;
                }
                FromWorker::Embedded { id, .. }
                | FromWorker::Failed { id, .. }
                | FromWorker::People { id, .. } => {
                    inner.pending.remove(id);
                }
                FromWorker::Ready(info) => {
                    inner.running = Some(info.backend);
                    if info.backend == Backend::Cpu
                        && inner.finder.as_ref().is_none_or(|f| f.is_dead())
                    {
                        inner.finder = Finder::start();
                    }
                    if let Some(model) = inner.switching.take() {
                        // The new file is in use: it is the one to load after a restart, and
                        // every image read so far (not waiting for an answer) is embedded
                        // again, every video followed again.
                        if info.aggregator_switched {
                            *self.aggregator.borrow_mut() = Some(model);
                        } else {
                            *self.model.borrow_mut() = model;
                            if info.aggregator.is_none() {
                                *self.aggregator.borrow_mut() = None;
                            }
                        }
                        let again: Vec<(u32, File)> = inner
                            .files
                            .iter()
                            .filter(|(id, _)| {
                                !inner.pending.contains_key(id) && !inner.videos.contains(id)
                            })
                            .map(|(&id, file)| (id, file.clone()))
                            .collect();
                        let videos: Vec<u32> = inner.videos.iter().copied().collect();
                        drop(inner);
                        self.dispatch.dispatch(Action::Worker {
                            message,
                            at_ms: now_ms(),
                        });
                        self.dispatch.dispatch(Action::Reembedding(
                            again
                                .iter()
                                .map(|(id, _)| *id)
                                .chain(videos.iter().copied())
                                .collect(),
                        ));
                        self.read_and_submit(again);
                        for id in videos {
                            self.follow(id);
                        }
                        return;
                    }
                }
                FromWorker::ModelRefused { name, message } => {
                    inner.switching = None;
                    inner.switching_file = None;
                    let notice = format!(
                        "Your model {name} cannot be used ({message}); the previous model still runs."
                    );
                    drop(inner);
                    self.dispatch.dispatch(Action::ModelRefused(notice));
                    return;
                }
                FromWorker::Ranked { .. }
                | FromWorker::Forgotten
                | FromWorker::SearchFailed { .. }
                | FromWorker::Benchmarked { .. }
                | FromWorker::BenchmarkFailed { .. }
                | FromWorker::PeopleFound { .. }
                | FromWorker::FindFailed { .. } => {}
                FromWorker::Listening => {
                    // Start the backend, then (re)send every image still waiting and follow
                    // again every video not finished.
                    inner.listening = true;
                    if let Some(handle) = &inner.worker {
                        post(
                            &handle.worker,
                            &ToWorker::Start {
                                requested: inner.requested,
                                model: self.model.borrow().clone(),
                                aggregator: self.aggregator.borrow().clone(),
                            },
                        );
                        for (&id, bytes) in &inner.pending {
                            post(&handle.worker, &job(&inner.photos, id, bytes.to_vec()));
                        }
                    }
                    let refollow = std::mem::take(&mut inner.refollow);
                    drop(inner);
                    for id in refollow {
                        self.follow(id);
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
            // Videos being followed end (their loops see the channels close).
            inner.following.clear();
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

/// Whether the user's file is a video (by its type, else its name).
pub(super) fn is_video(file: &File) -> bool {
    let name = file.name().to_ascii_lowercase();
    file.type_().starts_with("video/")
        || [".webm", ".mp4", ".m4v", ".ogv", ".mov", ".mkv", ".avi"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The `<video>` element following a video and its `blob:` URL, removed when the loop ends.
struct Preview {
    video: HtmlVideoElement,
    url: String,
}

impl Drop for Preview {
    fn drop(&mut self) {
        self.video.remove_attribute("src").ok();
        self.video.remove();
        let _ = Url::revoke_object_url(&self.url);
    }
}

/// Waits for `name` (or `error`) on `target`: `Err` on `error`.
async fn event(target: &EventTarget, name: &str) -> Result<(), JsValue> {
    next_event(target, name).await.map(|_| ())
}

/// The next `name` event of `target` (or its next `error`, as the error), listened for from
/// now on: made before an action that fires it, awaited later.
fn next_event(target: &EventTarget, name: &str) -> JsFuture {
    let promise = Promise::new(&mut |resolve, reject| {
        let options = AddEventListenerOptions::new();
        options.set_once(true);
        let _ = target.add_event_listener_with_callback_and_add_event_listener_options(
            name, &resolve, &options,
        );
        let _ = target.add_event_listener_with_callback_and_add_event_listener_options(
            "error", &reject, &options,
        );
    });
    JsFuture::from(promise)
}

/// Why the browser could not play `video`, in plain words.
fn media_error(video: &HtmlVideoElement) -> String {
    match video.error().map(|e| e.code()) {
        Some(1) => "reading the video was stopped".into(),
        Some(2) => "the video could not be read from disk".into(),
        Some(3) => "the video is damaged: the browser could not decode it".into(),
        Some(4) => "this browser cannot play this file: it is not a video, or in a format the browser lacks (WebM with VP8 or VP9 plays everywhere)".into(),
        _ => "the browser could not play the video".into(),
    }
}

/// Waits for the worker's answer to frame `index` (its detection and whole times, in ms):
/// `None` when the worker restarted.
async fn frame_answer(
    answers: &mut mpsc::UnboundedReceiver<VideoAnswer>,
    index: u32,
) -> Option<Result<(Vec<f32>, f64, f64), String>> {
    loop {
        match answers.next().await? {
            VideoAnswer::Frame {
                index: i,
                boxes,
                detect_ms,
                ms,
            } if i == index => return Some(Ok((boxes, detect_ms, ms))),
            VideoAnswer::Frame { .. } | VideoAnswer::Tracks { .. } => {}
            VideoAnswer::Failed(message) => return Some(Err(message)),
        }
    }
}

/// A `blob:` URL of PNG bytes (empty when there are none).
fn png_url(png: &[u8]) -> String {
    if png.is_empty() {
        return String::new();
    }
    let options = BlobPropertyBag::new();
    options.set_type("image/png");
    Blob::new_with_u8_array_sequence_and_options(
        &js_sys::Array::of1(&Uint8Array::from(png)),
        &options,
    )
    .and_then(|blob| Url::create_object_url_with_blob(&blob))
    .unwrap_or_default()
}

/// What to ask of the worker for image `id`: find its people (a photo) or embed it whole.
fn job(photos: &BTreeSet<u32>, id: u32, bytes: Vec<u8>) -> ToWorker {
    if photos.contains(&id) {
        ToWorker::Detect { id, bytes }
    } else {
        ToWorker::Embed { id, bytes }
    }
}

/// The script that starts a worker (the inference worker, and the people finder: the same
/// code).
pub(super) const WORKER_SCRIPT: &str = "./worker_loader.js";

/// Sends `message` to `worker`; `false` (and said on the console) when it could not go.
pub(super) fn post(worker: &Worker, message: &ToWorker) -> bool {
    match serde_wasm_bindgen::to_value(message) {
        Ok(value) => match worker.post_message(&value) {
            Ok(()) => true,
            Err(e) => {
                web_sys::console::error_1(&e);
                false
            }
        },
        Err(e) => {
            web_sys::console::error_1(&format!("cannot send a message: {e}").into());
            false
        }
    }
}
