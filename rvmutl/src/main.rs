//! Placeholder: the rvmutl command is built in its own issue.
fn main() -> std::process::ExitCode {
    eprintln!("rvmutl: not built yet");
    std::process::ExitCode::from(2)
}
