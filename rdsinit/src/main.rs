//! Placeholder: the rdsinit command is built in its own issue.
fn main() -> std::process::ExitCode {
    eprintln!("rdsinit: not built yet");
    std::process::ExitCode::from(2)
}
