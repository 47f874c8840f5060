//! "Where and when": a search's matches at or above the threshold, one lane per camera, each
//! lane in the order the person was seen (see [`crate::seen::timeline`]).
//!
//! The threshold slider starts at 0.5 (`DEFAULT_THRESHOLD` in `ui/mod.rs`): with the shipped
//! model, the demo query's two other pictures of the same person score 0.724 and 0.720 and the
//! best other person 0.486 (the browser test `the demo pictures ...` prints them).

use std::collections::HashMap;
use std::rc::Rc;

use yew::prelude::*;

use super::components::Thumb;
use super::state::Item;
use crate::protocol::RankedHit;
use crate::seen::timeline;

#[derive(Properties, PartialEq)]
pub struct TimelineProps {
    pub items: Rc<Vec<Item>>,
    pub hits: Rc<Vec<RankedHit>>,
    pub threshold: f32,
    /// The query's id: its own sighting is marked as the query.
    pub query: u32,
}

#[function_component(Timeline)]
pub fn timeline_view(props: &TimelineProps) -> Html {
    // One look-up table per render: each hit is looked up twice, in galleries of thousands.
    let by_id: HashMap<u32, &Item> = props.items.iter().map(|i| (i.id, i)).collect();
    let item = |id: u32| by_id.get(&id).copied();
    let lanes = timeline(
        props.hits.iter().map(|h| (h.id, h.score)),
        |id| item(id).and_then(|i| i.seen.as_ref()),
        props.threshold,
    );
    if lanes.is_empty() {
        return html! {
            <section id="timeline" data-lanes="0">
                <h3>{ "Where and when" }</h3>
                <p class="hint">{ "No match at or above the threshold." }</p>
            </section>
        };
    }
    html! {
        <section id="timeline" data-lanes={lanes.len().to_string()}>
            <h3>{ "Where and when" }</h3>
            <ol class="lanes">
                { for lanes.iter().map(|lane| html! {
                    <li class="lane" data-camera={lane.camera.clone()}>
                        <div class="camera">
                            { &lane.camera }
                            <span class="hint">{ format!(" {} {}", lane.sightings.len(), if lane.sightings.len() == 1 { "sighting" } else { "sightings" }) }</span>
                        </div>
                        <ol class="sightings">
                            { for lane.sightings.iter().filter_map(|s| item(s.id).map(|i| (i, s))).map(|(i, s)| html! {
                                <li data-name={i.name.clone()} data-when={s.when.label()}
                                    class={classes!((s.id == props.query).then_some("query"))}
                                    title={format!("{} ({:.3})", i.name, s.score)}>
                                    <Thumb item={i.clone()} class="mini" />
                                    <span class="when">{ s.when.label() }</span>
                                    <span class="score">{ if s.id == props.query { "query".to_string() } else { format!("{:.2}", s.score) } }</span>
                                </li>
                            }) }
                        </ol>
                    </li>
                }) }
            </ol>
        </section>
    }
}
