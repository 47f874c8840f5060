//! Picking a person in a frame of a followed video: the video plays (or is scrubbed) under the
//! boxes of the people followed in the frame shown, each box a button that searches the gallery
//! with that person's track, as "Find this person" on its card does.

use std::rc::Rc;

use web_sys::HtmlVideoElement;
use yew::prelude::*;

use super::state::{Item, VideoPeople};

#[derive(Properties, PartialEq)]
pub struct FramesProps {
    /// The video's card.
    pub video: Item,
    pub people: Rc<VideoPeople>,
    pub items: Rc<Vec<Item>>,
    /// Called with a track's item id.
    pub on_search: Callback<u32>,
    pub on_close: Callback<()>,
}

/// The followed video with its people boxed, frame by frame.
#[function_component(VideoFrames)]
pub fn video_frames(props: &FramesProps) -> Html {
    let time = use_state(|| 0.0f64);
    let on_time = {
        let time = time.setter();
        Callback::from(move |e: Event| {
            let video: HtmlVideoElement = e.target_unchecked_into();
            time.set(video.current_time());
        })
    };
    let boxes = &props.people.boxes;
    let [w, h] = boxes.size.map(|v| v.max(1) as f32);
    let frame = boxes.at(*time);
    let name_of = |id: u32| {
        props
            .items
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.name.clone())
    };
    let on_close = props.on_close.reform(|_: MouseEvent| ());
    html! {
        <section id="frames" aria-labelledby="frames-title">
            <h2 id="frames-title">{ format!("Pick a person in {}", props.video.name) }</h2>
            <p class="hint">
                { "Play or scrub the video: the people followed in the frame shown are boxed. Pick one to find where else they appear." }
            </p>
            <div class="frame" style={format!("aspect-ratio: {} / {}", boxes.size[0].max(1), boxes.size[1].max(1))}>
                <video src={props.video.url.clone()} controls=true muted=true preload="auto"
                    ontimeupdate={on_time.clone()} onseeked={on_time} />
                <div class="boxes" data-time={frame.map(|f| f.time_s.to_string())}>
                    { for frame.into_iter().flat_map(|f| f.boxes.iter()).map(|(track, [x, y, bw, bh])| {
                        let item = props.people.items.get(track).copied();
                        let name = item.and_then(name_of);
                        let style = format!(
                            "left: {:.3}%; top: {:.3}%; width: {:.3}%; height: {:.3}%",
                            100.0 * x / w, 100.0 * y / h, 100.0 * bw / w, 100.0 * bh / h
                        );
                        let label = match &name {
                            Some(n) => format!("Find {n}"),
                            None => "A person followed too briefly to be kept".to_string(),
                        };
                        let onclick = {
                            let on_search = props.on_search.clone();
                            Callback::from(move |_: MouseEvent| {
                                if let Some(id) = item {
                                    on_search.emit(id);
                                }
                            })
                        };
                        html! {
                            <button key={*track} class="person-box" style={style} disabled={item.is_none()} title={label.clone()}
                                aria-label={label} data-track={track.to_string()} data-name={name} onclick={onclick} />
                        }
                    }) }
                </div>
            </div>
            <p><button id="frames-close" onclick={on_close}>{ "Close" }</button></p>
        </section>
    }
}
