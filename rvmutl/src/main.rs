//! `rvmutl`: see the library crate and `rvmutl --help`.

fn main() -> std::process::ExitCode {
    rvmutl::cli::run(std::env::args_os().collect())
}
