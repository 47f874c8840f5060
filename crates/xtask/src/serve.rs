//! A small static file server for `dist/`, on 127.0.0.1 only. It sends the headers of
//! [`crate::site::headers`] (the same rules `cargo xtask dist` writes for other servers: the
//! CSP, cross-origin isolation, caching), correct MIME types, single byte ranges (a
//! `<video>` seeks with them), and an `ETag` per file version (size and modification time, as
//! nginx makes it), so that a revalidation (`Cache-Control: no-cache`, the service worker's
//! copying of the app) of an unchanged file costs a `304 Not Modified` instead of the file.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
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
                let response = respond(
                    &dir,
                    request.url(),
                    range.as_deref(),
                    if_none_match.as_deref(),
                );
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

fn respond(
    dir: &Path,
    url: &str,
    range: Option<&str>,
    if_none_match: Option<&str>,
) -> Response<std::io::Cursor<Vec<u8>>> {
    let file = resolve(dir, url);
    let name = file
        .as_deref()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tag = file.as_deref().and_then(etag);
    let mut content_range = None;
    let unchanged = matches!((&tag, if_none_match), (Some(t), Some(h)) if matches_tag(h, t));
    let (status, body, kind) = match file.map(|p| (std::fs::read(&p), p)) {
        Some((Ok(_), path)) if unchanged => (304, Vec::new(), content_type(&path)),
        Some((Ok(bytes), path)) => match range.map(|r| byte_range(r, bytes.len())) {
            None => (200, bytes, content_type(&path)),
            Some(Some((start, end))) => {
                content_range = Some(format!("bytes {start}-{}/{}", end - 1, bytes.len()));
                (206, bytes[start..end].to_vec(), content_type(&path))
            }
            Some(None) => {
                content_range = Some(format!("bytes */{}", bytes.len()));
                (416, Vec::new(), "text/plain; charset=utf-8")
            }
        },
        _ => (404, b"not found".to_vec(), "text/plain; charset=utf-8"),
    };
    let mut response = Response::from_data(body).with_status_code(StatusCode(status));
    response.add_header(header("Content-Type", kind));
    response.add_header(header("Accept-Ranges", "bytes"));
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

    #[test]
    fn an_unchanged_file_is_revalidated_with_a_304() {
        let dir = std::env::temp_dir().join(format!("xtask-etag-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.wasm"), b"\0asm version one").unwrap();
        let first = respond(&dir, "/a.wasm", None, None);
        assert_eq!(first.status_code(), StatusCode(200));
        let tag = etag(&dir.join("a.wasm")).unwrap();
        for asked in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".into(),
        ] {
            let again = respond(&dir, "/a.wasm", None, Some(&asked));
            assert_eq!(again.status_code(), StatusCode(304), "{asked}");
            assert_eq!(again.data_length(), Some(0));
        }
        // Another version (another size) is sent whole.
        std::fs::write(dir.join("a.wasm"), b"\0asm version two, longer").unwrap();
        let changed = respond(&dir, "/a.wasm", None, Some(&tag));
        assert_eq!(changed.status_code(), StatusCode(200));
        assert_eq!(
            respond(&dir, "/missing", None, Some("*")).status_code(),
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
