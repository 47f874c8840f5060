//! Video files, read through ffmpeg (Debian's `ffmpeg` package, which `cargo xtask` installs):
//! `ffprobe` gives the picture size and frame rate, `ffmpeg` decodes the first video stream to
//! raw RGB on a pipe, and frames are read one at a time, so memory stays at one frame however
//! long the video is. Frames can be sampled down to a lower rate; each keeps its number in the
//! source (counted from 1), so tracks line up with ground truth made on every frame.
//!
//! Every size is the first frame's: a stream that changes size mid-way is scaled back to it,
//! and a phone video's rotation is applied (ffmpeg's default), its size swapped to match.

use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use image::RgbImage;
use reid_model::preprocess::{MAX_MEGAPIXELS, MAX_SIDE};

/// File name endings taken for videos.
pub const VIDEO_EXTENSIONS: [&str; 9] = [
    "mp4", "m4v", "mov", "webm", "mkv", "avi", "mpg", "mpeg", "ogv",
];

/// Whether `path` is named like a video file.
pub fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// What ffprobe says about a video's first video stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoInfo {
    /// The decoded picture's size (after rotation).
    pub width: u32,
    pub height: u32,
    /// Frames per second, when the file says.
    pub fps: Option<f64>,
}

/// Asks ffprobe for the size and rate of the first video stream of `path`.
pub fn probe(path: &Path) -> anyhow::Result<VideoInfo> {
    if !path.is_file() {
        bail!("{} is not a file", path.display());
    }
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,r_frame_rate,avg_frame_rate:stream_side_data=rotation",
            "-of",
            "json",
        ])
        .arg(file_url(path))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_ffmpeg("ffprobe", e))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let stream = json["streams"].get(0);
    let Some(stream) = stream else {
        let why = last_line(&String::from_utf8_lossy(&out.stderr));
        bail!(
            "{} has no video stream ffmpeg can read{}",
            path.display(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            }
        );
    };
    let side = |key: &str| stream[key].as_u64().unwrap_or(0);
    let (mut width, mut height) = (side("width"), side("height"));
    if width == 0 || height == 0 {
        bail!("{} has a video stream of no size", path.display());
    }
    let rotation = stream["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|d| d["rotation"].as_i64())
        .unwrap_or(0);
    if rotation.rem_euclid(180) == 90 {
        std::mem::swap(&mut width, &mut height);
    }
    if width > u64::from(MAX_SIDE)
        || height > u64::from(MAX_SIDE)
        || width * height > u64::from(MAX_MEGAPIXELS) * 1_000_000
    {
        bail!(
            "{} is {width}x{height}: videos are read up to {MAX_SIDE} pixels a side and {MAX_MEGAPIXELS} megapixels",
            path.display()
        );
    }
    let rate = |key: &str| {
        let r = stream[key].as_str()?;
        let (n, d) = r.split_once('/').unwrap_or((r, "1"));
        let rate = n.parse::<f64>().ok()? / d.parse::<f64>().ok()?;
        (rate.is_finite() && rate > 0.0).then_some(rate)
    };
    // ffmpeg's own guess of a stream's rate: the real base rate, unless that is implausibly
    // high (a variable-rate phone clip's time base) and the average is not.
    let fps = match (rate("r_frame_rate"), rate("avg_frame_rate")) {
        (Some(r), Some(avg)) if r > 210.0 && avg < 70.0 => Some(avg),
        (r, avg) => r.or(avg),
    };
    Ok(VideoInfo {
        width: width as u32,
        height: height as u32,
        fps,
    })
}

/// `path` as ffmpeg's `file:` URL, so that a name with a colon is not taken for a protocol
/// and one starting with a dash not for an option.
fn file_url(path: &Path) -> std::ffi::OsString {
    let mut url = std::ffi::OsString::from("file:");
    url.push(path.as_os_str());
    url
}

fn missing_ffmpeg(tool: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "reading video needs {tool} (Debian: `apt-get install ffmpeg`; `cargo xtask test` installs it)"
        )
    } else {
        anyhow::anyhow!("cannot start {tool}: {e}")
    }
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Which source frames to keep to track at most `target` frames per second of a `source` rate:
/// every frame when the source is not faster.
#[derive(Debug, Clone)]
pub struct Sampler {
    step: f64,
    next: f64,
}

impl Sampler {
    pub fn new(source_fps: f64, target_fps: Option<f64>) -> Self {
        let step = match target_fps {
            Some(t) if t > 0.0 && t < source_fps => source_fps / t,
            _ => 1.0,
        };
        Self { step, next: 0.0 }
    }

    /// Whether the frame at `index` (from 0, in order) is kept.
    pub fn keep(&mut self, index: u64) -> bool {
        // A small tolerance keeps exact ratios (30 -> 10 fps: every third frame) exact.
        if index as f64 + 1e-6 >= self.next {
            self.next += self.step;
            true
        } else {
            false
        }
    }
}

/// A video being decoded, frame by frame.
pub struct Video {
    pub info: VideoInfo,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<String>>,
    sampler: Sampler,
    /// Source frames read so far.
    read: u64,
    done: bool,
}

impl Video {
    /// Starts decoding `path`, keeping at most `max_fps` frames per second (all when `None`;
    /// a file that gives no rate is refused with `max_fps`).
    pub fn open(path: &Path, max_fps: Option<f64>) -> anyhow::Result<Self> {
        let info = probe(path)?;
        if max_fps.is_some() && info.fps.is_none() {
            bail!("--fps needs the video's own frame rate, and this file does not give one");
        }
        let mut ffmpeg = Command::new("ffmpeg");
        ffmpeg
            .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-i"])
            .arg(file_url(path))
            .args(["-map", "0:v:0", "-an", "-sn", "-vf"])
            .arg(format!("scale={}:{}", info.width, info.height));
        // Frames at the probed rate exactly (repeated or dropped by their time stamps), so that
        // frame n is at (n - 1) / rate seconds even in a variable-rate clip; without a rate,
        // every decoded frame once.
        match info.fps {
            Some(rate) => ffmpeg
                .args(["-fps_mode", "cfr", "-r"])
                .arg(format!("{rate}")),
            None => ffmpeg.args(["-fps_mode", "passthrough"]),
        };
        let mut child = ffmpeg
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| missing_ffmpeg("ffmpeg", e))?;
        let stdout = BufReader::with_capacity(1 << 20, child.stdout.take().context("no pipe")?);
        // Errors are read on their own thread so a chatty decoder never blocks on a full pipe.
        let mut stderr = child.stderr.take().context("no pipe")?;
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Ok(Self {
            sampler: Sampler::new(info.fps.unwrap_or(1.0), max_fps),
            info,
            child,
            stdout,
            stderr: Some(stderr),
            read: 0,
            done: false,
        })
    }

    /// The next kept frame and its number in the source (from 1); `None` at the end.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<(u64, RgbImage)>> {
        let len = self.info.width as usize * self.info.height as usize * 3;
        loop {
            if self.done {
                return Ok(None);
            }
            let mut buf = vec![0u8; len];
            let filled = read_full(&mut self.stdout, &mut buf).context("reading from ffmpeg")?;
            if filled < len {
                // The end (a partial frame means ffmpeg stopped mid-frame: dropped).
                self.done = true;
                return Ok(None);
            }
            let index = self.read;
            self.read += 1;
            if self.sampler.keep(index) {
                let frame = RgbImage::from_raw(self.info.width, self.info.height, buf)
                    .context("frame buffer of the wrong size")?;
                return Ok(Some((index + 1, frame)));
            }
        }
    }

    /// Source frames decoded so far.
    pub fn frames_read(&self) -> u64 {
        self.read
    }

    /// Waits for ffmpeg. An error when it failed before a single frame; otherwise what it
    /// complained about (a damaged stream ends early), if anything, for the user to see.
    pub fn finish(mut self) -> anyhow::Result<Option<String>> {
        // Stop a decoder still running (the caller gave up early).
        if !self.done {
            let _ = self.child.kill();
        }
        let status = self.child.wait().context("waiting for ffmpeg")?;
        let errors = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let why = last_line(&errors);
        if self.read == 0 {
            bail!(
                "ffmpeg decoded no frame{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
        }
        Ok(
            (self.done && (!status.success() || !why.is_empty())).then(|| {
                if why.is_empty() {
                    format!("ffmpeg stopped with {status}")
                } else {
                    why
                }
            }),
        )
    }
}

impl Drop for Video {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads until `buf` is full or the stream ends; how many bytes were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `frames` pictures of 64x48 (frame i is grey level 10 * i) at 10 frames/s.
    fn clip(dir: &Path, name: &str, frames: u32) -> std::path::PathBuf {
        for i in 0..frames {
            RgbImage::from_pixel(64, 48, image::Rgb([10 * i as u8; 3]))
                .save(dir.join(format!("f{i:03}.png")))
                .unwrap();
        }
        let out = dir.join(name);
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
            .arg(dir.join("f%03d.png"))
            .args(["-c:v", "ffv1", "-pix_fmt", "bgr0"])
            .arg(&out)
            .status()
            .expect("ffmpeg, which cargo xtask installs");
        assert!(status.success());
        out
    }

    #[test]
    fn frames_come_in_order_with_their_numbers_and_sampling_keeps_source_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = clip(dir.path(), "clip.mkv", 9);
        let mut video = Video::open(&path, None).unwrap();
        assert_eq!((video.info.width, video.info.height), (64, 48));
        assert!((video.info.fps.unwrap() - 10.0).abs() < 1e-9);
        let mut seen = Vec::new();
        while let Some((n, frame)) = video.next_frame().unwrap() {
            // Lossless: frame n is grey 10 * (n - 1).
            assert_eq!(frame.get_pixel(5, 5).0, [10 * (n - 1) as u8; 3]);
            seen.push(n);
        }
        assert_eq!(seen, (1..=9).collect::<Vec<_>>());
        assert_eq!(video.finish().unwrap(), None);

        let mut video = Video::open(&path, Some(2.5)).unwrap();
        let mut kept = Vec::new();
        while let Some((n, _)) = video.next_frame().unwrap() {
            kept.push(n);
        }
        assert_eq!(kept, [1, 5, 9]);
        assert_eq!(video.frames_read(), 9);
        // Not faster than asked: every frame.
        let mut all = Sampler::new(10.0, Some(25.0));
        assert!((0..5).all(|i| all.keep(i)));
        let mut third = Sampler::new(30.0, Some(10.0));
        let kept: Vec<u64> = (0..10).filter(|&i| third.keep(i)).collect();
        assert_eq!(kept, [0, 3, 6, 9]);
    }

    #[test]
    fn files_that_are_not_video_give_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.mp4");
        std::fs::write(&text, "not a video at all").unwrap();
        let e = Video::open(&text, None).err().unwrap().to_string();
        assert!(e.contains("has no video stream"), "{e}");
        let e = Video::open(&dir.path().join("missing.mp4"), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("is not a file"), "{e}");
        // A picture is a one-frame stream for ffmpeg, but an empty file is nothing.
        let empty = dir.path().join("empty.webm");
        std::fs::write(&empty, b"").unwrap();
        assert!(Video::open(&empty, None).is_err());
    }

    #[test]
    fn a_cut_off_video_gives_the_frames_before_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = clip(dir.path(), "clip.mkv", 20);
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.mkv");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let mut video = Video::open(&cut, None).unwrap();
        let mut n = 0;
        while video.next_frame().unwrap().is_some() {
            n += 1;
        }
        assert!((1..20).contains(&n), "{n} frames from half a file");
        // Whatever ffmpeg said about the cut is passed on, not fatal.
        let _ = video.finish().unwrap();
    }
}
