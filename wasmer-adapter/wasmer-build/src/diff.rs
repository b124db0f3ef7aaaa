//! Differential runs, stock vs generic-lsda: the same generated module run
//! on both builds must give the same outcome line.
//!
//! [`generate`] makes module `seed` of a [`Generator`]: `wasm-smith`
//! (exceptions on, every item exported, NaNs canonicalized, fuel-bounded
//! so every call ends), or [`biased`](crate::biased), two linked modules
//! dense in `try_table`s, throws and cross-instance calls. Both builds
//! link the same generators, so a seed names one module. [`outcome`]
//! instantiates it and calls every exported function with zero
//! arguments, in export order, recording each call's results, trap code
//! or uncaught exception (tag and payload), then the exported globals and
//! a hash of each exported memory: what a host can see.

use std::fmt::Write;
use std::hash::{DefaultHasher, Hash, Hasher};
use wasm_smith::{Config, Module as SmithModule};
use wasmer::{
    ExportType, Extern, ExternType, Imports, Instance, Module, RuntimeError, Store, Tag, Type,
    Value,
};

/// Fuel of each exported function's loops and calls (wasm-smith's
/// `ensure_termination`): small, so recursion ends long before the stack
/// would, whose depth the two builds' frame sizes would set differently.
const FUEL: u32 = 1_000;

/// Which generator makes a seed's module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generator {
    /// `wasm-smith` with exceptions: any module, no imports.
    Smith,
    /// [`crate::biased`]: exceptions everywhere, two linked instances.
    Biased,
}

impl std::str::FromStr for Generator {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "smith" => Ok(Generator::Smith),
            "biased" => Ok(Generator::Biased),
            _ => Err(format!("unknown generator `{s}` (smith or biased)")),
        }
    }
}

impl std::fmt::Display for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Generator::Smith => "smith",
            Generator::Biased => "biased",
        })
    }
}

/// A seed's module, and the one it imports from when there is one.
pub struct Generated {
    /// Instantiated first; its exports are the main module's `"helper"`
    /// imports.
    pub helper: Option<Vec<u8>>,
    pub main: Vec<u8>,
}

/// The module(s) of `generator` for `seed`.
pub fn generate(generator: Generator, seed: u64) -> Result<Generated, String> {
    match generator {
        Generator::Smith => Ok(Generated {
            helper: None,
            main: generate_smith(seed)?,
        }),
        Generator::Biased => {
            let modules = crate::biased::generate(seed)?;
            Ok(Generated {
                helper: Some(modules.helper),
                main: modules.main,
            })
        }
    }
}

/// wasm-smith's module number `seed`, as wasm bytes.
fn generate_smith(seed: u64) -> Result<Vec<u8>, String> {
    use rand::{Rng, SeedableRng};
    let mut bytes = vec![0u8; 4096];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    let mut u = arbitrary::Unstructured::new(&bytes);
    let config = Config {
        exceptions_enabled: true,
        export_everything: true,
        canonicalize_nans: true,
        allow_start_export: false,
        max_imports: 0,
        min_funcs: 1,
        max_memory32_bytes: 1 << 20,
        max_table_elements: 1_000,
        // Proposals Wasmer 7.5 does not run, or not identically.
        gc_enabled: false,
        memory64_enabled: false,
        threads_enabled: false,
        tail_call_enabled: false,
        relaxed_simd_enabled: false,
        wide_arithmetic_enabled: false,
        custom_page_sizes_enabled: false,
        ..Config::default()
    };
    let mut module =
        SmithModule::new(config, &mut u).map_err(|e| format!("wasm-smith: seed {seed}: {e}"))?;
    module
        .ensure_termination(FUEL)
        .map_err(|e| format!("wasm-smith: seed {seed}: {e}"))?;
    Ok(module.to_bytes())
}

/// How many `try_table`, `throw` and `throw_ref` instructions `wasm` has
/// (0 if it does not parse).
pub fn exception_instructions(wasm: &[u8]) -> usize {
    use wasmer::wasmparser::{Operator, Parser, Payload};
    let mut count = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::CodeSectionEntry(body)) = payload else {
            continue;
        };
        let Ok(mut reader) = body.get_operators_reader() else {
            continue;
        };
        while let Ok(op) = reader.read() {
            if matches!(
                op,
                Operator::TryTable { .. } | Operator::Throw { .. } | Operator::ThrowRef
            ) {
                count += 1;
            }
        }
    }
    count
}

/// What running `generated` shows a host, as one line.
pub fn outcome(store: &mut Store, generated: &Generated) -> String {
    let mut imports = Imports::new();
    if let Some(helper) = &generated.helper {
        let helper = match Module::new(store, helper) {
            Ok(module) => module,
            Err(e) => return format!("helper compile error: {e}"),
        };
        let helper = match Instance::new(store, &helper, &Imports::new()) {
            Ok(instance) => instance,
            Err(e) => return format!("helper instantiate error: {e}"),
        };
        imports.register_namespace(
            "helper",
            helper
                .exports
                .iter()
                .map(|(name, item)| (name.clone(), item.clone())),
        );
    }
    let module = match Module::new(store, &generated.main) {
        Ok(module) => module,
        Err(e) => return format!("compile error: {e}"),
    };
    let instance = match Instance::new(store, &module, &imports) {
        Ok(instance) => instance,
        Err(e) => return format!("instantiate error: {e}"),
    };
    let exports: Vec<ExportType> = module.exports().collect();
    let mut line = String::new();
    for export in &exports {
        let ExternType::Function(ty) = export.ty() else {
            continue;
        };
        let Ok(function) = instance.exports.get_function(export.name()) else {
            continue;
        };
        let args: Vec<Value> = ty.params().iter().map(|&ty| zero(ty)).collect();
        let result = function.call(store, &args);
        let _ = write!(line, "{:?}=", export.name());
        match result {
            Ok(values) => {
                let _ = write!(line, "ok({})", values_text(&values));
            }
            Err(e) => line.push_str(&error_text(store, &instance, &exports, e)),
        }
        line.push_str(&host_state(store, &instance, &exports));
        line.push(' ');
    }
    line
}

/// A call's error: a trap by code, an exception by tag and payload.
fn error_text(
    store: &mut Store,
    instance: &Instance,
    exports: &[ExportType],
    error: RuntimeError,
) -> String {
    if let Some(exception) = error.to_exception() {
        let tag = exception.tag(store);
        let payload = exception.payload(store);
        return format!(
            "exception({}; {})",
            tag_name(instance, exports, &tag),
            values_text(&payload)
        );
    }
    match error.to_trap() {
        Some(code) => format!("trap({code:?})"),
        None => "error".into(),
    }
}

/// An exported tag's export name; exports are everything, so a tag of the
/// module always has one.
fn tag_name(instance: &Instance, exports: &[ExportType], tag: &Tag) -> String {
    exports
        .iter()
        .find(|e| matches!(instance.exports.get_extern(e.name()), Some(Extern::Tag(t)) if t == tag))
        .map_or("foreign".into(), |e| format!("{:?}", e.name()))
}

/// The zero of `ty`: null for references.
fn zero(ty: Type) -> Value {
    match ty {
        Type::I32 => Value::I32(0),
        Type::I64 => Value::I64(0),
        Type::F32 => Value::F32(0.0),
        Type::F64 => Value::F64(0.0),
        Type::V128 => Value::V128(0),
        Type::ExternRef => Value::ExternRef(None),
        Type::FuncRef => Value::FuncRef(None),
        Type::ExceptionRef => Value::ExceptionRef(None),
    }
}

/// Values by bit pattern; references by whether they are null.
pub fn values_text(values: &[Value]) -> String {
    let mut text = String::new();
    for value in values {
        let _ = match value {
            Value::I32(v) => write!(text, "i32:{v:#x},"),
            Value::I64(v) => write!(text, "i64:{v:#x},"),
            Value::F32(v) => write!(text, "f32:{:#x},", v.to_bits()),
            Value::F64(v) => write!(text, "f64:{:#x},", v.to_bits()),
            Value::V128(v) => write!(text, "v128:{v:#x},"),
            Value::FuncRef(f) => write!(text, "funcref:{},", null_text(f.is_none())),
            Value::ExternRef(r) => write!(text, "externref:{},", null_text(r.is_none())),
            Value::ExceptionRef(r) => write!(text, "exnref:{},", null_text(r.is_none())),
        };
    }
    text
}

fn null_text(null: bool) -> &'static str {
    if null { "null" } else { "ref" }
}

/// The exported globals' values and a hash of each exported memory, after
/// a call.
fn host_state(store: &mut Store, instance: &Instance, exports: &[ExportType]) -> String {
    let mut text = String::from(" [");
    for export in exports {
        match export.ty() {
            ExternType::Global(_) => {
                if let Ok(global) = instance.exports.get_global(export.name()) {
                    let value = global.get(store);
                    let _ = write!(text, "{:?}:{}", export.name(), values_text(&[value]));
                }
            }
            ExternType::Memory(_) => {
                if let Ok(memory) = instance.exports.get_memory(export.name()) {
                    let view = memory.view(store);
                    let mut bytes = vec![0u8; view.data_size() as usize];
                    let hash = match view.read(0, &mut bytes) {
                        Ok(()) => {
                            // Both builds are one toolchain: the same hasher.
                            let mut hasher = DefaultHasher::new();
                            bytes.hash(&mut hasher);
                            hasher.finish()
                        }
                        Err(_) => 0,
                    };
                    let _ = write!(
                        text,
                        "{:?}:{}p:{hash:016x},",
                        export.name(),
                        bytes.len() >> 16
                    );
                }
            }
            _ => {}
        }
    }
    text.push(']');
    text
}

/// What stock 7.5's host reads of a payload that Wasm threw with the
/// values `payload` (an outcome line's `i32:0x3,f64:0x...,` text): stock's
/// code packs the fields, each aligned to its size (a reference is
/// pointer-sized), and the host reads one 16-byte `RawValue` per field
/// (docs/wasmer.md, "Exception payloads"). `None` when that cannot be told
/// from the text: a non-null reference thrown (its bits are not in the
/// text), or a reference field read from non-zero bytes.
pub fn stock_packed_reading(payload: &str) -> Option<String> {
    let mut fields = Vec::new();
    for field in payload.split(',').filter(|f| !f.is_empty()) {
        let (ty, value) = field.split_once(':')?;
        let size = match ty {
            "i32" | "f32" => 4,
            "i64" | "f64" => 8,
            "v128" => 16,
            "funcref" | "externref" | "exnref" => size_of::<usize>(),
            _ => return None,
        };
        let bits = match value {
            "null" if size == size_of::<usize>() && ty.ends_with("ref") => 0,
            _ => u128::from_str_radix(value.strip_prefix("0x")?, 16).ok()?,
        };
        fields.push((ty, size, bits));
    }
    let mut memory = vec![0u8; 16 * fields.len()];
    let mut offset = 0;
    for &(_, size, bits) in &fields {
        offset = usize::next_multiple_of(offset, size);
        memory[offset..offset + size].copy_from_slice(&bits.to_le_bytes()[..size]);
        offset += size;
    }
    let mut text = String::new();
    for (i, &(ty, size, _)) in fields.iter().enumerate() {
        let mut bytes = [0u8; 16];
        bytes[..size].copy_from_slice(&memory[16 * i..16 * i + size]);
        let read = u128::from_le_bytes(bytes);
        if ty.ends_with("ref") {
            if read != 0 {
                return None;
            }
            let _ = write!(text, "{ty}:null,");
        } else {
            let _ = write!(text, "{ty}:{read:#x},");
        }
    }
    Some(text)
}

/// Where each uncaught exception's payload text lies in an outcome line
/// (`exception(TAG; PAYLOAD)`), or `None` if the line cannot be read so.
fn payload_spans(line: &str) -> Option<Vec<std::ops::Range<usize>>> {
    const OPEN: &str = "exception(";
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(at) = line[from..].find(OPEN) {
        let inside = from + at + OPEN.len();
        let close = inside + line[inside..].find(')')?;
        let separator = line[inside..close].rfind("; ")?;
        spans.push(inside + separator + 2..close);
        from = close;
    }
    Some(spans)
}

/// `ours` (generic-lsda's outcome line) with every uncaught exception's
/// payload as stock's host reads it ([`stock_packed_reading`]): equal to
/// stock's line when that misreading is the only difference.
pub fn as_stock_reads(ours: &str) -> Option<String> {
    let mut out = String::new();
    let mut from = 0;
    for span in payload_spans(ours)? {
        out.push_str(&ours[from..span.start]);
        out.push_str(&stock_packed_reading(&ours[span.clone()])?);
        from = span.end;
    }
    out.push_str(&ours[from..]);
    Some(out)
}

/// The payload text of each uncaught exception in an outcome line, or
/// `None` if the line cannot be read so.
pub fn uncaught_payloads(line: &str) -> Option<Vec<&str>> {
    Some(
        payload_spans(line)?
            .into_iter()
            .map(|span| &line[span])
            .collect(),
    )
}
