//! The `weft` binary: parses the command line and hands over to [`weft::cli`].

fn main() -> std::process::ExitCode {
    weft::cli::main()
}
