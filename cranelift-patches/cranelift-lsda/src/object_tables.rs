//! Exception tables for relocatable objects written with `cranelift-object`,
//! shaped as an extension of its `.eh_frame` emission (`unwind.rs`): tables
//! are recorded as each function is defined and written at `finish`.
//!
//! [`LsdaObjectModule`] wraps an `ObjectModule` and does both; it takes
//! over `.eh_frame` (`ObjectBuilder::unwind_info` need not be turned off
//! by the user). [`ObjectTables`] is the same recorder for embedders that
//! drive `ObjectModule` themselves. They write
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
//!
//! Both sections are written through gimli's `write_eh_pointer` into a
//! [`RelocatedSection`], and every relocation gimli records becomes an
//! object relocation in one place, [`ObjectTables::relocate`]: an
//! indirect encoding refers to the symbol's `DW.ref` slot, an unknown
//! encoding is an error.

use crate::output::{OutputError, OutputResult};
use crate::{
    ClausePolicy, CompiledTables, EhFrameBuilder, EhFrameEncoding, EncodeError, Lsda, LsdaEncoding,
    PreparedFunction, RelocatedSection, SymbolIndex, TypeEncoding, endian_of, tables_for_compiled,
};
use cranelift_codegen::Context;
use cranelift_codegen::isa::TargetIsa;
use cranelift_module::FuncId;
use cranelift_object::ObjectProduct;
use gimli::constants;
use gimli::write::{EhFrame, Relocation, RelocationTarget};
use object::write::{
    Comdat, Object, Relocation as ObjectRelocation, SectionId, StandardSection, Symbol, SymbolId,
    SymbolSection,
};
use object::{
    ComdatKind, RelocationEncoding, RelocationFlags, RelocationKind, SectionKind, SymbolFlags,
    SymbolKind, SymbolScope,
};
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// What a gimli symbol index of the tables stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum TableSymbol {
    /// A function defined in the object.
    Function(FuncId),
    /// The start of `.gcc_except_table`.
    ExceptTable,
    /// A symbol by name: the personality or a type entry.
    Named(String),
}

/// The `.eh_frame` and `.gcc_except_table` of one object being built.
pub struct ObjectTables {
    frames: EhFrameBuilder,
    except_table: RelocatedSection,
    symbols: SymbolIndex<TableSymbol>,
    lsda_encoding: LsdaEncoding,
    address_size: u8,
    functions: usize,
}

impl ObjectTables {
    /// Tables for an object targeting `isa`, whose functions with handlers
    /// use the personality routine named `personality` (e.g.
    /// `__gxx_personality_v0`).
    pub fn new(isa: &dyn TargetIsa, personality: &str) -> OutputResult<Self> {
        let format = isa.triple().binary_format;
        if format != target_lexicon::BinaryFormat::Elf {
            return Err(OutputError::UnsupportedFormat(format));
        }
        let mut symbols = SymbolIndex::default();
        let personality = symbols.address(TableSymbol::Named(personality.into()));
        Ok(Self {
            frames: EhFrameBuilder::new(isa, EhFrameEncoding::object(), personality)?,
            except_table: RelocatedSection::new(endian_of(isa)),
            symbols,
            address_size: isa.pointer_bytes(),
            lsda_encoding: LsdaEncoding::new(
                LsdaEncoding::object().call_sites,
                TypeEncoding::IndirectPcRelSdata4,
            ),
            functions: 0,
        })
    }

    /// Use other LSDA encodings. The type encoding must be PC-relative:
    /// `absptr` entries would put absolute relocations (text relocations in
    /// shared libraries) into the read-only `.gcc_except_table`.
    pub fn with_lsda_encoding(mut self, encoding: LsdaEncoding) -> OutputResult<Self> {
        if encoding.types == TypeEncoding::Absptr {
            return Err(OutputError::AbsptrTypeTableInObject);
        }
        self.lsda_encoding = encoding;
        Ok(self)
    }

    /// Record the tables of `func_id`, compiled in `ctx` from IR that was
    /// checked or legalized into landing-pad form (`prepared`). Returns the
    /// size of its LSDA, if it has one.
    pub fn add_function(
        &mut self,
        isa: &dyn TargetIsa,
        func_id: FuncId,
        ctx: &Context,
        policy: &ClausePolicy,
        prepared: &PreparedFunction,
    ) -> OutputResult<Option<usize>> {
        let CompiledTables { unwind, lsda, .. } =
            tables_for_compiled(ctx, isa, policy, prepared, self.lsda_encoding)?;
        let lsda_address = match &lsda {
            None => None,
            Some(lsda) => Some(gimli::write::Address::Symbol {
                symbol: self.symbols.index(TableSymbol::ExceptTable),
                addend: self.add_lsda(lsda)? as i64,
            }),
        };
        let address = self.symbols.address(TableSymbol::Function(func_id));
        self.frames.add_function(address, &unwind, lsda_address)?;
        self.functions += 1;
        Ok(lsda.map(|l| l.len()))
    }

    /// Append `lsda` to `.gcc_except_table`, type entries referring to
    /// their symbols by name; returns its offset in the section.
    pub fn add_lsda(&mut self, lsda: &Lsda) -> OutputResult<usize> {
        let symbols = &mut self.symbols;
        let offset = lsda.write(&mut self.except_table, |name| {
            Some(symbols.address(TableSymbol::Named(name.into())))
        })?;
        Ok(offset)
    }

    /// Write `.gcc_except_table` and `.eh_frame` into `product`.
    pub fn finish(self, product: &mut ObjectProduct) -> OutputResult<()> {
        if self.functions == 0 && self.except_table.bytes().is_empty() {
            return Ok(());
        }
        // Checked by `new` against the ISA; this catches a product built
        // for another one.
        if product.object.format() != object::BinaryFormat::Elf {
            return Err(OutputError::UnsupportedFormat(binary_format(product)));
        }
        let eh_frame_id = product.object.section_id(StandardSection::EhFrame);
        if !product.object.section(eh_frame_id).data().is_empty() {
            return Err(OutputError::EhFrameAlreadyWritten);
        }
        let except_table_id = (!self.except_table.bytes().is_empty()).then(|| {
            product.object.add_section(
                Vec::new(),
                b".gcc_except_table".to_vec(),
                SectionKind::ReadOnlyData,
            )
        });
        if let Some(id) = except_table_id {
            product
                .object
                .append_section_data(id, self.except_table.bytes(), 4);
            for reloc in self.except_table.relocations() {
                self.relocate(product, id, except_table_id, reloc)?;
            }
        }

        if self.functions == 0 {
            return Ok(());
        }
        let mut eh_frame = EhFrame(RelocatedSection::new(self.except_table.endian()));
        self.frames.write(&mut eh_frame)?;
        let EhFrame(eh_frame) = eh_frame;
        let alignment = u64::from(self.address_size);
        product
            .object
            .append_section_data(eh_frame_id, eh_frame.bytes(), alignment);
        for reloc in eh_frame.relocations() {
            self.relocate(product, eh_frame_id, except_table_id, reloc)?;
        }
        Ok(())
    }

    /// Turn one relocation gimli recorded into an object relocation.
    fn relocate(
        &self,
        product: &mut ObjectProduct,
        section: SectionId,
        except_table: Option<SectionId>,
        reloc: &Relocation,
    ) -> OutputResult<()> {
        let RelocationTarget::Symbol(index) = reloc.target else {
            return Err(OutputError::UnsupportedRelocationTarget);
        };
        let eh_pe = reloc.eh_pe.unwrap_or(constants::DW_EH_PE_absptr);
        let kind = match eh_pe.application() {
            constants::DW_EH_PE_absptr => RelocationKind::Absolute,
            constants::DW_EH_PE_pcrel => RelocationKind::Relative,
            _ => return Err(OutputError::UnsupportedPointerEncoding(eh_pe)),
        };
        let target = self
            .symbols
            .get(index)
            .ok_or(OutputError::UnsupportedRelocationTarget)?;
        let (symbol, addend) = match target {
            TableSymbol::Function(func_id) => {
                let (symbol, offset) = section_relative(product, *func_id)?;
                (symbol, offset + reloc.addend)
            }
            TableSymbol::ExceptTable => {
                let id = except_table.ok_or(OutputError::UnsupportedRelocationTarget)?;
                (product.object.section_symbol(id), reloc.addend)
            }
            // The slot holds the symbol's address; only the slot's own
            // address is PC-relative here (the encoder refuses addends).
            TableSymbol::Named(name) if eh_pe.is_indirect() && reloc.addend != 0 => {
                let symbol = name.clone();
                let addend = reloc.addend;
                return Err(EncodeError::IndirectAddend { symbol, addend }.into());
            }
            TableSymbol::Named(name) if eh_pe.is_indirect() => (
                dw_ref_slot(&mut product.object, name, self.address_size)?,
                0,
            ),
            TableSymbol::Named(name) => (
                external_symbol(&mut product.object, name, SymbolKind::Data),
                reloc.addend,
            ),
        };
        add_relocation(
            &mut product.object,
            section,
            reloc.offset as u64,
            symbol,
            addend,
            kind,
            reloc.size * 8,
        )
    }
}

/// The object format of `product`, as the ISA's triple names formats.
fn binary_format(product: &ObjectProduct) -> target_lexicon::BinaryFormat {
    use target_lexicon::BinaryFormat;
    match product.object.format() {
        object::BinaryFormat::Coff => BinaryFormat::Coff,
        object::BinaryFormat::Elf => BinaryFormat::Elf,
        object::BinaryFormat::MachO => BinaryFormat::Macho,
        object::BinaryFormat::Wasm => BinaryFormat::Wasm,
        object::BinaryFormat::Xcoff => BinaryFormat::Xcoff,
        _ => BinaryFormat::Unknown,
    }
}

/// The function's section symbol and offset: PC-relative references to a
/// global function symbol would be rejected in shared libraries.
fn section_relative(product: &mut ObjectProduct, func_id: FuncId) -> OutputResult<(SymbolId, i64)> {
    let symbol = product.object.symbol(product.function_symbol(func_id));
    let SymbolSection::Section(section) = symbol.section else {
        return Err(OutputError::FunctionNotDefined(func_id.as_u32()));
    };
    let value = symbol.value as i64;
    Ok((product.object.section_symbol(section), value))
}

fn add_relocation(
    object: &mut Object<'static>,
    section: SectionId,
    offset: u64,
    symbol: SymbolId,
    addend: i64,
    kind: RelocationKind,
    size: u8,
) -> OutputResult<()> {
    let flags = RelocationFlags::Generic {
        kind,
        encoding: RelocationEncoding::Generic,
        size,
    };
    let relocation = ObjectRelocation {
        offset,
        symbol,
        addend,
        flags,
    };
    object
        .add_relocation(section, relocation)
        .map_err(OutputError::Object)
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
fn dw_ref_slot(object: &mut Object<'static>, target: &str, size: u8) -> OutputResult<SymbolId> {
    let name = format!("DW.ref.{target}");
    if let Some(id) = object.symbol_id(name.as_bytes()) {
        return Ok(id);
    }
    let section = object.add_section(
        Vec::new(),
        format!(".data.rel.local.{name}").into_bytes(),
        SectionKind::Data,
    );
    // Members of a COMDAT group must say so, or BFD rejects the file.
    object.section_mut(section).flags = object::SectionFlags::Elf {
        sh_type: object::elf::SHT_PROGBITS,
        sh_flags: object::elf::SHF_ALLOC | object::elf::SHF_WRITE | object::elf::SHF_GROUP,
    };
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
    let kind = RelocationKind::Absolute;
    add_relocation(object, section, offset, target, 0, kind, size * 8)?;
    Ok(slot)
}
