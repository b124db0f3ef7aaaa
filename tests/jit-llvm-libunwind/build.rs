//! Link LLVM libunwind (Debian `libunwind-14`: libunwind.so.1) ahead of
//! libgcc_s, so that every `_Unwind_*` and `__register_frame` call of the
//! test binaries, Rust std's and libstdc++'s included, goes to it.

fn main() {
    let dir = format!(
        "/usr/lib/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap()
    );
    let lib = format!("{dir}/libunwind.so.1");
    if !std::path::Path::new(&lib).exists() {
        panic!("{lib} is missing: install Debian's libunwind-14 (LLVM libunwind), as .ci/run does");
    }
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=dylib:+verbatim=libunwind.so.1");
    println!("cargo:rerun-if-changed=build.rs");
}
