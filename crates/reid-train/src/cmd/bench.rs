//! `reid bench`: embedding throughput of the model on the CPU backend, on random 256x128
//! crops, after warm-up. A measurement tool, not a test.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Args;
use reid_model::weights::from_burnpack_bytes;
use reid_model::ReidNetConfig;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model file; without it a randomly initialised network of the default shape is timed.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Crops per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Timed forward passes (after one warm-up pass).
    #[arg(long, default_value_t = 5)]
    iters: usize,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let device = burn::tensor::Device::flex();
    let (net, config) = match &args.model {
        Some(path) => from_burnpack_bytes(&super::read_model(path)?, &device)?,
        None => {
            let config = ReidNetConfig::default();
            (config.init(&device), config)
        }
    };
    let shape = [args.batch, 3, config.input.height, config.input.width];
    let input = burn::tensor::Tensor::<4>::random(
        shape,
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let run_once = || -> anyhow::Result<()> {
        let out = net.forward(input.clone()).embedding;
        out.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    };
    run_once()?;
    let start = Instant::now();
    for _ in 0..args.iters {
        run_once()?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let crops = (args.batch * args.iters) as f64;
    println!(
        "reid (burn flex, CPU): {:.1} crops/s (batch {}, {}x{}, {} passes in {:.2} s)",
        crops / seconds,
        args.batch,
        config.input.height,
        config.input.width,
        args.iters,
        seconds
    );
    Ok(ExitCode::SUCCESS)
}
