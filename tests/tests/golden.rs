//! Golden LSDAs: exact bytes of hand-checked tables, each also decoded by
//! elfutils' `eu-readelf --debug-dump=exception` from an ELF object built
//! with the `object` crate; its decoding must agree with ours.

use cranelift_lsda::{
    CallSite, CallSiteEncoding, Clause, ClauseList, LandingPad, Lsda, LsdaEncoding,
    RelocatedSection, SymbolIndex, TypeEncoding, TypeEntry, TypeTable,
};
use eh_tests::{our_rows, readelf_rows, sleb_len};
use pretty_assertions::assert_eq;

fn catch(name: &str) -> Clause {
    Clause::Catch(TypeEntry::symbol(name))
}

/// A call and its pad's clauses, as a front end gives them.
struct Site {
    ret_addr: u32,
    pad: Option<(u32, ClauseList)>,
}

fn site(ret_addr: u32, pad: Option<(u32, &[Clause])>) -> Site {
    Site {
        ret_addr,
        pad: pad
            .map(|(offset, clauses)| (offset, ClauseList::new(clauses.iter().cloned()).unwrap())),
    }
}

/// The encoder's call sites: each clause list as its actions over `types`.
fn call_sites(sites: &[Site], types: &TypeTable) -> Vec<CallSite> {
    let landing_pad = |(offset, clauses): &(u32, ClauseList)| {
        LandingPad::new(*offset, clauses.actions(types).unwrap())
    };
    sites
        .iter()
        .map(|s| CallSite::new(s.ret_addr, s.pad.as_ref().map(landing_pad)))
        .collect()
}

struct Golden {
    name: &'static str,
    sites: Vec<Site>,
    code_len: u32,
    encoding: LsdaEncoding,
    bytes: &'static [u8],
}

fn types_of(sites: &[Site]) -> TypeTable {
    let mut types = TypeTable::new();
    for s in sites {
        if let Some((_, clauses)) = &s.pad {
            types.add_clauses(clauses).unwrap();
        }
    }
    types
}

fn goldens() -> Vec<Golden> {
    let all = Clause::Catch(TypeEntry::CatchAll);
    vec![
        Golden {
            // try { plain(); f(); } catch (int) {} catch (...) {}
            name: "catch_int_then_all",
            sites: vec![
                site(0x10, None),
                site(0x20, Some((0x40, &[catch("_ZTIi"), all.clone()]))),
            ],
            code_len: 0x60,
            encoding: LsdaEncoding::object(),
            #[rustfmt::skip]
            bytes: &[
                0xff, 0x1b, 0x19, 0x01, 0x08,       // omit, pcrel|sdata4, TTBase +25, uleb128, 8 bytes
                0x00, 0x10, 0x00, 0x00,             // [0x00, 0x10) no pad
                0x10, 0x10, 0x40, 0x03,             // [0x10, 0x20) pad 0x40, action 3
                0x02, 0x00,                         // @0: catch #2 (null), end
                0x01, 0x7d,                         // @2: catch #1 (_ZTIi), next @0
                0x00, 0x00, 0x00,                   // align the type table
                0x00, 0x00, 0x00, 0x00,             // #2: null
                0x00, 0x00, 0x00, 0x00,             // #1: _ZTIi (relocated)
            ],
        },
        Golden {
            // Cleanups only, fixed-width call sites: no type table at all.
            name: "cleanup_udata4",
            sites: vec![
                site(0x08, Some((0x30, &[Clause::Cleanup]))),
                site(0x14, None),
                site(0x1c, Some((0x30, &[Clause::Cleanup]))),
            ],
            code_len: 0x40,
            encoding: LsdaEncoding::new(CallSiteEncoding::Udata4, TypeEncoding::PcRelSdata4),
            #[rustfmt::skip]
            bytes: &[
                0xff, 0xff, 0x03, 0x27,             // omit, omit, udata4, 39 bytes
                0, 0, 0, 0,  8, 0, 0, 0,  0x30, 0, 0, 0,  0x00,    // [0x00, 0x08) pad 0x30, cleanup
                8, 0, 0, 0,  0x0c, 0, 0, 0,  0, 0, 0, 0,  0x00,    // [0x08, 0x14) no pad
                0x14, 0, 0, 0,  8, 0, 0, 0,  0x30, 0, 0, 0,  0x00, // [0x14, 0x1c) pad 0x30, cleanup
            ],
        },
        Golden {
            // Chains [A, B, all], [C, B, all] and [A, cleanup]: the suffix
            // [B, all] is written once. JIT encoding with an absolute entry.
            // The in-tree encoder's unit test `golden_shared_suffix_absptr`
            // holds these bytes too; this test is where eu-readelf reads them.
            name: "shared_suffix_absptr",
            sites: vec![
                site(0x10, Some((0x50, &[catch("A"), catch("B"), all.clone()]))),
                site(
                    0x20,
                    Some((
                        0x60,
                        &[
                            Clause::Catch(TypeEntry::Address(0x1122_3344_5566_7788)),
                            catch("B"),
                            all.clone(),
                        ],
                    )),
                ),
                site(0x30, Some((0x70, &[catch("A"), Clause::Cleanup]))),
            ],
            code_len: 0x80,
            encoding: LsdaEncoding::jit(),
            #[rustfmt::skip]
            bytes: &[
                0xff, 0x00, 0x3d, 0x01, 0x0c,       // omit, absptr, TTBase +61, uleb128, 12 bytes
                0x00, 0x10, 0x50, 0x05,             // [0x00, 0x10) pad 0x50, action 5
                0x10, 0x10, 0x60, 0x07,             // [0x10, 0x20) pad 0x60, action 7
                0x20, 0x10, 0x70, 0x0b,             // [0x20, 0x30) pad 0x70, action 11
                0x03, 0x00,                         // @0: catch #3 (null), end
                0x02, 0x7d,                         // @2: catch #2 (B), next @0
                0x01, 0x7d,                         // @4: catch #1 (A), next @2
                0x04, 0x7b,                         // @6: catch #4 (0x1122..), next @2
                0x00, 0x00,                         // @8: cleanup, end
                0x01, 0x7d,                         // @10: catch #1 (A), next @8
                0x00, 0x00, 0x00,                   // align the type table
                0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // #4: 0x1122334455667788
                0, 0, 0, 0, 0, 0, 0, 0,             // #3: null
                0, 0, 0, 0, 0, 0, 0, 0,             // #2: B (relocated)
                0, 0, 0, 0, 0, 0, 0, 0,             // #1: A (relocated)
            ],
        },
        Golden {
            // 100 calls: plain calls around 50 try_calls to one pad merge
            // into three records.
            name: "coalesced_hundred_calls",
            sites: (1..=100u32)
                .map(|i| {
                    site(
                        i * 8,
                        (25..75).contains(&i).then_some((0x400, &[catch("E")][..])),
                    )
                })
                .collect(),
            code_len: 0x500,
            encoding: LsdaEncoding::object(),
            #[rustfmt::skip]
            bytes: &[
                0xff, 0x1b, 0x1d, 0x01, 0x12,       // omit, pcrel|sdata4, TTBase +29, uleb128, 18 bytes
                0x00, 0xc0, 0x01, 0x00, 0x00,       // [0x000, 0x0c0) no pad
                0xc0, 0x01, 0x90, 0x03, 0x80, 0x08, 0x01, // [0x0c0, 0x250) pad 0x400, action 1
                0xd0, 0x04, 0xd0, 0x01, 0x00, 0x00, // [0x250, 0x320) no pad
                0x01, 0x00,                         // @0: catch #1 (E), end
                0x00, 0x00, 0x00,                   // align the type table
                0x00, 0x00, 0x00, 0x00,             // #1: E (relocated)
            ],
        },
    ]
}

#[test]
fn golden_bytes_and_eu_readelf_agree() {
    println!(
        "{:<26} {:>8} {:>22}",
        "table", "bytes", "one-per-call udata4"
    );
    for golden in goldens() {
        let types = types_of(&golden.sites);
        let sites = call_sites(&golden.sites, &types);
        let lsda = Lsda::new(&sites, golden.code_len, types.entries(), golden.encoding, 8)
            .unwrap()
            .unwrap();
        let mut section = RelocatedSection::new(gimli::RunTimeEndian::Little);
        let mut symbols = SymbolIndex::default();
        lsda.write(&mut section, |name| Some(symbols.address(name.to_string())))
            .unwrap();
        let bytes = section.bytes();
        assert_eq!(bytes, golden.bytes, "{}", golden.name);

        let object = eh_tests::lsda_object(&lsda);
        let path = eh_tests::scratch_file(&format!("{}.o", golden.name), &object);
        let text = eh_tests::run_tool("eu-readelf", &["--debug-dump=exception"], &path);
        assert_eq!(
            readelf_rows(&text),
            our_rows(&lsda),
            "{}: eu-readelf disagrees:\n{text}",
            golden.name
        );
        let ttype = match golden.encoding.types {
            _ if bytes[1] == 0xff => "(omit)",
            TypeEncoding::Absptr => "(absptr)",
            TypeEncoding::PcRelSdata4 => "(sdata4 pcrel)",
            TypeEncoding::IndirectPcRelSdata4 => "(sdata4 pcrel indirect)",
            other => panic!("no golden table uses {other:?}"),
        };
        assert!(
            text.lines()
                .any(|l| l.contains("TType encoding") && l.contains(ttype)),
            "{}: {text}",
            golden.name
        );
        println!(
            "{:<26} {:>8} {:>22}",
            golden.name,
            bytes.len(),
            one_entry_per_call_udata4(&golden.sites, &types, golden.encoding)
        );
    }
}

/// The size the same function's LSDA takes in the common embedder scheme
/// (one udata4 record per call, no coalescing, one action chain per call
/// with no sharing), computed field by field.
fn one_entry_per_call_udata4(sites: &[Site], types: &TypeTable, enc: LsdaEncoding) -> usize {
    let uleb_len = |v: usize| gimli::leb128::write::uleb128_size(v as u64);
    let mut records = 0;
    let mut actions = 0;
    let mut max_type = 0;
    for s in sites {
        let mut chain_bytes = 0;
        if let Some((_, clauses)) = s.pad.as_ref().filter(|(_, c)| !c.is_cleanup_only()) {
            for c in clauses.clauses() {
                let filter = match c {
                    Clause::Cleanup => 0,
                    Clause::Catch(e) => types.filter(e).unwrap(),
                    other => panic!("unexpected clause {other}"),
                };
                max_type = max_type.max(filter);
                chain_bytes += sleb_len(i64::from(filter)) as usize + 1;
            }
        }
        let action = if chain_bytes == 0 { 0 } else { actions + 1 };
        records += 12 + uleb_len(action);
        actions += chain_bytes;
    }
    let entry = match enc.types {
        TypeEncoding::Absptr => 8,
        _ => 4,
    };
    // Call-site encoding byte, table length, records, action table.
    let body = 1 + uleb_len(records) + records + actions;
    if max_type == 0 {
        // LPStart and TType encoding bytes.
        return 2 + body;
    }
    // LPStart, TType, a one-byte TType base; then the aligned type table.
    let pad = (4 - (3 + body) % 4) % 4;
    3 + body + pad + entry * max_type as usize
}
