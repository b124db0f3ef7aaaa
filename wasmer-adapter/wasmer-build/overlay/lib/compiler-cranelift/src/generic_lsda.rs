//! The `generic-lsda` feature: WebAssembly exceptions on the system
//! unwinder through `cranelift-lsda`.
//!
//! `try_table`, `throw`, `throw_ref` and the handlers of every call come from
//! `wasmer-eh-adapter` (one clause-set item per call, one landing pad per
//! scope, stage 2 only when stage 1 asks, a `Switch` dispatch); each
//! function is legalized into landing-pad form and its LSDA laid out by
//! `cranelift-lsda`, which also writes the module's `.eh_frame`. `eh.rs`,
//! `dwarf.rs` and the `brif` dispatch chain are not used.
//!
//! It serves in-memory artifacts for Linux on x86_64 ([`serves`]), where
//! Wasmer's spec suite and exception tests run with it under libgcc and
//! LLVM libunwind. Every other compilation (macOS through compact unwind,
//! Linux on other ISAs, the ELF artifact format, ...) takes the stock path,
//! unchanged.
//!
//! Per module, three custom sections:
//!
//! * tag data: each function's caught tags (`u32` module tag indices), the
//!   words its LSDA's type entries point to, one run shared by the
//!   functions whose runs are equal;
//! * LSDAs: every function's, `absptr` type entries relocated against the
//!   tag data;
//! * `.eh_frame`: the FDEs of every function and dynamic-function
//!   trampoline in one segment ended by one terminator, under one CIE, as
//!   wasmer-compiler's `register_eh_frames` reads a segment (its first
//!   record is the CIE, registered with libgcc; every later one is an FDE,
//!   registered with LLVM libunwind). The CIE names `wasmer_eh_personality`
//!   when a function has an LSDA, and every FDE then points at its LSDA or
//!   at none (null, which the personality passes over), as stock's do;
//!   without handlers in the module, it is plain. One segment, because
//!   libgcc 12's lookup searches only the registered object with the
//!   highest start at or below the PC: two objects whose functions
//!   interleave in memory hide each other's FDEs.

use crate::translator::CraneliftUnwindInfo;
use cranelift_codegen::gimli::constants::DW_EH_PE_absptr;
use cranelift_codegen::gimli::write::{
    Address, EhFrame, Relocation as GimliRelocation, RelocationTarget as GimliTarget, Writer,
};
use cranelift_codegen::{
    CompiledCode, Context, ir, isa::CallConv, isa::TargetIsa, isa::unwind::UnwindInfo,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_lsda::{
    CompiledTables, EhFrameBuilder, EhFrameEncoding, LsdaEncoding, PreparedFunction,
    RelocatedSection, SymbolIndex, check_isa, endian_of, legalize_landing_pads,
    tables_for_compiled,
};
use wasmer_compiler::types::{
    relocation::{Relocation, RelocationKind, RelocationTarget},
    section::{CustomSection, CustomSectionProtection, SectionBody, SectionIndex},
};
use wasmer_eh_adapter::{
    CatchKind, CatchTarget, TAG_DATA_SYMBOL, TryTableLowering, VmBuiltins, WasmerTagPolicy,
};
use wasmer_types::{
    CompileError, FunctionIndex, LibCall, LocalFunctionIndex, VMOffsets, WasmError, WasmResult,
    entity::{EntityRef, PrimaryMap},
};

// The adapter's landing pads trap with Wasmer's `unreachable` code, which
// it cannot take from this crate: the two must stay one value.
const _: () = assert!(
    wasmer_eh_adapter::TRAP_UNREACHABLE.as_raw().get() == crate::TRAP_UNREACHABLE.as_raw().get()
);

/// The exception-handling state of the function being translated.
pub(crate) struct FunctionEh {
    policy: WasmerTagPolicy,
    builtins: Option<VmBuiltins>,
    lowering: Option<TryTableLowering>,
}

impl FunctionEh {
    pub(crate) fn new(offsets: &VMOffsets, pointer: ir::Type, call_conv: CallConv) -> Self {
        Self {
            policy: WasmerTagPolicy::new(),
            builtins: Some(VmBuiltins::new(offsets, pointer, call_conv)),
            lowering: None,
        }
    }

    /// The lowering, created at the first use, once `vmctx` exists.
    pub(crate) fn lowering(&mut self, builder: &FunctionBuilder) -> &mut TryTableLowering {
        let builtins = &mut self.builtins;
        self.lowering.get_or_insert_with(|| {
            let vmctx = builder
                .func
                .special_param(ir::ArgumentPurpose::VMContext)
                .expect("every Wasm function takes vmctx");
            let pointer = builder.func.dfg.value_type(vmctx);
            let builtins = builtins.take().expect("taken once, by the first use");
            TryTableLowering::new(builtins, vmctx, pointer)
        })
    }

    /// At `try_table`: open a scope with its clauses, in order.
    pub(crate) fn enter_try_table(
        &mut self,
        builder: &FunctionBuilder,
        catches: Vec<CatchTarget>,
    ) -> WasmResult<()> {
        self.lowering(builder);
        let lowering = self.lowering.as_mut().expect("just created");
        lowering
            .enter_try_table(builder, &mut self.policy, catches)
            .map_err(translation_error)
    }

    /// At the `end` of a `try_table`, with the current block filled.
    pub(crate) fn exit_try_table(&mut self, builder: &mut FunctionBuilder) -> WasmResult<()> {
        self.lowering(builder)
            .exit_try_table(builder)
            .map_err(translation_error)
    }
}

/// The block a catch clause enters: it takes what the clause delivers and
/// is filled by the caller with a branch to the clause's label.
pub(crate) fn catch_edge(builder: &mut FunctionBuilder, kind: &CatchKind) -> ir::Block {
    let block = builder.create_block();
    for ty in kind.target_params() {
        builder.append_block_param(block, ty);
    }
    block
}

/// What one compiled function contributes to the module's sections.
pub(crate) struct FunctionTables {
    tables: CompiledTables,
    tag_data: Vec<u32>,
}

/// Whether `generic-lsda` compiles for `isa`: in-memory artifacts (not
/// the ELF artifact format) for Linux on x86_64, the target its runtime
/// tests run on. `cranelift_lsda::check_isa` also accepts aarch64, riscv64
/// and s390x; they keep the stock path until Wasmer's tests run there.
pub(crate) fn serves(isa: &dyn TargetIsa, experimental_artifact: bool) -> bool {
    let triple = isa.triple();
    !experimental_artifact
        && triple.operating_system == target_lexicon::OperatingSystem::Linux
        && triple.architecture == target_lexicon::Architecture::X86_64
        && check_isa(isa).is_ok()
}

/// Put the translated function into landing-pad form (forwarding pads,
/// cold pad blocks), before `Context::compile`; nothing when the function
/// was translated the stock way (`eh` is `None`).
pub(crate) fn legalize(
    func: &mut ir::Function,
    isa: &dyn TargetIsa,
    eh: &mut Option<FunctionEh>,
) -> Result<Option<PreparedFunction>, CompileError> {
    eh.as_mut()
        .map(|eh| legalize_landing_pads(func, isa, eh.policy.policy_mut()))
        .transpose()
        .map_err(codegen_error)
}

/// The CFI and LSDA of the function `context` compiled, if it was
/// legalized (`prepared`), with its compiled code (borrowed again from the
/// context, which holds both).
pub(crate) fn function_tables<'a>(
    context: &'a Context,
    isa: &dyn TargetIsa,
    eh: &Option<FunctionEh>,
    prepared: Option<&PreparedFunction>,
) -> Result<(Option<FunctionTables>, &'a CompiledCode), CompileError> {
    let code = context
        .compiled_code()
        .ok_or_else(|| codegen_error("the context holds no compiled code"))?;
    let (Some(eh), Some(prepared)) = (eh, prepared) else {
        return Ok((None, code));
    };
    let policy = eh.policy.policy();
    let tables = tables_for_compiled(context, isa, policy, prepared, LsdaEncoding::jit())
        .map_err(codegen_error)?;
    let tag_data = eh.policy.tag_data().to_vec();
    Ok((Some(FunctionTables { tables, tag_data }), code))
}

/// The tables of a function compiled the `generic-lsda` way, which every
/// such function has: the module's sections index them by function, so a
/// missing one would shift every later function's CFI and LSDA.
pub(crate) fn tables_of_compiled(
    tables: Option<FunctionTables>,
) -> Result<FunctionTables, CompileError> {
    tables.ok_or_else(|| codegen_error("a function was compiled without its exception tables"))
}

/// The System V CFI of a dynamic-function trampoline, from the unwind
/// information computed for it anyway.
pub(crate) fn trampoline_cfi(unwind: &CraneliftUnwindInfo) -> Result<UnwindInfo, CompileError> {
    match unwind {
        CraneliftUnwindInfo::Fde(cfi) => Ok(UnwindInfo::SystemV(cfi.clone())),
        _ => Err(codegen_error(
            "a dynamic-function trampoline has no System V unwind information",
        )),
    }
}

/// What a relocation of the three sections points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Function(LocalFunctionIndex),
    DynamicTrampoline(FunctionIndex),
    Personality,
    Section(SectionIndex),
}

/// Write the module's tag data, LSDAs and `.eh_frame` into
/// `custom_sections`: `trampolines` holds the CFI of each imported
/// function's dynamic-function trampoline, in function order. Returns the
/// `.eh_frame`'s index, if any function or trampoline has CFI.
pub(crate) fn emit_module_sections(
    isa: &dyn TargetIsa,
    functions: PrimaryMap<LocalFunctionIndex, FunctionTables>,
    trampolines: Vec<Option<UnwindInfo>>,
    custom_sections: &mut PrimaryMap<SectionIndex, CustomSection>,
) -> Result<Option<SectionIndex>, CompileError> {
    let endian = endian_of(isa);
    let mut symbols = SymbolIndex::<Target>::default();

    // Tag data: each function with an LSDA points at a run of words; the
    // functions that catch the same tags in the same order share one.
    let mut tag_bytes = Vec::new();
    let mut tag_base = PrimaryMap::<LocalFunctionIndex, u32>::new();
    let mut runs = std::collections::HashMap::<&[u32], u32>::new();
    for (_, function) in functions.iter() {
        if function.tables.lsda.is_none() || function.tag_data.is_empty() {
            tag_base.push(0);
            continue;
        }
        let base = *runs.entry(&function.tag_data).or_insert_with(|| {
            let base = tag_bytes.len() as u32;
            for tag in &function.tag_data {
                let word = match endian {
                    cranelift_codegen::gimli::RunTimeEndian::Little => tag.to_le_bytes(),
                    cranelift_codegen::gimli::RunTimeEndian::Big => tag.to_be_bytes(),
                };
                tag_bytes.extend_from_slice(&word);
            }
            base
        });
        tag_base.push(base);
    }
    let tag_section = (!tag_bytes.is_empty()).then(|| {
        custom_sections.push(CustomSection {
            protection: CustomSectionProtection::Read,
            alignment: Some(4),
            bytes: SectionBody::new_with_vec(tag_bytes),
            relocations: Vec::new(),
        })
    });

    // LSDAs: a type entry is `TAG_DATA_SYMBOL + 4 * slot` of its function,
    // written as (function's tag symbol) + 4 * slot and moved to the
    // function's run of tag data below.
    let mut lsdas = RelocatedSection::new(endian);
    let mut lsda_offset = PrimaryMap::<LocalFunctionIndex, Option<u32>>::new();
    let mut tag_symbol_of = Vec::new();
    for (index, function) in functions.iter() {
        let offset = match &function.tables.lsda {
            None => None,
            Some(lsda) => {
                let symbol = tag_symbol_of.len();
                tag_symbol_of.push(index);
                let offset = lsda
                    .write(&mut lsdas, |name| {
                        (name == TAG_DATA_SYMBOL).then_some(Address::Symbol { symbol, addend: 0 })
                    })
                    .map_err(codegen_error)?;
                Some(u32::try_from(offset).map_err(|_| section_too_large())?)
            }
        };
        lsda_offset.push(offset);
    }
    let lsda_section = if lsdas.bytes().is_empty() {
        None
    } else {
        // Only typed catches have type entries to relocate: a module whose
        // clauses are all catch-alls has LSDAs and no tag data.
        let relocations = lsdas
            .relocations()
            .iter()
            .map(|r| {
                let tag_section = tag_section.ok_or_else(|| unsupported_relocation(r))?;
                let GimliTarget::Symbol(symbol) = r.target else {
                    return Err(unsupported_relocation(r));
                };
                let function = *tag_symbol_of
                    .get(symbol)
                    .ok_or_else(|| unsupported_relocation(r))?;
                let addend = i64::from(tag_base[function]) + r.addend;
                wasmer_relocation(r, RelocationTarget::CustomSection(tag_section), addend)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Some(custom_sections.push(CustomSection {
            protection: CustomSectionProtection::Read,
            alignment: Some(8),
            bytes: SectionBody::new_with_vec(lsdas.bytes().to_vec()),
            relocations,
        }))
    };

    // `.eh_frame`: one segment, one registration object for libgcc, one
    // CIE: with LSDAs in the module, every FDE names one, null if none.
    let encoding = EhFrameEncoding::jit();
    let personality = symbols.address(Target::Personality);
    let mut frames = EhFrameBuilder::new(isa, encoding, personality).map_err(codegen_error)?;
    let no_lsda = lsda_section.map(|_| Address::Constant(0));
    let mut count = 0usize;
    for (index, function) in functions.iter() {
        let address = symbols.address(Target::Function(index));
        let lsda = match (lsda_offset[index], lsda_section) {
            (Some(offset), Some(section)) => Some(Address::Symbol {
                symbol: symbols.index(Target::Section(section)),
                addend: i64::from(offset),
            }),
            _ => no_lsda,
        };
        frames
            .add_function(address, &function.tables.unwind, lsda)
            .map_err(codegen_error)?;
        count += 1;
    }
    for (index, unwind) in trampolines.iter().enumerate() {
        let unwind = unwind.as_ref().ok_or_else(|| {
            codegen_error("a dynamic-function trampoline was compiled without its CFI")
        })?;
        let address = symbols.address(Target::DynamicTrampoline(FunctionIndex::new(index)));
        frames
            .add_function(address, unwind, no_lsda)
            .map_err(codegen_error)?;
        count += 1;
    }
    if count == 0 {
        return Ok(None);
    }
    let mut eh_frame = EhFrame(RelocatedSection::new(endian));
    frames.write(&mut eh_frame).map_err(codegen_error)?;
    eh_frame.write_u32(0).map_err(codegen_error)?;
    let eh_frame = eh_frame.0;
    let relocations = eh_frame
        .relocations()
        .iter()
        .map(|r| {
            let GimliTarget::Symbol(symbol) = r.target else {
                return Err(unsupported_relocation(r));
            };
            let target = match symbols.get(symbol) {
                Some(Target::Function(index)) => RelocationTarget::LocalFunc(*index),
                Some(Target::DynamicTrampoline(index)) => {
                    RelocationTarget::DynamicTrampoline(*index)
                }
                Some(Target::Personality) => RelocationTarget::LibCall(LibCall::EHPersonality),
                Some(Target::Section(section)) => RelocationTarget::CustomSection(*section),
                None => return Err(unsupported_relocation(r)),
            };
            wasmer_relocation(r, target, r.addend)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(custom_sections.push(CustomSection {
        protection: CustomSectionProtection::Read,
        alignment: Some(8),
        bytes: SectionBody::new_with_vec(eh_frame.bytes().to_vec()),
        relocations,
    })))
}

/// The one conversion of a gimli relocation: only absolute pointers, which
/// Wasmer's linker writes as `target + addend`.
fn wasmer_relocation(
    r: &GimliRelocation,
    target: RelocationTarget,
    addend: i64,
) -> Result<Relocation, CompileError> {
    let absolute = r.eh_pe.is_none_or(|pe| pe == DW_EH_PE_absptr);
    let kind = match (absolute, r.size) {
        (true, 8) => RelocationKind::Abs8,
        (true, 4) => RelocationKind::Abs4,
        _ => return Err(unsupported_relocation(r)),
    };
    let offset = u32::try_from(r.offset).map_err(|_| section_too_large())?;
    Ok(Relocation {
        kind,
        reloc_target: target,
        offset,
        addend,
    })
}

fn section_too_large() -> CompileError {
    CompileError::Codegen("generic-lsda: exception-table section over 4 GiB".into())
}

fn unsupported_relocation(r: &GimliRelocation) -> CompileError {
    CompileError::Codegen(format!(
        "generic-lsda: unsupported relocation in exception tables: {r:?}"
    ))
}

fn codegen_error(e: impl std::fmt::Display) -> CompileError {
    CompileError::Codegen(format!("generic-lsda: {e}"))
}

fn translation_error(e: impl std::fmt::Display) -> WasmError {
    WasmError::Generic(format!("generic-lsda: {e}"))
}
