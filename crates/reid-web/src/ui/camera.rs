//! Recording a clip with the device's camera. The clip (WebM, recorded by the browser's
//! `MediaRecorder` while a live preview shows what is filmed) stays in memory and is added like a
//! video file the user picked: its people are followed, searched and kept as any video's. It is
//! not followed live, so a new model or a worker restart can follow it again from the start, and
//! nothing of it is lost. The browser asks the user's permission first; the page's
//! Permissions-Policy allows the camera to this origin only.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    Blob, BlobEvent, BlobPropertyBag, File, FilePropertyBag, HtmlVideoElement, MediaRecorder,
    MediaStream, MediaStreamConstraints,
};
use yew::prelude::*;

use crate::js::js_error;

/// The longest clip recorded: the page follows at most 10 minutes of a video.
const MAX_SECONDS: u32 = 600;

/// A recording under way: the stream (its tracks stopped at the end), the recorder and the
/// pieces of the clip it has given so far.
struct Recording {
    stream: MediaStream,
    recorder: MediaRecorder,
    _on_data: Closure<dyn FnMut(BlobEvent)>,
    _on_stop: Closure<dyn FnMut()>,
}

/// Turns the camera off: stops every track of `stream` (again is harmless).
fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<web_sys::MediaStreamTrack>() {
            track.stop();
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Idle,
    Opening,
    Recording,
    Failed(String),
}

#[derive(Properties, PartialEq)]
pub struct CameraProps {
    /// Called with the recorded clip, as a video file.
    pub on_clip: Callback<File>,
}

/// "Record with the camera", then "Stop recording"; the clip is added as a video.
#[function_component(CameraRecorder)]
pub fn camera_recorder(props: &CameraProps) -> Html {
    let state = use_state(|| State::Idle);
    let recording = use_mut_ref(|| None::<Recording>);
    // The last recording stopped: its closures must outlive the recorder's `stop` event.
    let stopped = use_mut_ref(|| None::<Recording>);
    let preview = use_node_ref();
    let on_start = {
        let (state, recording, preview) = (state.clone(), recording.clone(), preview.clone());
        let on_clip = props.on_clip.clone();
        Callback::from(move |_: MouseEvent| {
            state.set(State::Opening);
            let (state, recording, preview) = (state.clone(), recording.clone(), preview.clone());
            let on_clip = on_clip.clone();
            spawn_local(async move {
                match start(&preview, on_clip, state.setter()).await {
                    Ok(r) => {
                        *recording.borrow_mut() = Some(r);
                        state.set(State::Recording);
                    }
                    Err(message) => state.set(State::Failed(message)),
                }
            });
        })
    };
    let on_stop = {
        let (recording, stopped) = (recording.clone(), stopped.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(r) = recording.borrow_mut().take() {
                // The recorder's `stop` event adds the clip; the stream's tracks stop at once,
                // which turns the camera off.
                let _ = r.recorder.stop();
                stop_tracks(&r.stream);
                *stopped.borrow_mut() = Some(r);
            }
        })
    };
    // Leaving the page (or the component) turns the camera off.
    {
        let recording = recording.clone();
        use_effect_with((), move |_| {
            move || {
                if let Some(r) = recording.borrow_mut().take() {
                    let _ = r.recorder.stop();
                    stop_tracks(&r.stream);
                }
            }
        });
    }
    let recording_now = *state == State::Recording;
    html! {
        <div class="camera-recorder">
            if recording_now {
                <button id="camera-stop" onclick={on_stop}>{ "Stop recording" }</button>
            } else {
                <button id="camera-record" onclick={on_start} disabled={*state == State::Opening}>
                    { "Record with the camera" }
                </button>
            }
            <span class="hint">
                { format!(" a clip of up to {} minutes, kept in this page's memory and followed like a video file", MAX_SECONDS / 60) }
            </span>
            <video ref={preview} class={classes!("camera-preview", (!recording_now).then_some("hidden"))}
                muted=true autoplay=true playsinline=true aria-label="what the camera films" />
            if let State::Failed(message) = &*state {
                <p id="camera-error" class="error" role="alert">{ format!("The camera could not be used: {message}") }</p>
            }
        </div>
    }
}

/// Opens the camera, shows it in `preview` and starts recording; the clip goes to `on_clip`
/// when the recorder stops (by the button, or after [`MAX_SECONDS`]).
async fn start(
    preview: &NodeRef,
    on_clip: Callback<File>,
    state: UseStateSetter<State>,
) -> Result<Recording, String> {
    let window = web_sys::window().ok_or("there is no window")?;
    let devices = window
        .navigator()
        .media_devices()
        .map_err(|_| "this browser gives no camera to pages (a secure origin is needed)")?;
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    constraints.set_audio(&JsValue::FALSE);
    let stream: MediaStream = JsFuture::from(
        devices
            .get_user_media_with_constraints(&constraints)
            .map_err(js_error)?,
    )
    .await
    .map_err(|e| {
        let name = js_sys::Reflect::get(&e, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        match name.as_str() {
            "NotAllowedError" => "permission was refused".to_string(),
            "NotFoundError" => "this device has no camera".to_string(),
            "NotReadableError" => "the camera is in use by another program".to_string(),
            _ => js_error(e),
        }
    })?
    .unchecked_into();
    if let Some(video) = preview.cast::<HtmlVideoElement>() {
        video.set_src_object(Some(&stream));
    }
    let recorder = MediaRecorder::new_with_media_stream(&stream).map_err(js_error)?;
    let chunks = Rc::new(RefCell::new(Vec::<Blob>::new()));
    let on_data = {
        let chunks = chunks.clone();
        Closure::<dyn FnMut(BlobEvent)>::new(move |e: BlobEvent| {
            if let Some(blob) = e.data().filter(|b| b.size() > 0.0) {
                chunks.borrow_mut().push(blob);
            }
        })
    };
    let on_stop = {
        let (chunks, recorder_type) = (chunks.clone(), recorder.mime_type());
        let (preview, stream) = (preview.clone(), stream.clone());
        Closure::<dyn FnMut()>::new(move || {
            // The camera goes off however the recording ended (the button, or the time limit).
            stop_tracks(&stream);
            if let Some(video) = preview.cast::<HtmlVideoElement>() {
                video.set_src_object(None);
            }
            state.set(State::Idle);
            match clip(&chunks.borrow(), &recorder_type) {
                Ok(file) => on_clip.emit(file),
                Err(message) => state.set(State::Failed(message)),
            }
        })
    };
    recorder.set_ondataavailable(Some(on_data.as_ref().unchecked_ref()));
    recorder.set_onstop(Some(on_stop.as_ref().unchecked_ref()));
    // A piece a second, so that a long clip is not one huge buffer at the end.
    recorder.start_with_time_slice(1000).map_err(js_error)?;
    {
        let recorder = recorder.clone();
        spawn_local(async move {
            sleep_ms(MAX_SECONDS * 1000).await;
            if recorder.state() == web_sys::RecordingState::Recording {
                let _ = recorder.stop();
            }
        });
    }
    Ok(Recording {
        stream,
        recorder,
        _on_data: on_data,
        _on_stop: on_stop,
    })
}

/// The recorded pieces as one video file, named by the time it ends.
fn clip(chunks: &[Blob], mime: &str) -> Result<File, String> {
    if chunks.is_empty() {
        return Err("the recording holds no picture".into());
    }
    let mime = if mime.is_empty() { "video/webm" } else { mime };
    let parts = js_sys::Array::new();
    for c in chunks {
        parts.push(c);
    }
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    let blob = Blob::new_with_blob_sequence_and_options(&parts, &options).map_err(js_error)?;
    let when = js_sys::Date::new_0()
        .to_iso_string()
        .as_string()
        .unwrap_or_default()
        .replace([':', '.'], "-");
    let file_options = FilePropertyBag::new();
    file_options.set_type(mime);
    File::new_with_blob_sequence_and_options(
        &js_sys::Array::of1(&blob),
        &format!("camera-{when}.webm"),
        &file_options,
    )
    .map_err(js_error)
}

async fn sleep_ms(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = JsFuture::from(promise).await;
}
