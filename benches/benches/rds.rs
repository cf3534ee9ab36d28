//! RDS malloc/free of 16 B-4 KiB inside no_flush transactions, flush every 1,000.
//! Waits for the RDS heap (`rvm::rds`) to land on main.

fn main() {
    eprintln!("rds: not benchmarked yet: the RDS heap (rvm::rds) has not landed");
}
