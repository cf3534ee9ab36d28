//! Segment header decoding over arbitrary bytes: never panics; whatever decodes is valid and
//! survives an encode/decode round trip.

use rvm::device::MemDevice;
use rvm::format::segment::SegmentHeader;

use crate::input::Input;

pub fn run(data: &[u8]) {
    if let Ok(header) = SegmentHeader::decode(data) {
        header
            .validate()
            .expect("decode accepted a header that validate refuses");
        let again = SegmentHeader::decode(&header.encode()).expect("an encoded header decodes");
        assert_eq!(again, header, "encode/decode round trip");
        let mut input = Input::new(data.get(4096..).unwrap_or(&[]));
        for _ in 0..4 {
            let (offset, length) = (input.u64(), input.u64());
            if let Some(i) = header.region_containing(offset, length) {
                let r = header.regions[i];
                assert!(offset >= r.offset && offset.saturating_add(length) <= r.end_offset());
            }
        }
    }
    // Through a device too: its length is checked against the header's.
    let device = MemDevice::new("segment", data.to_vec());
    let _ = rvm::segment::read_header_from(&device);
}
