//! A `.wast` runner on the `wasmer` 7.5 API.
//!
//! Every directive is counted once: passed, failed (with its reason), or
//! skipped when its module needs a proposal stock Wasmer 7.5's Cranelift
//! backend does not implement (tail calls, typed function references, GC
//! types, multiple memories), or depends on a module that was skipped. A
//! skipped directive is never counted as passed.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use wasmer::wasmparser::{self, Operator, Payload};
use wasmer::{
    CompileError, Exports, Extern, ExternRef, Function, FunctionType, Global, Imports, Instance,
    InstantiationError, Memory, MemoryType, Module, Store, Table, TableType, Type, Value,
};
use wast::core::{HeapType, NanPattern, V128Pattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};

/// One file's result.
#[derive(Debug, Default)]
pub struct FileReport {
    /// Directives that behaved as the file says.
    pub passed: usize,
    /// Directives that did not, with the first one's line and reason.
    pub failed: usize,
    /// Directives not run, with their reasons (line: reason).
    pub skipped: Vec<(usize, String)>,
    /// Every failure: line and reason.
    pub failures: Vec<(usize, String)>,
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if !self.skipped.is_empty() {
            write!(f, ", {} skipped", self.skipped.len())?;
        }
        if let Some((line, reason)) = self.failures.first() {
            write!(f, "; first failure: line {line}: {reason}")?;
        }
        Ok(())
    }
}

/// Why a file could not be run at all.
#[derive(Debug)]
pub enum WastError {
    /// Reading the file failed.
    Read(std::io::Error),
    /// The file is not valid `.wast` text.
    Parse(String),
}

impl fmt::Display for WastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(e) => write!(f, "cannot read: {e}"),
            Self::Parse(e) => write!(f, "cannot parse: {e}"),
        }
    }
}

impl std::error::Error for WastError {}

/// Run one `.wast` file on a fresh store of `crate::engine()`.
pub fn run_file(path: &Path) -> Result<FileReport, WastError> {
    let text = std::fs::read_to_string(path).map_err(WastError::Read)?;
    let buffer = ParseBuffer::new(&text).map_err(|e| WastError::Parse(located(e, path, &text)))?;
    let wast =
        parser::parse::<Wast>(&buffer).map_err(|e| WastError::Parse(located(e, path, &text)))?;
    let mut runner = Runner::new();
    let mut report = FileReport::default();
    for directive in wast.directives {
        let line = text[..directive.span().offset()].lines().count().max(1);
        let outcome = catch_unwind(AssertUnwindSafe(|| runner.directive(directive)))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Outcome::Failed(format!("panicked: {what}"))
            });
        match outcome {
            Outcome::Passed => report.passed += 1,
            Outcome::Failed(reason) => {
                report.failed += 1;
                report.failures.push((line, reason));
            }
            Outcome::Skipped(reason) => report.skipped.push((line, reason)),
        }
    }
    Ok(report)
}

fn located(mut e: wast::Error, path: &Path, text: &str) -> String {
    e.set_path(path);
    e.set_text(text);
    e.to_string()
}

enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// A module as the file defined it: compiled, or skipped with a reason.
#[derive(Clone)]
enum Defined {
    Module(Module),
    Skipped(String),
}

/// An instance, or the reason it does not exist.
#[derive(Clone)]
enum Live {
    Instance(Instance),
    Skipped(String),
}

struct Runner {
    store: Store,
    /// The last instantiated module.
    current: Option<Live>,
    instances: HashMap<String, Live>,
    definitions: HashMap<String, Defined>,
    registered: HashMap<String, Live>,
}

macro_rules! fail {
    ($($arg:tt)*) => { return Outcome::Failed(format!($($arg)*)) };
}

impl Runner {
    fn new() -> Self {
        let mut store = Store::new(crate::engine());
        let spectest = Live::Instance(spectest(&mut store));
        Self {
            store,
            current: None,
            instances: HashMap::new(),
            definitions: HashMap::new(),
            registered: HashMap::from([("spectest".to_string(), spectest)]),
        }
    }

    fn directive(&mut self, directive: WastDirective<'_>) -> Outcome {
        match directive {
            WastDirective::Module(mut module) => {
                let id = quote_id(&module);
                match self.define(&mut module) {
                    Err(reason) => Outcome::Failed(reason),
                    Ok(defined) => self.make_current(id, defined),
                }
            }
            WastDirective::ModuleDefinition(mut module) => {
                let id = quote_id(&module);
                match self.define(&mut module) {
                    Err(reason) => fail!("{reason}"),
                    Ok(defined) => {
                        let outcome = match &defined {
                            Defined::Skipped(reason) => Outcome::Skipped(reason.clone()),
                            Defined::Module(_) => Outcome::Passed,
                        };
                        if let Some(id) = id {
                            self.definitions.insert(id, defined);
                        }
                        outcome
                    }
                }
            }
            WastDirective::ModuleInstance {
                instance, module, ..
            } => {
                let Some(defined) = module.and_then(|m| self.definitions.get(m.name())).cloned()
                else {
                    fail!("instance of an unknown module definition")
                };
                self.make_current(instance.map(|i| i.name().to_string()), defined)
            }
            WastDirective::Register { name, module, .. } => match self.instance(module) {
                Err(Outcome::Skipped(reason)) => {
                    // Modules importing from it are skipped in turn.
                    self.registered
                        .insert(name.to_string(), Live::Skipped(reason.clone()));
                    Outcome::Skipped(reason)
                }
                Err(outcome) => outcome,
                Ok(instance) => {
                    self.registered
                        .insert(name.to_string(), Live::Instance(instance));
                    Outcome::Passed
                }
            },
            WastDirective::Invoke(invoke) => match self.invoke(&invoke) {
                Err(outcome) => outcome,
                Ok(Ok(_)) => Outcome::Passed,
                Ok(Err(e)) => fail!("invoke `{}` failed: {e}", invoke.name),
            },
            WastDirective::AssertReturn { exec, results, .. } => match self.execute(exec) {
                Err(outcome) => outcome,
                Ok(Err(e)) => fail!("expected a return, got: {e}"),
                Ok(Ok(values)) => match compare(&self.store, &values, &results) {
                    Ok(()) => Outcome::Passed,
                    Err(reason) => Outcome::Failed(reason),
                },
            },
            WastDirective::AssertTrap { exec, message, .. } => match self.execute(exec) {
                Err(outcome) => outcome,
                Ok(Ok(values)) => fail!("expected trap `{message}`, got {values:?}"),
                Ok(Err(Failure::Exception(e))) => {
                    fail!("expected trap `{message}`, got an exception: {e}")
                }
                Ok(Err(_)) => Outcome::Passed,
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Err(outcome) => outcome,
                Ok(Ok(values)) => fail!("expected `{message}`, got {values:?}"),
                Ok(Err(Failure::Exception(e))) => {
                    fail!("expected `{message}`, got an exception: {e}")
                }
                Ok(Err(_)) => Outcome::Passed,
            },
            WastDirective::AssertException { exec, .. } => match self.execute(exec) {
                Err(outcome) => outcome,
                Ok(Ok(values)) => fail!("expected an exception, got {values:?}"),
                Ok(Err(Failure::Exception(_))) => Outcome::Passed,
                Ok(Err(e)) => fail!("expected an exception, got: {e}"),
            },
            WastDirective::AssertMalformed {
                mut module,
                message,
                ..
            } => match module.encode() {
                // Malformed text is refused before any binary exists.
                Err(_) => Outcome::Passed,
                Ok(bytes) => self.assert_rejected(&bytes, message),
            },
            WastDirective::AssertInvalid {
                mut module,
                message,
                ..
            } => match module.encode() {
                Err(e) => fail!("cannot encode the module to check that it is invalid: {e}"),
                Ok(bytes) => self.assert_rejected(&bytes, message),
            },
            WastDirective::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let bytes = match module.encode() {
                    Err(e) => fail!("cannot encode: {e}"),
                    Ok(bytes) => bytes,
                };
                if let Some(reason) = missing_feature(&bytes) {
                    return Outcome::Skipped(reason);
                }
                let compiled = match Module::new(&self.store, &bytes) {
                    Err(e) => fail!("expected `{message}` at link time, but compiling failed: {e}"),
                    Ok(m) => m,
                };
                match self.instantiate(&compiled) {
                    Err(Skip(reason)) => Outcome::Skipped(reason),
                    Ok(Ok(_)) => fail!("expected `{message}`, but it linked"),
                    Ok(Err(InstantiationError::Link(_))) => Outcome::Passed,
                    Ok(Err(e)) => fail!("expected `{message}` at link time, got: {e}"),
                }
            }
            other => Outcome::Skipped(format!(
                "directive not supported by this runner: {:?}",
                std::mem::discriminant(&other)
            )),
        }
    }

    /// `assert_invalid` / `assert_malformed` of a binary: Wasmer must refuse
    /// it as invalid Wasm, not for any other reason (a codegen error or an
    /// unsupported feature would be a failure).
    fn assert_rejected(&mut self, bytes: &[u8], message: &str) -> Outcome {
        // A module that needs a proposal Wasmer lacks is skipped here too:
        // the verdict would be about that proposal, not about exceptions
        // (Wasmer 7.5's validator accepts the multi-memory modules the
        // pre-3.0 suite calls invalid).
        if let Some(reason) = missing_feature(bytes) {
            return Outcome::Skipped(reason);
        }
        match Module::new(&self.store, bytes) {
            Ok(_) => fail!("expected `{message}`, but the module compiled"),
            Err(CompileError::Wasm(_) | CompileError::Validate(_)) => Outcome::Passed,
            Err(e) => fail!("expected `{message}`, got a non-validation error: {e}"),
        }
    }

    /// Instantiate a defined module (or carry its skip) as the current
    /// instance, named `id` if given.
    fn make_current(&mut self, id: Option<String>, defined: Defined) -> Outcome {
        let live = match defined {
            Defined::Skipped(reason) => Live::Skipped(reason),
            Defined::Module(m) => match self.instantiate(&m) {
                Err(Skip(reason)) => Live::Skipped(reason),
                Ok(Err(e)) => fail!("instantiation failed: {e}"),
                Ok(Ok(instance)) => Live::Instance(instance),
            },
        };
        if let Some(id) = id {
            self.instances.insert(id, live.clone());
        }
        self.current = Some(live.clone());
        match live {
            Live::Skipped(reason) => Outcome::Skipped(reason),
            Live::Instance(_) => Outcome::Passed,
        }
    }

    fn define(&mut self, module: &mut QuoteWat<'_>) -> Result<Defined, String> {
        let bytes = module.encode().map_err(|e| format!("cannot encode: {e}"))?;
        if let Some(reason) = missing_feature(&bytes) {
            return Ok(Defined::Skipped(reason));
        }
        Module::new(&self.store, &bytes)
            .map(Defined::Module)
            .map_err(|e| format!("compilation failed: {e}"))
    }

    /// Link `module` against the registered instances.
    fn instantiate(
        &mut self,
        module: &Module,
    ) -> Result<Result<Instance, InstantiationError>, Skip> {
        let mut imports = Imports::new();
        for import in module.imports() {
            match self.registered.get(import.module()) {
                Some(Live::Skipped(reason)) => {
                    return Err(Skip(format!(
                        "imports from `{}`, which was skipped ({reason})",
                        import.module()
                    )));
                }
                Some(Live::Instance(instance)) => {
                    if let Some(export) = instance.exports.get_extern(import.name()) {
                        imports.define(import.module(), import.name(), export.clone());
                    }
                }
                None => {}
            }
        }
        Ok(Instance::new(&mut self.store, module, &imports))
    }

    fn instance(&self, id: Option<wast::token::Id<'_>>) -> Result<Instance, Outcome> {
        let live = match id {
            Some(id) => self.instances.get(id.name()),
            None => self.current.as_ref(),
        };
        match live {
            None => Err(Outcome::Failed("no such module instance".into())),
            Some(Live::Skipped(reason)) => Err(Outcome::Skipped(format!(
                "its module was skipped ({reason})"
            ))),
            Some(Live::Instance(i)) => Ok(i.clone()),
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<Result<Vec<Value>, Failure>, Outcome> {
        let instance = self.instance(invoke.module)?;
        let function: Function = match instance.exports.get_function(invoke.name) {
            Ok(f) => f.clone(),
            Err(e) => return Err(Outcome::Failed(format!("no export `{}`: {e}", invoke.name))),
        };
        let mut args = Vec::with_capacity(invoke.args.len());
        for arg in &invoke.args {
            match argument(&mut self.store, arg) {
                Ok(v) => args.push(v),
                Err(reason) => return Err(Outcome::Skipped(reason)),
            }
        }
        Ok(match function.call(&mut self.store, &args) {
            Ok(values) => Ok(values.into_vec()),
            Err(e) if e.is_exception() => Err(Failure::Exception(e.to_string())),
            Err(e) => Err(Failure::Trap(e.to_string())),
        })
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> Result<Result<Vec<Value>, Failure>, Outcome> {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke),
            WastExecute::Get { module, global, .. } => {
                let instance = self.instance(module)?;
                match instance.exports.get_global(global) {
                    Ok(g) => Ok(Ok(vec![g.get(&mut self.store)])),
                    Err(e) => Err(Outcome::Failed(format!("no global `{global}`: {e}"))),
                }
            }
            WastExecute::Wat(mut wat) => {
                let bytes = match wat.encode() {
                    Ok(b) => b,
                    Err(e) => return Err(Outcome::Failed(format!("cannot encode: {e}"))),
                };
                if let Some(reason) = missing_feature(&bytes) {
                    return Err(Outcome::Skipped(reason));
                }
                let module = match Module::new(&self.store, &bytes) {
                    Ok(m) => m,
                    Err(e) => return Err(Outcome::Failed(format!("compilation failed: {e}"))),
                };
                match self.instantiate(&module) {
                    Err(Skip(reason)) => Err(Outcome::Skipped(reason)),
                    Ok(Ok(_)) => Ok(Ok(Vec::new())),
                    // The start function trapped or threw.
                    Ok(Err(InstantiationError::Start(e))) if e.is_exception() => {
                        Ok(Err(Failure::Exception(e.to_string())))
                    }
                    Ok(Err(InstantiationError::Start(e))) => Ok(Err(Failure::Trap(e.to_string()))),
                    Ok(Err(e)) => Err(Outcome::Failed(format!("instantiation failed: {e}"))),
                }
            }
        }
    }
}

struct Skip(String);

enum Failure {
    Trap(String),
    Exception(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Trap(e) => write!(f, "trap: {e}"),
            Self::Exception(e) => write!(f, "uncaught exception: {e}"),
        }
    }
}

fn quote_id(module: &QuoteWat<'_>) -> Option<String> {
    match module {
        QuoteWat::Wat(Wat::Module(m)) => m.id.map(|id| id.name().to_string()),
        _ => None,
    }
}

/// The proposal a module needs that stock Wasmer 7.5's Cranelift backend
/// lacks, if any: read from the binary with wasmparser, not guessed.
pub fn missing_feature(bytes: &[u8]) -> Option<String> {
    let mut memories = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return None;
        };
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader.into_iter().flatten() {
                    if group.is_explicit_rec_group() || group.types().len() > 1 {
                        return Some("GC rec groups (not in stock Wasmer 7.5 Cranelift)".into());
                    }
                    for sub in group.types() {
                        if !sub.is_final || sub.supertype_idx.is_some() {
                            return Some("GC subtyping (not in stock Wasmer 7.5 Cranelift)".into());
                        }
                        if let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner {
                            if f.params().iter().chain(f.results()).any(typed_reference) {
                                return Some(TYPED_REFS.into());
                            }
                        } else {
                            return Some(
                                "GC struct/array types (not in stock Wasmer 7.5 Cranelift)".into(),
                            );
                        }
                    }
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports().flatten() {
                    if matches!(import.ty, wasmparser::TypeRef::Memory(_)) {
                        memories += 1;
                    }
                }
            }
            Payload::MemorySection(reader) => memories += reader.count() as usize,
            Payload::CodeSectionEntry(body) => {
                if let Ok(locals) = body.get_locals_reader() {
                    for local in locals.into_iter().flatten() {
                        if typed_reference(&local.1) {
                            return Some(TYPED_REFS.into());
                        }
                    }
                }
                let Ok(mut ops) = body.get_operators_reader() else {
                    continue;
                };
                while !ops.eof() {
                    let Ok(op) = ops.read() else { break };
                    match op {
                        Operator::ReturnCall { .. }
                        | Operator::ReturnCallIndirect { .. }
                        | Operator::ReturnCallRef { .. } => {
                            return Some(
                                "tail calls, return_call* (not in stock Wasmer 7.5 Cranelift)"
                                    .into(),
                            );
                        }
                        Operator::CallRef { .. }
                        | Operator::RefAsNonNull
                        | Operator::BrOnNull { .. }
                        | Operator::BrOnNonNull { .. } => return Some(TYPED_REFS.into()),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    (memories > 1).then(|| "multiple memories (not in stock Wasmer 7.5)".into())
}

const TYPED_REFS: &str = "typed function references (not in stock Wasmer 7.5 Cranelift)";

fn typed_reference(ty: &wasmparser::ValType) -> bool {
    match ty {
        wasmparser::ValType::Ref(r) => {
            !r.is_nullable() || matches!(r.heap_type(), wasmparser::HeapType::Concrete(_))
        }
        _ => false,
    }
}

fn argument(store: &mut Store, arg: &WastArg<'_>) -> Result<Value, String> {
    let WastArg::Core(arg) = arg else {
        return Err("component-model argument".into());
    };
    Ok(match arg {
        WastArgCore::I32(v) => Value::I32(*v),
        WastArgCore::I64(v) => Value::I64(*v),
        WastArgCore::F32(v) => Value::F32(f32::from_bits(v.bits)),
        WastArgCore::F64(v) => Value::F64(f64::from_bits(v.bits)),
        WastArgCore::V128(v) => Value::V128(u128::from_le_bytes(v.to_le_bytes())),
        WastArgCore::RefNull(HeapType::Abstract { ty, .. }) => match ty {
            wast::core::AbstractHeapType::Func => Value::FuncRef(None),
            wast::core::AbstractHeapType::Extern => Value::ExternRef(None),
            wast::core::AbstractHeapType::Exn => Value::ExceptionRef(None),
            other => return Err(format!("ref.null {other:?} argument")),
        },
        WastArgCore::RefExtern(n) => Value::ExternRef(Some(ExternRef::new(store, *n))),
        other => return Err(format!("argument {other:?}")),
    })
}

fn compare(store: &Store, values: &[Value], expected: &[WastRet<'_>]) -> Result<(), String> {
    if values.len() != expected.len() {
        return Err(format!(
            "expected {} results, got {values:?}",
            expected.len()
        ));
    }
    for (i, (value, expected)) in values.iter().zip(expected).enumerate() {
        let WastRet::Core(expected) = expected else {
            return Err("component-model result".into());
        };
        if !matches(store, value, expected) {
            return Err(format!("result {i}: expected {expected:?}, got {value:?}"));
        }
    }
    Ok(())
}

fn matches(store: &Store, value: &Value, expected: &WastRetCore<'_>) -> bool {
    match (value, expected) {
        (Value::I32(v), WastRetCore::I32(e)) => v == e,
        (Value::I64(v), WastRetCore::I64(e)) => v == e,
        (Value::F32(v), WastRetCore::F32(e)) => f32_matches(v.to_bits(), e),
        (Value::F64(v), WastRetCore::F64(e)) => f64_matches(v.to_bits(), e),
        (Value::V128(v), WastRetCore::V128(e)) => v128_matches(*v, e),
        (Value::FuncRef(f), WastRetCore::RefNull(_)) => f.is_none(),
        (Value::ExternRef(r), WastRetCore::RefNull(_)) => r.is_none(),
        (Value::ExceptionRef(r), WastRetCore::RefNull(_)) => r.is_none(),
        (Value::FuncRef(f), WastRetCore::RefFunc(_)) => f.is_some(),
        (Value::ExternRef(r), WastRetCore::RefExtern(e)) => match (r, e) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(r), Some(n)) => r.downcast::<u32>(store) == Some(n),
        },
        (v, WastRetCore::Either(options)) => options.iter().any(|o| matches(store, v, o)),
        _ => false,
    }
}

fn f32_matches(bits: u32, expected: &NanPattern<wast::token::F32>) -> bool {
    match expected {
        NanPattern::Value(e) => bits == e.bits,
        NanPattern::CanonicalNan => bits & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => bits & 0x7fc0_0000 == 0x7fc0_0000,
    }
}

fn f64_matches(bits: u64, expected: &NanPattern<wast::token::F64>) -> bool {
    match expected {
        NanPattern::Value(e) => bits == e.bits,
        NanPattern::CanonicalNan => bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000,
    }
}

fn v128_matches(v: u128, expected: &V128Pattern) -> bool {
    let b = v.to_le_bytes();
    let lane = |i: usize, n: usize| &b[i * n..(i + 1) * n];
    match expected {
        V128Pattern::I8x16(e) => e.iter().enumerate().all(|(i, x)| b[i] as i8 == *x),
        V128Pattern::I16x8(e) => e
            .iter()
            .enumerate()
            .all(|(i, x)| i16::from_le_bytes(lane(i, 2).try_into().unwrap()) == *x),
        V128Pattern::I32x4(e) => e
            .iter()
            .enumerate()
            .all(|(i, x)| i32::from_le_bytes(lane(i, 4).try_into().unwrap()) == *x),
        V128Pattern::I64x2(e) => e
            .iter()
            .enumerate()
            .all(|(i, x)| i64::from_le_bytes(lane(i, 8).try_into().unwrap()) == *x),
        V128Pattern::F32x4(e) => e
            .iter()
            .enumerate()
            .all(|(i, x)| f32_matches(u32::from_le_bytes(lane(i, 4).try_into().unwrap()), x)),
        V128Pattern::F64x2(e) => e
            .iter()
            .enumerate()
            .all(|(i, x)| f64_matches(u64::from_le_bytes(lane(i, 8).try_into().unwrap()), x)),
    }
}

/// The `spectest` module the spec tests import.
fn spectest(store: &mut Store) -> Instance {
    let mut exports = Exports::new();
    let print = |store: &mut Store, params: &[Type]| {
        Function::new(store, FunctionType::new(params.to_vec(), vec![]), |_| {
            Ok(vec![])
        })
    };
    for (name, params) in [
        ("print", &[][..]),
        ("print_i32", &[Type::I32][..]),
        ("print_i64", &[Type::I64][..]),
        ("print_f32", &[Type::F32][..]),
        ("print_f64", &[Type::F64][..]),
        ("print_i32_f32", &[Type::I32, Type::F32][..]),
        ("print_f64_f64", &[Type::F64, Type::F64][..]),
    ] {
        exports.insert(name, Extern::Function(print(store, params)));
    }
    exports.insert("global_i32", Global::new(store, Value::I32(666)));
    exports.insert("global_i64", Global::new(store, Value::I64(666)));
    exports.insert("global_f32", Global::new(store, Value::F32(666.6)));
    exports.insert("global_f64", Global::new(store, Value::F64(666.6)));
    let table = Table::new(
        store,
        TableType::new(Type::FuncRef, 10, Some(20)),
        Value::FuncRef(None),
    )
    .expect("a 10-element table");
    exports.insert("table", table);
    let memory = Memory::new(store, MemoryType::new(1, Some(2), false)).expect("one page");
    exports.insert("memory", memory);
    let mut imports = Imports::new();
    imports.register_namespace("spectest", exports);
    // An instance of an empty module re-exporting nothing cannot hold host
    // objects; a module that imports and re-exports them all can.
    let module = Module::new(
        store,
        r#"(module
          (import "spectest" "print" (func $p))
          (import "spectest" "print_i32" (func $pi32 (param i32)))
          (import "spectest" "print_i64" (func $pi64 (param i64)))
          (import "spectest" "print_f32" (func $pf32 (param f32)))
          (import "spectest" "print_f64" (func $pf64 (param f64)))
          (import "spectest" "print_i32_f32" (func $pif (param i32 f32)))
          (import "spectest" "print_f64_f64" (func $pff (param f64 f64)))
          (import "spectest" "global_i32" (global $gi32 i32))
          (import "spectest" "global_i64" (global $gi64 i64))
          (import "spectest" "global_f32" (global $gf32 f32))
          (import "spectest" "global_f64" (global $gf64 f64))
          (import "spectest" "table" (table $t 10 20 funcref))
          (import "spectest" "memory" (memory $m 1 2))
          (export "print" (func $p))
          (export "print_i32" (func $pi32))
          (export "print_i64" (func $pi64))
          (export "print_f32" (func $pf32))
          (export "print_f64" (func $pf64))
          (export "print_i32_f32" (func $pif))
          (export "print_f64_f64" (func $pff))
          (export "global_i32" (global $gi32))
          (export "global_i64" (global $gi64))
          (export "global_f32" (global $gf32))
          (export "global_f64" (global $gf64))
          (export "table" (table $t))
          (export "memory" (memory $m)))"#,
    )
    .expect("the spectest module compiles");
    Instance::new(store, &module, &imports).expect("the spectest module links")
}
