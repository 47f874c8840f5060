use super::*;
use crate::market1501::{read_split, read_test_splits};

fn tiny() -> SynthConfig {
    SynthConfig::preset("tiny").unwrap()
}

fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for split in ["bounding_box_train", "query", "bounding_box_test"] {
        for e in std::fs::read_dir(root.join(split)).unwrap() {
            let p = e.unwrap().path();
            out.insert(
                format!("{split}/{}", p.file_name().unwrap().to_string_lossy()),
                std::fs::read(&p).unwrap(),
            );
        }
    }
    for f in [
        "dataset.json",
        "attributes.json",
        "keypoints.json",
        "tracklets.json",
    ] {
        out.insert(f.into(), std::fs::read(root.join(f)).unwrap());
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    generate(tiny(), &a, false, &|_, _| {}).unwrap();
    generate(tiny(), &b, false, &|_, _| {}).unwrap();
    generate(SynthConfig { seed: 2, ..tiny() }, &c, false, &|_, _| {}).unwrap();
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert_eq!(fa, fb);
    assert_ne!(fa, fc);
    assert!(fa.len() > 60, "{}", fa.len());
}

#[test]
fn the_market1501_reader_reads_every_image_with_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let summary = generate(tiny(), &out, false, &|_, _| {}).unwrap();
    let train = read_split(&out.join("bounding_box_train")).unwrap();
    let (query, gallery) = read_test_splits(&out).unwrap();
    assert_eq!(train.len(), summary.train_images);
    assert_eq!(query.len(), summary.query_images);
    assert_eq!(gallery.len(), summary.gallery_images);
    assert!(train.iter().all(|i| (1..=6).contains(&i.name.pid)));
    assert_eq!(gallery.iter().filter(|i| i.name.pid == 0).count(), 8);
    assert_eq!(gallery.iter().filter(|i| i.name.pid == -1).count(), 4);
    // Every query has a true match in another camera, as the protocol needs.
    for q in &query {
        assert!(
            gallery
                .iter()
                .any(|g| g.name.pid == q.name.pid && g.name.camid != q.name.camid),
            "{:?}",
            q.path
        );
    }
    let images: std::collections::HashSet<_> = train
        .iter()
        .chain(&query)
        .chain(&gallery)
        .map(|i| &i.path)
        .collect();
    assert_eq!(images.len(), summary.images(), "names are unique");
    let first = image::open(&query[0].path).unwrap();
    assert_eq!((first.width(), first.height()), (64, 128));
}

#[test]
fn keypoints_are_written_for_every_image_and_lie_on_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let summary = generate(tiny(), &out, false, &|_, _| {}).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("keypoints.json")).unwrap()).unwrap();
    let images = json["images"].as_object().unwrap();
    assert_eq!(images.len(), summary.images() + summary.tracklet_frames);
    let mut checked = 0;
    for (name, kp) in images {
        let kp: Vec<[f32; 3]> = serde_json::from_value(kp.clone()).unwrap();
        assert_eq!(kp.len(), 14);
        for [x, y, v] in &kp {
            if *v > 0.0 {
                assert!(
                    (0.0..64.0).contains(x) && (0.0..128.0).contains(y),
                    "{name}: {kp:?}"
                );
            }
        }
        let normal = !name.contains("/0000_") && !name.contains("/-1_");
        if normal {
            // Head above the neck above the hips above the ankles.
            let y = |j: usize| kp[j][1];
            assert!(y(0) < y(1) && y(1) < y(8) && y(8) < y(10), "{name}: {kp:?}");
            checked += 1;
        } else if name.contains("/0000_") {
            assert!(
                kp.iter().all(|k| k[2] == 0.0),
                "a distractor has no visible joints"
            );
        }
    }
    assert!(checked > 50);
    let attributes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("attributes.json")).unwrap()).unwrap();
    assert_eq!(attributes.as_array().unwrap().len(), 12);
    assert!(attributes[0]["top"]["kind"].is_string());
}

#[test]
fn bad_settings_and_an_occupied_folder_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        SynthConfig {
            identities: 0,
            ..tiny()
        },
        SynthConfig {
            cameras: 10,
            ..tiny()
        },
        SynthConfig {
            cameras: 1,
            ..tiny()
        },
        SynthConfig {
            crops_per_camera: 0,
            ..tiny()
        },
        SynthConfig {
            occlusion: 1.5,
            ..tiny()
        },
        SynthConfig { width: 0, ..tiny() },
    ] {
        let err = generate(bad, &dir.path().join("x"), false, &|_, _| {}).unwrap_err();
        assert!(matches!(err, SynthError::Config(_)), "{err}");
    }
    assert!(!dir.path().join("x").exists());
    let out = dir.path().join("taken");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("mine.txt"), "keep me").unwrap();
    let err = generate(tiny(), &out, false, &|_, _| {}).unwrap_err();
    assert!(matches!(err, SynthError::Exists(_)), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("mine.txt")).unwrap(),
        "keep me"
    );
    generate(tiny(), &out, true, &|_, _| {}).unwrap();
    assert!(!out.join("mine.txt").exists() && out.join("dataset.json").exists());
    // No temporary folder is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            n.contains("partial").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn lookalikes_share_clothing_colours_but_differ_in_details() {
    let world = World::new(SynthConfig {
        identities: 200,
        lookalikes: 0.5,
        ..tiny()
    })
    .unwrap();
    let lookalikes: Vec<&Identity> = world
        .identities
        .iter()
        .filter(|i| i.lookalike_of.is_some())
        .collect();
    assert!(lookalikes.len() > 50, "{}", lookalikes.len());
    for id in lookalikes {
        let model = &world.identities[(id.lookalike_of.unwrap() - 1) as usize];
        let close = |a: [f32; 3], b: [f32; 3]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.1);
        assert!(close(id.top.colour, model.top.colour) || id.top.kind == identity::TopKind::Dress);
        assert_ne!(
            (
                id.top.pattern,
                id.top.kind,
                id.hair_style,
                id.accessories.backpack.is_some(),
                id.bottom.kind
            ),
            (
                model.top.pattern,
                model.top.kind,
                model.hair_style,
                model.accessories.backpack.is_some(),
                model.bottom.kind
            ),
            "{} looks exactly like {}",
            id.pid,
            model.pid
        );
    }
}

#[test]
fn a_contact_sheet_has_a_tile_per_identity_and_camera() {
    let sheet = contact_sheet(tiny(), 4).unwrap();
    assert_eq!(sheet.width(), 3 * 2 * (64 + 4) + 4 * 3);
    assert_eq!(sheet.height(), 4 * (128 + 4) + 4);
}

#[test]
fn mars_tracklets_are_named_foldered_and_listed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let summary = generate(tiny(), &out, false, &|_, _| {}).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tracklets.json")).unwrap()).unwrap();
    let tracklets = json["tracklets"].as_array().unwrap();
    assert_eq!(tracklets.len(), summary.tracklets);
    assert_eq!(summary.tracklet_frames, summary.tracklets * 4);
    let mut queries = 0;
    for t in tracklets {
        let (pid, cam) = (
            t["pid"].as_i64().unwrap(),
            t["camera"].as_u64().unwrap() as u32,
        );
        let frames = t["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 4);
        for (f, frame) in frames.iter().enumerate() {
            let path = frame.as_str().unwrap();
            assert!(out.join(path).is_file(), "{path}");
            let name = reid_core::naming::parse_mars(path).unwrap();
            assert_eq!(
                (name.pid, name.camid, name.frame),
                (pid, cam, f as u32 + 1),
                "{path}"
            );
            let folder = if t["split"] == "train" {
                "bbox_train"
            } else {
                "bbox_test"
            };
            assert!(path.starts_with(&format!("{folder}/{pid:04}/")), "{path}");
        }
        if t["split"] == "query" {
            queries += 1;
            assert!(tracklets.iter().any(|g| g["split"] == "gallery"
                && g["pid"] == t["pid"]
                && g["camera"] != t["camera"]));
        }
        // Frames of one tracklet are of one walk: alike, but not the same picture.
        let read = |i: usize| {
            image::open(out.join(frames[i].as_str().unwrap()))
                .unwrap()
                .to_rgb8()
        };
        let (a, b) = (read(0), read(1));
        let diff: f64 = a
            .pixels()
            .zip(b.pixels())
            .map(|(p, q)| {
                (0..3)
                    .map(|c| (f64::from(p[c]) - f64::from(q[c])).abs())
                    .sum::<f64>()
            })
            .sum::<f64>()
            / (64.0 * 128.0 * 3.0);
        assert!(diff > 0.5 && diff < 40.0, "mean frame difference {diff}");
    }
    assert_eq!(queries, 6, "one query tracklet per test identity");
}

#[test]
fn mot_scenes_have_frames_ground_truth_and_sequence_info() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny");
    let summary = generate(tiny(), &out, false, &|_, _| {}).unwrap();
    assert!(summary.scenes >= 2, "{}", summary.scenes);
    let mut sequences: Vec<PathBuf> = std::fs::read_dir(out.join("mot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sequences.sort();
    assert_eq!(sequences.len(), summary.scenes);
    let attributes: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("attributes.json")).unwrap()).unwrap();
    let mut rows = 0;
    for seq in &sequences {
        let ini = std::fs::read_to_string(seq.join("seqinfo.ini")).unwrap();
        assert!(
            ini.contains("seqLength=5")
                && ini.contains("imWidth=640")
                && ini.contains("imHeight=360"),
            "{ini}"
        );
        for f in 1..=5 {
            let img = image::open(seq.join(format!("img1/{f:06}.jpg"))).unwrap();
            assert_eq!((img.width(), img.height()), (640, 360));
        }
        for line in std::fs::read_to_string(seq.join("gt/gt.txt"))
            .unwrap()
            .lines()
        {
            let v: Vec<f32> = line.split(',').map(|x| x.parse().unwrap()).collect();
            assert_eq!(v.len(), 9, "{line}");
            assert!((1.0..=5.0).contains(&v[0]), "{line}");
            let pid = v[1] as usize;
            assert_eq!(attributes[pid - 1]["split"], "test", "{line}");
            assert!(
                v[2] >= 0.0 && v[3] >= 0.0 && v[2] + v[4] <= 640.0 && v[3] + v[5] <= 360.0,
                "{line}"
            );
            assert!((0.0..=1.0).contains(&v[8]), "{line}");
            rows += 1;
        }
    }
    assert!(rows > 0);
}

#[test]
fn a_tracker_follows_the_people_of_a_synthetic_scene() {
    use reid_core::{parse_mot_rows, BBox, Detection, MotAccumulator, Tracker, TrackerConfig};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scene");
    let config = SynthConfig {
        cameras: 2,
        scene_frames: 40,
        scene_people: 4,
        ..tiny()
    };
    generate(config, &out, false, &|_, _| {}).unwrap();
    let mut sequences: Vec<PathBuf> = std::fs::read_dir(out.join("mot"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    sequences.sort();
    assert_eq!(sequences.len(), 2);
    for seq in sequences {
        // A detector that finds people at least 40% visible, boxes a pixel or two off.
        let rows =
            parse_mot_rows(&std::fs::read_to_string(seq.join("gt/gt.txt")).unwrap()).unwrap();
        let mut gt: std::collections::BTreeMap<u64, Vec<(u64, BBox)>> = Default::default();
        for row in rows {
            if row.visibility.unwrap() >= 0.4 {
                gt.entry(row.frame)
                    .or_default()
                    .push((row.id as u64, row.bbox));
            }
        }
        let mut tracker = Tracker::new(TrackerConfig::default()).unwrap();
        let mut acc = MotAccumulator::new(0.5);
        for frame in 1..=40u64 {
            let truth: Vec<(u64, BBox)> = gt.get(&frame).cloned().unwrap_or_default();
            let detections: Vec<Detection> = truth
                .iter()
                .map(|(id, b)| {
                    let wobble = ((frame * 7 + id * 13) % 5) as f32 - 2.0;
                    Detection {
                        bbox: BBox::new(b.x + wobble, b.y - wobble * 0.5, b.w, b.h),
                        score: 0.9,
                        embedding: None,
                    }
                })
                .collect();
            let tracks = tracker.update(&detections).unwrap();
            // Each track's identity on its detection's box: the boxes are tight around the
            // drawn pixels, so their width follows the swinging arms and legs faster than the
            // filtered box does; this scores who is who.
            let hyps: Vec<(u64, BBox)> = tracks
                .observations
                .iter()
                .map(|o| (o.track_id, detections[o.detection].bbox))
                .collect();
            acc.update(&truth, &hyps);
        }
        let s = acc.summary();
        assert!(s.num_objects > 40, "{}: too few people seen", seq.display());
        assert!(
            s.mota() > 0.75 && s.idf1() > 0.8 && s.num_switches <= 2,
            "{}: MOTA {:.3}, IDF1 {:.3}, {s:?}",
            seq.display(),
            s.mota(),
            s.idf1()
        );
    }
}
