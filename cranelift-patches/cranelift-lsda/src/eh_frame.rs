//! `.eh_frame` with two CIEs: a plain one for functions without handlers,
//! and one with a personality and an LSDA encoding for functions with an
//! LSDA.
//!
//! Two CIEs, because an LSDA-carrying CIE obliges every FDE under it to
//! carry an LSDA pointer (gimli enforces it), and because functions without
//! handlers should not make the unwinder call a personality at all. The
//! personality CIE is created only when the first function with an LSDA is
//! added, so handler-free code never references the personality symbol.

use crate::error::{LsdaResult, UnsupportedTarget};
use alloc::vec::Vec;
use cranelift_codegen::ir::Endianness;
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use gimli::RunTimeEndian;
use gimli::constants::{self, DwEhPe};
use gimli::write::{
    Address, CieId, CommonInformationEntry, EhFrame, EndianVec, FrameTable, RelocateWriter,
    Relocation, Writer,
};

/// The byte order of `isa`'s tables: the one place it is chosen.
pub fn endian_of(isa: &dyn TargetIsa) -> RunTimeEndian {
    match isa.endianness() {
        Endianness::Little => RunTimeEndian::Little,
        Endianness::Big => RunTimeEndian::Big,
    }
}

/// A section being written (`.eh_frame`, `.gcc_except_table`), with the
/// relocations gimli's `write_eh_pointer` asks for: the one relocation
/// path of both sections.
#[derive(Clone, Debug)]
pub struct RelocatedSection {
    writer: EndianVec<RunTimeEndian>,
    relocations: Vec<Relocation>,
}

impl RelocatedSection {
    /// An empty section.
    pub fn new(endian: RunTimeEndian) -> Self {
        Self {
            writer: EndianVec::new(endian),
            relocations: Vec::new(),
        }
    }

    /// The byte order.
    pub fn endian(&self) -> RunTimeEndian {
        gimli::write::Writer::endian(&self.writer)
    }

    /// The bytes written so far, relocated fields zero.
    pub fn bytes(&self) -> &[u8] {
        self.writer.slice()
    }

    /// The relocations, in the order they were asked for.
    pub fn relocations(&self) -> &[Relocation] {
        &self.relocations
    }

    /// The relocation at `offset`, if any.
    pub fn relocation_at(&self, offset: usize) -> Option<&Relocation> {
        self.relocations.iter().find(|r| r.offset == offset)
    }
}

impl RelocateWriter for RelocatedSection {
    type Writer = EndianVec<RunTimeEndian>;

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

/// The symbols a section's relocations refer to by index
/// (`Address::Symbol { symbol, .. }`), each kept once.
#[derive(Clone, Debug)]
pub struct SymbolIndex<T> {
    symbols: Vec<T>,
}

impl<T> Default for SymbolIndex<T> {
    fn default() -> Self {
        Self {
            symbols: Vec::new(),
        }
    }
}

impl<T: PartialEq> SymbolIndex<T> {
    /// The index of `symbol`, added if new.
    pub fn index(&mut self, symbol: T) -> usize {
        match self.symbols.iter().position(|s| *s == symbol) {
            Some(i) => i,
            None => {
                self.symbols.push(symbol);
                self.symbols.len() - 1
            }
        }
    }

    /// An address at `symbol`.
    pub fn address(&mut self, symbol: T) -> Address {
        Address::Symbol {
            symbol: self.index(symbol),
            addend: 0,
        }
    }

    /// The symbol at `index`.
    pub fn get(&self, index: usize) -> Option<&T> {
        self.symbols.get(index)
    }
}

/// Pointer encodings of one `.eh_frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EhFrameEncoding {
    /// How FDEs encode their function address (the CIE's `R`).
    pub fde_address: DwEhPe,
    /// How the personality pointer is encoded (the CIE's `P`).
    pub personality: DwEhPe,
    /// How FDEs encode their LSDA pointer (the CIE's `L`).
    pub lsda: DwEhPe,
}

impl EhFrameEncoding {
    /// For relocatable objects: PC-relative, and the personality through a
    /// `DW.ref.<name>` slot, so the linker builds `.eh_frame_hdr` and shared
    /// libraries need no text relocations.
    pub fn object() -> Self {
        let pcrel_sdata4 = DwEhPe(constants::DW_EH_PE_pcrel.0 | constants::DW_EH_PE_sdata4.0);
        Self {
            fde_address: pcrel_sdata4,
            personality: DwEhPe(constants::DW_EH_PE_indirect.0 | pcrel_sdata4.0),
            lsda: pcrel_sdata4,
        }
    }

    /// For JIT code: absolute addresses, resolved before registration.
    pub fn jit() -> Self {
        Self {
            fde_address: constants::DW_EH_PE_absptr,
            personality: constants::DW_EH_PE_absptr,
            lsda: constants::DW_EH_PE_absptr,
        }
    }
}

/// A frame table being filled with one FDE per function.
pub struct EhFrameBuilder {
    table: FrameTable,
    base_cie: CommonInformationEntry,
    plain_cie: Option<CieId>,
    personality_cie: Option<CieId>,
    encoding: EhFrameEncoding,
    personality: Address,
}

impl EhFrameBuilder {
    /// A builder for `isa`, whose personality routine is at `personality`
    /// (an address or a symbol, per `encoding.personality`).
    pub fn new(
        isa: &dyn TargetIsa,
        encoding: EhFrameEncoding,
        personality: Address,
    ) -> LsdaResult<Self> {
        let mut base_cie = isa
            .create_systemv_cie()
            .ok_or(UnsupportedTarget::NoSystemVUnwindInfo)?;
        base_cie.fde_address_encoding = encoding.fde_address;
        Ok(Self {
            table: FrameTable::default(),
            base_cie,
            plain_cie: None,
            personality_cie: None,
            encoding,
            personality,
        })
    }

    /// Add the FDE of a function at `address`, with its LSDA at `lsda` if it
    /// has one.
    pub fn add_function(
        &mut self,
        address: Address,
        unwind: &UnwindInfo,
        lsda: Option<Address>,
    ) -> LsdaResult<()> {
        let UnwindInfo::SystemV(info) = unwind else {
            return Err(UnsupportedTarget::NoSystemVUnwindInfo.into());
        };
        let mut fde = info.to_fde(address);
        let cie = match lsda {
            None => *self
                .plain_cie
                .get_or_insert_with(|| self.table.add_cie(self.base_cie.clone())),
            Some(lsda) => {
                fde.lsda = Some(lsda);
                *self.personality_cie.get_or_insert_with(|| {
                    let mut cie = self.base_cie.clone();
                    cie.personality = Some((self.encoding.personality, self.personality));
                    cie.lsda_encoding = Some(self.encoding.lsda);
                    self.table.add_cie(cie)
                })
            }
        };
        self.table.add_fde(cie, fde);
        Ok(())
    }

    /// Whether any function needs the personality.
    pub fn uses_personality(&self) -> bool {
        self.personality_cie.is_some()
    }

    /// Write the section (without a terminator).
    pub fn write<W: Writer>(&self, w: &mut EhFrame<W>) -> LsdaResult<()> {
        self.table.write_eh_frame(w)?;
        Ok(())
    }
}

/// Unwind info of a compiled function, or a clear error when the ISA was
/// configured without it.
pub fn unwind_info_of(
    code: &cranelift_codegen::CompiledCode,
    isa: &dyn TargetIsa,
) -> LsdaResult<UnwindInfo> {
    match code.create_unwind_info(isa) {
        Ok(Some(info)) => Ok(info),
        Ok(None) => Err(UnsupportedTarget::UnwindInfoOff.into()),
        Err(_) => Err(UnsupportedTarget::CfiFailed.into()),
    }
}
