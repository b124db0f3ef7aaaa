//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use cranelift_lsda::{Lsda, LsdaRelocKind};
use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationEncoding, RelocationFlags, RelocationKind,
    SymbolFlags, SymbolKind, SymbolScope,
};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Wrap `lsda` in an x86_64 ELF relocatable object as its only
/// `.gcc_except_table` contents, with undefined symbols for the type entries.
pub fn lsda_object(lsda: &Lsda) -> Vec<u8> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let section = obj.add_section(
        Vec::new(),
        b".gcc_except_table".to_vec(),
        object::SectionKind::ReadOnlyData,
    );
    obj.append_section_data(section, &lsda.bytes, 4);
    let _ = obj.section_id(StandardSection::Text);
    for reloc in &lsda.relocs {
        let symbol = obj.symbol_id(reloc.symbol.as_bytes()).unwrap_or_else(|| {
            obj.add_symbol(Symbol {
                name: reloc.symbol.as_bytes().to_vec(),
                value: 0,
                size: 0,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Undefined,
                flags: SymbolFlags::None,
            })
        });
        let (kind, size, addend) = match reloc.kind {
            LsdaRelocKind::Abs => (RelocationKind::Absolute, 64, reloc.addend),
            LsdaRelocKind::PcRel4 => (RelocationKind::Relative, 32, reloc.addend),
            LsdaRelocKind::IndirectPcRel4 => panic!("the golden objects use direct entries"),
        };
        obj.add_relocation(
            section,
            Relocation {
                offset: u64::from(reloc.offset),
                symbol,
                addend,
                flags: RelocationFlags::Generic {
                    kind,
                    encoding: RelocationEncoding::Generic,
                    size,
                },
            },
        )
        .unwrap();
    }
    obj.write().unwrap()
}

/// Write `bytes` to a fresh file under the target directory.
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("eh-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Run a tool, failing the test with a clear message if it is missing.
pub fn run_tool(tool: &str, args: &[&str], path: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{tool}` ({e}); install it (Debian: see .ci/run) to run this test")
        });
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
