//! Wasmer 7.5's Cranelift backend, stock or with the `generic-lsda` feature,
//! as one library built twice: by the `stock` workspace (the released
//! crates) and by the `generic-lsda` workspace (the released
//! `wasmer-compiler-cranelift` with `generic-lsda.patch`, feature on).
//!
//! [`BACKEND`] says which one this build is; [`engine`] makes an engine
//! with the exception-handling proposal on; [`wast`] runs `.wast` files;
//! [`diff`] runs generated modules (of wasm-smith or [`biased`]) for the
//! differential fuzzer.

pub mod biased;
pub mod diff;
pub mod wast;

use wasmer::{Engine, sys};

/// `triple` with the least CPU features Wasmer's Cranelift takes (SSE2 on
/// x86), so that what is compiled for it does not depend on the machine.
pub fn baseline_target(triple: sys::Triple) -> sys::Target {
    let mut cpu_features = sys::CpuFeature::set();
    if matches!(
        triple.architecture,
        sys::Architecture::X86_64 | sys::Architecture::X86_32(_)
    ) {
        cpu_features.insert(sys::CpuFeature::SSE2);
    }
    sys::Target::new(triple, cpu_features)
}

/// Which Cranelift backend this build links.
pub const BACKEND: &str = if cfg!(feature = "generic-lsda") {
    "generic-lsda"
} else {
    "stock"
};

/// An engine on this build's Cranelift backend, with exceptions on.
///
/// For debugging: `WASMER_EH_VERIFY=1` runs Cranelift's verifier on every
/// function; `WASMER_EH_DUMP=<dir>` writes each function's IR there.
pub fn engine() -> Engine {
    use sys::CompilerConfig;
    let mut features = sys::Features::default();
    features.exceptions(true);
    let mut cranelift = sys::Cranelift::default();
    if std::env::var_os("WASMER_EH_VERIFY").is_some() {
        cranelift.enable_verifier();
    }
    if let Some(dir) = std::env::var_os("WASMER_EH_DUMP") {
        let callbacks = wasmer_compiler_cranelift::CraneliftCallbacks::new(dir.into())
            .expect("WASMER_EH_DUMP names a directory that can be created");
        cranelift.callbacks(Some(callbacks));
    }
    sys::EngineBuilder::new(cranelift)
        .set_features(Some(features))
        .engine()
        .into()
}
