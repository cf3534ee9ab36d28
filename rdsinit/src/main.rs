//! rdsinit: initialize an RVM data segment holding an RDS heap. See `rdsinit --help`.
//!
//! Exit status: 0 done, 1 quit at a prompt, 2 usage, 3 refused by a check (nothing changed),
//! 4 a write failed. The logic lives in the `rdsinit` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match rdsinit::cli::parse(std::env::args_os()) {
        Ok(rdsinit::cli::Parsed::Run(cli)) => *cli,
        Ok(rdsinit::cli::Parsed::Tool(tool)) => {
            return ExitCode::from(rdsinit::run::run_tool(tool))
        }
        Err(e) => {
            // --help and --version are "errors" that print to standard output and succeed.
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::from(rdsinit::EXIT_OK);
            }
            if wants_json(std::env::args_os().skip(1)) {
                // clap's message up to its first blank line, on one line, without "error: ".
                let text = e.render().to_string();
                let first = text.split("\n\n").next().unwrap_or_default();
                let words: Vec<&str> = first.split_whitespace().collect();
                let message = words.join(" ");
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                let object = rdsinit::run::json_error(rdsinit::EXIT_USAGE, message);
                println!("{object}");
            }
            return ExitCode::from(rdsinit::EXIT_USAGE);
        }
    };
    ExitCode::from(rdsinit::run::main_with(cli))
}

/// Whether `--json` was given (before a `--`), so a usage error is also reported as JSON.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}
