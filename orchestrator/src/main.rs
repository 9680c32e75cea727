use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = microfab::cli::Cli::parse();
    let log_format = cli.log_format;
    microfab::logging::init(log_format, cli.command.default_log_filter());
    match microfab::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) if microfab::cli::is_closed_pipe(&e) => std::process::exit(0),
        Err(e) => {
            microfab::logging::report_failure(log_format, &e);
            std::process::exit(1);
        }
    }
}
