//! Give the shared library the classic soname, so programs linked against it record
//! `librvm.so.1` and the installed names (`-lrvmpt`, `librvmlwp.so.1`, ...) all resolve to it.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librvm.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
