//! rdsinit: initialize an RVM data segment holding an RDS heap. See `rdsinit --help`.
//!
//! Exit status: 0 done, 1 quit at a prompt, 2 usage, 3 refused by a check (nothing changed),
//! 4 a write failed. The logic lives in the `rdsinit` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match rdsinit::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to standard output and succeed.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                rdsinit::EXIT_USAGE
            } else {
                rdsinit::EXIT_OK
            });
        }
    };
    ExitCode::from(rdsinit::run::main_with(cli))
}
