//! Entry point of the inference Web Worker (built by Trunk as `worker.js` + `worker_loader.js`).

#[cfg(target_arch = "wasm32")]
fn main() {
    reid_web::worker::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the reid-web worker runs in a browser: build it with `cargo xtask serve`");
}
