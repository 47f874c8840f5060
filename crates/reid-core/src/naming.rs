//! Dataset file-name conventions, parsed here (not in `reid-data`) so that the browser can use
//! them too.
//!
//! - Market-1501: `0002_c1s1_000451_03.jpg` = identity 0002, camera 1, sequence 1, frame 451,
//!   box 3. Identity `0000` marks distractors (never a true match), `-1` junk (ignored by the
//!   protocol). DukeMTMC-reID (`0001_c2_f0046182.jpg`) and CUHK03-NP (`0003_c1_26.png`) use the
//!   same folders with a shorter name: identity and camera as torchreid reads them
//!   (`([-\d]+)_c(\d+)`), then the frame where there is one.
//! - MARS: `0001C1T0001F001.jpg` = identity 0001, camera 1, tracklet 0001, frame 001. Identity
//!   `00-1` marks junk, `0000` distractors.

use serde::{Deserialize, Serialize};

/// Identity of junk images in both conventions.
pub const JUNK_PID: i64 = -1;
/// Identity of distractor images in both conventions.
pub const DISTRACTOR_PID: i64 = 0;

/// A file name that does not follow the convention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a {convention} file name ({expected})")]
pub struct NameError {
    pub name: String,
    pub convention: &'static str,
    pub expected: &'static str,
}

/// The labels in a Market-1501 (or DukeMTMC-reID, MSMT17-style) image name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketName {
    pub pid: i64,
    pub camid: u32,
    pub sequence: u32,
    pub frame: u32,
    pub bbox: u32,
}

/// The labels in a MARS frame name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarsName {
    pub pid: i64,
    pub camid: u32,
    pub tracklet: u32,
    pub frame: u32,
}

fn stem(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.rsplit_once('.').map_or(base, |(s, _)| s)
}

/// Parses a Market-1501 name such as `0002_c1s1_000451_03.jpg` (a path is allowed).
pub fn parse_market1501(name: &str) -> Result<MarketName, NameError> {
    let err = || NameError {
        name: name.to_string(),
        convention: "Market-1501",
        expected: "PPPP_cCsS_FFFFFF_NN.jpg, or PPPP_cC_*.jpg as in DukeMTMC-reID and CUHK03-NP",
    };
    let parts: Vec<&str> = stem(name).split('_').collect();
    let number = |s: &str| s.parse::<u32>().map_err(|_| err());
    let parsed = match parts.as_slice() {
        // Market-1501 itself: camera and sequence, frame, box.
        [pid, cam_seq, frame, bbox] if cam_seq.contains('s') => {
            let (cam, seq) = cam_seq
                .strip_prefix('c')
                .and_then(|r| r.split_once('s'))
                .ok_or_else(err)?;
            MarketName {
                pid: pid.parse().map_err(|_| err())?,
                camid: number(cam)?,
                sequence: number(seq)?,
                frame: number(frame)?,
                bbox: number(bbox)?,
            }
        }
        // DukeMTMC-reID (`f0046182`) and CUHK03-NP (`26`): identity, camera, then a frame.
        [pid, cam, rest @ ..] => {
            let frame = rest
                .first()
                .map(|f| f.strip_prefix('f').unwrap_or(f))
                .map_or(Ok(0), &number)?;
            MarketName {
                pid: pid.parse().map_err(|_| err())?,
                camid: number(cam.strip_prefix('c').ok_or_else(err)?)?,
                sequence: 0,
                frame,
                bbox: 0,
            }
        }
        _ => return Err(err()),
    };
    if parsed.pid < JUNK_PID {
        return Err(err());
    }
    Ok(parsed)
}

/// Parses a MARS name such as `0001C1T0001F001.jpg` (a path is allowed).
pub fn parse_mars(name: &str) -> Result<MarsName, NameError> {
    let err = || NameError {
        name: name.to_string(),
        convention: "MARS",
        expected: "PPPPCcTttttFfff.jpg",
    };
    let s = stem(name);
    if s.len() < 4 || !s.is_char_boundary(4) {
        return Err(err());
    }
    let (pid, rest) = s.split_at(4);
    let pid = if pid == "00-1" {
        JUNK_PID
    } else {
        pid.parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(err)?
    };
    let rest = rest.strip_prefix('C').ok_or_else(err)?;
    let (cam, rest) = rest.split_once('T').ok_or_else(err)?;
    let (tracklet, frame) = rest.split_once('F').ok_or_else(err)?;
    let number = |s: &str| s.parse::<u32>().map_err(|_| err());
    Ok(MarsName {
        pid,
        camid: number(cam)?,
        tracklet: number(tracklet)?,
        frame: number(frame)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_names_give_identity_camera_sequence_frame_and_box() {
        let n = parse_market1501("bounding_box_test/0002_c1s1_000451_03.jpg").unwrap();
        assert_eq!(
            n,
            MarketName {
                pid: 2,
                camid: 1,
                sequence: 1,
                frame: 451,
                bbox: 3
            }
        );
        assert_eq!(
            parse_market1501("-1_c3s2_010101_01.jpg").unwrap().pid,
            JUNK_PID
        );
        assert_eq!(
            parse_market1501("0000_c6s4_002202_04.jpg").unwrap().pid,
            DISTRACTOR_PID
        );
    }

    #[test]
    fn duke_and_cuhk03_np_names_give_identity_camera_and_frame() {
        let duke = parse_market1501("bounding_box_train/0001_c2_f0046182.jpg").unwrap();
        assert_eq!((duke.pid, duke.camid, duke.frame), (1, 2, 46182));
        let cuhk = parse_market1501("query/0003_c1_26.png").unwrap();
        assert_eq!((cuhk.pid, cuhk.camid, cuhk.frame), (3, 1, 26));
        assert_eq!(parse_market1501("-1_c1_3.png").unwrap().pid, JUNK_PID);
    }

    #[test]
    fn malformed_market_names_are_refused_with_the_expected_shape() {
        for bad in [
            "",
            "0002.jpg",
            "0002_x1s1_000451_03.jpg",
            "abcd_c1s1_000451_03.jpg",
            "-2_c1s1_000451_03.jpg",
            "0001_c2_fxyz.jpg",
            "0001_cam_12.jpg",
            "holiday_photo.jpg",
        ] {
            let err = parse_market1501(bad).unwrap_err();
            assert!(
                err.to_string().contains("PPPP_cCsS_FFFFFF_NN"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn mars_names_parse_including_junk() {
        let n = parse_mars("bbox_train/0001/0001C1T0001F001.jpg").unwrap();
        assert_eq!(
            n,
            MarsName {
                pid: 1,
                camid: 1,
                tracklet: 1,
                frame: 1
            }
        );
        assert_eq!(parse_mars("00-1C2T0003F012.jpg").unwrap().pid, JUNK_PID);
        assert!(parse_mars("0001X1T0001F001.jpg").is_err());
        assert!(parse_mars("é").is_err());
    }
}
