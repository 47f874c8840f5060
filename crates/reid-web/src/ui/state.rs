//! The page's state and how worker messages change it. Pure data: no DOM, no worker handle.

use std::rc::Rc;

use yew::Reducible;

use reid_core::Backend;

use crate::protocol::{FromWorker, RankedHit, ReadyInfo};

/// One image the user added.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: u32,
    pub name: String,
    /// `blob:` URL of the user's own file, for the thumbnail.
    pub url: String,
    pub status: ItemStatus,
}

/// Where an image is in the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemStatus {
    /// Sent to the worker, no answer yet.
    Waiting,
    /// Embedded.
    Done { embedding: Rc<Vec<f32>>, ms: f64 },
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
    /// A new model runs: these images are embedded again.
    Reembedding(Vec<u32>),
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
                Rc::make_mut(&mut next.items).extend(items);
            }
            Action::Worker { message, at_ms } => match message {
                FromWorker::Listening => {}
                FromWorker::Ready(info) => {
                    next.engine = Engine::Ready(Rc::new(info));
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
                } => {
                    next.benchmark = Some(Benchmark::Done {
                        backend,
                        batch,
                        passes: iters,
                        crops_per_s,
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
                        if item.status == ItemStatus::Waiting {
                            item.status = ItemStatus::Failed(format!("not embedded: {message}"));
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
            Action::Reembedding(ids) => {
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

    fn item(id: u32) -> Item {
        Item {
            id,
            name: format!("{id}.jpg"),
            url: String::new(),
            status: ItemStatus::Waiting,
        }
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
}
