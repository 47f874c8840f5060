//! `reid-web` owns the browser app: a Yew user interface (this crate's `reid-web` binary, which
//! never links burn) and a Web Worker (the `worker` binary) that runs `reid-pipeline` on WebGPU
//! or on burn's `flex` CPU backend, so the page never freezes while a network runs.
//!
//! The two talk through the messages in [`protocol`], serialised with `serde-wasm-bindgen`.
//! Nothing here sends a request anywhere but the page's own origin: the model file is served
//! beside the app, and images are read from the user's disk.

pub mod evaluation;
pub mod gallery_file;
#[cfg(target_arch = "wasm32")]
pub mod js;
pub mod protocol;
#[cfg(target_arch = "wasm32")]
pub mod requests;
pub mod seen;
/// The page's state is pure data: natively it is compiled on its own, so that `cargo test`
/// runs its tests.
#[cfg(not(target_arch = "wasm32"))]
#[path = "ui/state.rs"]
pub mod state;
#[cfg(target_arch = "wasm32")]
pub mod ui;
#[cfg(all(target_arch = "wasm32", feature = "worker"))]
pub mod worker;
