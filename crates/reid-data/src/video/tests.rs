use std::path::Path;

use super::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/video")
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"").unwrap();
}

fn names(t: &[VideoTracklet]) -> Vec<(i64, u32, Vec<String>)> {
    t.iter()
        .map(|t| {
            let frames = t
                .frames
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            (t.pid, t.camera, frames)
        })
        .collect()
}

#[test]
fn mat_files_from_scipy_read_as_scipy_wrote_them() {
    let read = |name: &str| read_mat(&std::fs::read(fixtures().join(name)).unwrap()).unwrap();
    // Compressed doubles.
    let train = &read("mars/info/tracks_train_info.mat")["track_train_info"];
    assert_eq!(train.dims, vec![3, 4]);
    assert_eq!(
        (train.at(1, 0), train.at(1, 1), train.at(2, 2)),
        (4.0, 5.0, 2.0)
    );
    // Uncompressed 32-bit integers, with a negative (junk) identity.
    let test = &read("mars/info/tracks_test_info.mat")["track_test_info"];
    assert_eq!(test.at(3, 2), -1.0);
    // A row of 16-bit integers.
    let query = &read("mars/info/query_IDX.mat")["query_IDX"];
    assert_eq!(
        (query.dims.clone(), query.data.clone()),
        (vec![1, 2], vec![1.0, 3.0])
    );
    let splits = &read("ilids/train-test people splits/train_test_splits_ilidsvid.mat")["ls_set"];
    assert_eq!((splits.rows(), splits.cols(), splits.at(1, 0)), (2, 4, 3.0));
}

#[test]
fn damaged_mat_files_are_errors_not_panics() {
    let bytes = std::fs::read(fixtures().join("mars/info/tracks_train_info.mat")).unwrap();
    for cut in [0, 10, 127, 128, 140, bytes.len() - 1] {
        assert!(
            read_mat(&bytes[..cut]).is_err() || cut == 128,
            "cut at {cut}"
        );
    }
    let mut flipped = bytes.clone();
    for b in flipped.iter_mut().skip(150).take(20) {
        *b ^= 0x5a;
    }
    assert!(read_mat(&flipped).is_err());
    assert!(matches!(read_mat(b"MATLAB 7.3 MAT-file, HDF5 .............................................................................................................."), Err(MatError::NotMat(_))));
}

#[test]
fn mars_reads_the_official_query_split() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("info")).unwrap();
    for f in [
        "tracks_train_info.mat",
        "tracks_test_info.mat",
        "query_IDX.mat",
    ] {
        std::fs::copy(
            fixtures().join("mars/info").join(f),
            root.join("info").join(f),
        )
        .unwrap();
    }
    let train = [
        "0001C1T0001F001.jpg",
        "0001C1T0001F002.jpg",
        "0001C1T0001F003.jpg",
        "0001C2T0001F001.jpg",
        "0001C2T0001F002.jpg",
        "0002C1T0001F001.jpg",
        "0002C1T0001F002.jpg",
    ];
    let test = [
        "0003C1T0001F001.jpg",
        "0003C1T0001F002.jpg",
        "0003C2T0001F001.jpg",
        "0003C2T0001F002.jpg",
        "0004C1T0001F001.jpg",
        "00-1C2T0001F001.jpg",
    ];
    std::fs::write(root.join("info/train_name.txt"), train.join("\n")).unwrap();
    std::fs::write(root.join("info/test_name.txt"), test.join("\n")).unwrap();
    std::fs::create_dir_all(root.join("bbox_test")).unwrap();
    let set = open(root, 0).unwrap();
    assert_eq!(set.layout, VideoLayout::Mars);
    assert_eq!(set.train.len(), 3);
    assert_eq!(set.train[1].pid, 1);
    assert_eq!(set.train[1].camera, 2);
    assert_eq!(
        set.train[0].frames[2],
        root.join("bbox_train/0001/0001C1T0001F003.jpg")
    );
    // Query tracklets 1 and 3; the rest (junk included) is the gallery.
    assert_eq!(
        names(&set.query),
        vec![
            (
                3,
                1,
                vec!["0003C1T0001F001.jpg".into(), "0003C1T0001F002.jpg".into()]
            ),
            (4, 1, vec!["0004C1T0001F001.jpg".into()]),
        ]
    );
    assert_eq!(
        set.gallery.iter().map(|t| t.pid).collect::<Vec<_>>(),
        vec![3, -1]
    );
    // A names file shorter than the table says.
    std::fs::write(root.join("info/test_name.txt"), test[..4].join("\n")).unwrap();
    let message = open(root, 0).unwrap_err().to_string();
    assert!(message.contains("frames 5..5 of 4"), "{message}");
}

fn ilids(root: &Path, people: u32) {
    for p in 1..=people {
        for cam in 1..=2 {
            for f in 1..=3 {
                touch(&root.join(format!(
                    "sequences/cam{cam}/person{p:03}/cam{cam}_person{p:03}_{:05}.png",
                    f * 10 + p
                )));
            }
        }
    }
}

#[test]
fn ilids_vid_uses_the_official_split_file_when_there() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("i-LIDS-VID");
    ilids(&root, 4);
    let set = open(dir.path(), 0).unwrap();
    assert_eq!(set.layout, VideoLayout::IlidsVid);
    assert_eq!(set.frames(), 24);
    // Without the split file: a seeded half.
    let test: Vec<i64> = set.query.iter().map(|t| t.pid).collect();
    assert_eq!(test.len(), 2);
    assert_eq!(set.train.len(), 4);
    assert!(set.query.iter().all(|t| t.camera == 1) && set.gallery.iter().all(|t| t.camera == 2));
    // With it: row 0 tests people 3 and 4, row 1 people 1 and 2.
    let splits = root.join("train-test people splits");
    std::fs::create_dir_all(&splits).unwrap();
    std::fs::copy(
        fixtures().join("ilids/train-test people splits/train_test_splits_ilidsvid.mat"),
        splits.join("train_test_splits_ilidsvid.mat"),
    )
    .unwrap();
    let pids = |seed| {
        open(dir.path(), seed)
            .unwrap()
            .query
            .iter()
            .map(|t| t.pid)
            .collect::<Vec<_>>()
    };
    assert_eq!(pids(0), vec![3, 4]);
    assert_eq!(pids(1), vec![1, 2]);
    // A person missing from the second camera is an error, not a silent drop.
    std::fs::remove_dir_all(root.join("sequences/cam2/person002")).unwrap();
    assert!(open(dir.path(), 0).is_err());
}

#[test]
fn prid2011_keeps_people_seen_long_enough_by_both_cameras() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("prid_2011/multi_shot");
    let frames = |cam: &str, p: u32, n: usize| {
        for f in 1..=n {
            touch(&base.join(format!("{cam}/person_{p:04}/{f:04}.png")));
        }
    };
    for p in 1..=4 {
        frames("cam_a", p, 25);
        frames("cam_b", p, 30);
    }
    frames("cam_a", 5, 30); // One camera only.
    frames("cam_a", 6, 25);
    frames("cam_b", 6, PRID_MIN_FRAMES - 1); // Too short in cam_b.
    let set = open(dir.path(), 3).unwrap();
    assert_eq!(set.layout, VideoLayout::Prid2011);
    assert_eq!(set.query.len() + set.train.len() / 2, 4);
    assert_eq!(set.query.len(), 2);
    assert_eq!(set.query[0].frames.len(), 25);
    assert_eq!(set.gallery[0].frames.len(), 30);
    assert_eq!(open(dir.path(), 3).unwrap().query, set.query, "seeded");
}

#[test]
fn synthetic_output_and_unknown_folders() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tracklets.json"),
        r#"{"tracklets": [
            {"pid": 1, "camera": 1, "tracklet": 1, "split": "train", "frames": ["bbox_train/0001/0001C1T0001F001.jpg"]},
            {"pid": 2, "camera": 1, "tracklet": 1, "split": "query", "frames": ["a.jpg", "b.jpg"]},
            {"pid": 2, "camera": 2, "tracklet": 2, "split": "gallery", "frames": ["c.jpg"]}
        ]}"#,
    )
    .unwrap();
    let set = open(dir.path(), 0).unwrap();
    assert_eq!(
        (set.train.len(), set.query.len(), set.gallery.len()),
        (1, 1, 1)
    );
    assert_eq!(set.query[0].frames[1], dir.path().join("b.jpg"));
    std::fs::write(dir.path().join("tracklets.json"), "{").unwrap();
    assert!(open(dir.path(), 0).is_err());
    let empty = tempfile::tempdir().unwrap();
    let message = open(empty.path(), 0).unwrap_err().to_string();
    assert!(message.contains("no video dataset"), "{message}");
}
