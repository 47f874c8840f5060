//! Messages between the UI thread and the inference worker.

use reid_core::{BBox, Backend};
use serde::{Deserialize, Serialize};

/// A `Vec<f32>` field sent as its little-endian bytes: one `Uint8Array` between the page and
/// the worker. As an array of numbers serde-wasm-bindgen takes about a millisecond a value
/// in the browser (measured: 36 s for the 30,720 values of a 60-picture evaluation, 4.8 s for
/// a batch of eight 512-wide embeddings), so feature matrices travel as bytes.
pub mod f32_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        serializer.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<f32>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        if bytes.len() % 4 != 0 {
            return Err(serde::de::Error::custom(format!(
                "{} bytes are not a whole number of f32 values",
                bytes.len()
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

/// Where the worker gets a model file from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ModelSource {
    /// Fetched from the page's own origin (the model shipped with the app).
    Url { url: String },
    /// A file the user picked on this device, already read.
    File {
        name: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
}

impl ModelSource {
    /// The URL or file name, for messages.
    pub fn name(&self) -> &str {
        match self {
            Self::Url { url } => url,
            Self::File { name, .. } => name,
        }
    }
}

/// UI -> worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToWorker {
    /// Choose a backend (forced, or the fastest available when `None`) and load the model, and
    /// the temporal aggregator for video tracks when one was chosen before.
    Start {
        requested: Option<Backend>,
        model: ModelSource,
        aggregator: Option<ModelSource>,
    },
    /// Replace the running model by another on the same backend, or, for a temporal
    /// aggregator's file (`reid temporal`'s), use it for every embedding from now on; answered
    /// by `Ready` (the new file is in use) or `ModelRefused` (nothing changed).
    SwitchModel { model: ModelSource },
    /// Decode and embed one image file.
    Embed {
        id: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Decode one photo, find the people in it (the HOG people detector, on the CPU) and embed
    /// each; answered by `People` or `Failed`.
    Detect {
        id: u32,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Frame `index` (counted from 0, in time order) of video `id`, as RGBA pixels: its people
    /// are found (HOG), embedded and followed (DeepSORT); answered by `FrameTracked`, or by
    /// `Failed`, which ends the video. Frame 0 starts the video's tracks afresh.
    VideoFrame {
        id: u32,
        index: u32,
        /// When the frame is shown, in seconds from the video's start.
        time_s: f64,
        width: u32,
        height: u32,
        #[serde(with = "serde_bytes")]
        rgba: Vec<u8>,
        /// The people in the frame, when a second worker found them (`FindPeople`) while this
        /// one followed the frame before; `None`: this worker finds them.
        #[serde(default)]
        found: Option<FoundBoxes>,
    },
    /// Find the people in one frame, `width` x `height` RGBA pixels (HOG at OpenCV's default
    /// threshold, on the CPU), and nothing else: what a second worker does beside the one
    /// that embeds and tracks. Needs no model; answered by `PeopleFound` or `FindFailed` with
    /// the same `ticket`.
    FindPeople {
        ticket: u32,
        width: u32,
        height: u32,
        #[serde(with = "serde_bytes")]
        rgba: Vec<u8>,
    },
    /// Video `id` has no more frames: answered by `Tracks`, each followed person one entry.
    VideoEnd { id: u32 },
    /// Rank the gallery (`gallery_ids[r]` names row `r` of the row-major `gallery`) by
    /// similarity to `query`, on the worker's backend, or with `rerank` by k-reciprocal
    /// re-ranked distance (Zhong et al. 2017, `reid search --rerank`'s, on the CPU); answered
    /// by `Ranked` or `SearchFailed`.
    Search {
        query_id: u32,
        #[serde(with = "f32_bytes")]
        query: Vec<f32>,
        gallery_ids: Vec<u32>,
        #[serde(with = "f32_bytes")]
        gallery: Vec<f32>,
        k: usize,
        rerank: bool,
    },
    /// Time the model: `batch` crops at the model's input size embedded up to `iters` times
    /// after one warm-up pass, on the worker's backend, stopping early (after at least one
    /// timed pass) once the timed passes have taken 10 s, so that a slow adapter answers in
    /// three passes' time; answered by `Benchmarked` or `BenchmarkFailed`.
    Benchmark { batch: usize, iters: usize },
    /// Drop everything kept of the user's pictures and videos (the trackers, embeddings and
    /// best views of videos being followed); answered by `Forgotten`.
    Forget,
    /// The Evaluate page's pictures `first..first + files.len()` (in its own numbering),
    /// embedded by the image network alone (no temporal aggregator: what `reid eval
    /// --dataset` measures); answered by `EvalEmbedded` or `EvalFailed`.
    EvalEmbed {
        /// The page's number for the evaluation, repeated in the answer.
        run: u32,
        first: u32,
        files: Vec<serde_bytes::ByteBuf>,
    },
    /// Evaluate a query set against a gallery (`crate::evaluation::evaluate`); answered by
    /// `Evaluated` or `EvalFailed`.
    Evaluate {
        run: u32,
        query: crate::evaluation::Side,
        gallery: crate::evaluation::Side,
        rerank: bool,
    },
    /// Which regions of a query picture and a gallery picture drove their similarity
    /// (the pipeline's `Embedder::explain_pair`); answered by `Explained` or `EvalFailed` (index 0: the query,
    /// 1: the gallery picture).
    Explain {
        run: u32,
        query: serde_bytes::ByteBuf,
        gallery: serde_bytes::ByteBuf,
    },
}

/// One picture's share of a pair's similarity per position of its feature map, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeatMap {
    pub width: usize,
    pub height: usize,
    #[serde(with = "f32_bytes")]
    pub values: Vec<f32>,
}

/// One ranked gallery entry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankedHit {
    pub id: u32,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The k-reciprocal re-ranked distance, when the search was re-ranked (its order).
    pub distance: Option<f32>,
}

/// Most people kept from one photo (the surest), so that person ids stay within their range.
pub const MAX_PEOPLE: usize = 64;

/// One person found in a photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundPerson {
    /// x, y, width, height in the photo's pixels.
    pub bbox: [f32; 4],
    /// The detector's SVM margin (0 is its threshold; higher is surer).
    pub score: f32,
    /// L2-normalised embedding of the person's crop.
    #[serde(with = "f32_bytes")]
    pub embedding: Vec<f32>,
}

/// One person followed through a video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoTrack {
    /// The tracker's number for the person.
    pub track: u64,
    /// First and last time the person was seen, in seconds.
    pub span_s: [f64; 2],
    /// Frames in which the person was seen.
    pub frames: u64,
    /// The best view, as a PNG picture.
    #[serde(with = "serde_bytes")]
    pub thumbnail: Vec<u8>,
    /// L2-normalised embedding of the track: the temporal aggregator's of its frames, else the
    /// quality-weighted mean of its frames' embeddings.
    #[serde(with = "f32_bytes")]
    pub embedding: Vec<f32>,
}

/// The temporal aggregator in use for video tracks (and for pictures, as one-frame tracks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregatorInfo {
    /// The file it came from.
    pub name: String,
    /// Which aggregator, by `reid temporal`'s name for it ("gru", "attention").
    pub kind: String,
    /// The same in words ("GRU, outputs averaged").
    pub label: String,
    /// Width of its embeddings.
    pub dim: usize,
    /// Its learned parameters.
    pub params: usize,
    /// SHA-256 (hex) of its file.
    pub fingerprint: String,
}

/// What the worker found out about WebGPU on this device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// Vendor, architecture and description as the browser reports them.
    pub description: String,
    /// Whether the adapter is a software (fallback) implementation.
    pub software: bool,
}

/// The running backend and the loaded model, as the worker reports them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub backend: Backend,
    /// Why this backend was chosen, in plain words.
    pub reason: String,
    pub adapter: Option<AdapterInfo>,
    /// The loaded model's network, for people ("MobileNetV2", "OSNet x0.25").
    pub architecture: String,
    /// Embedding width of the loaded model.
    pub dim: usize,
    /// Input height and width of the loaded model.
    pub input: [usize; 2],
    pub model_bytes: usize,
    /// SHA-256 (hex) of the model file: embeddings of the same fingerprint are comparable.
    pub fingerprint: String,
    /// Where the weights come from (from the model card), in plain words.
    pub provenance: String,
    /// From the start message to the model being ready.
    pub load_ms: f64,
    /// The temporal aggregator every embedding passes through, if one was chosen; embeddings
    /// are then `aggregator.dim` wide.
    pub aggregator: Option<AggregatorInfo>,
    /// This `Ready` answers a `SwitchModel` whose file was an aggregator (the image network
    /// did not change).
    pub aggregator_switched: bool,
    /// Every request the worker has made since it started (its Resource Timing entries: its
    /// code and the model), for the page's count of requests.
    pub requests: Vec<String>,
}

/// Worker -> UI.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromWorker {
    /// The worker's code is loaded and listening: messages sent before this are lost.
    Listening,
    /// The worker dropped what it kept of the user's videos.
    Forgotten,
    /// The backend is running and the model is loaded.
    Ready(Box<ReadyInfo>),
    /// One image's L2-normalised embedding.
    Embedded {
        id: u32,
        #[serde(with = "f32_bytes")]
        embedding: Vec<f32>,
        ms: f64,
    },
    /// The people of photo `id` (surest first, at most [`MAX_PEOPLE`]; `left_out` more were
    /// found), with the photo's size, the detector's time and the whole job's.
    People {
        id: u32,
        width: u32,
        height: u32,
        people: Vec<FoundPerson>,
        left_out: usize,
        detect_ms: f64,
        ms: f64,
    },
    /// Frame `index` of video `id` was tracked: `people` found in it, `followed` of them on
    /// confirmed tracks, in `ms` (detection, embedding and tracking), `detect_ms` of it
    /// finding the people.
    FrameTracked {
        id: u32,
        index: u32,
        people: usize,
        followed: usize,
        /// The people followed in this frame: five values each, the track's number, then x, y,
        /// width and height of its box in the frame's pixels (numbers travel as bytes, and a
        /// track number is exact as an f32 below 2^24).
        #[serde(with = "f32_bytes")]
        boxes: Vec<f32>,
        detect_ms: f64,
        ms: f64,
    },
    /// The people followed through video `id` (longest tracks first, at most [`MAX_PEOPLE`];
    /// `left_out` more were followed), over `frames` frames.
    Tracks {
        id: u32,
        tracks: Vec<VideoTrack>,
        left_out: usize,
        frames: u32,
    },
    /// One image (or video) could not be embedded; the others are unaffected.
    Failed {
        id: u32,
        message: String,
    },
    /// The embeddings of the pictures of one `EvalEmbed`, in order.
    EvalEmbedded {
        run: u32,
        /// One row of `dim` per picture, row-major.
        #[serde(with = "f32_bytes")]
        embeddings: Vec<f32>,
        dim: usize,
    },
    /// The Evaluate page's numbers, and how long the evaluation took.
    Evaluated {
        run: u32,
        report: Box<crate::evaluation::EvalReport>,
        ms: f64,
    },
    /// A pair's cosine similarity and each picture's map of it (the cells of each sum to it),
    /// and how long it took.
    Explained {
        run: u32,
        similarity: f32,
        query: HeatMap,
        gallery: HeatMap,
        ms: f64,
    },
    /// The Evaluate page's picture `index` (or, when `None`, its evaluation) failed.
    EvalFailed {
        run: u32,
        index: Option<u32>,
        message: String,
    },
    /// The gallery ranked for `query_id`, best first, and how long the search took.
    Ranked {
        query_id: u32,
        hits: Vec<RankedHit>,
        backend: Backend,
        ms: f64,
    },
    SearchFailed {
        query_id: u32,
        message: String,
    },
    /// The model's speed on this device: `crops_per_s` over the `iters` passes of `batch` crops
    /// that were timed (from decoded pixels: resizing, normalisation and the network).
    /// With a temporal aggregator, `tracklet_ms` is its median time over 31 aggregations of a
    /// 16-frame track (from frame embeddings to the track's).
    Benchmarked {
        backend: Backend,
        batch: usize,
        iters: usize,
        crops_per_s: f64,
        tracklet_ms: Option<f64>,
    },
    /// The benchmark could not run (no model loaded, or the device failed).
    BenchmarkFailed {
        message: String,
    },
    /// The model offered by `SwitchModel` cannot run; the previous one still does.
    ModelRefused {
        name: String,
        message: String,
    },
    /// The people found for `FindPeople` `ticket`.
    PeopleFound {
        ticket: u32,
        found: FoundBoxes,
    },
    /// `FindPeople` `ticket` could not be done (a frame whose bytes do not match its size).
    FindFailed {
        ticket: u32,
        message: String,
    },
    /// The worker cannot go on (model unusable, backend lost).
    Fatal {
        message: String,
    },
}

/// People found in a frame, as the tracker takes them: five values each, x, y, width and
/// height of the box in the frame's pixels, then the detector's margin (as bytes: exact).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundBoxes {
    #[serde(with = "f32_bytes")]
    pub values: Vec<f32>,
    /// The time it took to find them.
    pub ms: f64,
}

impl FoundBoxes {
    pub fn new(people: &[(BBox, f32)], ms: f64) -> Self {
        Self {
            values: people
                .iter()
                .flat_map(|(b, margin)| [b.x, b.y, b.w, b.h, *margin])
                .collect(),
            ms,
        }
    }

    /// The boxes and margins; an error when the values are not five a person.
    pub fn people(&self) -> Result<Vec<(BBox, f32)>, String> {
        if !self.values.len().is_multiple_of(5) {
            return Err(format!(
                "the people found came as {} values, not five a person",
                self.values.len()
            ));
        }
        Ok(self
            .values
            .chunks_exact(5)
            .map(|v| (BBox::new(v[0], v[1], v[2], v[3]), v[4]))
            .collect())
    }
}

impl FromWorker {
    /// The evaluation an answer belongs to, for the Evaluate section's answers.
    pub fn evaluation(&self) -> Option<u32> {
        match self {
            Self::EvalEmbedded { run, .. }
            | Self::Evaluated { run, .. }
            | Self::Explained { run, .. }
            | Self::EvalFailed { run, .. } => Some(*run),
            _ => None,
        }
    }
}

/// Picks the backend from the user's request and what the WebGPU probe found, and says why.
///
/// A forced choice (`?backend=`) is honoured; otherwise WebGPU is used only on a hardware
/// adapter, because a software adapter (SwiftShader, llvmpipe) is about 50x slower than the
/// wasm CPU path on the machines we measured.
pub fn choose_backend(
    requested: Option<Backend>,
    probe: &Result<AdapterInfo, String>,
) -> (Backend, String) {
    match (requested, probe) {
        (Some(Backend::Cpu), _) => (Backend::Cpu, "CPU forced by ?backend=cpu".into()),
        (Some(Backend::WebGpu), Ok(info)) if info.software => (
            Backend::WebGpu,
            format!(
                "WebGPU forced by ?backend=webgpu on a software adapter ({}): expect it to be slow",
                info.description
            ),
        ),
        (Some(Backend::WebGpu), _) => {
            (Backend::WebGpu, "WebGPU forced by ?backend=webgpu".into())
        }
        (None, Err(why)) => (
            Backend::Cpu,
            format!("WebGPU is not available ({why}), so the CPU runs the model"),
        ),
        (None, Ok(info)) if info.software => (
            Backend::Cpu,
            format!(
                "the WebGPU adapter is a software renderer ({}), far slower than the CPU path, so the CPU runs the model",
                info.description
            ),
        ),
        (None, Ok(info)) => (
            Backend::WebGpu,
            format!("hardware WebGPU adapter: {}", info.description),
        ),
    }
}

/// Whether an adapter description names a software implementation.
pub fn looks_like_software_adapter(description: &str) -> bool {
    let d = description.to_ascii_lowercase();
    [
        "swiftshader",
        "llvmpipe",
        "lavapipe",
        "software",
        "basic render",
    ]
    .iter()
    .any(|name| d.contains(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(description: &str, software: bool) -> Result<AdapterInfo, String> {
        Ok(AdapterInfo {
            description: description.into(),
            software,
        })
    }

    #[test]
    fn people_found_in_one_worker_reach_the_other_exactly() {
        let people = vec![
            (BBox::new(12.0, 7.5, 64.0, 128.0), 0.731),
            (BBox::new(-3.25, 0.0, 80.8, 161.6), f32::EPSILON),
        ];
        let found = FoundBoxes::new(&people, 41.5);
        let json = serde_json::to_string(&FromWorker::PeopleFound { ticket: 9, found }).unwrap();
        let FromWorker::PeopleFound { ticket, found } = serde_json::from_str(&json).unwrap() else {
            panic!("not PeopleFound: {json}");
        };
        assert_eq!(ticket, 9);
        assert_eq!(found.ms, 41.5);
        let back = found.people().unwrap();
        assert_eq!(back.len(), 2);
        for ((b, m), (c, n)) in back.iter().zip(&people) {
            assert_eq!([b.x, b.y, b.w, b.h, *m], [c.x, c.y, c.w, c.h, *n]);
        }
        assert!(FoundBoxes::new(&[], 0.0).people().unwrap().is_empty());
        let torn = FoundBoxes {
            values: vec![1.0; 7],
            ms: 0.0,
        };
        assert!(torn.people().unwrap_err().contains("7 values"));
    }

    #[test]
    fn a_frame_without_found_people_still_reads() {
        // The page of an older build, or a frame this worker finds the people in itself.
        let json = r#"{"type":"VideoFrame","id":1,"index":0,"time_s":0.0,"width":1,"height":1,"rgba":[0,0,0,255]}"#;
        let ToWorker::VideoFrame { found, rgba, .. } = serde_json::from_str(json).unwrap() else {
            panic!("not a VideoFrame");
        };
        assert_eq!(found, None);
        assert_eq!(rgba.len(), 4);
    }

    #[test]
    fn a_forced_backend_is_honoured() {
        let (b, _) = choose_backend(Some(Backend::Cpu), &adapter("NVIDIA", false));
        assert_eq!(b, Backend::Cpu);
        let (b, why) = choose_backend(Some(Backend::WebGpu), &adapter("google swiftshader", true));
        assert_eq!(b, Backend::WebGpu);
        assert!(why.contains("slow"));
    }

    #[test]
    fn auto_avoids_software_adapters_and_missing_webgpu() {
        let (b, why) = choose_backend(None, &adapter("google swiftshader", true));
        assert_eq!(b, Backend::Cpu);
        assert!(why.contains("software"));
        let (b, why) = choose_backend(None, &Err("navigator.gpu is missing".into()));
        assert_eq!(b, Backend::Cpu);
        assert!(why.contains("navigator.gpu"));
        let (b, _) = choose_backend(None, &adapter("nvidia ada", false));
        assert_eq!(b, Backend::WebGpu);
    }

    #[test]
    fn software_adapters_are_recognised_by_name() {
        assert!(looks_like_software_adapter(
            "Google SwiftShader Device (Subzero)"
        ));
        assert!(looks_like_software_adapter(
            "llvmpipe (LLVM 15.0.6, 256 bits)"
        ));
        assert!(!looks_like_software_adapter("NVIDIA GeForce RTX 4090"));
    }

    #[test]
    fn messages_round_trip_through_json() {
        let msg = ToWorker::Embed {
            id: 7,
            bytes: vec![1, 2, 3],
        };
        let text = serde_json::to_string(&msg).unwrap();
        let ToWorker::Embed { id, bytes } = serde_json::from_str(&text).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!((id, bytes), (7, vec![1, 2, 3]));
    }

    #[test]
    fn feature_matrices_travel_as_bytes_and_come_back_bit_for_bit() {
        let side = crate::evaluation::Side {
            names: vec!["0001_c1s1_000001_01.jpg".into()],
            features: vec![0.1, -2.5e-8, f32::MAX, 1.0],
            dim: 4,
        };
        let json = serde_json::to_value(&side).unwrap();
        assert_eq!(json["features"].as_array().unwrap().len(), 16);
        let back: crate::evaluation::Side = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(back, side);
        let mut ragged = json;
        ragged["features"].as_array_mut().unwrap().pop();
        let error = serde_json::from_value::<crate::evaluation::Side>(ragged).unwrap_err();
        assert!(error.to_string().contains("15 bytes"), "{error}");
    }
}
