// Reads return copies: no reference into mapped memory (which other threads write) escapes.
use rvm::Segment;

fn peek(segment: &Segment, address: usize) -> &u64 {
    &segment.read::<u64>(address).unwrap()
}

fn main() {
    let _ = peek;
}
