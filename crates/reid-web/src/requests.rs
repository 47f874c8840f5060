//! The requests this page or worker has made since it started, read from the browser's own
//! record of them (Resource Timing), so the page can show the user what went over the network.

use wasm_bindgen::JsCast;

/// The `performance` of the page or worker this code runs in.
fn performance() -> Option<web_sys::Performance> {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()?
        .dyn_into()
        .ok()
}

/// Keeps a record of many more requests than the browser's default 250.
pub fn keep_record() {
    if let Some(p) = performance() {
        p.set_resource_timing_buffer_size(100_000);
    }
}

/// The URLs of every request made so far (the page's own address first, for a page), in
/// order; `blob:` and `data:` addresses, which never reach the network, are left out.
pub fn made() -> Vec<String> {
    let Some(p) = performance() else {
        return Vec::new();
    };
    ["navigation", "resource"]
        .into_iter()
        .flat_map(|kind| p.get_entries_by_type(kind).iter().collect::<Vec<_>>())
        .filter_map(|e| e.dyn_into::<web_sys::PerformanceEntry>().ok())
        .map(|e| e.name())
        .filter(|url| url.starts_with("http:") || url.starts_with("https:"))
        .collect()
}
