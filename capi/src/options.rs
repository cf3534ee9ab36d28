//! Applying an options record (`rvm_options_t`) to the running instance: shared by
//! `rvm_initialize`, `rvm_set_options` and `rvm_map` (which, as in the classic library, also
//! applies the options it is given).

use rvm::{Options, Rvm};

use crate::args::c_path;
use crate::codes::*;
use crate::state::{self, Phase};
use crate::types::*;

/// The classic option flag: log consecutive queued commits as one record
/// ([`Options::coalesce_transactions`]). `RVM_COALESCE_RANGES` (1) needs no flag here: ranges
/// within a transaction are always coalesced.
const RVM_COALESCE_TRANS: RvmLength = 2;

/// The truncation threshold an options record asks for: 1..=100, else 0 (no background
/// truncation), as in the classic library.
fn threshold_of(o: &RvmOptions) -> u8 {
    if (1..=100).contains(&o.truncate) {
        o.truncate as u8
    } else {
        0
    }
}

/// Apply an options record to the running instance: open the log it names (recovering it),
/// set the truncation threshold, keep the flags. Shared by `rvm_initialize`, `rvm_set_options`
/// and `rvm_map`.
///
/// # Safety
/// `o.log_dev`, if non-null, must point to a NUL-terminated string.
pub(crate) unsafe fn apply_options(o: &RvmOptions) -> Result<(), RvmReturn> {
    let log = if o.log_dev.is_null() {
        None
    } else {
        // SAFETY: forwarded from the caller.
        Some(unsafe { c_path(o.log_dev, RVM_ELOG) }?)
    };
    let threshold = threshold_of(o);
    let mut g = state::global();
    let Phase::Running {
        rvm,
        log_path,
        settings,
    } = &mut g.phase
    else {
        return Err(RVM_EINIT);
    };
    if let Some(path) = log {
        let canonical = std::fs::canonicalize(&path).map_err(|_| RVM_EIO)?;
        match (log_path.as_ref(), *rvm) {
            (Some(open), Some(_)) if *open != canonical => return Err(RVM_ELOG),
            (Some(_), Some(_)) => {}
            _ => {
                // Opened with a truncation thread always, so the threshold can be changed
                // later; it is set to the asked value right after.
                let opened = Rvm::open(&canonical, Options::default().truncate_threshold(50))
                    .map_err(|e| crate::codes::rvm_code(&e))?;
                crate::tids::set_uname_base_now();
                let leaked: &'static Rvm = Box::leak(Box::new(opened));
                *rvm = Some(leaked);
                *log_path = Some(canonical);
            }
        }
    }
    if let Some(r) = *rvm {
        r.set_truncate_threshold(threshold)
            .map_err(|e| crate::codes::rvm_code(&e))?;
        // The classic flag, global as there: queued no_flush commits share one record.
        r.set_coalesce_transactions(o.flags & RVM_COALESCE_TRANS != 0);
    }
    settings.flags = o.flags;
    settings.max_read_len = if o.max_read_len < 512 {
        MAX_READ_LEN
    } else {
        o.max_read_len / 512 * 512
    };
    settings.recovery_buf_len = o.recovery_buf_len.max(64 * 1024);
    state::publish(&g);
    Ok(())
}
