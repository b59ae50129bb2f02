//! `ward`: parse the command line and dispatch. The work lives in the library crates.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
