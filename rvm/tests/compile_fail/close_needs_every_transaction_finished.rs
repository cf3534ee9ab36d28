// `close` takes the instance by value: no transaction can be open across it.
use rvm::{BeginMode, CommitMode, Options, Rvm};

fn main() {
    let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
    let tx = rvm.begin(BeginMode::Restore).unwrap();
    rvm.close().unwrap();
    tx.end(CommitMode::Flush).unwrap();
}
