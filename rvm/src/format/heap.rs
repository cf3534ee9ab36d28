//! The RDS heap header and block tags (owned by the `rds` module; see `FORMAT.md`).
//! Filled in together with `crate::rds`.
