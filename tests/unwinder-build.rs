//! Build script of `jit-llvm-libunwind` and `jit-nongnu-libunwind`: link
//! the package's unwinder ahead of libgcc_s, so that every `_Unwind_*` call
//! of its test binaries (Rust std's and libstdc++'s included) goes to it.
//! LLVM libunwind is Debian's `libunwind-14` (libunwind.so.1), nongnu
//! libunwind is `libunwind8` (libunwind.so.8).

fn main() {
    let package = std::env::var("CARGO_PKG_NAME").unwrap();
    let (lib, debian) = if package.contains("llvm") {
        ("libunwind.so.1", "libunwind-14 (LLVM libunwind)")
    } else {
        ("libunwind.so.8", "libunwind8 (nongnu libunwind)")
    };
    let dir = format!(
        "/usr/lib/{}-linux-gnu",
        std::env::var("CARGO_CFG_TARGET_ARCH").unwrap()
    );
    if !std::path::Path::new(&format!("{dir}/{lib}")).exists() {
        panic!("{dir}/{lib} is missing: install Debian's {debian}, as .ci/run does");
    }
    println!("cargo:rustc-link-search=native={dir}");
    println!("cargo:rustc-link-lib=dylib:+verbatim={lib}");
    println!("cargo:rerun-if-changed=../unwinder-build.rs");
}
