// Lending a descriptor to map is a promise about the file's length: it cannot be made in safe
// code.
use std::io;
use std::os::unix::io::RawFd;

use rvm::device::Device;

#[derive(Debug)]
struct Lender;

impl Device for Lender {
    fn name(&self) -> &str {
        "lender"
    }
    fn len(&self) -> io::Result<u64> {
        Ok(1 << 20)
    }
    fn read_at(&self, _: &mut [u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn write_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, _: u64) -> io::Result<()> {
        Ok(())
    }
    fn mappable_fd(&self) -> Option<RawFd> {
        Some(0)
    }
}

fn main() {}
