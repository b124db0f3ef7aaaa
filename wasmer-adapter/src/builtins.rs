//! The wasmer-vm 7.5 exception builtins, called the way Wasmer's Cranelift
//! backend calls every VM builtin: load the function pointer from the
//! builtin array in `vmctx` (`VMOffsets::vmctx_builtin_function`) and
//! `call_indirect` it, with the signatures wasmer-compiler-cranelift 7.5
//! declares for them.

use cranelift_codegen::ir::{
    AbiParam, ArgumentPurpose, InstBuilder, MemFlagsData, SigRef, Signature, Type, Value, types,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::FunctionBuilder;
use wasmer_types::{VMBuiltinFunctionIndex, VMOffsets};

/// Wasm tags and exnrefs are `i32` in Wasmer's IR.
pub const TAG_TYPE: Type = types::I32;
/// See [`TAG_TYPE`].
pub const EXNREF_TYPE: Type = types::I32;
/// What `wasmer_eh_personality2` returns for a catch-all match.
pub const CATCH_ALL_SELECTOR: i64 = i32::MAX as i64;
/// What `wasmer_eh_personality2` returns when no clause matches.
pub const NO_MATCH_SELECTOR: i64 = (i32::MAX - 1) as i64;

/// An exception builtin of wasmer-vm 7.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `wasmer_eh_personality2(vmctx, exn: *mut UwExceptionWrapper) -> i32`.
    Personality2,
    /// `wasmer_vm_alloc_exception(vmctx, tag: i32) -> i32 exnref`.
    AllocException,
    /// `wasmer_vm_throw(vmctx, exnref: i32) -> !` (throw and throw_ref).
    Throw,
    /// `wasmer_vm_read_exnref(vmctx, exnref: i32) -> *mut RawValue`.
    ReadExnref,
    /// `wasmer_vm_exception_into_exnref(exn: *mut UwExceptionWrapper) -> i32`;
    /// frees the native exception.
    ExceptionIntoExnref,
}

const ALL: [Builtin; 5] = [
    Builtin::Personality2,
    Builtin::AllocException,
    Builtin::Throw,
    Builtin::ReadExnref,
    Builtin::ExceptionIntoExnref,
];

impl Builtin {
    /// Its index in the VM builtin function array.
    pub fn index(self) -> VMBuiltinFunctionIndex {
        match self {
            Self::Personality2 => VMBuiltinFunctionIndex::get_imported_personality2_index(),
            Self::AllocException => VMBuiltinFunctionIndex::get_imported_alloc_exception_index(),
            Self::Throw => VMBuiltinFunctionIndex::get_imported_throw_index(),
            Self::ReadExnref => VMBuiltinFunctionIndex::get_imported_read_exnref_index(),
            Self::ExceptionIntoExnref => {
                VMBuiltinFunctionIndex::get_imported_exception_into_exnref_index()
            }
        }
    }

    /// Its Cranelift signature, as wasmer-compiler-cranelift 7.5 declares it
    /// (`func_environ.rs`): `vmctx` is a `VMContext` parameter for
    /// `alloc_exception`, `throw` and `read_exnref`, a plain pointer for
    /// `personality2`.
    pub fn signature(self, pointer: Type, call_conv: CallConv) -> Signature {
        let mut sig = Signature::new(call_conv);
        let vmctx = AbiParam::special(pointer, ArgumentPurpose::VMContext);
        let plain = AbiParam::new;
        let (params, returns): (&[AbiParam], &[Type]) = match self {
            Self::Personality2 => (&[plain(pointer), plain(pointer)], &[TAG_TYPE]),
            Self::AllocException => (&[vmctx, plain(TAG_TYPE)], &[EXNREF_TYPE]),
            Self::Throw => (&[vmctx, plain(EXNREF_TYPE)], &[]),
            Self::ReadExnref => (&[vmctx, plain(EXNREF_TYPE)], &[pointer]),
            Self::ExceptionIntoExnref => (&[plain(pointer)], &[EXNREF_TYPE]),
        };
        sig.params.extend_from_slice(params);
        sig.returns
            .extend(returns.iter().map(|t| AbiParam::new(*t)));
        sig
    }
}

/// Where the builtins live in `vmctx`, and how to call them from one
/// function.
#[derive(Clone, Debug)]
pub struct VmBuiltins {
    offsets: [i32; ALL.len()],
    pointer: Type,
    call_conv: CallConv,
    sigs: [Option<SigRef>; ALL.len()],
}

impl VmBuiltins {
    /// Builtins at the offsets of `offsets` (the module's `VMOffsets`), for
    /// code with pointer type `pointer` and the target's default calling
    /// convention `call_conv`.
    pub fn new(offsets: &VMOffsets, pointer: Type, call_conv: CallConv) -> Self {
        Self {
            offsets: ALL.map(|b| offsets.vmctx_builtin_function(b.index()) as i32),
            pointer,
            call_conv,
            sigs: [None; ALL.len()],
        }
    }

    /// The byte offset of `builtin`'s pointer in `vmctx`.
    pub fn offset(&self, builtin: Builtin) -> i32 {
        self.offsets[ALL.iter().position(|b| *b == builtin).unwrap_or(0)]
    }

    /// Load `builtin`'s address from `vmctx` at the current point; returns
    /// its imported signature and the address, for a `call_indirect`.
    pub fn callee(
        &mut self,
        builder: &mut FunctionBuilder,
        builtin: Builtin,
        vmctx: Value,
    ) -> (SigRef, Value) {
        let i = ALL.iter().position(|b| *b == builtin).unwrap_or(0);
        let sig = *self.sigs[i].get_or_insert_with(|| {
            builder.import_signature(builtin.signature(self.pointer, self.call_conv))
        });
        let mut flags = MemFlagsData::trusted();
        flags.set_readonly();
        let address = builder
            .ins()
            .load(self.pointer, flags, vmctx, self.offsets[i]);
        (sig, address)
    }

    /// The arguments of a call to `builtin`: `vmctx` first, except for
    /// `exception_into_exnref`, which takes none.
    pub fn arguments(builtin: Builtin, vmctx: Value, args: &[Value]) -> Vec<Value> {
        let mut all_args = Vec::with_capacity(args.len() + 1);
        if builtin != Builtin::ExceptionIntoExnref {
            all_args.push(vmctx);
        }
        all_args.extend_from_slice(args);
        all_args
    }

    /// Call `builtin` from the current block with a plain `call_indirect`
    /// (no handler). Returns the call's results.
    pub fn call(
        &mut self,
        builder: &mut FunctionBuilder,
        builtin: Builtin,
        vmctx: Value,
        args: &[Value],
    ) -> Vec<Value> {
        let (sig, address) = self.callee(builder, builtin, vmctx);
        let call =
            builder
                .ins()
                .call_indirect(sig, address, &Self::arguments(builtin, vmctx, args));
        builder.inst_results(call).to_vec()
    }

    /// Forget the signatures imported into the previous function.
    pub fn reset(&mut self) {
        self.sigs = [None; ALL.len()];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_offsets_follow_vmoffsets() {
        let module = wasmer_types::ModuleInfo::new();
        let offsets = VMOffsets::try_new(8, &module).unwrap();
        let builtins = VmBuiltins::new(&offsets, types::I64, CallConv::SystemV);
        let base = offsets.vmctx_builtin_functions_begin() as i32;
        assert_eq!(builtins.offset(Builtin::Personality2), base + 31 * 8);
        assert_eq!(builtins.offset(Builtin::ExceptionIntoExnref), base + 35 * 8);
        // As wasmer-compiler-cranelift 7.5's func_environ.rs declares them.
        let sig = Builtin::ReadExnref.signature(types::I64, CallConv::SystemV);
        assert_eq!(sig.to_string(), "(i64 vmctx, i32) -> i64 system_v");
        let sig = Builtin::Personality2.signature(types::I64, CallConv::SystemV);
        assert_eq!(sig.to_string(), "(i64, i64) -> i32 system_v");
    }
}
