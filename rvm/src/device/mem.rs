//! `MemDevice`: a device held in memory (tests, fuzzing).

use std::io;
use std::sync::RwLock;

use super::interface::{out_of_range, Device};
use crate::sync::{read_lock, write_lock};

/// A device held in memory (tests, fuzzing).
#[derive(Debug)]
pub struct MemDevice {
    name: String,
    bytes: RwLock<Vec<u8>>,
}

impl MemDevice {
    /// A device named `name` holding `bytes`.
    pub fn new(name: &str, bytes: Vec<u8>) -> MemDevice {
        MemDevice {
            name: name.to_string(),
            bytes: RwLock::new(bytes),
        }
    }
    /// A copy of the current contents.
    pub fn snapshot(&self) -> Vec<u8> {
        read_lock(&self.bytes).clone()
    }
}

impl Device for MemDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> io::Result<u64> {
        Ok(read_lock(&self.bytes).len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let b = read_lock(&self.bytes);
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= b.len() as u64);
        match end {
            Some(end) => {
                buf.copy_from_slice(&b[offset as usize..end as usize]);
                Ok(())
            }
            None => Err(out_of_range(offset, buf.len(), b.len())),
        }
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut b = write_lock(&self.bytes);
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| out_of_range(offset, buf.len(), b.len()))?;
        if end > b.len() as u64 {
            b.resize(end as usize, 0);
        }
        b[offset as usize..end as usize].copy_from_slice(buf);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        write_lock(&self.bytes).resize(len as usize, 0);
        Ok(())
    }
}
