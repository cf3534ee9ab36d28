//! # rvm: recoverable virtual memory
//!
//! A write-ahead redo log plus data segments whose regions are mapped at fixed virtual
//! addresses, so pointers stored inside stay valid across restarts. Transactions declare the
//! bytes they change ([`Transaction::set_range`]); at commit the new values are captured and
//! appended to the log; truncation later writes them into the segment files. After a crash,
//! [`Rvm::open`] replays every committed transaction and nothing else.
//!
//! ```no_run
//! use rvm::{BeginMode, CommitMode, MapOptions, Options, Rvm};
//! # fn main() -> rvm::Result<()> {
//! let rvm = Rvm::open("/srv/rvm/log", Options::default())?;
//! let segment = rvm.map("/srv/rvm/data", MapOptions::default())?;
//! let base = segment.regions()[0].address;
//! let mut tx = rvm.begin(BeginMode::Restore)?;
//! tx.write(base, &42u64)?;
//! tx.end(CommitMode::Flush)?; // durable when this returns
//! assert_eq!(segment.read::<u64>(base)?, 42);
//! # Ok(())
//! # }
//! ```
//!
//! The RDS persistent heap lives in [`rds`].

pub mod device;
pub mod error;
pub mod format;
pub mod log;
mod mapping;
pub use crate::mapping::range_is_occupied;
pub mod rds;
mod rvm;
pub mod segment;
pub mod store;
mod truncate;
mod tx;
pub mod typed;

pub use crate::error::{Error, Result};
pub use crate::format::Uuid;
pub use crate::rvm::{LogState, Options, Rvm, Statistics};
pub use crate::segment::{MapOptions, MappedRegion, Placement, Segment};
pub use crate::tx::{BeginMode, CommitMode, Transaction};
pub use bytemuck::{AnyBitPattern, NoUninit, Pod, Zeroable};
