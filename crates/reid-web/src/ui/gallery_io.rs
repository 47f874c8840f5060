//! Saving the gallery to a file on the user's disk and opening it again (the format is
//! [`crate::gallery_file`]): each person's picture is cut out and scaled in a canvas, heads
//! blurred unless the user says otherwise, and the file is encrypted with the browser's
//! WebCrypto (PBKDF2-SHA-256, AES-256-GCM) when a passphrase is given. Nothing is uploaded: the
//! file is a local download, and an opened file is read from disk.

use std::rc::Rc;

use js_sys::{Array, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    CanvasRenderingContext2d, CryptoKey, File, HtmlCanvasElement, HtmlImageElement,
    HtmlInputElement, SubtleCrypto,
};
use yew::prelude::*;

use super::components::{download, files_of};
use super::controller::read_file;
use super::persist::KeepStatus;
use super::state::{Crop, Engine, Item, ItemStatus};
use crate::gallery_file::{self as format, Entry, Gallery, ModelStamp, Read, Sealed};
use crate::js::js_error;

/// Height of a saved picture at most: the models' input height, so that a model switched to
/// later can embed the pictures again at full detail.
const PICTURE_HEIGHT: f64 = 256.0;
/// JPEG quality of the saved pictures.
const JPEG_QUALITY: f64 = 0.92;
/// The head region blurred: the top quarter of a person's picture, as on the page.
const HEAD_FRACTION: f64 = 0.25;
/// The head is scaled down this many times and back up: detail finer than an eighth of the
/// picture's width is gone.
const BLUR_FACTOR: f64 = 8.0;

/// The stamp of the running model and aggregator, for the file and to compare with one.
pub fn stamp(engine: &Engine) -> Option<ModelStamp> {
    let Engine::Ready(info) = engine else {
        return None;
    };
    Some(ModelStamp {
        architecture: info.architecture.clone(),
        dim: info.aggregator.as_ref().map_or(info.dim, |a| a.dim),
        model: info.fingerprint.clone(),
        aggregator: info.aggregator.as_ref().map(|a| a.fingerprint.clone()),
    })
}

#[derive(Properties, PartialEq)]
pub struct GalleryFileProps {
    pub items: Rc<Vec<Item>>,
    /// The running model's stamp ([`stamp`]), once it runs.
    pub running: Option<ModelStamp>,
    /// A gallery file was opened (and decrypted): add its people.
    pub on_open: Callback<Gallery>,
    /// Whether the gallery is kept on this device (IndexedDB).
    pub keep: KeepStatus,
    pub on_keep: Callback<bool>,
}

/// What the section last did.
#[derive(Clone, PartialEq)]
enum Status {
    Idle,
    Working(String),
    Done(String),
    Refused(String),
}

/// Save the gallery to a file, open one.
#[function_component(GalleryFile)]
pub fn gallery_file(props: &GalleryFileProps) -> Html {
    let status = use_state(|| Status::Idle);
    let passphrase = use_node_ref();
    let blur = use_state(|| true);
    let people: Vec<(Item, Rc<Vec<f32>>)> = props
        .items
        .iter()
        .filter_map(|i| match &i.status {
            ItemStatus::Done { embedding, .. } => Some((i.clone(), embedding.clone())),
            _ => None,
        })
        .collect();
    let working = matches!(*status, Status::Working(_));

    let on_save = {
        let status = status.clone();
        let passphrase = passphrase.clone();
        let blur = *blur;
        let model = props.running.clone();
        let people = people.clone();
        Callback::from(move |_| {
            let Some(model) = model.clone() else {
                status.set(Status::Refused(
                    "the model is still starting; save again in a moment".into(),
                ));
                return;
            };
            let secret = value_of(&passphrase);
            let people = people.clone();
            let status = status.clone();
            status.set(Status::Working(format!(
                "Saving {} {}…",
                people.len(),
                plural(people.len())
            )));
            spawn_local(async move {
                match save(people, model, blur, &secret).await {
                    Ok((count, bytes)) => status.set(Status::Done(format!(
                        "Saved {count} {} ({:.1} MB{}{}) to your downloads.",
                        plural(count),
                        bytes as f64 / 1e6,
                        if secret.is_empty() {
                            ", not encrypted"
                        } else {
                            ", encrypted"
                        },
                        if blur { ", heads blurred" } else { "" },
                    ))),
                    Err(message) => status.set(Status::Refused(format!(
                        "the gallery could not be saved: {message}"
                    ))),
                }
            });
        })
    };

    let on_open = {
        let status = status.clone();
        let passphrase = passphrase.clone();
        let running = props.running.is_some();
        let on_open = props.on_open.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let Some(file) = files_of(input.files()).into_iter().next() else {
                return;
            };
            input.set_value("");
            if !running {
                status.set(Status::Refused(
                    "the model is still starting; open the file again in a moment".into(),
                ));
                return;
            }
            let secret = value_of(&passphrase);
            let (status, on_open) = (status.clone(), on_open.clone());
            status.set(Status::Working(format!("Opening {}…", file.name())));
            spawn_local(async move {
                let name = file.name();
                match open(file, &secret).await {
                    Ok(gallery) => {
                        let count = gallery.entries.len();
                        status.set(Status::Done(format!(
                            "Opened {name}: {count} {} added.",
                            plural(count)
                        )));
                        on_open.emit(gallery);
                    }
                    Err(message) => {
                        status.set(Status::Refused(format!("{name} was not opened: {message}")))
                    }
                }
            });
        })
    };

    let on_keep = {
        let on_keep = props.on_keep.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            on_keep.emit(input.checked());
        })
    };
    let (keep_state, kept, keep_line) = match &props.keep {
        KeepStatus::Off => ("off", None, None),
        KeepStatus::Restoring => (
            "restoring",
            None,
            Some(html! { <span>{ "Reading the kept gallery back…" }</span> }),
        ),
        KeepStatus::Kept(n) => (
            "kept",
            Some(n.to_string()),
            Some(html! { <span>{ format!("{n} {} kept on this device.", plural(*n)) }</span> }),
        ),
        KeepStatus::Failed(m) => (
            "failed",
            None,
            Some(html! { <span class="error">{ m.clone() }</span> }),
        ),
    };

    let on_blur = {
        let blur = blur.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            blur.set(input.checked());
        })
    };

    let (state, line) = match &*status {
        Status::Idle => ("idle", None),
        Status::Working(m) => ("working", Some(html! { <p>{ m }</p> })),
        Status::Done(m) => ("done", Some(html! { <p>{ m }</p> })),
        Status::Refused(m) => ("refused", Some(html! { <p class="error">{ m }</p> })),
    };
    html! {
        <section class="gallery-file" id="gallery-file" data-state={state}>
            <h2>{ "Gallery file" }</h2>
            <p class="hint">
                { "Save the people of this gallery (a picture of each and its embedding) to a file on this device, and open it again later or on another device. Nothing is uploaded." }
            </p>
            <p class="row">
                <label>
                    { "Passphrase (optional, encrypts the file): " }
                    <input id="gallery-passphrase" type="password" autocomplete="new-password" ref={passphrase} />
                </label>
            </p>
            <p class="row">
                <label>
                    <input id="gallery-blur" type="checkbox" checked={*blur} onchange={on_blur} />
                    { " Blur heads in the saved pictures" }
                </label>
            </p>
            <p class="row">
                <button id="gallery-save" onclick={on_save} disabled={working || people.is_empty()}>
                    { format!("Save {} {}", people.len(), plural(people.len())) }
                </button>
                <label class="button">
                    { "Open a gallery file: " }
                    <input id="gallery-open" type="file" accept={format!(".{}", format::EXTENSION)}
                        onchange={on_open} disabled={working} />
                </label>
            </p>
            <div id="gallery-status" role="status">{ for line }</div>
            <p class="row">
                <label>
                    <input id="keep" type="checkbox" checked={props.keep != KeepStatus::Off} onchange={on_keep} />
                    { " Keep this gallery on this device" }
                </label>
                <span class="hint">
                    { "in this browser's storage for this site (IndexedDB), so that it is back when the page is opened again; off by default; unticking it or \u{201c}Forget everything\u{201d} deletes it." }
                </span>
            </p>
            <p id="keep-status" role="status" data-state={keep_state} data-kept={kept}>{ for keep_line }</p>
        </section>
    }
}

/// The text in the input at `node`.
fn value_of(node: &NodeRef) -> String {
    node.cast::<HtmlInputElement>()
        .map(|i| i.value())
        .unwrap_or_default()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "person"
    } else {
        "people"
    }
}

/// Makes the file and hands it to the browser as a download: the count of people and the
/// file's size.
async fn save(
    people: Vec<(Item, Rc<Vec<f32>>)>,
    model: ModelStamp,
    blur: bool,
    passphrase: &str,
) -> Result<(usize, usize), String> {
    let mut entries = Vec::with_capacity(people.len());
    for (item, embedding) in people {
        let picture = picture(&item.url, item.crop.as_ref(), blur)
            .await
            .map_err(|e| format!("the picture of {}: {e}", item.name))?;
        entries.push(Entry {
            name: item.name,
            frames: item.frames,
            seen: item.seen.clone(),
            embedding: embedding.to_vec(),
            picture_type: "image/jpeg".into(),
            picture,
        });
    }
    let gallery = Gallery {
        model,
        heads_blurred: blur,
        entries,
    };
    let bytes = if passphrase.is_empty() {
        format::write_plain(&gallery)
    } else {
        format::write_sealed(&seal(&format::payload(&gallery), passphrase).await?)
    };
    download(
        &format!("gallery.{}", format::EXTENSION),
        &Uint8Array::from(bytes.as_slice()),
        "application/octet-stream",
    )
    .map_err(js_error)?;
    Ok((gallery.entries.len(), bytes.len()))
}

/// Reads, checks and (with the passphrase) decrypts a gallery file.
async fn open(file: File, passphrase: &str) -> Result<Gallery, String> {
    let bytes = read_file(&file).await?;
    match format::read(&bytes).map_err(|e| e.to_string())? {
        Read::Plain(gallery) => Ok(gallery),
        Read::Encrypted(_) if passphrase.is_empty() => {
            Err("the file is encrypted: type its passphrase above and open it again".into())
        }
        Read::Encrypted(sealed) => {
            let payload = unseal(&sealed, passphrase).await?;
            format::open_payload(&payload).map_err(|e| e.to_string())
        }
    }
}

/// The person's picture as a JPEG: `crop` of the image at `url` (all of it without one), at
/// most [`PICTURE_HEIGHT`] high, its head region blurred if `blur`.
pub async fn picture(url: &str, crop: Option<&Crop>, blur: bool) -> Result<Vec<u8>, String> {
    let image = HtmlImageElement::new().map_err(js_error)?;
    image.set_src(url);
    JsFuture::from(image.decode())
        .await
        .map_err(|e| format!("it could not be read again ({})", js_error(e)))?;
    let (iw, ih) = (image.natural_width() as f64, image.natural_height() as f64);
    let [sx, sy, sw, sh] = match crop {
        // The box in the photo's pixels, kept inside it.
        Some(c) => {
            let sx = (c.bbox[0] as f64).clamp(0.0, iw - 1.0);
            let sy = (c.bbox[1] as f64).clamp(0.0, ih - 1.0);
            let sw = (c.bbox[2] as f64).min(iw - sx).max(1.0);
            let sh = (c.bbox[3] as f64).min(ih - sy).max(1.0);
            [sx, sy, sw, sh]
        }
        None => [0.0, 0.0, iw, ih],
    };
    let scale = (PICTURE_HEIGHT / sh).min(1.0);
    let (w, h) = ((sw * scale).round().max(1.0), (sh * scale).round().max(1.0));
    let (canvas, context) = new_canvas(w, h)?;
    context
        .draw_image_with_html_image_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
            &image, sx, sy, sw, sh, 0.0, 0.0, w, h,
        )
        .map_err(js_error)?;
    if blur {
        // Scaled down and up again: a blur with no dark border (a canvas filter would mix in
        // the transparent outside at the picture's edges).
        let head = (h * HEAD_FRACTION).ceil();
        let (small_w, small_h) = ((w / BLUR_FACTOR).ceil(), (head / BLUR_FACTOR).ceil());
        let (small, small_context) = new_canvas(small_w, small_h)?;
        let smooth = |c: &CanvasRenderingContext2d| {
            let _ = Reflect::set(c, &"imageSmoothingQuality".into(), &"high".into());
        };
        smooth(&small_context);
        smooth(&context);
        small_context
            .draw_image_with_html_canvas_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                &canvas, 0.0, 0.0, w, head, 0.0, 0.0, small_w, small_h,
            )
            .map_err(js_error)?;
        context
            .draw_image_with_html_canvas_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                &small, 0.0, 0.0, small_w, small_h, 0.0, 0.0, w, head,
            )
            .map_err(js_error)?;
    }
    let data_url = canvas
        .to_data_url_with_type_and_encoder_options("image/jpeg", &JPEG_QUALITY.into())
        .map_err(js_error)?;
    let base64 = data_url
        .split_once(',')
        .map(|(_, b)| b)
        .ok_or("the browser made no picture")?;
    let window = web_sys::window().ok_or("no window")?;
    let binary = window.atob(base64).map_err(js_error)?;
    Ok(binary.chars().map(|c| c as u8).collect())
}

/// A detached canvas of `w` x `h` pixels and its 2D context.
fn new_canvas(w: f64, h: f64) -> Result<(HtmlCanvasElement, CanvasRenderingContext2d), String> {
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    let canvas: HtmlCanvasElement = document
        .create_element("canvas")
        .map_err(js_error)?
        .unchecked_into();
    canvas.set_width(w as u32);
    canvas.set_height(h as u32);
    let context = canvas
        .get_context("2d")
        .map_err(js_error)?
        .ok_or("the browser has no 2D canvas")?
        .unchecked_into();
    Ok((canvas, context))
}

fn subtle() -> Result<SubtleCrypto, String> {
    let crypto = web_sys::window()
        .ok_or("no window")?
        .crypto()
        .map_err(|e| format!("this browser has no WebCrypto ({})", js_error(e)))?;
    Ok(crypto.subtle())
}

fn object(pairs: &[(&str, &JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o
}

/// The AES-256-GCM key of `passphrase` (PBKDF2-SHA-256 with `salt`, `iterations` rounds),
/// for `usage` ("encrypt" or "decrypt").
async fn key(
    passphrase: &str,
    salt: &[u8],
    iterations: u32,
    usage: &str,
) -> Result<CryptoKey, String> {
    let subtle = subtle()?;
    let secret: Object = Uint8Array::from(passphrase.as_bytes()).into();
    let base = JsFuture::from(
        subtle
            .import_key_with_object(
                "raw",
                &secret,
                &object(&[("name", &"PBKDF2".into())]),
                false,
                &Array::of1(&"deriveKey".into()),
            )
            .map_err(js_error)?,
    )
    .await
    .map_err(js_error)?;
    let params = object(&[
        ("name", &"PBKDF2".into()),
        ("hash", &"SHA-256".into()),
        ("salt", &Uint8Array::from(salt).into()),
        ("iterations", &iterations.into()),
    ]);
    let aes = object(&[("name", &"AES-GCM".into()), ("length", &256.into())]);
    let key = JsFuture::from(
        subtle
            .derive_key_with_object_and_object(
                &params,
                &base.unchecked_into(),
                &aes,
                false,
                &Array::of1(&usage.into()),
            )
            .map_err(js_error)?,
    )
    .await
    .map_err(js_error)?;
    Ok(key.unchecked_into())
}

/// Encrypts `payload` with a key from `passphrase`, a fresh random salt and IV.
async fn seal(payload: &[u8], passphrase: &str) -> Result<Sealed, String> {
    let crypto = web_sys::window()
        .ok_or("no window")?
        .crypto()
        .map_err(js_error)?;
    let mut salt = [0u8; format::SALT_BYTES];
    let mut iv = [0u8; format::IV_BYTES];
    crypto
        .get_random_values_with_u8_array(&mut salt)
        .map_err(js_error)?;
    crypto
        .get_random_values_with_u8_array(&mut iv)
        .map_err(js_error)?;
    let key = key(passphrase, &salt, format::ITERATIONS, "encrypt").await?;
    let algorithm = object(&[
        ("name", &"AES-GCM".into()),
        ("iv", &Uint8Array::from(&iv[..]).into()),
    ]);
    let ciphertext = JsFuture::from(
        subtle()?
            .encrypt_with_object_and_u8_array(&algorithm, &key, payload)
            .map_err(js_error)?,
    )
    .await
    .map_err(|e| format!("encryption failed: {}", js_error(e)))?;
    Ok(Sealed {
        iterations: format::ITERATIONS,
        salt,
        iv,
        ciphertext: Uint8Array::new(&ciphertext).to_vec(),
    })
}

/// Decrypts a file's payload; a wrong passphrase and a changed file look the same to AES-GCM.
async fn unseal(sealed: &Sealed, passphrase: &str) -> Result<Vec<u8>, String> {
    let key = key(passphrase, &sealed.salt, sealed.iterations, "decrypt").await?;
    let algorithm = object(&[
        ("name", &"AES-GCM".into()),
        ("iv", &Uint8Array::from(&sealed.iv[..]).into()),
    ]);
    let plain = JsFuture::from(
        subtle()?
            .decrypt_with_object_and_u8_array(&algorithm, &key, &sealed.ciphertext)
            .map_err(js_error)?,
    )
    .await
    .map_err(|_| {
        "the passphrase is wrong, or the file was changed after it was saved: nothing was added"
            .to_string()
    })?;
    Ok(Uint8Array::new(&plain).to_vec())
}
