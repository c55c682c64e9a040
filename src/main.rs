//! Entry point: parse the command line, run, map the outcome to an exit code.

use std::process::ExitCode;

// Orders are allocated on one thread and freed on another; mimalloc handles
// that far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A panic is a bug; still, say it in one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        if orderbatch::panic_is_expected() {
            return;
        }
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info.payload_as_str().unwrap_or("panic");
        orderbatch::log::error(
            &format!("internal error{at}: {what}; nothing of the current run was committed (please report this)"),
            101,
        );
    }));
    orderbatch::keep_files_private();
    let cfg = orderbatch::cli::parse();
    orderbatch::log::init(cfg.log_format);
    orderbatch::interrupt::install();
    match orderbatch::run(&cfg) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) if orderbatch::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let code = orderbatch::exit_code_of(&e);
            orderbatch::log::error(&format!("{e:#}"), code);
            ExitCode::from(code)
        }
    }
}
