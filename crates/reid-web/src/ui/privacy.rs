//! The privacy panel: what the app keeps of the user's and where, every request the page and
//! its worker made since the page loaded (from the browser's own record), and "Forget
//! everything".

use std::rc::Rc;

use yew::prelude::*;

use super::state::{Engine, Item};
use crate::requests;

#[derive(Properties, PartialEq)]
pub struct PrivacyProps {
    pub items: Rc<Vec<Item>>,
    pub engine: Engine,
    pub forgotten: bool,
    /// Whether the gallery is kept in IndexedDB too.
    pub kept_on_device: bool,
    pub on_forget: Callback<()>,
    /// Whether the people's thumbnails show their heads blurred.
    pub blur_heads: bool,
    pub on_blur_heads: Callback<bool>,
    /// More actions shown beside "Forget everything" (saving the embeddings).
    #[prop_or_default]
    pub children: Html,
}

/// The path of `url` when it is on `origin` (`/` for the origin itself), else `None`.
fn path_on<'a>(url: &'a str, origin: &str) -> Option<&'a str> {
    match url.strip_prefix(origin)? {
        "" => Some("/"),
        path if path.starts_with('/') => Some(path),
        _ => None,
    }
}

#[function_component(Privacy)]
pub fn privacy(props: &PrivacyProps) -> Html {
    let origin = web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default();
    let page = requests::made();
    let worker: &[String] = match &props.engine {
        Engine::Ready(info) => &info.requests,
        _ => &[],
    };
    let all: Vec<&String> = page.iter().chain(worker.iter()).collect();
    let foreign: Vec<&String> = all
        .iter()
        .copied()
        .filter(|u| path_on(u, &origin).is_none())
        .collect();
    let entries = props.items.len();
    let kept = if entries == 0 {
        "Nothing of yours is kept.".to_string()
    } else {
        format!(
            "{entries} {} (pictures, people found in photos and videos) and {} embeddings {} kept in this tab's memory only: closing the tab or \u{201c}Forget everything\u{201d} drops them.",
            if entries == 1 { "entry" } else { "entries" },
            if entries == 1 { "its" } else { "their" },
            if entries == 1 { "is" } else { "are" },
        )
    };
    let requests_text = format!(
        "{} requests since this page loaded ({} by the page, {} by its worker){}",
        all.len(),
        page.len(),
        worker.len(),
        if foreign.is_empty() {
            ", all to this page's own origin: the app's code, its model and the demo files. \
             The service worker's one copy of the app's files for offline use comes on top."
                .to_string()
        } else {
            format!(
                "; {} went to another origin: {}.",
                foreign.len(),
                foreign
                    .iter()
                    .map(|u| u.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let on_blur = {
        let on_blur_heads = props.on_blur_heads.clone();
        Callback::from(move |e: Event| {
            let input: web_sys::HtmlInputElement = e.target_unchecked_into();
            on_blur_heads.emit(input.checked());
        })
    };
    let on_forget = {
        let on_forget = props.on_forget.clone();
        Callback::from(move |_| on_forget.emit(()))
    };
    html! {
        <section id="privacy" class="privacy" data-requests={all.len().to_string()}
            data-page-requests={page.len().to_string()} data-worker-requests={worker.len().to_string()}
            data-foreign={foreign.len().to_string()} data-entries={entries.to_string()}>
            <h2>{ "Privacy" }</h2>
            <p>
                { kept }
                if props.kept_on_device {
                    { " You asked to keep the gallery on this device: its people (a picture and an embedding each) are also in this browser's IndexedDB for this site, until you untick it or forget everything. Nothing of yours is sent anywhere." }
                } else {
                    { " Nothing is written to this device's storage but the app's own files, for offline use, and nothing of yours is sent anywhere." }
                }
            </p>
            <p id="requests" class={classes!((!foreign.is_empty()).then_some("error"))}>{ requests_text }</p>
            <details>
                <summary>{ "Every request" }</summary>
                <ol class="requests">
                    { for all.iter().map(|u| html! { <li>{ path_on(u, &origin).unwrap_or(u) }</li> }) }
                </ol>
            </details>
            <label class="blur-toggle">
                <input type="checkbox" id="blur-heads" checked={props.blur_heads} onchange={on_blur} />
                { " Blur heads in the people's pictures" }
                <span class="hint">{ " (the top quarter of each person's picture, where the head is; photos are shown whole)" }</span>
            </label>
            <div class="actions">
                { props.children.clone() }
                <button id="clear" onclick={on_forget} disabled={entries == 0}>{ "Forget everything" }</button>
            </div>
            if props.forgotten && entries == 0 {
                <p id="forgotten">
                    { "Forgotten: every picture, video entry, embedding and search is gone from this tab and its worker." }
                </p>
            }
        </section>
    }
}

/// The SVG filter behind "Blur heads": the top quarter of an element (a person's picture,
/// whose head is there) blurred, the rest untouched. Thumbnails use it through CSS
/// (`filter: url(#blur-head)`), so no pixels are copied.
#[function_component(HeadBlurFilter)]
pub fn head_blur_filter() -> Html {
    html! {
        <svg class="filters" width="0" height="0" aria-hidden="true">
            <filter id="blur-head" x="0" y="0" width="1" height="1" primitiveUnits="objectBoundingBox"
                color-interpolation-filters="sRGB">
                <feGaussianBlur in="SourceGraphic" stdDeviation="0.09 0.045" edgeMode="duplicate" result="blurred" />
                <feFlood flood-color="black" x="0" y="0" width="1" height="0.25" result="top" />
                <feComposite in="blurred" in2="top" operator="in" result="head" />
                <feMerge>
                    <feMergeNode in="SourceGraphic" />
                    <feMergeNode in="head" />
                </feMerge>
            </filter>
        </svg>
    }
}
