//! Entry point: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cfg = orderbatch::cli::parse();
    match orderbatch::run(&cfg) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) if orderbatch::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderbatch: error: {e:#}");
            ExitCode::from(orderbatch::exit_code_of(&e))
        }
    }
}
