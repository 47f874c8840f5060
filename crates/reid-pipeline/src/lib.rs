//! `reid-pipeline` owns the end-to-end job that the browser's worker and the native `reid`
//! command both run: pick a compute backend, load a model file, turn image bytes into
//! L2-normalised embeddings in bounded batches, report per-image failures without losing
//! the other images, rank a gallery on the device ([`GallerySearch`]), find the people in a
//! photo ([`people_in`]) and follow people through video frames with their appearance
//! ([`VideoTracker`]), each followed person becoming one embedding by a learned temporal
//! aggregator when one is given ([`TrackletAggregator`]).
//!
//! The caller chooses the backend ([`Backend`]); everything here is async so the browser can read
//! results back from the GPU without blocking (natively, `pollster::block_on` drives it).

pub mod backend;
pub mod embedder;
pub mod people;
pub mod search;
pub mod temporal;
pub mod tracking;

pub use backend::{device, Backend, BackendError};
pub use burn::tensor::Device;
pub use embedder::{EmbedError, Embedder};
pub use people::{hog_boxes, hog_confidence, people_in, FoundPerson, PeopleDetector};
pub use reid_model::detect::hog::HogDetector;
pub use reid_model::detect::hog::HogParams;
pub use reid_model::explain::{Heat, PairExplanation};
pub use reid_model::weights::{card_provenance, provenance, read_card};
pub use reid_model::{decode_image, RgbImage};
pub use search::{GallerySearch, SearchError};
pub use temporal::{is_aggregator_file, TrackletAggregator};
pub use tracking::{crop, thumbnail_png, TrackingError, VideoTracker};
