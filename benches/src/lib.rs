//! Benchmarks for rvm (built in the benchmarks issue).
