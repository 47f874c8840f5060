//! The Evaluate section (teaching): the user picks a Market-1501 folder (its `query/` and
//! `bounding_box_test/` pictures are embedded by the running model in the worker, a batch at a
//! time, with progress and a cancel button) or a folder of saved features (`reid eval
//! --save-features`' files), and sees Rank-1/5/10, mAP, mINP, the CMC curve and the ranked
//! lists of the queries with the lowest AP, computed in the worker by
//! [`crate::evaluation::evaluate`], `reid eval`'s own functions. A result picked in those lists
//! shows which regions of the two pictures made them similar: the worker splits their cosine
//! similarity exactly over the cells of each picture's last feature map
//! (`reid_model::explain`), and the page lays the cells over the pictures.

use std::cell::Cell;
use std::rc::Rc;

use futures_util::StreamExt;
use wasm_bindgen_futures::spawn_local;
use web_sys::{File, HtmlInputElement, Url};
use yew::prelude::*;

use super::components::{files_of, relative_path};
use super::controller::{now_ms, read_file, Controller};
use crate::evaluation::{
    file_name, layout, percent, EvalReport, Layout, Side, SHOWN_RESULTS, WORST_QUERIES,
};
use crate::protocol::{FromWorker, HeatMap, ToWorker};

/// Why an evaluation's embeddings do not fit together.
const CHANGED: &str = "the model changed while the folder was embedded: evaluate again";

/// Pictures sent to the worker at a time (its batch).
const EVAL_BATCH: usize = 8;

/// The pictures of an evaluation: the user's files, and object URLs of them (released when
/// dropped).
#[derive(Debug, PartialEq)]
pub struct Pictures {
    pub query: Vec<String>,
    pub gallery: Vec<String>,
    pub query_files: Vec<File>,
    pub gallery_files: Vec<File>,
}

impl Drop for Pictures {
    fn drop(&mut self) {
        for url in self.query.iter().chain(&self.gallery) {
            let _ = Url::revoke_object_url(url);
        }
    }
}

/// Where the features came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Embedded here by the running model, at this many pictures a second.
    Embedded { per_s: f64 },
    /// Read from saved features.
    Saved,
}

/// A finished evaluation, with what it needs to be evaluated again (re-ranking toggled).
#[derive(Debug, PartialEq)]
pub struct Evaluation {
    pub report: EvalReport,
    pub query: Rc<Side>,
    pub gallery: Rc<Side>,
    pub origin: Origin,
    pub pictures: Option<Rc<Pictures>>,
    pub ms: f64,
}

/// What the section shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum EvalStatus {
    #[default]
    Idle,
    Reading,
    Embedding {
        done: usize,
        total: usize,
        started_ms: f64,
    },
    Evaluating,
    Done(Rc<Evaluation>),
    Failed(String),
}

/// A file of the picked folder, read; an error names it.
async fn read_bytes(file: &File) -> Result<Vec<u8>, String> {
    read_file(file)
        .await
        .map_err(|e| format!("{}: {e}", shown_path(file)))
}

fn shown_path(file: &File) -> String {
    let path = relative_path(file);
    if path.is_empty() {
        file.name()
    } else {
        path
    }
}

/// What one run starts from.
pub enum Input {
    /// The files of a picked folder.
    Folder(Vec<File>),
    /// The features of the evaluation shown, evaluated again (re-ranking toggled).
    Again(Rc<Evaluation>),
}

/// Runs one evaluation, reporting through `show`; stops quietly once `token` is no longer
/// `current` (cancelled, or a newer run started).
pub fn run(
    controller: Rc<Controller>,
    input: Input,
    rerank: bool,
    show: Callback<EvalStatus>,
    current: Rc<Cell<u32>>,
    token: u32,
) {
    spawn_local(async move {
        let live = || current.get() == token;
        let result = evaluation(&controller, input, rerank, &show, &live, token).await;
        if live() {
            show.emit(match result {
                Ok(done) => EvalStatus::Done(Rc::new(done)),
                Err(message) => EvalStatus::Failed(message),
            });
        }
    });
}

/// The worker's next answer to evaluation `run` (answers to an earlier one are skipped);
/// `None` once the channel closed (the worker restarted, or everything was forgotten).
async fn answer(
    answers: &mut futures_channel::mpsc::UnboundedReceiver<FromWorker>,
    run: u32,
) -> Option<FromWorker> {
    while let Some(message) = answers.next().await {
        if message.evaluation() == Some(run) {
            return Some(message);
        }
    }
    None
}

/// Cancelled runs end with `Err("")`, which is not shown.
async fn evaluation(
    controller: &Rc<Controller>,
    input: Input,
    rerank: bool,
    show: &Callback<EvalStatus>,
    live: &dyn Fn() -> bool,
    run: u32,
) -> Result<Evaluation, String> {
    let mut answers = controller.evaluation_answers();
    let (query, gallery, origin, pictures) = match input {
        Input::Again(e) => (
            e.query.clone(),
            e.gallery.clone(),
            e.origin.clone(),
            e.pictures.clone(),
        ),
        Input::Folder(files) => {
            let paths: Vec<String> = files.iter().map(shown_path).collect();
            match layout(&paths)? {
                Layout::Features {
                    query_npy,
                    query_txt,
                    gallery_npy,
                    gallery_txt,
                } => {
                    show.emit(EvalStatus::Reading);
                    let text = |i: usize| {
                        let file = files[i].clone();
                        async move {
                            let bytes = read_bytes(&file).await?;
                            String::from_utf8(bytes)
                                .map_err(|_| format!("{} is not text", shown_path(&file)))
                        }
                    };
                    let query = Side::from_saved(
                        &read_bytes(&files[query_npy]).await?,
                        &text(query_txt).await?,
                        "query",
                    )?;
                    let gallery = Side::from_saved(
                        &read_bytes(&files[gallery_npy]).await?,
                        &text(gallery_txt).await?,
                        "gallery",
                    )?;
                    (Rc::new(query), Rc::new(gallery), Origin::Saved, None)
                }
                Layout::Images { query, gallery } => {
                    let all: Vec<&File> =
                        query.iter().chain(&gallery).map(|&i| &files[i]).collect();
                    let started_ms = now_ms();
                    let total = all.len();
                    show.emit(EvalStatus::Embedding {
                        done: 0,
                        total,
                        started_ms,
                    });
                    // Row-major, `dim` wide (the first answer's width; every answer must
                    // have it, or the model changed half-way).
                    let (mut features, mut dim) = (Vec::<f32>::new(), None);
                    let mut done = 0;
                    for (b, chunk) in all.chunks(EVAL_BATCH).enumerate() {
                        let first = b * EVAL_BATCH;
                        let mut bytes = Vec::with_capacity(chunk.len());
                        for file in chunk {
                            bytes.push(serde_bytes::ByteBuf::from(read_bytes(file).await?));
                        }
                        if !live() {
                            return Err(String::new());
                        }
                        let message = ToWorker::EvalEmbed {
                            run,
                            first: first as u32,
                            files: bytes,
                        };
                        if !controller.send(&message) {
                            return Err(
                                "the model is restarting: evaluate again once it runs".into()
                            );
                        }
                        match answer(&mut answers, run).await {
                            Some(FromWorker::EvalEmbedded {
                                embeddings, dim: d, ..
                            }) => {
                                if *dim.get_or_insert(d) != d || embeddings.len() != d * chunk.len()
                                {
                                    return Err(CHANGED.into());
                                }
                                features.extend(embeddings);
                                done += chunk.len();
                            }
                            Some(FromWorker::EvalFailed { index, message, .. }) => {
                                let at = index
                                    .and_then(|i| all.get(i as usize))
                                    .map_or_else(String::new, |f| format!("{}: ", shown_path(f)));
                                return Err(format!("{at}{message}"));
                            }
                            _ => {
                                return Err(
                                    "the model restarted: evaluate again once it runs".into()
                                )
                            }
                        }
                        if !live() {
                            return Err(String::new());
                        }
                        show.emit(EvalStatus::Embedding {
                            done,
                            total,
                            started_ms,
                        });
                    }
                    let per_s = total as f64 / ((now_ms() - started_ms) / 1000.0).max(1e-3);
                    let dim = dim.unwrap_or(0);
                    let side = |rows: &[usize], from: usize| Side {
                        names: rows
                            .iter()
                            .map(|&i| file_name(&paths[i]).to_string())
                            .collect(),
                        features: features[from * dim..(from + rows.len()) * dim].to_vec(),
                        dim,
                    };
                    let (q, g) = (side(&query, 0), side(&gallery, query.len()));
                    let url = |&i: &usize| {
                        Url::create_object_url_with_blob(&files[i]).unwrap_or_default()
                    };
                    let pictures = Pictures {
                        query: query.iter().map(url).collect(),
                        gallery: gallery.iter().map(url).collect(),
                        query_files: query.iter().map(|&i| files[i].clone()).collect(),
                        gallery_files: gallery.iter().map(|&i| files[i].clone()).collect(),
                    };
                    (
                        Rc::new(q),
                        Rc::new(g),
                        Origin::Embedded { per_s },
                        Some(Rc::new(pictures)),
                    )
                }
            }
        }
    };
    show.emit(EvalStatus::Evaluating);
    let message = ToWorker::Evaluate {
        run,
        query: (*query).clone(),
        gallery: (*gallery).clone(),
        rerank,
    };
    if !controller.send(&message) {
        return Err("the model is restarting: evaluate again once it runs".into());
    }
    match answer(&mut answers, run).await {
        Some(FromWorker::Evaluated { report, ms, .. }) => Ok(Evaluation {
            report: *report,
            query,
            gallery,
            origin,
            pictures,
            ms,
        }),
        Some(FromWorker::EvalFailed { message, .. }) => Err(message),
        _ => Err("the model restarted: evaluate again once it runs".into()),
    }
}

/// A query and a gallery picture of the evaluation shown, by their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairRows {
    pub query: usize,
    pub gallery: usize,
}

/// Which regions of a pair drove their similarity, as the worker measured it.
#[derive(Debug, PartialEq)]
pub struct PairMaps {
    pub rows: PairRows,
    /// Cosine similarity of the two embeddings.
    pub similarity: f32,
    /// Each picture's share of it per cell of its feature map (the cells sum to it).
    pub query: HeatMap,
    pub gallery: HeatMap,
    pub ms: f64,
}

/// The pair panel's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PairStatus {
    #[default]
    None,
    Computing(PairRows),
    Shown(Rc<PairMaps>),
    Failed(PairRows, String),
}

impl PairStatus {
    fn rows(&self) -> Option<PairRows> {
        match self {
            Self::None => None,
            Self::Computing(rows) | Self::Failed(rows, _) => Some(*rows),
            Self::Shown(maps) => Some(maps.rows),
        }
    }
}

/// Asks the worker which regions of pair `rows` of `evaluation` drove their similarity,
/// reporting through `show` unless `token` is no longer `current`.
pub fn explain(
    controller: Rc<Controller>,
    evaluation: Rc<Evaluation>,
    rows: PairRows,
    show: Callback<PairStatus>,
    current: Rc<Cell<u32>>,
    token: u32,
) {
    spawn_local(async move {
        show.emit(PairStatus::Computing(rows));
        let result = pair_maps(&controller, &evaluation, rows, token).await;
        if current.get() == token {
            show.emit(match result {
                Ok(maps) => PairStatus::Shown(Rc::new(maps)),
                Err(message) => PairStatus::Failed(rows, message),
            });
        }
    });
}

async fn pair_maps(
    controller: &Controller,
    evaluation: &Evaluation,
    rows: PairRows,
    run: u32,
) -> Result<PairMaps, String> {
    let pictures = evaluation
        .pictures
        .as_deref()
        .ok_or("saved features have no pictures to look at")?;
    let (Some(q), Some(g)) = (
        pictures.query_files.get(rows.query),
        pictures.gallery_files.get(rows.gallery),
    ) else {
        return Err("this pair is not in the evaluation".into());
    };
    let mut answers = controller.evaluation_answers();
    let message = ToWorker::Explain {
        run,
        query: serde_bytes::ByteBuf::from(read_bytes(q).await?),
        gallery: serde_bytes::ByteBuf::from(read_bytes(g).await?),
    };
    if !controller.send(&message) {
        return Err("the model is restarting: try again once it runs".into());
    }
    match answer(&mut answers, run).await {
        Some(FromWorker::Explained {
            similarity,
            query,
            gallery,
            ms,
            ..
        }) => Ok(PairMaps {
            rows,
            similarity,
            query,
            gallery,
            ms,
        }),
        Some(FromWorker::EvalFailed { index, message, .. }) => {
            let at = match index {
                Some(0) => format!("{}: ", shown_path(q)),
                Some(_) => format!("{}: ", shown_path(g)),
                None => String::new(),
            };
            Err(format!("{at}{message}"))
        }
        _ => Err("the model restarted: try again once it runs".into()),
    }
}

#[derive(Properties, PartialEq)]
pub struct EvaluateProps {
    pub status: EvalStatus,
    /// The model runs (a folder can be embedded).
    pub ready: bool,
    pub rerank: bool,
    pub on_folder: Callback<Vec<File>>,
    pub on_rerank: Callback<bool>,
    pub on_cancel: Callback<()>,
    /// The pair whose maps are asked for or shown.
    pub pair: PairStatus,
    pub on_explain: Callback<PairRows>,
}

/// The Evaluate section.
#[function_component(Evaluate)]
pub fn evaluate(props: &EvaluateProps) -> Html {
    let on_change = {
        let on_folder = props.on_folder.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            let files = files_of(input.files());
            input.set_value("");
            if !files.is_empty() {
                on_folder.emit(files);
            }
        })
    };
    let on_rerank = {
        let on_rerank = props.on_rerank.clone();
        Callback::from(move |e: Event| {
            let input: HtmlInputElement = e.target_unchecked_into();
            on_rerank.emit(input.checked());
        })
    };
    let busy = matches!(
        props.status,
        EvalStatus::Reading | EvalStatus::Embedding { .. } | EvalStatus::Evaluating
    );
    let body = match &props.status {
        EvalStatus::Idle => html! {},
        EvalStatus::Reading => html! { <p id="eval-status">{ "Reading the saved features…" }</p> },
        EvalStatus::Evaluating => {
            html! { <p id="eval-status">{ "Ranking the gallery for every query…" }</p> }
        }
        EvalStatus::Embedding {
            done,
            total,
            started_ms,
        } => {
            let on_cancel = props.on_cancel.reform(|_: MouseEvent| ());
            let eta = (*done > 0).then(|| {
                let per = (now_ms() - started_ms) / *done as f64;
                format!(", about {:.0} s left", per * (total - done) as f64 / 1000.0)
            });
            html! {
                <p id="eval-status">
                    <progress id="eval-progress" max={total.to_string()} value={done.to_string()} />
                    { format!(" {done} of {total} pictures embedded{}", eta.unwrap_or_default()) }
                    { " " }<button id="eval-cancel" onclick={on_cancel}>{ "Cancel" }</button>
                </p>
            }
        }
        EvalStatus::Failed(message) => html! {
            <p id="eval-error" class="error" role="alert">{ format!("This folder cannot be evaluated: {message}") }</p>
        },
        EvalStatus::Done(e) => results(e, &props.pair, &props.on_explain),
    };
    html! {
        <section id="evaluate" aria-labelledby="evaluate-title">
            <h2 id="evaluate-title">{ "Evaluate" }</h2>
            <p class="hint">
                { "How good is the running model? Pick a labelled test set in Market-1501's layout (a folder with query/ and bounding_box_test/ of PPPP_cCsS_FFFFFF_NN.jpg pictures), or a folder of features saved by " }
                <code>{ "reid eval --save-features" }</code>
                { ". Every query is ranked against the gallery as " }<code>{ "reid eval" }</code>
                { " does: cosine distance, pictures of the query's person from its own camera and junk (-1) left out. The pictures stay on this device." }
            </p>
            <p class="eval-controls">
                <label>
                    { "Test set folder: " }
                    <input id="eval-folder" type="file" webkitdirectory=true multiple=true onchange={on_change}
                        disabled={!props.ready || busy} />
                </label>
                <label>
                    <input id="eval-rerank" type="checkbox" checked={props.rerank} onchange={on_rerank} disabled={busy} />
                    { " Re-rank (k-reciprocal, as " }<code>{ "reid eval --rerank" }</code>{ ")" }
                </label>
            </p>
            { body }
        </section>
    }
}

fn results(e: &Evaluation, pair: &PairStatus, on_explain: &Callback<PairRows>) -> Html {
    let m = &e.report.metrics;
    let origin = match &e.origin {
        Origin::Embedded { per_s } => {
            format!("embedded here by the running model, {per_s:.1} pictures/s")
        }
        Origin::Saved => "read from the saved features".to_string(),
    };
    let cell = |key: &str, label: &str, value: Option<f64>| {
        html! {
            <td data-metric={key.to_string()} data-value={value.map(|v| v.to_string()).unwrap_or_default()}
                aria-label={label.to_string()}>
                { value.map_or("-".to_string(), percent) }
            </td>
        }
    };
    html! {
        <>
            <p id="eval-summary" data-valid={m.valid_queries.to_string()} data-skipped={m.skipped_queries.to_string()}
                data-gallery={e.report.gallery.to_string()} data-reranked={e.report.reranked.to_string()}>
                { format!(
                    "{} queries ({} skipped: no true match), {} gallery pictures, cosine distance{}; features {origin}; ranked in {:.0} ms.",
                    m.valid_queries + m.skipped_queries,
                    m.skipped_queries,
                    e.report.gallery,
                    if e.report.reranked { ", k-reciprocal re-ranking" } else { "" },
                    e.ms
                ) }
            </p>
            <table id="eval-metrics">
                <thead><tr><th>{ "Rank-1" }</th><th>{ "Rank-5" }</th><th>{ "Rank-10" }</th><th>{ "mAP" }</th><th>{ "mINP" }</th></tr></thead>
                <tbody><tr>
                    { cell("rank1", "Rank-1", m.rank(1)) }
                    { cell("rank5", "Rank-5", m.rank(5)) }
                    { cell("rank10", "Rank-10", m.rank(10)) }
                    { cell("map", "mAP", Some(m.map)) }
                    { cell("minp", "mINP", Some(m.minp)) }
                </tr></tbody>
            </table>
            { cmc_curve(&m.cmc) }
            { worst(e, pair, on_explain) }
        </>
    }
}

/// The CMC curve as an SVG line chart (Rank-k accuracy against k).
fn cmc_curve(cmc: &[f64]) -> Html {
    let (w, h, left, bottom, top, right) = (360.0, 200.0, 40.0, 30.0, 10.0, 10.0);
    let n = cmc.len().max(2) as f64;
    let x = |k: f64| left + (k - 1.0) / (n - 1.0) * (w - left - right);
    let y = |v: f64| top + (1.0 - v) * (h - top - bottom);
    let points: Vec<String> = cmc
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", x(i as f64 + 1.0), y(*v)))
        .collect();
    let values: Vec<String> = cmc.iter().map(|v| v.to_string()).collect();
    let ticks = [0.0, 0.5, 1.0];
    let described = format!(
        "CMC curve: Rank-1 {}, Rank-{} {}",
        cmc.first().copied().map_or("-".into(), percent),
        cmc.len(),
        cmc.last().copied().map_or("-".into(), percent)
    );
    html! {
        <figure class="cmc">
            <svg id="cmc" data-values={values.join(",")} viewBox={format!("0 0 {w} {h}")} width={w.to_string()} height={h.to_string()}
                role="img" aria-label={described}>
                <line x1={left.to_string()} y1={y(0.0).to_string()} x2={(w - right).to_string()} y2={y(0.0).to_string()} class="axis" />
                <line x1={left.to_string()} y1={y(0.0).to_string()} x2={left.to_string()} y2={y(1.0).to_string()} class="axis" />
                { for ticks.iter().map(|t| html! {
                    <text x={(left - 4.0).to_string()} y={(y(*t) + 4.0).to_string()} text-anchor="end">{ format!("{:.0}%", t * 100.0) }</text>
                }) }
                { for [1.0, n].iter().map(|k| html! {
                    <text x={x(*k).to_string()} y={(h - bottom + 16.0).to_string()} text-anchor="middle">{ format!("{k:.0}") }</text>
                }) }
                <text x={((left + w - right) / 2.0).to_string()} y={(h - 4.0).to_string()} text-anchor="middle">{ "rank" }</text>
                <polyline points={points.join(" ")} class="curve" />
            </svg>
            <figcaption>{ "CMC: the share of queries whose person is found within the first k results." }</figcaption>
        </figure>
    }
}

/// The queries with the lowest AP and the start of their ranked lists; with pictures, each
/// result is a button that shows the pair's maps under its list.
fn worst(e: &Evaluation, pair: &PairStatus, on_explain: &Callback<PairRows>) -> Html {
    if e.report.worst.is_empty() {
        return html! {};
    }
    let picture =
        |urls: Option<&Vec<String>>, row: usize, alt: &str| match urls.and_then(|u| u.get(row)) {
            Some(url) => html! { <img src={url.clone()} alt={alt.to_string()} /> },
            None => html! {},
        };
    let pictures = e.pictures.as_deref();
    let chosen = pair.rows();
    let hint = if pictures.is_some() {
        " (pick a result to see which regions made it similar to its query)"
    } else {
        ""
    };
    html! {
        <>
            <h3>{ format!("The {} queries with the lowest AP, with their first {SHOWN_RESULTS} results{hint}", WORST_QUERIES.min(e.report.worst.len())) }</h3>
            <ol id="worst-queries">
                { for e.report.worst.iter().map(|w| {
                    let name = e.query.names.get(w.query).cloned().unwrap_or_default();
                    html! {
                        <li class="worst" data-query={name.clone()} data-ap={w.ap.to_string()}>
                            <figure class="query">
                                { picture(pictures.map(|p| &p.query), w.query, &name) }
                                <figcaption>{ name.clone() }<br />{ format!("AP {}", percent(w.ap)) }</figcaption>
                            </figure>
                            <ol class="results">
                                { for w.results.iter().enumerate().map(|(i, r)| {
                                    let g = e.gallery.names.get(r.gallery).cloned().unwrap_or_default();
                                    let verdict = if r.same { "same person" } else { "another person" };
                                    let rows = PairRows { query: w.query, gallery: r.gallery };
                                    let body = html! {
                                        <>
                                            { picture(pictures.map(|p| &p.gallery), r.gallery, &format!("{g}, {verdict}")) }
                                            <span>{ format!("#{}", i + 1) }<br />{ format!("{:.3}", r.distance) }</span>
                                        </>
                                    };
                                    html! {
                                        <li class={classes!(if r.same { "same" } else { "other" }, (chosen == Some(rows)).then_some("chosen"))}
                                            data-name={g.clone()} data-distance={r.distance.to_string()} title={format!("{g}: {verdict}")}>
                                            if pictures.is_some() {
                                                <button class="explain" onclick={on_explain.reform(move |_: MouseEvent| rows)}
                                                    aria-pressed={(chosen == Some(rows)).to_string()}
                                                    aria-label={format!("Result {} {g}, {verdict}, distance {:.3}: show which regions made it similar to {name}", i + 1, r.distance)}>
                                                    { body }
                                                </button>
                                            } else {
                                                { body }
                                            }
                                        </li>
                                    }
                                }) }
                            </ol>
                            if chosen.is_some_and(|c| c.query == w.query) {
                                { pair_panel(e, pair) }
                            }
                        </li>
                    }
                }) }
            </ol>
        </>
    }
}

/// The chosen pair: both pictures with their maps laid over them, or why there are none.
fn pair_panel(e: &Evaluation, pair: &PairStatus) -> Html {
    match pair {
        PairStatus::None => html! {},
        PairStatus::Computing(_) => {
            html! { <p id="pair-status" class="pair">{ "Splitting the similarity over the two pictures…" }</p> }
        }
        PairStatus::Failed(_, message) => html! {
            <p id="pair-error" class="pair error" role="alert">{ format!("No map for this pair: {message}") }</p>
        },
        PairStatus::Shown(maps) => {
            let (Some(pictures), Some(q), Some(g)) = (
                e.pictures.as_deref(),
                e.query.names.get(maps.rows.query),
                e.gallery.names.get(maps.rows.gallery),
            ) else {
                return html! {};
            };
            // One colour scale for both maps, up to the strongest cell, warm or cold.
            let strongest = maps
                .query
                .values
                .iter()
                .chain(&maps.gallery.values)
                .copied()
                .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
            let largest = strongest.abs().max(1e-12);
            let url = |urls: &[String], row: usize| urls.get(row).cloned().unwrap_or_default();
            let [w, h] = [maps.query.width, maps.query.height];
            html! {
                <figure id="pair" class="pair" data-similarity={maps.similarity.to_string()}
                    data-query={q.clone()} data-gallery={g.clone()}>
                    { heat_picture("pair-query", &url(&pictures.query, maps.rows.query), q, &maps.query, largest) }
                    { heat_picture("pair-gallery", &url(&pictures.gallery, maps.rows.gallery), g, &maps.gallery, largest) }
                    <figcaption>
                        { format!(
                            "Cosine similarity {:.3} (distance {:.3}). The network sees each picture resized to its input and ends in a {w} x {h} grid of cells; each cell holds its share of the similarity, and each picture's cells add up to it. ",
                            maps.similarity,
                            1.0 - maps.similarity
                        ) }
                        <span class="warm">{ "Warm" }</span>{ " cells drew the two pictures together, " }
                        <span class="cold">{ "cold" }</span>
                        { format!(
                            " ones set them apart; the strongest cell holds {:+.3}. Computed in the worker in {:.0} ms.",
                            strongest, maps.ms
                        ) }
                    </figcaption>
                </figure>
            }
        }
    }
}

/// A picture under its map: one translucent cell per feature-map position, stretched with the
/// picture to the network's input shape.
fn heat_picture(id: &str, url: &str, name: &str, heat: &HeatMap, largest: f32) -> Html {
    let cells = heat.values.iter().enumerate().map(|(i, v)| {
        let (x, y) = (i % heat.width.max(1), i / heat.width.max(1));
        // Warm cells from yellow (weak) to red (the strongest), cold ones blue; a cell near
        // zero stays nearly clear, so the picture shows through.
        let t = (v.abs() / largest).min(1.0);
        let colour = if *v >= 0.0 {
            format!("rgb(255,{:.0},0)", 220.0 * (1.0 - t))
        } else {
            "rgb(20,90,255)".to_string()
        };
        let opacity = 0.1 + 0.6 * t;
        html! {
            <rect x={x.to_string()} y={y.to_string()} width="1" height="1" fill={colour}
                fill-opacity={format!("{opacity:.3}")} />
        }
    });
    let values: Vec<String> = heat.values.iter().map(|v| v.to_string()).collect();
    // 96 pixels wide, as tall as the grid's shape (the network input's) makes it.
    let height = format!(
        "height: {:.0}px",
        96.0 * heat.height as f64 / heat.width.max(1) as f64
    );
    html! {
        <div class="heat">
            <img src={url.to_string()} alt={name.to_string()} style={height.clone()} />
            <svg id={id.to_string()} style={height} viewBox={format!("0 0 {} {}", heat.width, heat.height)} preserveAspectRatio="none"
                data-width={heat.width.to_string()} data-height={heat.height.to_string()} data-values={values.join(",")}
                role="img" aria-label={format!("{name}: its share of the similarity per region")}>
                { for cells }
            </svg>
            <span>{ name.to_string() }</span>
        </div>
    }
}
