//! Helpers over the browser's JavaScript values, shared by the UI and the worker.

use wasm_bindgen::{JsCast, JsValue};

/// A thrown JavaScript value (an `Error`, a string, anything) in words.
pub fn js_error(value: JsValue) -> String {
    value
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| value.as_string())
        .unwrap_or_else(|| format!("{value:?}"))
}
