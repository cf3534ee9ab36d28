//! RDS: the recoverable dynamic storage heap (quick-fit free lists inside a mapped region).
//! Implemented in its own change; see issue "rds".
