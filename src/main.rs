use std::process::ExitCode;

use clap::{Parser, Subcommand};

use fer::gpu::{BackendChoice, GpuContext, GpuOptions};

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
    }
    Ok(())
}
