//! `reid-core` owns the plain data of person re-identification and the maths on it:
//! embeddings, their normalisation and the similarity between them, and the names of the compute
//! backends, the dataset file-name conventions (Market-1501, MARS) and the evaluation protocol
//! (CMC, mAP, mINP), k-reciprocal re-ranking, query expansion and non-learned temporal pooling;
//! boxes, minimum-cost assignment, multi-object tracking (Kalman filter + Hungarian assignment
//! with an appearance cascade) and its scoring (CLEAR MOT, IDF1).
//!
//! It knows nothing about networks (no burn) or the browser (no web-sys), so the same code runs
//! natively, in the browser's UI thread and in its worker. Distances live here once; every
//! caller that compares embeddings goes through [`distance`].

pub mod assignment;
pub mod backend;
pub mod bbox;
pub mod detection;
pub mod distance;
pub mod embedding;
pub mod eval;
pub mod features;
mod gemm;
pub mod mot;
pub mod naming;
pub mod parallel;
pub mod query_expansion;
pub mod rerank;
pub mod temporal;
pub mod tracking;

pub use assignment::min_cost_assignment;
pub use backend::Backend;
pub use bbox::BBox;
pub use detection::{average_precision, ApReport, ScoredBox, TruthBox};
pub use distance::{
    cosine_similarity, cosine_similarity_matrix, distance_matrix, top_k_inner_product, Hit, Metric,
};
pub use embedding::{Embedding, EmbeddingError};
pub use eval::{
    evaluate, evaluate_queries, lowest_ap, ranked_gallery, summarize, worst_queries, EvalError,
    HardQuery, Labels, Protocol, QueryMetrics, RankMetrics, SingleGalleryShot,
};
pub use features::{FeatureError, FeatureMatrix};
pub use mot::{parse_mot_rows, parse_mot_text, MotAccumulator, MotFormatError, MotRow, MotSummary};
pub use query_expansion::{query_expansion, QueryExpansion};
pub use rerank::{k_reciprocal_rerank, RerankParams};
pub use temporal::{pool_tracklets, PoolingError};
pub use tracking::{Detection, Tracker, TrackerConfig, TrackerError, Tracklet};
