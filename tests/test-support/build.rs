fn main() {
    println!("cargo:rerun-if-changed=cxx/eh_runtime.cpp");
    println!("cargo:rerun-if-changed=cxx/eh_runtime.h");
    cc::Build::new()
        .cpp(true)
        .file("cxx/eh_runtime.cpp")
        .flag_if_supported("-std=c++17")
        .compile("eh_runtime");
}
