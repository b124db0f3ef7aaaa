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

pub mod jit;

/// The JIT checks as `#[test]`s, for each package that runs them under its
/// own unwinder (`#[macro_use] mod support;` first).
#[allow(unused_macros)]
macro_rules! jit_checks {
    () => {
        #[test]
        fn libstdcxx_catches_in_jit_frames() {
            support::jit::libstdcxx_catches_in_jit_frames();
        }

        #[test]
        fn rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind() {
            support::jit::rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind();
        }
    };
}

/// The scenario suite shared by the JIT and linked-object tests, found
/// from whichever workspace package runs the test.
pub fn cxx_suite() -> String {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    loop {
        let candidate = dir.join("docs/examples/cxx-suite.clif");
        if candidate.exists() {
            return std::fs::read_to_string(candidate).unwrap();
        }
        dir = dir
            .parent()
            .expect("docs/examples/cxx-suite.clif above the package");
    }
}

/// Functions of the suite, as called by the tests.
pub const SUITE_FUNCTIONS: [&str; 7] = [
    "catch_int",
    "catch_base",
    "catch_all",
    "indirect",
    "cleanup",
    "rethrow",
    "depth1",
];

/// One expected outcome: (function, kind) -> (value, escaped, cleanups).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub function: String,
    pub kind: i64,
    pub value: i64,
    /// 0 nothing, 1 int, 2 Base, 3 Unrelated, 4 double (as `eh_call` reports).
    pub escaped: i64,
    pub cleanups: i64,
}

/// The selector the crate predicts for `clause` in the first try_call of
/// `function` that has it, from legalizing the suite for `isa`.
pub fn predicted_selectors() -> impl Fn(&str, &str) -> i64 {
    use cranelift_lsda::{Clause, TypeEntry};
    let rows: std::collections::HashMap<String, Vec<Vec<(Clause, i64)>>> = compiled_suite()
        .into_iter()
        .map(|c| (c.name.trim_start_matches('%').to_string(), c.selectors))
        .collect();
    move |function: &str, type_name: &str| {
        let clause = match type_name {
            "null" => Clause::Catch(TypeEntry::CatchAll),
            name => Clause::Catch(TypeEntry::symbol(name)),
        };
        rows[function]
            .iter()
            .flatten()
            .find(|(c, _)| *c == clause)
            .unwrap_or_else(|| panic!("{function} has no clause {clause}"))
            .1
    }
}

/// Every function of the suite legalized, compiled and encoded for the
/// suite's first target, with object encodings.
pub fn compiled_suite() -> Vec<clif_eh::CompiledFunction> {
    let mut file = clif_eh::parse_file(&cxx_suite()).unwrap();
    let isa = file.isas[0].clone();
    file.functions
        .clone()
        .iter()
        .map(|func| {
            clif_eh::compile_function(
                func,
                &isa,
                &mut file.policy,
                cranelift_lsda::LsdaEncoding::object(),
            )
            .unwrap()
        })
        .collect()
}

/// What each suite function must do for each `eh_throw` kind 0..=5.
pub fn expected_outcomes() -> Vec<Outcome> {
    let sel = predicted_selectors();
    // What escapes a frame with no matching handler, per kind.
    let escape = |kind: i64| match kind {
        1 => (7, 1),
        2 => (11, 2),
        3 => (13, 3),
        4 => (17, 2),
        5 => (2, 4),
        _ => unreachable!(),
    };
    let mut out = Vec::new();
    for function in SUITE_FUNCTIONS {
        for kind in 0..=5 {
            let (value, escaped, cleanups) = match (function, kind) {
                (_, 0) => (42, 0, 0),
                ("catch_int" | "indirect", 1) => (sel(function, "_ZTIi") * 1000 + 7, 0, 0),
                ("catch_base", 1) => (sel(function, "_ZTIi") * 1000 + 7, 0, 0),
                ("catch_base", 2) => (sel(function, "_ZTI4Base") * 1000 + 11, 0, 0),
                ("catch_base", 4) => (sel(function, "_ZTI4Base") * 1000 + 17, 0, 0),
                ("catch_all", 3) => (sel(function, "_ZTI9Unrelated") * 1000 + 13, 0, 0),
                ("catch_all", _) => (sel(function, "null") * 1000 + 99, 0, 0),
                ("cleanup", k) => (escape(k).0, escape(k).1, 1),
                ("rethrow", 1) => (7, 1, 1),
                ("depth1", 1) => (100_000 + sel("depth10", "_ZTIi") * 100 + 7, 0, 0),
                ("depth1", 2) => (50_000 + sel("depth5", "_ZTI4Base") * 100 + 11, 0, 0),
                ("depth1", 4) => (50_000 + sel("depth5", "_ZTI4Base") * 100 + 17, 0, 0),
                ("depth1", _) => (10_000 + sel("depth1", "null") * 100 + 99, 0, 0),
                (_, k) => (escape(k).0, escape(k).1, 0),
            };
            out.push(Outcome {
                function: function.to_string(),
                kind,
                value,
                escaped,
                cleanups,
            });
        }
    }
    out
}

/// Per call site: (start, length, landing pad, action type filters).
pub type Rows = Vec<(u64, u64, u64, Vec<i64>)>;

pub fn our_rows(lsda: &cranelift_lsda::Lsda, encoding: cranelift_lsda::LsdaEncoding) -> Rows {
    let decoded = cranelift_lsda::decode_lsda(
        &lsda.bytes,
        &lsda.relocs,
        encoding.endian,
        encoding.address_size,
    )
    .unwrap();
    decoded
        .call_sites
        .iter()
        .map(|cs| {
            let filters = cs
                .chain
                .iter()
                .map(|a| match a {
                    cranelift_lsda::DecodedAction::Cleanup => 0,
                    cranelift_lsda::DecodedAction::Catch(n) => i64::from(*n),
                    cranelift_lsda::DecodedAction::ExceptionSpec(f) => *f,
                })
                .collect();
            (cs.start, cs.len, cs.landing_pad, filters)
        })
        .collect()
}

fn field(line: &str) -> Option<i64> {
    let value = line.split(':').nth(1)?.split_whitespace().next()?;
    match value.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

pub fn sleb_len(mut v: i64) -> i64 {
    let mut n = 1;
    while !(-64..64).contains(&v) {
        v >>= 7;
        n += 1;
    }
    n
}

/// The same rows, from eu-readelf's text: its call-site table, and its
/// action table (records numbered in order, which we place at byte offsets
/// from their sizes to follow each call site's action).
pub fn readelf_rows(text: &str) -> Rows {
    let mut sites = Vec::new();
    let mut records: Vec<(i64, i64)> = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.contains("Call site start:") {
            let start = field(line).unwrap();
            let len = field(lines.next().unwrap()).unwrap();
            let pad = field(lines.next().unwrap()).unwrap();
            let action = field(lines.next().unwrap()).unwrap();
            sites.push((start, len, pad, action));
        } else if line.contains("ar_filter:") {
            let filter = field(line).unwrap();
            let disp = field(lines.next().unwrap()).unwrap();
            records.push((filter, disp));
        }
    }
    let mut offsets = Vec::new();
    let mut at = 0;
    for (filter, disp) in &records {
        offsets.push(at);
        at += sleb_len(*filter) + sleb_len(*disp);
    }
    sites
        .into_iter()
        .map(|(start, len, pad, action)| {
            let mut filters = Vec::new();
            if action != 0 {
                let mut offset = action - 1;
                loop {
                    let i = offsets.iter().position(|&o| o == offset).expect("record");
                    let (filter, disp) = records[i];
                    filters.push(filter);
                    if disp == 0 {
                        break;
                    }
                    offset = offset + sleb_len(filter) + disp;
                }
            }
            (start as u64, len as u64, pad as u64, filters)
        })
        .collect()
}
