//! `.eh_frame` with two CIEs: a plain one for functions without handlers,
//! and one with a personality and an LSDA encoding for functions with an
//! LSDA.
//!
//! Two CIEs, because an LSDA-carrying CIE obliges every FDE under it to
//! carry an LSDA pointer (gimli enforces it), and because functions without
//! handlers should not make the unwinder call a personality at all. The
//! personality CIE is created only when the first function with an LSDA is
//! added, so handler-free code never references the personality symbol.

use crate::error::{LsdaError, LsdaResult};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::isa::unwind::UnwindInfo;
use gimli::constants::{self, DwEhPe};
use gimli::write::{Address, CieId, CommonInformationEntry, EhFrame, FrameTable, Writer};

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
        let mut base_cie = isa.create_systemv_cie().ok_or_else(|| {
            LsdaError::UnsupportedIsa(format!("{} has no System V CIE", isa.triple()))
        })?;
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
            return Err(LsdaError::UnsupportedIsa(
                "the function's unwind info is not System V CFI".to_string(),
            ));
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
    code.create_unwind_info(isa)
        .map_err(|e| LsdaError::UnsupportedIsa(format!("unwind info: {e}")))?
        .ok_or_else(|| {
            LsdaError::UnsupportedIsa(
                "no unwind info was produced (set unwind_info=true)".to_string(),
            )
        })
}
