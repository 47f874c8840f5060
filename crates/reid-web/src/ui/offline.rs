//! Offline use: registers the app's service worker (`sw.js`, which keeps the app's own files in
//! the browser's Cache Storage), says whether the app will open with the network off, and
//! offers a newer build when one was kept, without swapping it under the running page.
//!
//! A newer build's service worker installs beside the running one and waits: the page keeps
//! its own build's files (a worker restarted mid-session gets the same build's code) until the
//! user presses "Use the new version", which lets the new one take over and reloads the page.

use std::cell::Cell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventTarget, ServiceWorker};
use yew::prelude::*;

use crate::js::js_error;

/// What the page posts to a waiting service worker to let it take over (see `sw.js`).
const TAKE_OVER: &str = "use-new-version";

#[derive(Clone, Debug, PartialEq)]
enum Offline {
    Preparing,
    Ready,
    /// A newer build is kept and waits; this page runs the one it loaded.
    Waiting,
    /// A newer build took over (from another tab); this page still runs the one it loaded.
    Updated,
    Unavailable(String),
}

/// `registration.waiting` (or `installing`), if there is one.
fn worker(registration: &JsValue, which: &str) -> Option<ServiceWorker> {
    js_sys::Reflect::get(registration, &which.into())
        .ok()
        .filter(|w| !w.is_null() && !w.is_undefined())
        .map(JsCast::unchecked_into)
}

fn listen(target: &EventTarget, event: &str, f: impl FnMut() + 'static) -> Result<(), String> {
    let f = Closure::<dyn FnMut()>::new(f);
    target
        .add_event_listener_with_callback(event, f.as_ref().unchecked_ref())
        .map_err(js_error)?;
    // Listeners for the page's life: the page has one registration.
    f.forget();
    Ok(())
}

/// Registers `sw.js` and waits until it is active, which it becomes only once every file of
/// the app is kept. `waiting` is called when a newer build is kept and waits (now or later),
/// `updated` when a newer build takes over from elsewhere. Returns the registration.
async fn register(waiting: Callback<()>, updated: Callback<()>) -> Result<JsValue, String> {
    let window = web_sys::window().ok_or("there is no window")?;
    if !window.is_secure_context() {
        return Err("the page is not served over HTTPS or from localhost".into());
    }
    let navigator = window.navigator();
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return Err("this browser has no service workers".into());
    }
    let container = navigator.service_worker();
    let controlled = container.controller().is_some();
    if controlled {
        // A kept copy runs now: a change of controller means a newer build took over.
        listen(&container, "controllerchange", move || updated.emit(()))?;
    }
    let registration = JsFuture::from(container.register("sw.js"))
        .await
        .map_err(js_error)?;
    if controlled && worker(&registration, "waiting").is_some() {
        waiting.emit(());
    }
    {
        let (registration, waiting) = (registration.clone(), waiting.clone());
        listen(
            registration.clone().unchecked_ref(),
            "updatefound",
            move || {
                let Some(new) = worker(&registration, "installing") else {
                    return;
                };
                let (waiting, new2) = (waiting.clone(), new.clone());
                let _ = listen(&new, "statechange", move || {
                    let installed = js_sys::Reflect::get(&new2, &"state".into())
                        .ok()
                        .and_then(|s| s.as_string())
                        .is_some_and(|s| s == "installed");
                    // "installed" with a controller in place: it waits for the user.
                    let controlled = web_sys::window()
                        .is_some_and(|w| w.navigator().service_worker().controller().is_some());
                    if installed && controlled {
                        waiting.emit(());
                    }
                });
            },
        )?;
    }
    JsFuture::from(container.ready().map_err(js_error)?)
        .await
        .map_err(js_error)?;
    Ok(registration)
}

/// Lets the waiting build take over, then reloads the page into it.
fn switch_to_new_version(registration: &JsValue) -> Result<(), String> {
    let window = web_sys::window().ok_or("there is no window")?;
    let waiting = worker(registration, "waiting").ok_or("no newer version is waiting")?;
    let reload = window.clone();
    listen(
        &window.navigator().service_worker(),
        "controllerchange",
        move || {
            let _ = reload.location().reload();
        },
    )?;
    waiting.post_message(&TAKE_OVER.into()).map_err(js_error)
}

#[derive(Properties, PartialEq)]
pub struct OfflineProps {
    /// The worker has loaded the model (or given up): the service worker is registered only
    /// then, so that on a first visit its copying of the app's files revalidates what the page
    /// and the worker already fetched (a `304` each) instead of downloading them again beside
    /// them (measured with `cargo xtask bench app`: the 25 MB worker module came twice).
    pub settled: bool,
}

/// One line saying whether the app works offline here, and the button to a newer build.
#[function_component(OfflineStatus)]
pub fn offline_status(props: &OfflineProps) -> Html {
    let state = use_state(|| Offline::Preparing);
    let registration = use_mut_ref(|| None::<JsValue>);
    let failed = use_state(|| None::<String>);
    let asked = use_mut_ref(|| false);
    {
        let setter = state.setter();
        let registration = registration.clone();
        use_effect_with(props.settled, move |settled| {
            if !*settled || std::mem::replace(&mut *asked.borrow_mut(), true) {
                return;
            }
            // Set once a newer build took over or waits, so that "ready" does not hide it.
            let news = Rc::new(Cell::new(false));
            let on = |to: Offline| {
                let (setter, news) = (setter.clone(), news.clone());
                Callback::from(move |()| {
                    news.set(true);
                    setter.set(to.clone());
                })
            };
            let (waiting, updated) = (on(Offline::Waiting), on(Offline::Updated));
            wasm_bindgen_futures::spawn_local(async move {
                match register(waiting, updated).await {
                    Ok(r) => {
                        *registration.borrow_mut() = Some(r);
                        if !news.get() {
                            setter.set(Offline::Ready);
                        }
                    }
                    Err(reason) => setter.set(Offline::Unavailable(reason)),
                }
            });
        });
    }
    let on_use = {
        let (registration, failed) = (registration.clone(), failed.clone());
        Callback::from(move |_| {
            let result = match registration.borrow().as_ref() {
                Some(r) => switch_to_new_version(r),
                None => Err("the service worker is not registered".into()),
            };
            if let Err(e) = result {
                failed.set(Some(format!("The new version could not be started: {e}.")));
            }
        })
    };
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
        Offline::Waiting => (
            "waiting",
            "A newer version of the app is kept on this device. This page goes on with the \
             version it loaded until you switch; switching reloads the page, so people not kept \
             on this device or saved to a gallery file are not carried over."
                .to_string(),
        ),
        Offline::Updated => (
            "updated",
            "A newer version of the app took over in another tab: reload the page to use it."
                .to_string(),
        ),
        Offline::Unavailable(reason) => (
            "unavailable",
            format!(
                "Offline use: not available ({reason}). The app works while this page is open."
            ),
        ),
    };
    html! {
        <p id="offline" class="hint" data-state={kind}>
            { text }
            if *state == Offline::Waiting {
                { " " }
                <button id="use-new-version" onclick={on_use}>{ "Use the new version" }</button>
            }
            if let Some(message) = &*failed {
                <span class="error">{ format!(" {message}") }</span>
            }
        </p>
    }
}
