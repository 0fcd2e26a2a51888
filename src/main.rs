use std::process::ExitCode;

use clap::{Parser, Subcommand};

use fer::bench;
use fer::gpu::{BackendChoice, GpuContext, GpuOptions, TimingSource};
use fer::kernels::matmul::MatmulVariant;

/// fer: train facial-expression models on any GPU (Vulkan, Metal, DX12, GL) through wgpu.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Graphics API to use (default: any; also FER_BACKEND).
    #[arg(long, global = true, value_enum)]
    backend: Option<BackendChoice>,
    /// Use the adapter whose name contains this text (also FER_ADAPTER).
    #[arg(long, global = true)]
    adapter: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the adapter fer would use: backend, driver, limits and features.
    Info {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure kernel throughput on this adapter.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// GFLOP/s of each matmul variant on square sizes and the models' shapes, vs the CPU twin.
    Matmul {
        /// Square sizes to measure (n for n×n×n).
        #[arg(long, value_delimiter = ',', default_values_t = [256, 512, 1024, 2048])]
        sizes: Vec<usize>,
        /// Variants to measure.
        #[arg(long, value_delimiter = ',', value_enum, default_values_t = MatmulVariant::ALL)]
        variants: Vec<MatmulVariant>,
        /// Skip the products of the mlp and cnn layers.
        #[arg(long)]
        no_model_shapes: bool,
        /// About how long to time each case after its warm-up run.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Print JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut options = GpuOptions::from_env()?;
    options.backend = cli.backend.or(options.backend);
    options.adapter = cli.adapter.or(options.adapter);
    match cli.command {
        Command::Info { json } => {
            let ctx = GpuContext::new(&options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(ctx.summary())?);
            } else {
                print!("{}", ctx.summary());
            }
        }
        Command::Bench(BenchCommand::Matmul {
            sizes,
            variants,
            no_model_shapes,
            seconds,
            json,
        }) => {
            let ctx = GpuContext::new(&options)?;
            let mut cases: Vec<_> = sizes.into_iter().map(bench::matmul::Case::square).collect();
            if !no_model_shapes {
                cases.extend(bench::matmul::Case::model_shapes());
            }
            let options = bench::matmul::Options {
                cases,
                variants,
                seconds_per_case: seconds,
            };
            if !json {
                println!("{} ({})", ctx.summary().name, ctx.summary().backend);
                println!("{}", bench::matmul::TABLE_HEADER);
            }
            let report = bench::matmul::run(&ctx, &options, |m| {
                if !json {
                    println!("{}", bench::matmul::table_row(m));
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.timing == TimingSource::WallClock {
                println!(
                    "(no timestamp queries on this adapter: times are submit-to-finish wall clock)"
                );
            } else {
                println!(
                    "(GPU time from timestamp queries; CPU twin: f64 reference loops, one thread)"
                );
            }
        }
    }
    Ok(())
}
