//! Offline use: registers the app's service worker (`sw.js`, which keeps the app's own files in
//! the browser's Cache Storage) and says whether the app will open with the network off.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use yew::prelude::*;

use crate::js::js_error;

#[derive(Clone, Debug, PartialEq)]
enum Offline {
    Preparing,
    Ready,
    /// A newer build was kept; this page still runs the one it loaded.
    Updated,
    Unavailable(String),
}

/// Registers `sw.js` and waits until it is active, which it becomes only once every file of
/// the app is kept. `updated` is called when a newer build takes over later.
async fn register(updated: Callback<()>) -> Result<(), String> {
    let window = web_sys::window().ok_or("there is no window")?;
    if !window.is_secure_context() {
        return Err("the page is not served over HTTPS or from localhost".into());
    }
    let navigator = window.navigator();
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return Err("this browser has no service workers".into());
    }
    let container = navigator.service_worker();
    if container.controller().is_some() {
        // A kept copy runs now: a change of controller means a newer build was kept.
        let on_change = Closure::<dyn FnMut()>::new(move || updated.emit(()));
        container
            .add_event_listener_with_callback(
                "controllerchange",
                on_change.as_ref().unchecked_ref(),
            )
            .map_err(js_error)?;
        on_change.forget();
    }
    JsFuture::from(container.register("sw.js"))
        .await
        .map_err(js_error)?;
    JsFuture::from(container.ready().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    Ok(())
}

/// One line saying whether the app works offline here.
#[function_component(OfflineStatus)]
pub fn offline_status() -> Html {
    let state = use_state(|| Offline::Preparing);
    {
        let setter = state.setter();
        use_effect_with((), move |_| {
            let was_updated = Rc::new(Cell::new(false));
            let updated = {
                let (setter, was_updated) = (setter.clone(), was_updated.clone());
                Callback::from(move |()| {
                    was_updated.set(true);
                    setter.set(Offline::Updated);
                })
            };
            wasm_bindgen_futures::spawn_local(async move {
                match register(updated).await {
                    Ok(()) if was_updated.get() => {}
                    Ok(()) => setter.set(Offline::Ready),
                    Err(reason) => setter.set(Offline::Unavailable(reason)),
                }
            });
        });
    }
    let (kind, text) = match &*state {
        Offline::Preparing => (
            "preparing",
            "Offline use: keeping the app's files on this device…".to_string(),
        ),
        Offline::Ready => (
            "ready",
            "Offline use: ready. The app's own files are kept on this device, so it opens and \
             works with the network off. Your pictures and videos are not among them: they stay \
             in this tab's memory unless you ask to keep the gallery."
                .to_string(),
        ),
        Offline::Updated => (
            "updated",
            "A newer version of the app was kept for offline use: reload the page to use it."
                .to_string(),
        ),
        Offline::Unavailable(reason) => (
            "unavailable",
            format!(
                "Offline use: not available ({reason}). The app works while this page is open."
            ),
        ),
    };
    html! { <p id="offline" class="hint" data-state={kind}>{ text }</p> }
}
