//! `reid embed IMAGE|FOLDER...`: embeds each image with the model and prints, per image, the
//! embedding's norm (1 for an L2-normalised model output) and the cosine-similarity matrix of
//! all images that could be embedded. A file that cannot be read or decoded is reported and
//! skipped; the exit status is then 1.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use reid_core::{cosine_similarity_matrix, Embedding};
use reid_pipeline::{device, Backend, Embedder};
use serde::Serialize;

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Image files or folders (walked recursively for jpg, jpeg, png, webp, bmp).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Model file (burnpack written by `reid import`).
    #[arg(long, default_value_os_t = super::default_model())]
    model: PathBuf,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Print JSON (names, embeddings, errors, similarity matrix) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct JsonImage {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    embedding: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    norm: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl JsonImage {
    fn failed(name: String, error: String) -> Self {
        Self {
            name,
            embedding: None,
            norm: None,
            error: Some(error),
        }
    }
}

#[derive(Serialize)]
struct JsonReport {
    model: String,
    images: Vec<JsonImage>,
    /// Rows and columns follow the images that have an embedding, in order.
    similarity: Vec<Vec<f32>>,
}

pub fn run(args: EmbedArgs) -> anyhow::Result<ExitCode> {
    let entries = reid_data::collect_images(&args.inputs)?;
    let model = super::read_model(&args.model)?;
    let device = pollster::block_on(device(Backend::Cpu))?;
    let embedder = Embedder::from_burnpack(&model, device, args.batch)?;

    let mut names = Vec::new();
    let mut files = Vec::new();
    let mut read_errors = Vec::new();
    for entry in &entries {
        names.push(entry.path.display().to_string());
        match std::fs::read(&entry.path) {
            Ok(bytes) => {
                files.push(bytes);
                read_errors.push(None);
            }
            Err(e) => {
                files.push(Vec::new());
                read_errors.push(Some(format!("cannot read the file: {e}")));
            }
        }
    }
    let slices: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
    let results = pollster::block_on(embedder.embed_files(&slices));

    let mut images = Vec::new();
    let mut embedded: Vec<(String, Embedding)> = Vec::new();
    for ((name, result), read_error) in names.into_iter().zip(results).zip(read_errors) {
        match (read_error, result) {
            (Some(error), _) => images.push(JsonImage::failed(name, error)),
            (None, Err(e)) => images.push(JsonImage::failed(name, e.to_string())),
            (None, Ok(embedding)) => {
                images.push(JsonImage {
                    name: name.clone(),
                    norm: Some(embedding.norm()),
                    embedding: Some(embedding.values().to_vec()),
                    error: None,
                });
                embedded.push((name, embedding));
            }
        }
    }
    let only: Vec<Embedding> = embedded.iter().map(|(_, e)| e.clone()).collect();
    let similarity = cosine_similarity_matrix(&only);
    let failed = images.iter().filter(|i| i.error.is_some()).count();

    if args.json {
        let report = JsonReport {
            model: args.model.display().to_string(),
            images,
            similarity,
        };
        println!("{}", serde_json::to_string(&report)?);
    } else {
        for (i, image) in images.iter().enumerate() {
            match (&image.error, image.norm) {
                (Some(error), _) => println!("[{i}] {}: error: {error}", image.name),
                (None, Some(norm)) => println!(
                    "[{i}] {}: norm {norm:.6} ({}-d)",
                    image.name,
                    image.embedding.as_ref().map_or(0, Vec::len)
                ),
                (None, None) => unreachable!("an image has an embedding or an error"),
            }
        }
        print_matrix(&embedded, &similarity);
    }
    if failed > 0 {
        eprintln!("{failed} of {} images could not be embedded", entries.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_matrix(embedded: &[(String, Embedding)], similarity: &[Vec<f32>]) {
    if embedded.is_empty() {
        println!("no image could be embedded: no similarity matrix");
        return;
    }
    println!("\ncosine similarity ({} images):", embedded.len());
    for (i, (name, _)) in embedded.iter().enumerate() {
        println!("  {i:>3}: {name}");
    }
    print!("     ");
    for j in 0..embedded.len() {
        print!(" {j:>6}");
    }
    println!();
    for (i, row) in similarity.iter().enumerate() {
        print!("  {i:>3}");
        for v in row {
            print!(" {v:>6.3}");
        }
        println!();
    }
}
