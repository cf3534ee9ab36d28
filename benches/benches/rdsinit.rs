//! rdsinit of a 1 GB segment with a 30 MB log, whole process.
//! Waits for the rdsinit tool to land on main.

fn main() {
    eprintln!("rdsinit: not benchmarked yet: the rdsinit tool has not landed");
}
