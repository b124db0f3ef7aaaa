//! Exception tables for relocatable objects written with `cranelift-object`.
//!
//! `ObjectBuilder::unwind_info` writes a plain `.eh_frame` with no
//! personality and no LSDA. [`ObjectExceptionTables`] replaces it: turn that
//! option off, call [`ObjectExceptionTables::add_function`] after each
//! `ObjectModule::define_function`, and [`ObjectExceptionTables::finish`] on
//! the `ObjectProduct`. It writes
//!
//! * `.gcc_except_table`: each function's LSDA, 4-aligned, type entries
//!   `indirect|pcrel|sdata4` through `DW.ref.<type>` slots by default, so
//!   typeinfo defined in another shared object needs no text relocation;
//! * `.eh_frame`: a plain CIE for functions without handlers and a
//!   `zPLR`-style CIE (gimli writes the letters as `zLPR`; the data follow
//!   the letters) whose personality is reached through a hidden, weak,
//!   COMDAT `DW.ref.<personality>` slot, as GCC and LLVM do; FDE addresses
//!   and LSDA pointers `pcrel|sdata4` against section symbols, so the
//!   system linker accepts the object in executables and shared libraries
//!   and builds `.eh_frame_hdr` from it.

use crate::compiled::{CompiledTables, tables_for_compiled};
use crate::eh_frame::{EhFrameBuilder, EhFrameEncoding};
use crate::encode::{LsdaEncoding, LsdaReloc, LsdaRelocKind, TypeEncoding};
use crate::error::{LsdaError, LsdaResult};
use crate::landing_pad::PreparedFunction;
use crate::policy::ClausePolicy;
use cranelift_codegen::Context;
use cranelift_codegen::isa::TargetIsa;
use cranelift_module::FuncId;
use cranelift_object::ObjectProduct;
use gimli::write::{Address, EhFrame, EndianVec, RelocateWriter, Relocation, RelocationTarget};
use object::write::{
    Comdat, Object, Relocation as ObjectRelocation, StandardSection, Symbol, SymbolId,
    SymbolSection,
};
use object::{
    ComdatKind, RelocationEncoding, RelocationFlags, RelocationKind, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};

/// What a gimli symbol index stands for until the object is finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SymbolRef {
    Function(FuncId),
    ExceptTable,
    PersonalitySlot,
}

/// The `.eh_frame` and `.gcc_except_table` of one object being built.
pub struct ObjectExceptionTables {
    frames: EhFrameBuilder,
    lsda_encoding: LsdaEncoding,
    except_table: Vec<u8>,
    except_relocs: Vec<LsdaReloc>,
    symbols: Vec<SymbolRef>,
    personality: String,
    address_size: u8,
    functions: usize,
}

impl ObjectExceptionTables {
    /// Tables for an object targeting `isa`, whose functions with handlers
    /// use the personality routine named `personality` (e.g.
    /// `__gxx_personality_v0`).
    pub fn new(isa: &dyn TargetIsa, personality: impl Into<String>) -> LsdaResult<Self> {
        let endian = match isa.endianness() {
            cranelift_codegen::ir::Endianness::Little => gimli::RunTimeEndian::Little,
            cranelift_codegen::ir::Endianness::Big => gimli::RunTimeEndian::Big,
        };
        let address_size = isa.pointer_bytes();
        let symbols = vec![SymbolRef::PersonalitySlot];
        let personality_address = Address::Symbol {
            symbol: 0,
            addend: 0,
        };
        Ok(Self {
            frames: EhFrameBuilder::new(isa, EhFrameEncoding::object(), personality_address)?,
            lsda_encoding: LsdaEncoding {
                types: TypeEncoding::IndirectPcRelSdata4,
                endian,
                address_size,
                ..LsdaEncoding::object()
            },
            except_table: Vec::new(),
            except_relocs: Vec::new(),
            symbols,
            personality: personality.into(),
            address_size,
            functions: 0,
        })
    }

    /// Use other LSDA encodings. The type encoding must be PC-relative:
    /// `absptr` entries would put absolute relocations (text relocations in
    /// shared libraries) into the read-only `.gcc_except_table`.
    pub fn with_lsda_encoding(mut self, encoding: LsdaEncoding) -> LsdaResult<Self> {
        if encoding.types == TypeEncoding::Absptr {
            return Err(LsdaError::UnsupportedIsa(
                "objects need PC-relative type entries (pcrel or indirect|pcrel), not absptr"
                    .into(),
            ));
        }
        self.lsda_encoding = LsdaEncoding {
            endian: self.lsda_encoding.endian,
            address_size: self.address_size,
            ..encoding
        };
        Ok(self)
    }

    /// Record the tables of `func_id`, just compiled in `ctx` by
    /// `ObjectModule::define_function` from IR that was checked or legalized
    /// into landing-pad form (`prepared`). Returns the size of its LSDA, if
    /// it has one.
    pub fn add_function(
        &mut self,
        isa: &dyn TargetIsa,
        func_id: FuncId,
        ctx: &Context,
        policy: &ClausePolicy,
        prepared: &PreparedFunction,
    ) -> LsdaResult<Option<usize>> {
        let CompiledTables { unwind, lsda, .. } =
            tables_for_compiled(ctx, isa, policy, prepared, self.lsda_encoding)?;
        let (lsda_address, size) = match lsda {
            None => (None, None),
            Some(lsda) => {
                while !self.except_table.len().is_multiple_of(4) {
                    self.except_table.push(0);
                }
                let base = self.except_table.len();
                self.except_table.extend_from_slice(&lsda.bytes);
                for reloc in lsda.relocs {
                    self.except_relocs.push(LsdaReloc {
                        offset: reloc.offset + base as u32,
                        ..reloc
                    });
                }
                let address = Address::Symbol {
                    symbol: self.symbol(SymbolRef::ExceptTable),
                    addend: base as i64,
                };
                (Some(address), Some(lsda.bytes.len()))
            }
        };
        let address = Address::Symbol {
            symbol: self.symbol(SymbolRef::Function(func_id)),
            addend: 0,
        };
        self.frames.add_function(address, &unwind, lsda_address)?;
        self.functions += 1;
        Ok(size)
    }

    fn symbol(&mut self, target: SymbolRef) -> usize {
        match self.symbols.iter().position(|s| *s == target) {
            Some(i) => i,
            None => {
                self.symbols.push(target);
                self.symbols.len() - 1
            }
        }
    }

    /// Write `.gcc_except_table` and `.eh_frame` into `product`.
    pub fn finish(self, product: &mut ObjectProduct) -> LsdaResult<()> {
        if self.functions == 0 {
            return Ok(());
        }
        if product.object.format() != object::BinaryFormat::Elf {
            return Err(LsdaError::UnsupportedIsa(format!(
                "{:?} objects: only ELF `.eh_frame`/`.gcc_except_table` are written",
                product.object.format()
            )));
        }
        let eh_frame_id = product.object.section_id(StandardSection::EhFrame);
        if !product.object.section(eh_frame_id).data().is_empty() {
            return Err(LsdaError::Ir(
                "the object already has an .eh_frame: turn off ObjectBuilder::unwind_info".into(),
            ));
        }
        let size = self.address_size;

        let except_table_id = if self.except_table.is_empty() {
            None
        } else {
            let id = product.object.add_section(
                Vec::new(),
                b".gcc_except_table".to_vec(),
                SectionKind::ReadOnlyData,
            );
            product
                .object
                .append_section_data(id, &self.except_table, 4);
            for reloc in &self.except_relocs {
                let symbol = match reloc.kind {
                    LsdaRelocKind::IndirectPcRel4 => {
                        dw_ref_slot(&mut product.object, &reloc.symbol, size)?
                    }
                    _ => external_symbol(&mut product.object, &reloc.symbol, SymbolKind::Data),
                };
                let (kind, bits, addend) = match reloc.kind {
                    LsdaRelocKind::Abs => (RelocationKind::Absolute, size * 8, reloc.addend),
                    LsdaRelocKind::PcRel4 => (RelocationKind::Relative, 32, reloc.addend),
                    // The slot holds symbol + addend; only the slot's own
                    // address is PC-relative here.
                    LsdaRelocKind::IndirectPcRel4 if reloc.addend != 0 => {
                        return Err(LsdaError::Ir(format!(
                            "indirect type entry {}{:+} cannot carry an addend",
                            reloc.symbol, reloc.addend
                        )));
                    }
                    LsdaRelocKind::IndirectPcRel4 => (RelocationKind::Relative, 32, 0),
                };
                add_relocation(
                    &mut product.object,
                    id,
                    u64::from(reloc.offset),
                    symbol,
                    addend,
                    kind,
                    bits,
                )?;
            }
            Some(id)
        };

        let mut eh_frame = EhFrame(Section {
            writer: EndianVec::new(self.lsda_encoding.endian),
            relocations: Vec::new(),
        });
        self.frames.write(&mut eh_frame)?;
        let EhFrame(section) = eh_frame;
        product
            .object
            .append_section_data(eh_frame_id, section.writer.slice(), u64::from(size));

        for reloc in section.relocations {
            let RelocationTarget::Symbol(index) = reloc.target else {
                return Err(LsdaError::Ir(
                    "unexpected section-relative .eh_frame relocation".into(),
                ));
            };
            let (symbol, extra_addend) = match self.symbols[index] {
                SymbolRef::PersonalitySlot => (
                    dw_ref_slot(&mut product.object, &self.personality, size)?,
                    0,
                ),
                SymbolRef::ExceptTable => {
                    let id = except_table_id
                        .ok_or_else(|| LsdaError::Ir("LSDA pointer without LSDA".into()))?;
                    (product.object.section_symbol(id), 0)
                }
                SymbolRef::Function(func_id) => section_relative(product, func_id)?,
            };
            let pe = reloc.eh_pe.unwrap_or(gimli::constants::DW_EH_PE_absptr);
            let kind = if pe.application() == gimli::constants::DW_EH_PE_pcrel {
                RelocationKind::Relative
            } else {
                RelocationKind::Absolute
            };
            add_relocation(
                &mut product.object,
                eh_frame_id,
                reloc.offset as u64,
                symbol,
                reloc.addend + extra_addend,
                kind,
                reloc.size * 8,
            )?;
        }
        Ok(())
    }
}

/// The function's section symbol and offset: PC-relative references to a
/// global function symbol would be rejected in shared libraries.
fn section_relative(product: &mut ObjectProduct, func_id: FuncId) -> LsdaResult<(SymbolId, i64)> {
    let symbol = product.function_symbol(func_id);
    let (section, value) = {
        let s = product.object.symbol(symbol);
        match s.section {
            SymbolSection::Section(section) => (section, s.value),
            _ => {
                return Err(LsdaError::Ir(format!(
                    "function {func_id} has tables but is not defined in this object"
                )));
            }
        }
    };
    Ok((product.object.section_symbol(section), value as i64))
}

fn add_relocation(
    object: &mut Object<'static>,
    section: object::write::SectionId,
    offset: u64,
    symbol: SymbolId,
    addend: i64,
    kind: RelocationKind,
    size: u8,
) -> LsdaResult<()> {
    object
        .add_relocation(
            section,
            ObjectRelocation {
                offset,
                symbol,
                addend,
                flags: RelocationFlags::Generic {
                    kind,
                    encoding: RelocationEncoding::Generic,
                    size,
                },
            },
        )
        .map_err(|e| LsdaError::Ir(format!("relocation: {e}")))
}

/// The symbol named `name`, declared undefined if the object lacks it.
fn external_symbol(object: &mut Object<'static>, name: &str, kind: SymbolKind) -> SymbolId {
    object.symbol_id(name.as_bytes()).unwrap_or_else(|| {
        object.add_symbol(Symbol {
            name: name.as_bytes().to_vec(),
            value: 0,
            size: 0,
            kind,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Undefined,
            flags: SymbolFlags::None,
        })
    })
}

/// A hidden, weak, COMDAT pointer-sized slot `DW.ref.<target>` holding the
/// address of `target`, as GCC and LLVM emit for personalities and
/// typeinfo referenced from position-independent EH tables.
fn dw_ref_slot(object: &mut Object<'static>, target: &str, size: u8) -> LsdaResult<SymbolId> {
    let name = format!("DW.ref.{target}");
    if let Some(id) = object.symbol_id(name.as_bytes()) {
        return Ok(id);
    }
    let section = object.add_section(
        Vec::new(),
        format!(".data.rel.local.{name}").into_bytes(),
        SectionKind::Data,
    );
    if object.format() == object::BinaryFormat::Elf {
        // Members of a COMDAT group must say so, or BFD rejects the file.
        object.section_mut(section).flags = object::SectionFlags::Elf {
            sh_type: object::elf::SHT_PROGBITS,
            sh_flags: object::elf::SHF_ALLOC | object::elf::SHF_WRITE | object::elf::SHF_GROUP,
        };
    }
    let offset = object.append_section_data(section, &vec![0; usize::from(size)], u64::from(size));
    let slot = object.add_symbol(Symbol {
        name: name.into_bytes(),
        value: offset,
        size: u64::from(size),
        kind: SymbolKind::Data,
        scope: SymbolScope::Linkage,
        weak: true,
        section: SymbolSection::Section(section),
        flags: SymbolFlags::None,
    });
    object.add_comdat(Comdat {
        kind: ComdatKind::Any,
        symbol: slot,
        sections: vec![section],
    });
    let target = external_symbol(object, target, SymbolKind::Unknown);
    add_relocation(
        object,
        section,
        offset,
        target,
        0,
        RelocationKind::Absolute,
        size * 8,
    )?;
    Ok(slot)
}

/// An `.eh_frame` being written, with the relocations gimli asks for.
struct Section {
    writer: EndianVec<gimli::RunTimeEndian>,
    relocations: Vec<Relocation>,
}

impl RelocateWriter for Section {
    type Writer = EndianVec<gimli::RunTimeEndian>;

    fn writer(&self) -> &Self::Writer {
        &self.writer
    }

    fn writer_mut(&mut self) -> &mut Self::Writer {
        &mut self.writer
    }

    fn relocate(&mut self, relocation: Relocation) {
        self.relocations.push(relocation);
    }
}
