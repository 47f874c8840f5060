//! A by-hand tool, not part of the app: `reid_model::cpu`'s folded networks compiled to wasm
//! with the worker's profile and SIMD128, so that their speed and profile can be read in
//! Node.js (the same V8 engine as Chromium's) without a browser. `run.mjs` beside this file
//! says how to build and run it. Natively the crate is empty.

#![cfg(target_arch = "wasm32")]

use reid_model::cpu::CpuNet;
use wasm_bindgen::prelude::*;

/// Crops a second of the folded CPU path on the model file `bytes`: one warm-up pass, then
/// `iters` timed passes over `batch` crops of the model's input size (fixed pseudo-random
/// pixels). An error names what is wrong with the file.
#[wasm_bindgen]
pub fn crops_per_second(bytes: &[u8], batch: usize, iters: usize) -> Result<f64, JsError> {
    let device = burn::tensor::Device::flex();
    let (net, config) = reid_model::weights::from_burnpack_bytes(bytes, &device)?;
    let cpu = CpuNet::new(&net, config.input.clone())?;
    let size = [config.input.height, config.input.width];
    let values: Vec<f32> = (0..batch * 3 * size[0] * size[1])
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    std::hint::black_box(cpu.forward_nchw(&values, batch, size));
    let start = js_sys::Date::now();
    for _ in 0..iters {
        std::hint::black_box(cpu.forward_nchw(&values, batch, size));
    }
    let seconds = (js_sys::Date::now() - start) / 1000.0;
    Ok((batch * iters) as f64 / seconds)
}
