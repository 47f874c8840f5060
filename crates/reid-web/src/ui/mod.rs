//! The user interface: Yew function components, state in [`App`], all model work sent to the
//! worker through [`controller::Controller`].

mod camera;
mod components;
mod controller;
mod evaluate;
mod finder;
mod frames;
mod gallery_io;
mod offline;
mod persist;
mod privacy;
mod state;
mod timeline;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use reid_core::Backend;
use web_sys::File;
use yew::prelude::*;

use components::{
    BackendStatus, DropZone, ExportButton, ImageList, ModelPicker, RankedList, SimilarityMatrix,
    Speed,
};
use controller::Controller;
use evaluate::{EvalStatus, Evaluate};
use frames::VideoFrames;
use gallery_io::GalleryFile;
use offline::OfflineStatus;
use persist::{KeepStatus, Keeper};
use privacy::{HeadBlurFilter, Privacy};
use state::{Action, AppState};

/// The model served beside the app (copied into the build by Trunk).
pub const MODEL_URL: &str = "./mobilenetv2-synth-bot.bpk";

/// Where the threshold slider starts: the similarity above which a match counts (see
/// `ui/timeline.rs` for how it was chosen).
const DEFAULT_THRESHOLD: f32 = 0.5;

/// Crops per pass of "Measure speed" (onnxruntime-web's batch in `cargo xtask bench`).
const BENCHMARK_BATCH: usize = 8;

/// `?backend=webgpu|cpu` from the page's address, if any.
fn requested_backend() -> Option<Backend> {
    let search = web_sys::window()?.location().search().ok()?;
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    Backend::parse(&params.get("backend")?)
}

/// The whole page.
#[function_component(App)]
pub fn app() -> Html {
    let state = use_reducer(AppState::default);
    let controller: Rc<RefCell<Option<Rc<Controller>>>> = use_mut_ref(|| None);
    let keep = use_state(|| KeepStatus::Off);
    let keeper: Rc<RefCell<Option<Rc<Keeper>>>> = use_mut_ref(|| None);

    {
        let dispatcher = state.dispatcher();
        let controller = controller.clone();
        let (keep, keeper) = (keep.setter(), keeper.clone());
        use_effect_with((), move |_| {
            crate::requests::keep_record();
            let c = Controller::new(dispatcher, MODEL_URL);
            c.start(requested_backend());
            *controller.borrow_mut() = Some(c);
            *keeper.borrow_mut() = Some(Keeper::new(Callback::from(move |s| keep.set(s))));
        });
    }
    // The gallery kept on a former visit comes back once the model runs (the first time);
    // then every change of the gallery is kept, while keeping is on.
    let running = gallery_io::stamp(&state.engine);
    {
        let (controller, keeper) = (controller.clone(), keeper.clone());
        let restored = use_mut_ref(|| false);
        use_effect_with(running.clone(), move |running| {
            let done = *restored.borrow();
            if let (Some(running), Some(c), Some(k), false) = (
                running,
                controller.borrow().as_ref(),
                keeper.borrow().as_ref(),
                done,
            ) {
                *restored.borrow_mut() = true;
                k.restore(c.clone(), running.clone());
            }
        });
    }
    {
        let keeper = keeper.clone();
        use_effect_with(
            (state.items.clone(), running.clone()),
            move |(items, running)| {
                if let (Some(k), Some(running)) = (keeper.borrow().as_ref(), running) {
                    k.sync(items.clone(), running.clone());
                }
            },
        );
    }
    let on_keep = {
        let keeper = keeper.clone();
        Callback::from(move |on: bool| {
            if let Some(k) = keeper.borrow().as_ref() {
                k.set(on);
            }
        })
    };

    let find_people = use_state(|| false);
    let camera = use_state(String::new);
    let on_camera = {
        let camera = camera.clone();
        Callback::from(move |label: String| camera.set(label))
    };
    let blur_heads = use_state(|| false);
    let on_blur_heads = {
        let blur_heads = blur_heads.clone();
        Callback::from(move |on: bool| blur_heads.set(on))
    };
    let on_files = {
        let controller = controller.clone();
        let (find_people, camera) = (*find_people, (*camera).clone());
        Callback::from(move |files: Vec<File>| {
            if let Some(c) = controller.borrow().as_ref() {
                c.add_files(files, find_people, &camera);
            }
        })
    };
    let on_find_people = {
        let find_people = find_people.clone();
        Callback::from(move |on: bool| find_people.set(on))
    };
    let threshold = use_state(|| DEFAULT_THRESHOLD);
    let rerank = use_state(|| false);
    let on_search = {
        let controller = controller.clone();
        let items = state.items.clone();
        let rerank = *rerank;
        Callback::from(move |query_id: u32| {
            let gallery: Vec<(u32, Rc<Vec<f32>>)> = items
                .iter()
                .filter_map(|i| match &i.status {
                    state::ItemStatus::Done { embedding, .. } => Some((i.id, embedding.clone())),
                    _ => None,
                })
                .collect();
            let Some(query) = gallery
                .iter()
                .find(|(id, _)| *id == query_id)
                .map(|(_, e)| e.clone())
            else {
                return;
            };
            // Only embeddings of the query's model (a new model may still be re-embedding).
            let gallery: Vec<_> = gallery
                .into_iter()
                .filter(|(_, e)| e.len() == query.len())
                .collect();
            if let Some(c) = controller.borrow().as_ref() {
                c.search(query_id, &query, &gallery, rerank);
            }
        })
    };
    let on_threshold = {
        let threshold = threshold.clone();
        Callback::from(move |t: f32| threshold.set(t))
    };
    // Re-ranking on or off ranks the last query again.
    {
        let on_search = on_search.clone();
        let query = state.search.as_ref().map(|s| s.query_id);
        use_effect_with(*rerank, move |_| {
            if let Some(query) = query {
                on_search.emit(query);
            }
        });
    }
    let on_rerank = {
        let rerank = rerank.clone();
        Callback::from(move |on: bool| rerank.set(on))
    };
    let on_stop = {
        let controller = controller.clone();
        Callback::from(move |id: u32| {
            if let Some(c) = controller.borrow().as_ref() {
                c.stop_video(id);
            }
        })
    };
    // The followed video whose frames are shown to pick a person in.
    let frames_of = use_state(|| None::<u32>);
    let on_frames = {
        let frames_of = frames_of.clone();
        Callback::from(move |id: u32| frames_of.set(Some(id)))
    };
    let on_frames_close = {
        let frames_of = frames_of.clone();
        Callback::from(move |_: ()| frames_of.set(None))
    };
    let frames = (*frames_of).and_then(|id| {
        let video = state.items.iter().find(|i| i.id == id)?.clone();
        let people = state.video_people.get(&id)?.clone();
        Some(html! {
            <VideoFrames video={video} people={people} items={state.items.clone()}
                on_search={on_search.clone()} on_close={on_frames_close.clone()} />
        })
    });
    let on_demo = {
        let controller = controller.clone();
        Callback::from(move |_| {
            if let Some(c) = controller.borrow().as_ref() {
                c.add_demo();
            }
        })
    };
    let on_demo_video = {
        let controller = controller.clone();
        Callback::from(move |_| {
            if let Some(c) = controller.borrow().as_ref() {
                c.add_demo_video();
            }
        })
    };
    let on_measure = {
        let controller = controller.clone();
        Callback::from(move |_| {
            if let Some(c) = controller.borrow().as_ref() {
                c.benchmark(BENCHMARK_BATCH);
            }
        })
    };
    let on_model = {
        let controller = controller.clone();
        Callback::from(move |file: File| {
            if let Some(c) = controller.borrow().as_ref() {
                c.use_model(file);
            }
        })
    };
    let on_known = {
        let controller = controller.clone();
        Callback::from(move |index: usize| {
            if let Some(c) = controller.borrow().as_ref() {
                c.use_known_model(index);
            }
        })
    };
    let on_gallery = {
        let controller = controller.clone();
        let running = running.clone();
        Callback::from(move |gallery| {
            if let Some(c) = controller.borrow().as_ref() {
                c.add_gallery(gallery, running.as_ref(), "the gallery file");
            }
        })
    };
    // The Evaluate section: each run gets a number; a newer one (or cancel) ends the older.
    let eval_status = use_state(EvalStatus::default);
    let eval_rerank = use_state(|| false);
    let eval_run = (*use_state(|| Rc::new(Cell::new(0u32)))).clone();
    // The pair of the Evaluate section whose maps are shown (numbered with the runs).
    let eval_pair = use_state(evaluate::PairStatus::default);
    let start_eval = {
        let controller = controller.clone();
        let eval_run = eval_run.clone();
        let pair = eval_pair.setter();
        let show = {
            let setter = eval_status.setter();
            Callback::from(move |s| setter.set(s))
        };
        move |input: evaluate::Input, rerank: bool| {
            if let Some(c) = controller.borrow().as_ref() {
                let token = eval_run.get().wrapping_add(1);
                eval_run.set(token);
                pair.set(evaluate::PairStatus::None);
                evaluate::run(
                    c.clone(),
                    input,
                    rerank,
                    show.clone(),
                    eval_run.clone(),
                    token,
                );
            }
        }
    };
    let on_eval_folder = {
        let (start_eval, rerank) = (start_eval.clone(), *eval_rerank);
        Callback::from(move |files: Vec<File>| start_eval(evaluate::Input::Folder(files), rerank))
    };
    let on_eval_rerank = {
        let (eval_rerank, status) = (eval_rerank.clone(), (*eval_status).clone());
        Callback::from(move |on: bool| {
            eval_rerank.set(on);
            // The evaluation shown is ranked again, from the features it kept.
            if let EvalStatus::Done(e) = &status {
                start_eval(evaluate::Input::Again(e.clone()), on);
            }
        })
    };
    let on_explain = {
        let (controller, eval_run) = (controller.clone(), eval_run.clone());
        let (status, pair) = ((*eval_status).clone(), eval_pair.setter());
        Callback::from(move |rows: evaluate::PairRows| {
            let c = controller.borrow().clone();
            let (Some(c), EvalStatus::Done(e)) = (c, &status) else {
                return;
            };
            let token = eval_run.get().wrapping_add(1);
            eval_run.set(token);
            let pair = pair.clone();
            evaluate::explain(
                c,
                e.clone(),
                rows,
                Callback::from(move |p| pair.set(p)),
                eval_run.clone(),
                token,
            );
        })
    };
    let stop_eval = {
        let (eval_run, setter) = (eval_run.clone(), eval_status.setter());
        let pair = eval_pair.setter();
        Callback::from(move |_: ()| {
            eval_run.set(eval_run.get().wrapping_add(1));
            setter.set(EvalStatus::Idle);
            pair.set(evaluate::PairStatus::None);
        })
    };
    let on_clear = {
        let dispatcher = state.dispatcher();
        let (controller, keeper) = (controller.clone(), keeper.clone());
        let stop_eval = stop_eval.clone();
        Callback::from(move |_| {
            stop_eval.emit(());
            if let Some(c) = controller.borrow().as_ref() {
                c.forget_everything();
            }
            if let Some(k) = keeper.borrow().as_ref() {
                k.forget();
            }
            dispatcher.dispatch(Action::Clear)
        })
    };

    html! {
        <main class={classes!((*blur_heads).then_some("blur-heads"))}>
            <HeadBlurFilter />
            <header>
                <h1>{ "ReID: find the same person again" }</h1>
                <p class="tagline">
                    { "Everything runs on this device: your images are read from disk and never leave it." }
                </p>
                <OfflineStatus settled={!matches!(state.engine, state::Engine::Starting)} />
            </header>
            <BackendStatus engine={state.engine.clone()} first_embedding_ms={state.first_embedding_ms}
                notices={state.notices.clone()} />
            <Speed engine={state.engine.clone()} benchmark={state.benchmark.clone()} on_measure={on_measure} />
            <ModelPicker switching={state.switching_model.clone()} refused={state.model_refused.clone()}
                on_model={on_model} models={state.models.clone()} engine={state.engine.clone()} on_known={on_known} />
            <DropZone on_files={on_files} find_people={*find_people} on_find_people={on_find_people}
                camera={(*camera).clone()} on_camera={on_camera} />
            <p class="demo">
                <button id="demo" onclick={on_demo}>{ "Try the demo pictures" }</button>
                <button id="demo-video" onclick={on_demo_video}>{ "Try the demo video" }</button>
                <span class="hint">{ " synthetic people from this project's generator, shipped with the app" }</span>
            </p>
            <ImageList items={state.items.clone()} on_search={on_search} on_stop={on_stop} on_frames={on_frames} />
            { for frames }
            <RankedList items={state.items.clone()} search={state.search.clone()} threshold={*threshold}
                on_threshold={on_threshold} rerank={*rerank} on_rerank={on_rerank} />
            <SimilarityMatrix items={state.items.clone()} />
            <GalleryFile items={state.items.clone()} running={running.clone()} on_open={on_gallery}
                keep={(*keep).clone()} on_keep={on_keep} />
            <Evaluate status={(*eval_status).clone()} ready={matches!(state.engine, state::Engine::Ready(_))}
                rerank={*eval_rerank} on_folder={on_eval_folder} on_rerank={on_eval_rerank} on_cancel={stop_eval}
                pair={(*eval_pair).clone()} on_explain={on_explain} />
            <Privacy items={state.items.clone()} engine={state.engine.clone()} forgotten={state.forgotten}
                kept_on_device={matches!(*keep, KeepStatus::Kept(_) | KeepStatus::Restoring)}
                on_forget={on_clear} blur_heads={*blur_heads} on_blur_heads={on_blur_heads}>
                <ExportButton items={state.items.clone()} engine={state.engine.clone()} />
            </Privacy>
        </main>
    }
}
