//! The required layouts: the classic 1 GiB segment with 32-byte chunks, the server setup
//! script's segment and the smallest (three-page) segment, each made by the real binary and
//! loaded back with the library.

mod support;

use support::*;

const SERVER_1G: [&str; 6] = [
    "1073741824",
    "0x50000000",
    "1072627712",
    "1048576",
    "80",
    "64",
];

#[test]
fn classic_1g_layout_with_chunk_32() {
    let dir = TempDir::new("classic");
    make_log(&dir.join("log"));
    let run = rdsinit(&dir, &args(&["-f", "log", "data"], &CLASSIC_1G));
    run.assert_ok();
    assert!(
        run.stdout
            .contains("heap    0x1000        0x3fefd000 (1072680960)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("0x70000000..0xafefd000"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Heap check: ok"), "{}", run.stdout);
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 0x4000_0000,
            start_addr: 0x7000_0000,
            heap_len: 0x3fef_d000,
            static_len: 0x10_0000,
            nlists: 0x50,
            chunk_size: 0x20,
        },
    );
    assert!(disk_usage(&dir.join("data")) < 1 << 20);
}

#[test]
fn server_setup_script_layout() {
    let dir = TempDir::new("server");
    make_log(&dir.join("log"));
    rdsinit(&dir, &args(&["-f", "log", "data"], &SERVER_1G)).assert_ok();
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 1 << 30,
            start_addr: 0x5000_0000,
            heap_len: 1_072_627_712,
            static_len: 1 << 20,
            nlists: 80,
            chunk_size: 64,
        },
    );
}

#[test]
fn tiny_three_page_segment() {
    let dir = TempDir::new("tiny");
    make_log(&dir.join("log"));
    let values = ["12288", "0x50000000", "4096", "4096", "80", "64"];
    let run = rdsinit(&dir, &args(&["-f", "log", "data"], &values));
    run.assert_ok();
    // The statistics of the new heap: one free block of every whole chunk after the header.
    assert!(run.stdout.contains("Heap statistics:"), "{}", run.stdout);
    assert!(
        run.stdout.contains("free_blocks              1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("allocated_bytes          0"),
        "{}",
        run.stdout
    );
    verify_segment(
        &dir.join("log"),
        &dir.join("data"),
        Layout {
            data_len: 3 * 4096,
            start_addr: 0x5000_0000,
            heap_len: 4096,
            static_len: 4096,
            nlists: 80,
            chunk_size: 64,
        },
    );
}
