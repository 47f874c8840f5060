//! Where and when a gallery person was seen: the camera label of each source, the time of each
//! sighting, and the per-camera timeline of a search's matches. Pure data, tested natively.
//!
//! The camera follows `reid search`'s rule (Market-1501's `c3` in the name, else the video's
//! name, else the picture's folder), unless the user typed a label for the files they add.

use reid_core::naming::parse_market1501;
use serde::{Deserialize, Serialize};

/// The lane of pictures with no camera in their name, folder or the user's label.
pub const NO_CAMERA: &str = "no camera given";

/// Where and when one gallery person was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub camera: String,
    pub when: When,
}

impl Seen {
    /// "c2 · s4 frame 39", for a card or a ranked entry.
    pub fn label(&self) -> String {
        format!("{} · {}", self.camera, self.when.label())
    }
}

/// When a person was seen, in the clock their source gives.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "clock", rename_all = "snake_case")]
pub enum When {
    /// Market-1501's sequence and frame, from the picture's name.
    Frame { sequence: u32, frame: u32 },
    /// First and last second seen in a video, from its start.
    Video { from_s: f64, to_s: f64 },
    /// The picture file's last-modified time (ms since 1970, UTC): when it was taken, for a
    /// photo copied off a camera, but only as good as the file's history.
    Modified { ms: f64 },
}

impl When {
    /// Chronological order within a camera: clocks of one kind compare by their value; a lane
    /// mixing kinds (which have no common clock) lists each kind together.
    fn key(&self) -> (u8, f64, f64) {
        match *self {
            When::Frame { sequence, frame } => (0, sequence as f64, frame as f64),
            When::Video { from_s, to_s } => (1, from_s, to_s),
            When::Modified { ms } => (2, ms, 0.0),
        }
    }

    /// In words: "s2 frame 55", "0:03-0:07", "2026-11-27 14:05 UTC".
    pub fn label(&self) -> String {
        match *self {
            When::Frame { sequence, frame } => format!("s{sequence} frame {frame}"),
            When::Video { from_s, to_s } => format!("{}-{}", clock(from_s), clock(to_s)),
            When::Modified { ms } => utc(ms),
        }
    }
}

/// `m:ss` of `seconds`.
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// `YYYY-MM-DD HH:MM UTC` of a time in ms since 1970 (the civil calendar, proleptic Gregorian).
fn utc(ms: f64) -> String {
    if !ms.is_finite() {
        return "time unknown".into();
    }
    let minutes = (ms / 60_000.0).floor() as i64;
    let (days, minute) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        minute / 60,
        minute % 60
    )
}

/// The camera of a file the user adds: `label` when they typed one, else Market-1501's `c3`
/// in `name`, else a video's name (without its extension), else the picture's `folder`.
pub fn camera_of(label: &str, name: &str, folder: Option<&str>, video: bool) -> String {
    let label = label.trim();
    if !label.is_empty() {
        return label.to_string();
    }
    if let Ok(m) = parse_market1501(name) {
        return format!("c{}", m.camid);
    }
    if video {
        return name.rsplit_once('.').map_or(name, |(s, _)| s).to_string();
    }
    folder
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map_or_else(|| NO_CAMERA.to_string(), str::to_string)
}

/// The folder of a file picked with a folder, from its `webkitRelativePath` ("trip/cam2/a.jpg"
/// gives "cam2"); `None` for a file picked on its own.
pub fn folder_of(relative_path: &str) -> Option<&str> {
    let (dir, _) = relative_path.rsplit_once('/')?;
    Some(dir.rsplit('/').next().unwrap_or(dir))
}

/// When a picture was seen: Market-1501's sequence and frame in its name, else its file's
/// last-modified time.
pub fn when_of(name: &str, modified_ms: f64) -> When {
    match parse_market1501(name) {
        Ok(m) if m.sequence > 0 || m.frame > 0 => When::Frame {
            sequence: m.sequence,
            frame: m.frame,
        },
        _ => When::Modified { ms: modified_ms },
    }
}

/// One match on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub id: u32,
    pub score: f32,
    pub when: When,
}

/// One camera's matches, in the order they were seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub camera: String,
    pub sightings: Vec<Sighting>,
}

/// The matches of a search (`hits`: id and similarity) at or above `threshold`, per camera
/// (`seen` tells where and when each id was seen; ids it does not know are left out), cameras
/// in name order (c2 before c10), each camera's sightings in the order they were seen.
pub fn timeline<'a>(
    hits: impl IntoIterator<Item = (u32, f32)>,
    seen: impl Fn(u32) -> Option<&'a Seen>,
    threshold: f32,
) -> Vec<Lane> {
    let mut lanes: Vec<Lane> = Vec::new();
    for (id, score) in hits {
        if score < threshold {
            continue;
        }
        let Some(s) = seen(id) else { continue };
        let sighting = Sighting {
            id,
            score,
            when: s.when,
        };
        match lanes.iter_mut().find(|l| l.camera == s.camera) {
            Some(lane) => lane.sightings.push(sighting),
            None => lanes.push(Lane {
                camera: s.camera.clone(),
                sightings: vec![sighting],
            }),
        }
    }
    lanes.sort_by_cached_key(|l| natural(&l.camera));
    for lane in &mut lanes {
        lane.sightings.sort_by(|a, b| {
            let (ka, kb) = (a.when.key(), b.when.key());
            ka.0.cmp(&kb.0)
                .then(ka.1.total_cmp(&kb.1))
                .then(ka.2.total_cmp(&kb.2))
                .then(a.id.cmp(&b.id))
        });
    }
    lanes
}

/// A sort key that orders the digits in a name by their number ("c2" before "c10").
fn natural(name: &str) -> Vec<(String, u64)> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_digit(10).unwrap_or(0) as u64;
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(d as u64);
                chars.next();
            }
            parts.push((std::mem::take(&mut text), n));
        } else {
            text.extend(c.to_lowercase());
        }
    }
    parts.push((text, 0));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_come_from_the_label_else_market_names_else_the_video_or_the_folder() {
        assert_eq!(camera_of("", "0002_c3s1_000100_01.jpg", None, false), "c3");
        assert_eq!(
            camera_of(" lobby ", "0002_c3s1_000100_01.jpg", None, false),
            "lobby"
        );
        assert_eq!(camera_of("", "door-cam.webm", None, true), "door-cam");
        assert_eq!(camera_of("", "IMG_1234.jpg", Some("cam2"), false), "cam2");
        assert_eq!(camera_of("", "IMG_1234.jpg", None, false), NO_CAMERA);
        assert_eq!(folder_of("trip/cam2/IMG_1234.jpg"), Some("cam2"));
        assert_eq!(folder_of("cam2/IMG_1234.jpg"), Some("cam2"));
        assert_eq!(folder_of(""), None);
    }

    #[test]
    fn times_come_from_market_names_else_the_file() {
        assert_eq!(
            when_of("0007_c2s5_000040_01.jpg", 5.0),
            When::Frame {
                sequence: 5,
                frame: 40
            }
        );
        assert_eq!(when_of("IMG_1234.jpg", 5.0), When::Modified { ms: 5.0 });
        let seen = Seen {
            camera: "c2".into(),
            when: when_of("0007_c2s4_000039_01.jpg", 0.0),
        };
        assert_eq!(seen.label(), "c2 · s4 frame 39");
        assert_eq!(
            When::Frame {
                sequence: 5,
                frame: 40
            }
            .label(),
            "s5 frame 40"
        );
        assert_eq!(
            When::Video {
                from_s: 3.2,
                to_s: 67.0
            }
            .label(),
            "0:03-1:07"
        );
        // 2026-11-27 14:05:59 UTC, and the first day of 1970 and of a leap day.
        assert_eq!(
            When::Modified {
                ms: 1_795_788_359_000.0
            }
            .label(),
            "2026-11-27 14:05 UTC"
        );
        assert_eq!(When::Modified { ms: 0.0 }.label(), "1970-01-01 00:00 UTC");
        assert_eq!(
            When::Modified {
                ms: 951_782_400_000.0
            }
            .label(),
            "2000-02-29 00:00 UTC"
        );
    }

    #[test]
    fn the_timeline_keeps_matches_per_camera_in_the_order_seen() {
        let seen = [
            (1, "c2", 3, 10),
            (2, "c10", 1, 5),
            (3, "c2", 1, 90),
            (4, "c1", 2, 2),
            (5, "c2", 1, 20),
        ]
        .map(|(id, camera, sequence, frame)| {
            (
                id,
                Seen {
                    camera: camera.into(),
                    when: When::Frame { sequence, frame },
                },
            )
        });
        let lookup = |id: u32| seen.iter().find(|(i, _)| *i == id).map(|(_, s)| s);
        let hits = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.3), (5, 0.6), (9, 0.95)];
        let lanes = timeline(hits, lookup, 0.5);
        let got: Vec<(&str, Vec<u32>)> = lanes
            .iter()
            .map(|l| {
                (
                    l.camera.as_str(),
                    l.sightings.iter().map(|s| s.id).collect(),
                )
            })
            .collect();
        // c1's only match is under the threshold; id 9 has no place; c2 is in sequence order.
        assert_eq!(got, vec![("c2", vec![5, 3, 1]), ("c10", vec![2])]);
        assert!(timeline(hits, lookup, 0.99).is_empty());
    }
}
