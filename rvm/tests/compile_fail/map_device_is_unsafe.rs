// Mapping a device's descriptor has the same contract as mapping a path.
use std::sync::Arc;

use rvm::device::{DeviceRef, MemDevice};
use rvm::{MapOptions, Options, Rvm};

fn main() {
    let rvm = Rvm::open("/nonexistent/log", Options::default()).unwrap();
    let device: DeviceRef = Arc::new(MemDevice::new("data", Vec::new()));
    let _segment = rvm.map_device(device, MapOptions::default());
}
