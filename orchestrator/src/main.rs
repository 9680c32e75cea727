use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = microfab::cli::Cli::parse();
    microfab::logging::init(cli.log_format);
    match microfab::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) if microfab::cli::is_closed_pipe(&e) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
