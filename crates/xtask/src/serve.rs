//! A small static file server for `dist/`, on 127.0.0.1 only. It sends the headers of
//! [`crate::site::headers`] (the same rules `cargo xtask dist` writes for other servers: the
//! CSP, cross-origin isolation, caching), correct MIME types, single byte ranges (a
//! `<video>` seeks with them), and an `ETag` per file version (size and modification time, as
//! nginx makes it), so that a revalidation (`Cache-Control: no-cache`, the service worker's
//! copying of the app) of an unchanged file costs a `304 Not Modified` instead of the file.
//! Files that compress (the wasm modules, scripts, the model) go gzip-compressed to a browser
//! that accepts it (a copy made once per file version, compressed when the server starts).

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use flate2::{write::GzEncoder, Compression};
use tiny_http::{Header, Response, StatusCode};

use crate::site::{self, content_type};

/// A server running on a background thread until dropped.
pub struct Server {
    inner: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl Server {
    /// Serves `dir` on `127.0.0.1:port` (0: any free port).
    pub fn start(dir: &Path, port: u16) -> Result<Self> {
        let inner = Arc::new(
            tiny_http::Server::http(("127.0.0.1", port))
                .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?,
        );
        let port = inner
            .server_addr()
            .to_ip()
            .context("the server has no IP address")?
            .port();
        let dir = dir.to_path_buf();
        let gzipped = Gzipped::default();
        gzipped.warm(&dir);
        let server = inner.clone();
        let thread = std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let value = |name: &'static str| {
                    request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv(name))
                        .map(|h| h.value.as_str().to_string())
                };
                let (range, if_none_match) = (value("Range"), value("If-None-Match"));
                let asked = Asked {
                    range: range.as_deref(),
                    if_none_match: if_none_match.as_deref(),
                    gzip: value("Accept-Encoding").is_some_and(|h| accepts_gzip(&h)),
                };
                let response = respond(&dir, request.url(), &asked, &gzipped);
                let _ = request.respond(response);
            }
        });
        Ok(Self {
            inner,
            thread: Some(thread),
            port,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.inner.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves until the process is stopped.
pub fn serve_forever(dir: &Path, port: u16) -> Result<()> {
    let server = match Server::start(dir, port) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("xtask: {e:#}; using a free port instead");
            Server::start(dir, 0)?
        }
    };
    println!(
        "Serving the ReID app at http://127.0.0.1:{}/ (Ctrl-C to stop)",
        server.port()
    );
    if let Some(thread) = server.thread.as_ref() {
        while !thread.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    Ok(())
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

/// Maps a request path to a file under `dir`, refusing anything that climbs out of it.
fn resolve(dir: &Path, url: &str) -> Option<PathBuf> {
    let path = url.split(['?', '#']).next().unwrap_or("/");
    let mut out = dir.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    out.is_file().then_some(out)
}

/// The byte span `start..end` a `Range: bytes=...` header asks of a `len`-byte file, or `None`
/// when the header is not a single satisfiable range (then the whole file is sent, or a 416).
fn byte_range(header: &str, len: usize) -> Option<(usize, usize)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (from, to) = spec.split_once('-')?;
    let (start, end) = match (from.trim(), to.trim()) {
        ("", suffix) => {
            let n: usize = suffix.parse().ok()?;
            (len.saturating_sub(n), len)
        }
        (from, "") => (from.parse().ok()?, len),
        (from, to) => (
            from.parse().ok()?,
            to.parse::<usize>().ok()?.saturating_add(1).min(len),
        ),
    };
    (start < end).then_some((start, end))
}

/// A file version's validator: its size and modification time, in hex.
fn etag(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(format!("\"{:x}-{:x}\"", modified.as_nanos(), meta.len()))
}

/// Whether an `If-None-Match` header names `tag` (or any version, `*`).
fn matches_tag(header: &str, tag: &str) -> bool {
    header
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

/// What a request asks beyond its path.
#[derive(Default)]
struct Asked<'a> {
    range: Option<&'a str>,
    if_none_match: Option<&'a str>,
    /// Its `Accept-Encoding` allows gzip.
    gzip: bool,
}

fn respond(dir: &Path, url: &str, asked: &Asked, gzipped: &Gzipped) -> Response<Cursor<Body>> {
    let file = resolve(dir, url);
    let name = file
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tag = file.as_deref().and_then(etag);
    let mut content_range = None;
    let mut encoding = None;
    let not_found = || {
        (
            404,
            Body::Owned(b"not found".to_vec()),
            "text/plain; charset=utf-8",
        )
    };
    let (status, body, kind) = match file {
        Some(path) if path.is_file() => {
            let kind = content_type(&path);
            // A whole file a gzip copy shrinks is sent compressed, under its own validator.
            let gz = match (&tag, asked.range) {
                (Some(t), None) if asked.gzip => gzipped.of(&path, t),
                _ => None,
            };
            if gz.is_some() {
                tag = tag.map(|t| format!("{}-gz\"", t.trim_end_matches('"')));
                encoding = Some("gzip");
            }
            let unchanged =
                matches!((&tag, asked.if_none_match), (Some(t), Some(h)) if matches_tag(h, t));
            // The file is read only when its plain bytes are sent.
            match (unchanged, gz) {
                (true, _) => {
                    encoding = None;
                    (304, Body::Owned(Vec::new()), kind)
                }
                (false, Some(gz)) => (200, Body::Shared(gz), kind),
                (false, None) => match std::fs::read(&path) {
                    Err(_) => not_found(),
                    Ok(bytes) => match asked.range.map(|r| byte_range(r, bytes.len())) {
                        None => (200, Body::Owned(bytes), kind),
                        Some(Some((start, end))) => {
                            content_range =
                                Some(format!("bytes {start}-{}/{}", end - 1, bytes.len()));
                            (206, Body::Owned(bytes[start..end].to_vec()), kind)
                        }
                        Some(None) => {
                            content_range = Some(format!("bytes */{}", bytes.len()));
                            (416, Body::Owned(Vec::new()), "text/plain; charset=utf-8")
                        }
                    },
                },
            }
        }
        _ => not_found(),
    };
    let length = body.as_ref().len();
    let mut response = Response::new(
        StatusCode(status),
        Vec::new(),
        Cursor::new(body),
        Some(length),
        None,
    );
    response.add_header(header("Content-Type", kind));
    response.add_header(header("Accept-Ranges", "bytes"));
    if compressible(kind) {
        response.add_header(header("Vary", "Accept-Encoding"));
    }
    if let Some(value) = encoding {
        response.add_header(header("Content-Encoding", value));
    }
    if let Some(value) = content_range {
        response.add_header(header("Content-Range", &value));
    }
    if let Some(tag) = tag.filter(|_| status != 404) {
        response.add_header(header("ETag", &tag));
    }
    for (key, value) in site::headers(&name) {
        response.add_header(header(key, &value));
    }
    response
}

/// Whether a response of this type is worth compressing (pictures and video already are).
fn compressible(kind: &str) -> bool {
    kind.starts_with("text/")
        || matches!(
            kind,
            "application/wasm" | "application/json" | "image/svg+xml" | "application/octet-stream"
        )
}

/// Whether an `Accept-Encoding` header allows gzip (named or `*`, without `q=0`).
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                == Some(0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// A file's gzip copy and the version (`ETag`) it was made from; no copy when gzip does not
/// shrink the file by a sixteenth.
/// A response's bytes: read from disk, or a kept gzip copy shared, not copied.
enum Body {
    Owned(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        match self {
            Body::Owned(bytes) => bytes,
            Body::Shared(bytes) => bytes,
        }
    }
}

type GzipCopy = (String, Option<Arc<Vec<u8>>>);

/// Gzip copies of the served files, made once per file version and kept in memory (a rebuilt
/// file is compressed again).
#[derive(Default)]
struct Gzipped(Mutex<HashMap<PathBuf, GzipCopy>>);

impl Gzipped {
    /// The gzip copy of `path` at version `tag` (the file is read only when none is kept).
    fn of(&self, path: &Path, tag: &str) -> Option<Arc<Vec<u8>>> {
        if !compressible(content_type(path)) {
            return None;
        }
        let mut copies = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, gz)) = copies.get(path) {
            if t == tag {
                return gz.clone();
            }
        }
        let bytes = std::fs::read(path).ok()?;
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        let gz = encoder
            .write_all(&bytes)
            .ok()
            .and_then(|()| encoder.finish().ok())
            .filter(|gz| gz.len() < bytes.len() - bytes.len() / 16)
            .map(Arc::new);
        copies.insert(path.to_path_buf(), (tag.to_string(), gz.clone()));
        gz
    }

    /// Compresses every file under `dir` now, so that no request waits for it.
    fn warm(&self, dir: &Path) {
        for name in site::files_under(dir).unwrap_or_default() {
            let path = dir.join(&name);
            if let Some(tag) = etag(&path) {
                self.of(&path, &tag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(byte_range("bytes=500-", 1000), Some((500, 1000)));
        assert_eq!(byte_range("bytes=-200", 1000), Some((800, 1000)));
        assert_eq!(byte_range("bytes=900-5000", 1000), Some((900, 1000)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-9", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
    }

    fn revalidate(tag: &str) -> Asked<'_> {
        Asked {
            if_none_match: Some(tag),
            ..Asked::default()
        }
    }

    fn header_of(response: &Response<Cursor<Body>>, name: &'static str) -> Option<String> {
        response
            .headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str().to_string())
    }

    fn body_of(response: Response<Cursor<Body>>) -> Vec<u8> {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body).unwrap();
        body
    }

    #[test]
    fn accept_encoding_is_read_as_rfc_9110_says() {
        assert!(accepts_gzip("gzip, deflate, br, zstd"));
        assert!(accepts_gzip("br;q=1.0, GZIP;q=0.5"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0, br"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn files_that_compress_go_gzipped_to_browsers_that_accept_it() {
        let dir = std::env::temp_dir().join(format!("xtask-gzip-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let module: Vec<u8> = b"\0asm".iter().cycle().take(64 * 1024).copied().collect();
        std::fs::write(dir.join("a.wasm"), &module).unwrap();
        std::fs::write(dir.join("b.png"), &module).unwrap();
        let gz = Gzipped::default();
        gz.warm(&dir);
        let gzip = Asked {
            gzip: true,
            ..Asked::default()
        };
        let sent = respond(&dir, "/a.wasm", &gzip, &gz);
        assert_eq!(sent.status_code(), StatusCode(200));
        assert_eq!(
            header_of(&sent, "Content-Encoding").as_deref(),
            Some("gzip")
        );
        assert_eq!(header_of(&sent, "Vary").as_deref(), Some("Accept-Encoding"));
        let tag = header_of(&sent, "ETag").unwrap();
        assert!(tag.ends_with("-gz\""), "{tag}");
        let body = body_of(sent);
        assert!(body.len() < module.len() / 10);
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unpacked)
            .unwrap();
        assert_eq!(unpacked, module);
        // Revalidated under the compressed copy's own tag.
        let again = Asked {
            if_none_match: Some(&tag),
            gzip: true,
            ..Asked::default()
        };
        assert_eq!(
            respond(&dir, "/a.wasm", &again, &gz).status_code(),
            StatusCode(304)
        );
        assert_eq!(
            respond(&dir, "/a.wasm", &revalidate(&tag), &gz).status_code(),
            StatusCode(200),
            "the plain copy has another tag"
        );
        // Not compressed: without Accept-Encoding, byte ranges, pictures.
        let plain = respond(&dir, "/a.wasm", &Asked::default(), &gz);
        assert_eq!(header_of(&plain, "Content-Encoding"), None);
        assert_eq!(body_of(plain), module);
        let range = Asked {
            range: Some("bytes=0-9"),
            gzip: true,
            ..Asked::default()
        };
        let part = respond(&dir, "/a.wasm", &range, &gz);
        assert_eq!(part.status_code(), StatusCode(206));
        assert_eq!(header_of(&part, "Content-Encoding"), None);
        let picture = respond(&dir, "/b.png", &gzip, &gz);
        assert_eq!(header_of(&picture, "Content-Encoding"), None);
        assert_eq!(body_of(picture), module);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unchanged_file_is_revalidated_with_a_304() {
        let dir = std::env::temp_dir().join(format!("xtask-etag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wasm"), b"\0asm version one").unwrap();
        let gz = Gzipped::default();
        let first = respond(&dir, "/a.wasm", &Asked::default(), &gz);
        assert_eq!(first.status_code(), StatusCode(200));
        let tag = etag(&dir.join("a.wasm")).unwrap();
        for asked in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".into(),
        ] {
            let again = respond(&dir, "/a.wasm", &revalidate(&asked), &gz);
            assert_eq!(again.status_code(), StatusCode(304), "{asked}");
            assert_eq!(again.data_length(), Some(0));
        }
        // Another version (another size) is sent whole.
        std::fs::write(dir.join("a.wasm"), b"\0asm version two, longer").unwrap();
        let changed = respond(&dir, "/a.wasm", &revalidate(&tag), &gz);
        assert_eq!(changed.status_code(), StatusCode(200));
        assert_eq!(
            respond(&dir, "/missing", &revalidate("*"), &gz).status_code(),
            StatusCode(404)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_cannot_climb_out_of_the_served_folder() {
        let dir = std::env::temp_dir();
        assert_eq!(resolve(&dir, "/../etc/passwd"), None);
        assert_eq!(resolve(&dir, "/a/../../b"), None);
    }

    #[test]
    fn wasm_is_served_as_application_wasm() {
        assert_eq!(
            content_type(Path::new("x/worker_bg.wasm")),
            "application/wasm"
        );
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
    }
}
