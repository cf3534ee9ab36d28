//! `#[derive(rvm::Pod, rvm::Zeroable)]` in a crate with no bytemuck dependency (this one's
//! Cargo.toml names only rvm), used with the persistent containers.

use rvm::typed::FieldPtr;

#[derive(Clone, Copy, Debug, PartialEq, rvm::Pod, rvm::Zeroable)]
#[repr(C)]
struct Point {
    x: i32,
    y: i32,
    tag: [u8; 8],
}

#[derive(Clone, Copy, rvm::Pod, rvm::Zeroable)]
#[repr(transparent)]
struct Meters(f64);

#[derive(Clone, Copy, rvm::Zeroable)]
#[repr(C)]
struct OnlyZeroable {
    a: u8,
    b: u64,
}

fn is_pod<T: rvm::Pod>() {}

#[test]
fn derived_types_are_pod_and_round_trip_their_bytes() {
    is_pod::<Point>();
    is_pod::<Meters>();
    is_pod::<FieldPtr<Point>>();
    let p = Point {
        x: -3,
        y: 7,
        tag: *b"abcdefgh",
    };
    let bytes = rvm::__private::bytemuck::bytes_of(&p).to_vec();
    assert_eq!(bytes.len(), 16);
    assert_eq!(&bytes[..4], &(-3i32).to_le_bytes());
    let back: Point = rvm::__private::bytemuck::pod_read_unaligned(&bytes);
    assert_eq!(back, p);
    let z: OnlyZeroable = rvm::Zeroable::zeroed();
    assert_eq!((z.a, z.b), (0, 0));
    assert_eq!(<Meters as rvm::Zeroable>::zeroed().0, 0.0);
}

#[test]
fn derived_pod_values_live_in_a_store() {
    let dir = std::env::temp_dir().join(format!("rvm-derive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let options = rvm::store::StoreOptions::default()
        .start_address(0x3800_0000_0000)
        .heap_bytes(1 << 20)
        .log_bytes(1 << 20);
    // SAFETY: the store's files are in the test's own directory; nothing else shortens them.
    let store = unsafe { rvm::store::Store::open_or_create(&dir, options) }.unwrap();
    let root = store.root::<rvm::typed::PVec<Point>>().unwrap();
    let mut tx = store.begin().unwrap();
    let v = rvm::typed::PVec::new(&mut tx, &store).unwrap();
    root.set(&mut tx, &v).unwrap();
    let p = Point {
        x: 1,
        y: 2,
        tag: *b"persist!",
    };
    v.push(&mut tx, &store, &p).unwrap();
    let y = rvm::field!(v.as_slice(&store).unwrap().at(0).unwrap(), Point, y);
    y.write(&mut tx, &store, &20).unwrap();
    tx.end(rvm::CommitMode::Flush).unwrap();
    assert_eq!(
        root.get().unwrap().get(&store, 0).unwrap(),
        Point { y: 20, ..p }
    );
    drop(root);
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}
