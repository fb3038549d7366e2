use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = wharf::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wharf: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(wharf::cli::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            wharf::cli::report_error(&err);
            ExitCode::FAILURE
        }
    }
}
