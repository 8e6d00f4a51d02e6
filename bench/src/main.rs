//! The `soulchat-bench` command (see the crate doc).

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = soulchat_bench::Args::parse();
    match soulchat_bench::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("soulchat-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
