//! The page's state and how worker messages change it. Pure data: no DOM, no worker handle.

use std::collections::BTreeMap;
use std::rc::Rc;

use yew::Reducible;

use reid_core::Backend;

use crate::protocol::{FromWorker, RankedHit, ReadyInfo, MAX_PEOPLE};
use crate::seen::{Seen, When};

/// One image the user added, or one person found in a photo the user added.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: u32,
    pub name: String,
    /// `blob:` URL of the user's own file (a person's photo), for the thumbnail.
    pub url: String,
    /// Where a person found in a photo is in it; `None` for a picture the user added and for
    /// a person followed through a video (whose `url` is their best view).
    pub crop: Option<Crop>,
    /// The photo or video a person was found in.
    pub source: Option<u32>,
    /// For a person followed through a video, the frames they were seen in.
    pub frames: Option<u64>,
    /// The camera and time, for the search's timeline (`None` for an entry of a gallery file
    /// saved without them).
    pub seen: Option<Seen>,
    pub status: ItemStatus,
}

/// The people followed in one frame of a video: each track's number and box (x, y, width,
/// height in the frame's pixels).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameBoxes {
    /// When the frame is shown, in seconds from the video's start.
    pub time_s: f64,
    pub boxes: Vec<(u64, [f32; 4])>,
}

/// Where the people followed through a video were, frame by frame.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoBoxes {
    /// The frames' width and height (the video's, scaled down when wider than the page decodes).
    pub size: [u32; 2],
    pub frames: Vec<FrameBoxes>,
}

impl VideoBoxes {
    /// The frame shown at `time_s`: the last followed at or before it (within a
    /// twentieth of a second).
    pub fn at(&self, time_s: f64) -> Option<&FrameBoxes> {
        self.frames
            .iter()
            .take_while(|f| f.time_s <= time_s + 0.05)
            .last()
    }
}

/// A followed video's boxes and the gallery entry of each track kept.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPeople {
    pub boxes: Rc<VideoBoxes>,
    /// Track number to item id.
    pub items: BTreeMap<u64, u32>,
}

/// A person followed through a video, ready to become an item.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowedPerson {
    /// The tracker's number for the person.
    pub track: u64,
    /// `blob:` URL of the best view (a PNG the worker made).
    pub url: String,
    /// First and last time seen, in seconds.
    pub span_s: [f64; 2],
    pub frames: u64,
    pub embedding: Vec<f32>,
}

/// A person's place in a photo.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crop {
    /// The photo's item id.
    pub photo: u32,
    /// x, y, width, height in the photo's pixels.
    pub bbox: [f32; 4],
    /// The photo's width and height.
    pub size: [u32; 2],
}

impl Crop {
    /// CSS showing the person, from the photo at `url`, in a `w` x `h` box: covering it and
    /// centred, as `object-fit: cover` shows a picture (the photo scaled and shifted as the
    /// box's background: no pixels are copied).
    pub fn style(&self, url: &str, w: f32, h: f32) -> String {
        let [x, y, cw, ch] = self.bbox;
        let scale = (w / cw.max(1.0)).max(h / ch.max(1.0));
        let (dx, dy) = ((w - cw * scale) / 2.0, (h - ch * scale) / 2.0);
        format!(
            "background-image:url('{url}');background-size:{:.1}px {:.1}px;background-position:{:.1}px {:.1}px",
            self.size[0] as f32 * scale,
            self.size[1] as f32 * scale,
            dx - x * scale,
            dy - y * scale,
        )
    }
}

/// People found in photos get ids of their own, above every picture's: person `k` of photo
/// `photo` (fewer than [`MAX_PEOPLE`] per photo).
pub fn person_id(photo: u32, k: usize) -> u32 {
    (1 << 31) | (photo.wrapping_mul(MAX_PEOPLE as u32) + k as u32)
}

/// The workers' mean time per frame of a video, in ms: finding the people (HOG), and the
/// tracking worker's (embedding and tracking, and finding the people unless `beside`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct VideoCost {
    pub detect_ms: f64,
    pub worker_ms: f64,
    /// The people were found in a second worker, beside the one that embeds and tracks
    /// (`worker_ms` is then the tracking worker's alone).
    pub beside: bool,
}

/// Where an image is in the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemStatus {
    /// Sent to the worker, no answer yet.
    Waiting,
    /// Embedded.
    Done { embedding: Rc<Vec<f32>>, ms: f64 },
    /// A photo searched for people: how many were found (each is an item of its own), how
    /// many less sure ones were left out (beyond [`MAX_PEOPLE`]) and how long the detector took.
    Photo {
        people: usize,
        left_out: usize,
        detect_ms: f64,
    },
    /// A video being followed (`tracks` is `None` until its end): frames tracked of those
    /// sampled, people followed (each an item of its own, beyond [`MAX_PEOPLE`] left out)
    /// and frames per second of the whole job (decoding, detection, embedding, tracking).
    Video {
        done: u32,
        total: u32,
        tracks: Option<usize>,
        left_out: usize,
        fps: f64,
        cost: VideoCost,
    },
    /// Refused, with the reason in plain words.
    Failed(String),
}

/// State of the inference worker as the UI sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    Starting,
    Ready(Rc<ReadyInfo>),
    Failed(String),
}

/// A model run in this session, to switch back to (the controller keeps its file).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    pub name: String,
    /// A temporal aggregator (over a network's embeddings) rather than a network.
    pub aggregator: bool,
    /// What it is, for people: "MobileNetV2, 1280-d embeddings, 4.7 MB".
    pub summary: String,
    /// SHA-256 (hex) of its file: the running one has the worker's fingerprint.
    pub fingerprint: String,
}

/// The last search the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Search {
    pub query_id: u32,
    pub status: SearchStatus,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SearchStatus {
    Running,
    Done {
        hits: Rc<Vec<RankedHit>>,
        backend: Backend,
        ms: f64,
    },
    Failed(String),
}

/// The last speed measurement the user asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Benchmark {
    Running,
    Done {
        backend: Backend,
        batch: usize,
        /// Passes timed.
        passes: usize,
        crops_per_s: f64,
        /// The temporal aggregator's median ms per 16-frame track, when there is one.
        tracklet_ms: Option<f64>,
    },
    Failed(String),
}

/// `value` with three significant digits (537, 7.07, 0.0412): a software adapter's rate of a
/// large network is a small fraction of a crop per second.
pub fn significant(value: f64) -> String {
    if !value.is_finite() || value <= 0.0 {
        return format!("{value}");
    }
    let decimals = (2 - value.log10().floor() as i32).max(0) as usize;
    format!("{value:.decimals$}")
}

/// Where a followed video's frame time went, in words.
pub fn cost_words(cost: &VideoCost) -> String {
    if cost.beside {
        format!(
            "a frame took {:.0} ms to find its people in one worker and {:.0} ms to embed and follow them in another, side by side",
            cost.detect_ms, cost.worker_ms
        )
    } else {
        format!(
            "a frame took {:.0} ms in the worker, {:.0} ms of them finding people",
            cost.worker_ms, cost.detect_ms
        )
    }
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    pub items: Rc<Vec<Item>>,
    pub engine: Engine,
    pub notices: Rc<Vec<String>>,
    /// Milliseconds from page load to the first embedding received.
    pub first_embedding_ms: Option<f64>,
    pub search: Option<Search>,
    pub benchmark: Option<Benchmark>,
    /// The user's model file being loaded in place of the running model.
    pub switching_model: Option<String>,
    /// Why the last model the user picked was refused.
    pub model_refused: Option<String>,
    /// The user asked to forget everything and the worker confirmed it; cleared when
    /// something new is added.
    pub forgotten: bool,
    /// The models run in this session, the first the shipped one.
    pub models: Rc<Vec<ModelEntry>>,
    /// Per followed video (by id), where its people were.
    pub video_people: Rc<BTreeMap<u32, Rc<VideoPeople>>>,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            items: Rc::new(Vec::new()),
            engine: Engine::Starting,
            notices: Rc::new(Vec::new()),
            first_embedding_ms: None,
            search: None,
            benchmark: None,
            switching_model: None,
            model_refused: None,
            forgotten: false,
            models: Rc::new(Vec::new()),
            video_people: Rc::new(BTreeMap::new()),
        }
    }
}

/// What can happen to the state.
#[derive(Debug)]
pub enum Action {
    /// New images were added (already sent to the worker).
    Added(Vec<Item>),
    /// The worker answered; `at_ms` is the page time of arrival.
    Worker { message: FromWorker, at_ms: f64 },
    /// The worker was restarted on another backend; `notice` says why.
    Restarted { notice: String },
    /// A file could not even be read from disk.
    Unreadable { id: u32, message: String },
    /// Something the user should read (shown with the backend status).
    Notice(String),
    /// The user asked who else looks like image `query_id`.
    SearchStarted { query_id: u32 },
    /// The user asked how fast the model runs here.
    BenchmarkStarted,
    /// The user forgot all images.
    Clear,
    /// The user's model file `name` was sent to the worker.
    ModelSwitching(String),
    /// The user's model file cannot be used (the reason, in words); the old model still runs.
    ModelRefused(String),
    /// The models run in this session changed.
    ModelsKnown(Vec<ModelEntry>),
    /// A new model runs: these images are embedded again.
    Reembedding(Vec<u32>),
    /// Video `id` is being followed: `done` of `total` frames, at `fps` frames a second.
    VideoProgress {
        id: u32,
        done: u32,
        total: u32,
        fps: f64,
        cost: VideoCost,
    },
    /// Video `id` was followed to its end (or to where the user stopped it).
    VideoTracks {
        id: u32,
        people: Vec<FollowedPerson>,
        boxes: Rc<VideoBoxes>,
        left_out: usize,
        frames: u32,
        fps: f64,
        cost: VideoCost,
    },
}

impl AppState {
    /// Updates the search for `query_id` (answers to an older search are dropped).
    fn set_search(&mut self, query_id: u32, status: SearchStatus) {
        if let Some(search) = self.search.as_mut().filter(|s| s.query_id == query_id) {
            search.status = status;
        }
    }

    fn set_status(&mut self, id: u32, status: ItemStatus) {
        let items = Rc::make_mut(&mut self.items);
        if let Some(item) = items.iter_mut().find(|i| i.id == id) {
            item.status = status;
        }
    }
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = (*self).clone();
        match action {
            Action::Added(items) => {
                next.forgotten = false;
                Rc::make_mut(&mut next.items).extend(items);
            }
            Action::Worker { message, at_ms } => match message {
                // The controller turns these into `VideoProgress` and `VideoTracks`.
                FromWorker::Listening
                | FromWorker::FrameTracked { .. }
                | FromWorker::Tracks { .. }
                | FromWorker::EvalEmbedded { .. }
                | FromWorker::Evaluated { .. }
                | FromWorker::Explained { .. }
                | FromWorker::EvalFailed { .. }
                | FromWorker::PeopleFound { .. }
                | FromWorker::FindFailed { .. } => {}
                FromWorker::Forgotten => next.forgotten = true,
                FromWorker::Ready(info) => {
                    next.engine = Engine::Ready(Rc::new(*info));
                    next.switching_model = None;
                }
                // The controller turns a refusal into `Action::ModelRefused`.
                FromWorker::ModelRefused { message, .. } => {
                    next.switching_model = None;
                    next.model_refused = Some(message);
                }
                FromWorker::Embedded { id, embedding, ms } => {
                    next.first_embedding_ms.get_or_insert(at_ms);
                    next.set_status(
                        id,
                        ItemStatus::Done {
                            embedding: Rc::new(embedding),
                            ms,
                        },
                    );
                }
                FromWorker::People {
                    id,
                    width,
                    height,
                    people,
                    left_out,
                    detect_ms,
                    ms,
                } => {
                    if !people.is_empty() {
                        next.first_embedding_ms.get_or_insert(at_ms);
                    }
                    let items = Rc::make_mut(&mut next.items);
                    // A photo searched again (by a new model) replaces its people.
                    items.retain(|i| i.source != Some(id));
                    if let Some(at) = items.iter().position(|i| i.id == id) {
                        let photo = &mut items[at];
                        photo.status = ItemStatus::Photo {
                            people: people.len(),
                            left_out,
                            detect_ms,
                        };
                        let (name, url, seen) =
                            (photo.name.clone(), photo.url.clone(), photo.seen.clone());
                        let each_ms = ms / people.len().max(1) as f64;
                        let found = people.into_iter().enumerate().map(|(k, p)| Item {
                            id: person_id(id, k),
                            name: format!("{name} #{}", k + 1),
                            url: url.clone(),
                            crop: Some(Crop {
                                photo: id,
                                bbox: p.bbox,
                                size: [width, height],
                            }),
                            source: Some(id),
                            frames: None,
                            seen: seen.clone(),
                            status: ItemStatus::Done {
                                embedding: Rc::new(p.embedding),
                                ms: each_ms,
                            },
                        });
                        items.splice(at + 1..at + 1, found);
                    }
                }
                FromWorker::Failed { id, message } => {
                    next.set_status(id, ItemStatus::Failed(message))
                }
                FromWorker::Ranked {
                    query_id,
                    hits,
                    backend,
                    ms,
                } => next.set_search(
                    query_id,
                    SearchStatus::Done {
                        hits: Rc::new(hits),
                        backend,
                        ms,
                    },
                ),
                FromWorker::SearchFailed { query_id, message } => {
                    next.search = Some(Search {
                        query_id,
                        status: SearchStatus::Failed(message),
                    })
                }
                FromWorker::Benchmarked {
                    backend,
                    batch,
                    iters,
                    crops_per_s,
                    tracklet_ms,
                } => {
                    next.benchmark = Some(Benchmark::Done {
                        backend,
                        batch,
                        passes: iters,
                        crops_per_s,
                        tracklet_ms,
                    })
                }
                FromWorker::BenchmarkFailed { message } => {
                    next.benchmark = Some(Benchmark::Failed(message))
                }
                FromWorker::Fatal { message } => {
                    next.engine = Engine::Failed(message.clone());
                    if next.benchmark == Some(Benchmark::Running) {
                        next.benchmark = Some(Benchmark::Failed(message.clone()));
                    }
                    if let Some(s) = next.search.as_ref().map(|s| s.query_id) {
                        next.set_search(s, SearchStatus::Failed(message.clone()));
                    }
                    for item in Rc::make_mut(&mut next.items) {
                        match item.status {
                            ItemStatus::Waiting => {
                                item.status =
                                    ItemStatus::Failed(format!("not embedded: {message}"));
                            }
                            ItemStatus::Video { tracks: None, .. } => {
                                item.status =
                                    ItemStatus::Failed(format!("not followed: {message}"));
                            }
                            _ => {}
                        }
                    }
                }
            },
            Action::Notice(notice) => Rc::make_mut(&mut next.notices).push(notice),
            Action::SearchStarted { query_id } => {
                next.search = Some(Search {
                    query_id,
                    status: SearchStatus::Running,
                })
            }
            Action::BenchmarkStarted => next.benchmark = Some(Benchmark::Running),
            Action::Restarted { notice } => {
                next.engine = Engine::Starting;
                if next.benchmark == Some(Benchmark::Running) {
                    next.benchmark = Some(Benchmark::Failed(
                        "the worker restarted; measure again".into(),
                    ));
                }
                if let Some(s) = next.search.as_ref().map(|s| s.query_id) {
                    next.set_search(
                        s,
                        SearchStatus::Failed("the worker restarted; search again".into()),
                    );
                }
                Rc::make_mut(&mut next.notices).push(notice);
            }
            Action::Unreadable { id, message } => next.set_status(id, ItemStatus::Failed(message)),
            Action::ModelSwitching(name) => {
                next.switching_model = Some(name);
                next.model_refused = None;
            }
            Action::ModelRefused(message) => {
                next.switching_model = None;
                next.model_refused = Some(message);
            }
            Action::VideoProgress {
                id,
                done,
                total,
                fps,
                cost,
            } => next.set_status(
                id,
                ItemStatus::Video {
                    done,
                    total,
                    tracks: None,
                    left_out: 0,
                    fps,
                    cost,
                },
            ),
            Action::VideoTracks {
                id,
                people,
                boxes,
                left_out,
                frames,
                fps,
                cost,
            } => {
                let items = Rc::make_mut(&mut next.items);
                items.retain(|i| i.source != Some(id));
                if let Some(at) = items.iter().position(|i| i.id == id) {
                    let video = &mut items[at];
                    let total = match video.status {
                        ItemStatus::Video { total, .. } => total.max(frames),
                        _ => frames,
                    };
                    video.status = ItemStatus::Video {
                        done: frames,
                        total,
                        tracks: Some(people.len()),
                        left_out,
                        fps,
                        cost,
                    };
                    let name = video.name.clone();
                    let camera = video.seen.as_ref().map(|s| s.camera.clone());
                    let tracks = people
                        .iter()
                        .enumerate()
                        .map(|(k, p)| (p.track, person_id(id, k)))
                        .collect();
                    Rc::make_mut(&mut next.video_people).insert(
                        id,
                        Rc::new(VideoPeople {
                            boxes,
                            items: tracks,
                        }),
                    );
                    let found = people.into_iter().enumerate().map(|(k, p)| Item {
                        id: person_id(id, k),
                        name: format!(
                            "{name} #{} ({:.1}-{:.1} s)",
                            k + 1,
                            p.span_s[0],
                            p.span_s[1]
                        ),
                        url: p.url,
                        crop: None,
                        source: Some(id),
                        frames: Some(p.frames),
                        seen: camera.clone().map(|camera| Seen {
                            camera,
                            when: When::Video {
                                from_s: p.span_s[0],
                                to_s: p.span_s[1],
                            },
                        }),
                        status: ItemStatus::Done {
                            embedding: Rc::new(p.embedding),
                            ms: 0.0,
                        },
                    });
                    items.splice(at + 1..at + 1, found);
                }
            }
            Action::ModelsKnown(models) => next.models = Rc::new(models),
            Action::Reembedding(ids) => {
                // Photos and videos are searched again: their people come back with the new
                // model's embeddings.
                Rc::make_mut(&mut next.items)
                    .retain(|i| i.source.is_none_or(|s| !ids.contains(&s)));
                Rc::make_mut(&mut next.video_people).retain(|id, _| !ids.contains(id));
                for id in ids {
                    next.set_status(id, ItemStatus::Waiting);
                }
                // Scores of the old model mean nothing next to the new one's.
                next.search = None;
                next.benchmark = None;
            }
            Action::Clear => {
                for item in next.items.iter() {
                    let _ = web_sys::Url::revoke_object_url(&item.url);
                }
                next.items = Rc::new(Vec::new());
                next.video_people = Rc::new(BTreeMap::new());
                next.search = None;
            }
        }
        Rc::new(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_keep_three_significant_digits() {
        assert_eq!(significant(536.94), "537");
        assert_eq!(significant(7.071), "7.07");
        assert_eq!(significant(0.04123), "0.0412");
        assert_eq!(significant(0.0), "0");
    }

    #[test]
    fn a_videos_cost_says_where_the_time_went() {
        let one = VideoCost {
            detect_ms: 141.6,
            worker_ms: 244.2,
            beside: false,
        };
        assert_eq!(
            cost_words(&one),
            "a frame took 244 ms in the worker, 142 ms of them finding people"
        );
        let two = VideoCost {
            worker_ms: 98.4,
            beside: true,
            ..one
        };
        assert_eq!(
            cost_words(&two),
            "a frame took 142 ms to find its people in one worker and 98 ms to embed and follow them in another, side by side"
        );
    }

    fn item(id: u32) -> Item {
        Item {
            id,
            name: format!("{id}.jpg"),
            url: String::new(),
            crop: None,
            source: None,
            frames: None,
            seen: None,
            status: ItemStatus::Waiting,
        }
    }

    fn people(state: Rc<AppState>, id: u32, dims: &[usize]) -> Rc<AppState> {
        state.reduce(Action::Worker {
            message: FromWorker::People {
                id,
                width: 640,
                height: 360,
                people: dims
                    .iter()
                    .enumerate()
                    .map(|(k, &d)| crate::protocol::FoundPerson {
                        bbox: [10.0 * k as f32, 0.0, 64.0, 128.0],
                        score: 1.0,
                        embedding: vec![1.0; d],
                    })
                    .collect(),
                left_out: 0,
                detect_ms: 5.0,
                ms: 10.0,
            },
            at_ms: 0.0,
        })
    }

    #[test]
    fn a_photos_people_follow_it_in_the_list_and_are_replaced_when_it_is_searched_again() {
        let state = Rc::new(AppState::default()).reduce(Action::Added(vec![item(0), item(1)]));
        let state = people(state, 0, &[1280, 1280]);
        let ids: Vec<u32> = state.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [0, person_id(0, 0), person_id(0, 1), 1]);
        assert_eq!(
            state.items[0].status,
            ItemStatus::Photo {
                people: 2,
                left_out: 0,
                detect_ms: 5.0
            }
        );
        assert_eq!(state.items[2].name, "0.jpg #2");
        assert_eq!(state.items[2].crop.unwrap().bbox, [10.0, 0.0, 64.0, 128.0]);
        assert!(matches!(state.items[1].status, ItemStatus::Done { .. }));
        // A new model: the photo waits again without its people, then gets new ones.
        let state = state.reduce(Action::Reembedding(vec![0, 1]));
        assert_eq!(state.items.len(), 2);
        let state = people(state, 0, &[512]);
        assert_eq!(state.items.len(), 3);
        assert!(
            matches!(&state.items[1].status, ItemStatus::Done { embedding, .. } if embedding.len() == 512)
        );
        // No one found: the photo says so and nothing else changes.
        let state = people(state, 1, &[]);
        assert_eq!(state.items.len(), 3);
        assert_eq!(
            state.items[2].status,
            ItemStatus::Photo {
                people: 0,
                left_out: 0,
                detect_ms: 5.0
            }
        );
        assert_ne!(person_id(1, 0), person_id(0, 1));
    }

    fn embedded(state: Rc<AppState>, id: u32, dim: usize) -> Rc<AppState> {
        state.reduce(Action::Worker {
            message: FromWorker::Embedded {
                id,
                embedding: vec![1.0; dim],
                ms: 1.0,
            },
            at_ms: 0.0,
        })
    }

    #[test]
    fn a_new_model_sends_its_pictures_back_to_waiting_and_drops_the_old_search() {
        let state = Rc::new(AppState::default()).reduce(Action::Added(vec![item(0), item(1)]));
        let state = embedded(embedded(state, 0, 1280), 1, 1280);
        let state = state.reduce(Action::SearchStarted { query_id: 0 });
        let state = state.reduce(Action::ModelSwitching("osnet.bpk".into()));
        assert_eq!(state.switching_model.as_deref(), Some("osnet.bpk"));
        let state = state.reduce(Action::Reembedding(vec![0, 1]));
        assert!(state.items.iter().all(|i| i.status == ItemStatus::Waiting));
        assert_eq!(state.search, None);
        let state = embedded(state, 0, 512);
        assert!(
            matches!(&state.items[0].status, ItemStatus::Done { embedding, .. } if embedding.len() == 512)
        );
    }

    #[test]
    fn a_refused_model_leaves_every_picture_as_it_was() {
        let state = Rc::new(AppState::default()).reduce(Action::Added(vec![item(0)]));
        let state = embedded(state, 0, 1280);
        let before = state.items.clone();
        let state = state
            .reduce(Action::ModelSwitching("damaged.bpk".into()))
            .reduce(Action::ModelRefused("damaged.bpk cannot be used".into()));
        assert_eq!(state.items, before);
        assert_eq!(state.switching_model, None);
        assert_eq!(
            state.model_refused.as_deref(),
            Some("damaged.bpk cannot be used")
        );
    }

    fn followed(state: Rc<AppState>, id: u32, people: usize) -> Rc<AppState> {
        state.reduce(Action::VideoTracks {
            id,
            people: (0..people)
                .map(|k| FollowedPerson {
                    track: 100 + k as u64,
                    url: format!("blob:{k}"),
                    span_s: [0.2 * k as f64, 4.0],
                    frames: 10,
                    embedding: vec![1.0; 16],
                })
                .collect(),
            // Frames at 0.01 s and 0.21 s; the second has every person and one more (a
            // track too short to keep).
            boxes: Rc::new(VideoBoxes {
                size: [640, 360],
                frames: vec![
                    FrameBoxes {
                        time_s: 0.01,
                        boxes: vec![(100, [1.0, 2.0, 30.0, 60.0])],
                    },
                    FrameBoxes {
                        time_s: 0.21,
                        boxes: (0..=people as u64)
                            .map(|k| (100 + k, [10.0 * k as f32, 0.0, 30.0, 60.0]))
                            .collect(),
                    },
                ],
            }),
            left_out: 0,
            frames: 30,
            fps: 4.0,
            cost: VideoCost::default(),
        })
    }

    #[test]
    fn a_followed_videos_boxes_lead_to_its_people_by_frame_time() {
        let state = Rc::new(AppState::default()).reduce(Action::Added(vec![item(0)]));
        let state = followed(state, 0, 2);
        let people = state.video_people.get(&0).expect("the video's people");
        assert_eq!(people.items.get(&100), Some(&person_id(0, 0)));
        assert_eq!(people.items.get(&101), Some(&person_id(0, 1)));
        // The third box's track was not kept: no item.
        assert_eq!(people.items.get(&102), None);
        let boxes = &people.boxes;
        assert!(boxes.at(0.0).is_none_or(|f| f.time_s == 0.01));
        assert_eq!(boxes.at(0.1).map(|f| f.boxes.len()), Some(1));
        assert_eq!(boxes.at(0.2).map(|f| f.boxes.len()), Some(3));
        assert_eq!(boxes.at(9.0).map(|f| f.time_s), Some(0.21));
        // A new model follows the video again: its old boxes go with its people.
        let state = state.reduce(Action::Reembedding(vec![0]));
        assert!(state.video_people.is_empty());
    }

    #[test]
    fn a_videos_people_follow_it_and_are_replaced_when_it_is_followed_again() {
        let mut video = item(0);
        video.seen = Some(Seen {
            camera: "lobby".into(),
            when: When::Modified { ms: 0.0 },
        });
        let state = Rc::new(AppState::default()).reduce(Action::Added(vec![video, item(1)]));
        let state = state.reduce(Action::VideoProgress {
            id: 0,
            done: 3,
            total: 30,
            fps: 5.0,
            cost: VideoCost::default(),
        });
        assert!(matches!(
            state.items[0].status,
            ItemStatus::Video {
                done: 3,
                tracks: None,
                ..
            }
        ));
        let state = followed(state, 0, 2);
        let ids: Vec<u32> = state.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [0, person_id(0, 0), person_id(0, 1), 1]);
        assert_eq!(state.items[2].name, "0.jpg #2 (0.2-4.0 s)");
        assert_eq!(state.items[2].source, Some(0));
        // Seen by the video's camera, when the track was.
        assert_eq!(
            state.items[2].seen,
            Some(Seen {
                camera: "lobby".into(),
                when: When::Video {
                    from_s: 0.2,
                    to_s: 4.0
                }
            })
        );
        assert!(matches!(
            state.items[0].status,
            ItemStatus::Video {
                done: 30,
                total: 30,
                tracks: Some(2),
                ..
            }
        ));
        // A new model (or aggregator): the video waits again without its people.
        let state = state.reduce(Action::Reembedding(vec![0]));
        assert_eq!(state.items.len(), 2);
        assert_eq!(state.items[0].status, ItemStatus::Waiting);
        let state = followed(state, 0, 1);
        assert_eq!(state.items.len(), 3);
    }

    #[test]
    fn a_worker_that_cannot_go_on_fails_the_video_being_followed_but_keeps_the_followed_ones() {
        let state = Rc::new(AppState::default()).reduce(Action::Added(vec![item(0), item(1)]));
        let state = followed(state, 0, 1).reduce(Action::VideoProgress {
            id: 1,
            done: 3,
            total: 30,
            fps: 5.0,
            cost: VideoCost::default(),
        });
        let state = state.reduce(Action::Worker {
            message: FromWorker::Fatal {
                message: "device lost".into(),
            },
            at_ms: 0.0,
        });
        assert!(matches!(
            state.items[0].status,
            ItemStatus::Video {
                tracks: Some(1),
                ..
            }
        ));
        assert!(matches!(state.items[1].status, ItemStatus::Done { .. }));
        assert_eq!(
            state.items[2].status,
            ItemStatus::Failed("not followed: device lost".into())
        );
    }

    #[test]
    fn a_crop_covers_its_box_centred_and_scaled_from_the_photo() {
        let crop = Crop {
            photo: 0,
            bbox: [100.0, 50.0, 32.0, 64.0],
            size: [640, 360],
        };
        // Twice its size fills 64 x 128 exactly: the photo at 1280 x 720, shifted by the box.
        assert_eq!(
            crop.style("blob:x", 64.0, 128.0),
            "background-image:url('blob:x');background-size:1280.0px 720.0px;background-position:-200.0px -100.0px"
        );
        // A wider box is scaled to the height and centred across.
        let wide = Crop {
            bbox: [0.0, 0.0, 64.0, 64.0],
            ..crop
        };
        assert!(wide
            .style("u", 64.0, 128.0)
            .ends_with("background-size:1280.0px 720.0px;background-position:-32.0px 0.0px"));
    }
}
