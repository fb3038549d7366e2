use std::process::ExitCode;

fn main() -> ExitCode {
    wharf::cli::closed_pipe::install();
    let cli = wharf::cli::parse();
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
            wharf::cli::exit::code_for(&err)
        }
    }
}
