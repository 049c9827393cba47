//! `playmark`: the cross-device playback resume service.
//!
//! `playmark serve` runs the whole service; `playmark serve --help` lists
//! every flag and its `PLAYMARK_*` environment variable.

use std::process::ExitCode;

mod loadgen;
mod token;

use clap::{Parser, Subcommand};
use playmark_server::{Application, Config, telemetry};

/// mimalloc instead of glibc malloc: the request path and the embedded
/// store's page buffers allocate and free constantly, and glibc's arenas
/// showed up as 7 to 14% of the server's CPU samples (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Cross-device playback resume: players send progress checkpoints, any
/// device of the same profile asks where to resume.
#[derive(Debug, Parser)]
#[command(name = "playmark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (embedded, durable store in --data-dir by default).
    Serve(Box<Config>),
    /// Load a running playmark like viewers do, and measure latency and
    /// throughput (see `playmark loadgen --help`).
    Loadgen(Box<loadgen::LoadgenArgs>),
    /// Print the OpenAPI document that `GET /openapi.json` serves (the one
    /// in docs/openapi.json).
    Openapi,
    /// Print an HS256 token for a node started with --auth jwt
    /// --jwt-secret-file: for development and smoke tests.
    Token(Box<token::TokenArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Every connection is a file: the server and the load generator both
    // take the most files the system lets them (logged by `serve`, and in
    // loadgen's report).
    let files = playmark_server::serve::raise_open_file_limit();
    let result = match cli.command {
        Command::Serve(config) => serve(*config, files),
        Command::Loadgen(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(loadgen::run(*args))),
        Command::Openapi => {
            println!("{}", playmark_server::http::openapi::json());
            Ok(())
        }
        Command::Token(args) => token::token(&args).map(|t| println!("{t}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line.
            eprintln!("playmark: error: {e:#}");
            tracing::error!(error = format!("{e:#}"), "playmark stopped with an error");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config, files: std::io::Result<(u64, u64)>) -> anyhow::Result<()> {
    telemetry::init(config.log_format, &config.log_level)?;
    match files {
        Ok((soft, hard)) if soft == hard => {
            tracing::info!(open_files = soft, "open-file limit at its hard limit")
        }
        Ok((soft, hard)) => tracing::warn!(open_files = soft, hard, "open-file limit below the hard limit"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit; connections may run out of files")
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let app = Application::build(config).await?;
        app.run_until_stopped(shutdown_signal()).await
    })
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
