//! What a server of the app must send, and what the app keeps for offline use: the HTTP header
//! rules (one table, used by `cargo xtask serve`'s own server and written out as server settings
//! by `cargo xtask dist`), the list of the app's files written into its service worker
//! (`www/sw.js`) after each build, and `cargo xtask dist` itself.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The page's Content-Security-Policy, word for word the one of `www/index.html`'s meta tag
/// (a unit test holds them together). Only the app's own origin is reachable.
pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:";

/// What only a header can add to the policy: no other site may frame the app.
const CSP_HEADER_ONLY: &str = "; frame-ancestors 'none'";

/// Files Trunk names after their content (`reid-web-92a1bab1b478b54f_bg.wasm`) never change, so
/// browsers may keep them for a year; everything else is checked with the server on each use.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The service worker template's placeholders, filled by [`write_offline_list`].
const VERSION_MARK: &str = "__REID_VERSION__";
const FILES_MARK: &str = "__REID_FILES__";

/// Whether `name` (a file name, no folder) carries Trunk's 16-hex-digit content hash.
fn content_named(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    match stem.rsplit_once('-') {
        Some((_, hash)) => hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// The headers every response of the app carries, then its caching for a file called `name`.
pub fn headers(name: &str) -> Vec<(&'static str, String)> {
    with_caching(if content_named(name) {
        IMMUTABLE
    } else {
        REVALIDATE
    })
}

/// The headers every response carries, with `cache_control`.
fn with_caching(cache_control: &str) -> Vec<(&'static str, String)> {
    vec![
        // Cross-origin isolation: threads (SharedArrayBuffer) stay possible.
        ("Cross-Origin-Opener-Policy", "same-origin".into()),
        ("Cross-Origin-Embedder-Policy", "require-corp".into()),
        ("Content-Security-Policy", format!("{CSP}{CSP_HEADER_ONLY}")),
        ("X-Content-Type-Options", "nosniff".into()),
        ("Referrer-Policy", "no-referrer".into()),
        (
            "Permissions-Policy",
            // The camera records clips for this origin only (after the user's permission).
            "camera=(self), microphone=(), geolocation=()".into(),
        ),
        ("Cache-Control", cache_control.into()),
    ]
}

/// The MIME type of a file the app serves (WebAssembly streaming compilation needs
/// `application/wasm`).
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "webmanifest" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webm" => "video/webm",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

/// Every file under `dir`, as `/`-separated paths relative to it, sorted.
pub fn files_under(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {dir:?}"))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else {
                let rel = path.strip_prefix(root).expect("under the root");
                let parts: Vec<_> = rel.iter().map(|p| p.to_string_lossy()).collect();
                out.push(parts.join("/"));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// FNV-1a, 64 bits: a version tag that changes when any file does (not a security measure).
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Fills the app's service worker (`dir/sw.js`, copied there by Trunk from `www/sw.js`) with the
/// list of the built files it keeps for offline use and a version that changes with any of
/// them, so a rebuilt app replaces the kept copy. Returns the list's size in bytes.
pub fn write_offline_list(dir: &Path) -> Result<u64> {
    let sw = dir.join("sw.js");
    let template =
        std::fs::read_to_string(&sw).with_context(|| format!("the service worker {sw:?}"))?;
    if !template.contains(VERSION_MARK) || !template.contains(FILES_MARK) {
        bail!("{sw:?} lacks the placeholders {VERSION_MARK} and {FILES_MARK}");
    }
    let mut version = 0xcbf2_9ce4_8422_2325_u64;
    let mut bytes = 0;
    let mut list = Vec::new();
    // The service worker itself is not on its list: the browser keeps it.
    for name in files_under(dir)?.into_iter().filter(|n| n != "sw.js") {
        let data = std::fs::read(dir.join(&name))?;
        version = fnv1a(fnv1a(version, name.as_bytes()), &data);
        bytes += data.len() as u64;
        // The page itself is kept under its folder's address, which is what a visit asks for.
        list.push(if name == "index.html" {
            "./".to_string()
        } else {
            format!("./{name}")
        });
    }
    let quoted: Vec<String> = list.iter().map(|n| format!("{n:?}")).collect();
    let filled = template
        .replace(VERSION_MARK, &format!("{version:016x}"))
        .replace(FILES_MARK, &quoted.join(","));
    std::fs::write(&sw, filled)?;
    Ok(bytes)
}

/// `cargo xtask dist [--out DIR]`: copies the built app (`dist/`) into `DIR/public` with the
/// header rules as a `_headers` file there (Netlify, Cloudflare Pages), and writes
/// `DIR/nginx.conf`, a server block for nginx serving that folder.
pub fn dist(out: &Path) -> Result<()> {
    let public = out.join("public");
    if public.exists() {
        std::fs::remove_dir_all(&public).with_context(|| format!("cannot clear {public:?}"))?;
    }
    let files = files_under(Path::new("dist"))?;
    for name in &files {
        let to = public.join(name);
        std::fs::create_dir_all(to.parent().expect("a file has a folder"))?;
        std::fs::copy(Path::new("dist").join(name), &to)
            .with_context(|| format!("cannot copy dist/{name}"))?;
    }
    std::fs::write(public.join("_headers"), headers_file(&files))?;
    let root = std::fs::canonicalize(&public)?;
    std::fs::write(out.join("nginx.conf"), nginx_conf(&root))?;
    println!(
        "The app is in {} ({} files) with its headers in _headers; nginx settings in {}.\n\
         Serve it over HTTPS anywhere but localhost: browsers give WebGPU and service workers \
         (offline use) only to secure origins.",
        public.display(),
        files.len(),
        out.join("nginx.conf").display()
    );
    Ok(())
}

/// The header rules in the `_headers` format, one block per file (exact paths, so no two
/// rules ever merge), the page also under `/`.
fn headers_file(files: &[String]) -> String {
    let mut text =
        String::from("# The ReID app's response headers (written by `cargo xtask dist`).\n");
    let block = |text: &mut String, path: &str, name: &str| {
        let _ = writeln!(text, "{path}");
        for (key, value) in headers(name) {
            let _ = writeln!(text, "  {key}: {value}");
        }
    };
    block(&mut text, "/", "index.html");
    for name in files {
        let file = name.rsplit('/').next().unwrap_or(name);
        block(&mut text, &format!("/{name}"), file);
    }
    text
}

/// An nginx `server` block serving `root` with the header rules.
fn nginx_conf(root: &Path) -> String {
    let add = |cache_control: &str| {
        with_caching(cache_control)
            .into_iter()
            .map(|(k, v)| format!("        add_header {k} \"{v}\" always;\n"))
            .collect::<String>()
    };
    format!(
        "# nginx settings for the ReID app, written by `cargo xtask dist`: include this file in the\n\
         # http block of nginx.conf. Browsers give WebGPU and service workers (offline use) only to\n\
         # secure origins: anywhere but localhost, listen with TLS (`listen 443 ssl;` and your\n\
         # certificate) instead of the plain port below. WebAssembly must be served as\n\
         # application/wasm, as nginx's own mime.types (1.21 and later) does.\n\
         server {{\n\
         \x20   listen 127.0.0.1:8080;\n\
         \x20   root {root};\n\
         \x20   index index.html;\n\
         \x20   # Compress what compresses: the worker's 25 MB of wasm go as 4.7 (the model, with no\n\
         \x20   # type of its own in mime.types, goes as text/plain).\n\
         \x20   gzip on;\n\
         \x20   gzip_vary on;\n\
         \x20   gzip_comp_level 6;\n\
         \x20   gzip_types application/wasm text/javascript application/javascript text/css text/plain application/json image/svg+xml application/octet-stream;\n\
         \x20   # Files named after their content (Trunk's hash) never change.\n\
         \x20   location ~ \"-[0-9a-f]{{16}}(_bg)?\\.(js|wasm|css)$\" {{\n{immutable}    }}\n\
         \x20   location / {{\n{revalidate}    }}\n\
         }}\n",
        root = root.display(),
        immutable = add(IMMUTABLE),
        revalidate = add(REVALIDATE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csp_header_is_the_page_meta_policy() {
        let page = include_str!("../../../www/index.html");
        assert!(
            page.contains(&format!("content=\"{CSP}\"")),
            "www/index.html's CSP meta tag differs from site::CSP"
        );
        let csp = headers("index.html")
            .into_iter()
            .find(|(k, _)| *k == "Content-Security-Policy")
            .unwrap()
            .1;
        assert!(csp.starts_with(CSP) && csp.contains("connect-src 'self'"));
    }

    #[test]
    fn only_content_named_files_are_kept_for_a_year() {
        assert!(content_named("reid-web-92a1bab1b478b54f_bg.wasm"));
        assert!(content_named("reid-web-92a1bab1b478b54f.js"));
        assert!(content_named("style-b37e0348b3240ff0.css"));
        for name in [
            "worker_bg.wasm",
            "worker.js",
            "index.html",
            "sw.js",
            "model-x.bpk",
        ] {
            assert!(!content_named(name), "{name}");
        }
        let cache = |name| {
            headers(name)
                .into_iter()
                .find(|(k, _)| *k == "Cache-Control")
        };
        assert_eq!(cache("worker_bg.wasm").unwrap().1, REVALIDATE);
        assert_eq!(cache("style-b37e0348b3240ff0.css").unwrap().1, IMMUTABLE);
    }

    #[test]
    fn the_offline_list_names_every_built_file_and_changes_with_them() {
        let dir = std::env::temp_dir().join(format!("reid-site-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("demo")).unwrap();
        let template = format!("const V = '{VERSION_MARK}'; const F = [{FILES_MARK}];");
        std::fs::write(dir.join("index.html"), "<html>").unwrap();
        std::fs::write(dir.join("demo/a b.jpg"), "jpg").unwrap();
        let fill = || {
            std::fs::write(dir.join("sw.js"), &template).unwrap();
            write_offline_list(&dir).unwrap();
            std::fs::read_to_string(dir.join("sw.js")).unwrap()
        };
        let first = fill();
        assert!(first.contains(r#"["./demo/a b.jpg","./"]"#), "{first}");
        assert!(!first.contains("sw.js"));
        std::fs::write(dir.join("demo/a b.jpg"), "jpeg").unwrap();
        assert_ne!(fill(), first, "the version must change with a file");
        std::fs::write(dir.join("sw.js"), "no marks").unwrap();
        assert!(write_offline_list(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_headers_file_has_one_block_per_file() {
        let text = headers_file(&["index.html".into(), "demo/x.jpg".into()]);
        assert!(text.contains("\n/\n  Cross-Origin-Opener-Policy: same-origin\n"));
        assert!(text.contains("\n/demo/x.jpg\n"));
        assert_eq!(text.matches("Content-Security-Policy").count(), 3);
    }
}
