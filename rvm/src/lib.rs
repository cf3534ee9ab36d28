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
//! // SAFETY: the data file is this program's own; nothing shortens it while it is mapped.
//! let segment = unsafe { rvm.map("/srv/rvm/data", MapOptions::default()) }?;
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

#![deny(missing_docs)]

pub mod device;
pub mod error;
pub mod format;
pub mod log;
mod mapping;
mod racy;
mod radix;
mod range_lock;
mod warm_up;
pub use crate::mapping::range_is_occupied;
mod apply;
mod clock;
mod instance;
pub mod rds;
pub mod segment;
pub mod store;
mod sync;
mod tx;
pub mod typed;
pub mod units;

pub use crate::error::{Error, Result};
pub use crate::format::Uuid;
pub use crate::instance::{FileMapMode, FileMapOptions, LogState, Options, Rvm, Statistics};
pub use crate::segment::{MapOptions, MappedRegion, Placement, Segment};
pub use crate::tx::{BeginMode, CommitMode, Transaction};
pub use bytemuck::{AnyBitPattern, NoUninit};
/// The traits of plain-data types, from bytemuck (`Pod`: any bit pattern is valid, no padding,
/// no pointers to volatile memory; `Zeroable`: all zeros is valid).
pub use pod_traits::*;
/// `#[derive(rvm::Pod, rvm::Zeroable)]`: bytemuck's derives and checks, without a bytemuck
/// dependency in your `Cargo.toml` (the derives reach bytemuck through rvm).
///
/// ```
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Event { at_ms: u64, kind: u32, value: u32 }
/// ```
///
/// A struct with padding is refused at compile time, as bytemuck refuses it:
///
/// ```compile_fail
/// #[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
/// #[repr(C)]
/// struct Padded { small: u8, large: u64 }
/// ```
pub use rvm_derive::{Pod, Zeroable};

mod pod_traits {
    // A glob re-export of these gives the traits; the explicit derive imports above take
    // the macro names, since explicit imports shadow glob ones.
    pub use bytemuck::{Pod, Zeroable};
}

#[doc(hidden)]
pub mod __private {
    pub use bytemuck;
}
