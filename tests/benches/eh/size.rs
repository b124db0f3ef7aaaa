//! Part 1: `.gcc_except_table` bytes per function over the shape corpus:
//! ours (the object `clif-eh` writes) against `g++ -O2` and `clang++ -O2`
//! on the equivalent C++ (both `-fPIC`, as our objects are), and against
//! the layouts two Cranelift embedders write, computed field by field for
//! the same compiled function:
//!
//! * **cg_clif**: rustc_codegen_cranelift's `gcc_except_table.rs` and
//!   `unwind.rs`: one ULEB128 record per call (plain calls too) covering
//!   `[ret − 1, ret)`, its pad and action; the type table `udata4` and
//!   4-aligned. cg_clif itself always writes one catch-all action and one
//!   null type entry, which cannot express typed clauses: where the shape
//!   has typed catches the action and type tables are ours (same entry
//!   size), so the column isolates the call-site scheme. For cleanup-only
//!   and catch-all-only shapes it is exactly what cg_clif writes.
//! * **Wasmer 7.5**: wasmer-compiler-cranelift's `eh.rs`: a `udata4`
//!   record `[ret − 1, ret)` per call with handlers, `udata4` filler
//!   records for the gaps between them (from the function start to its
//!   end), one action chain per distinct clause list (no suffix sharing),
//!   type entries `pcrel|sdata4` (its artifact mode: 4 bytes, as ours), no
//!   padding. Wasmer has no cleanup clause, so shapes with cleanups have no
//!   figure there.

use crate::shapes::{self, Shape};
use crate::{Mode, Row, geomean};
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_lsda::{
    Action, CallSite, CallSiteEncoding, LsdaEncoding, TypeEncoding, TypeEntry,
    call_sites_from_compiled, decode_back, endian_of, legalize_landing_pads, tables_for_compiled,
};
use eh_test_support::{compile_cxx, scratch_file};
use object::{Object, ObjectSection};

const PART: &str = "1 LSDA bytes";

/// Bytes of every `.gcc_except_table*` section of an object.
fn except_table_bytes(object: &[u8]) -> usize {
    let file = object::File::parse(object).expect("an object file");
    file.sections()
        .filter(|s| s.name().is_ok_and(|n| n.starts_with(".gcc_except_table")))
        .map(|s| s.size() as usize)
        .sum()
}

/// `.gcc_except_table` bytes of the shape as `compiler` compiles its C++.
fn cxx_bytes(shape: &Shape, index: usize, compiler: &str, package: &str) -> usize {
    let source = scratch_file(&format!("shape{index}.cpp"), shapes::cxx(shape).as_bytes());
    let object = source.with_extension(format!("{compiler}.o"));
    compile_cxx(
        compiler,
        package,
        &[
            "-O2",
            "-fPIC",
            "-c",
            source.to_str().unwrap(),
            "-o",
            object.to_str().unwrap(),
        ],
    );
    except_table_bytes(&std::fs::read(object).unwrap())
}

/// LSDA bytes of one shape under each layout.
struct Sizes {
    ours: usize,
    cg_clif: usize,
    /// `None` where the shape has a cleanup, which Wasmer cannot express.
    wasmer: Option<usize>,
}

/// Our object's `.gcc_except_table` bytes, and the embedders' layouts of
/// the same compiled function.
fn sizes(shape: &Shape) -> Sizes {
    let file = clif_eh::parse_file(&shapes::clif(shape)).expect("a generated shape parses");
    let isa = &file.isas[0];
    let object = clif_eh::module::emit_object(&file, isa, "__gxx_personality_v0")
        .expect("a generated shape compiles");
    let ours = except_table_bytes(&object);

    // The same compilation as the object's.
    let isa = &clif_eh::module::object_isa(isa).expect("a generated shape's target");
    let mut policy = file.policy.clone();
    let mut func = file.functions[0].clone();
    let prepared = legalize_landing_pads(&mut func, &**isa, &mut policy).unwrap();
    let mut ctx = Context::for_function(func);
    let code_len = ctx
        .compile(&**isa, &mut ControlPlane::default())
        .unwrap()
        .code_buffer()
        .len();
    let encoding = LsdaEncoding::new(CallSiteEncoding::Uleb128, TypeEncoding::IndirectPcRelSdata4);
    let tables = tables_for_compiled(&ctx, &**isa, &policy, &prepared, encoding).unwrap();
    let lsda = tables.lsda.expect("every shape has a handler");
    assert_eq!(lsda.len(), ours, "the object holds this one LSDA");
    let calls = call_sites_from_compiled(&ctx, &policy, &prepared).unwrap();

    // Our call-site records and action table, as the encoder laid them out;
    // the type table's size from the decoded LSDA. Checked against our own
    // length below.
    let decoded = decode_back(&lsda, endian_of(&**isa)).unwrap();
    let records = lsda.call_site_table().records();
    let action_of_ret: Vec<(u64, u64, u32)> = records
        .iter()
        .map(|r| (u64::from(r.start), u64::from(r.start + r.len), r.action))
        .collect();
    let action_len = lsda.action_table().len();
    let type_len = decoded.type_entries.len() * 4;
    let our_call_sites: usize = records
        .iter()
        .map(|r| {
            [r.start, r.len, r.landing_pad, r.action]
                .map(|field| uleb_len(field.into()))
                .iter()
                .sum::<usize>()
        })
        .sum();
    assert_eq!(
        itanium_len(our_call_sites, action_len, type_len, true),
        ours,
        "the rebuilt action table matches ours"
    );

    let action_at = |ret: u32| {
        let ret = u64::from(ret);
        action_of_ret
            .iter()
            .find(|&&(start, end, _)| start < ret && ret <= end)
            .map_or(0, |&(_, _, a)| a)
    };
    let cg_clif_records: usize = calls
        .iter()
        .map(|c| {
            let pad = c.landing_pad.as_ref().map_or(0, |p| p.offset);
            uleb_len(u64::from(c.ret_addr - 1))
                + uleb_len(1)
                + uleb_len(pad.into())
                + uleb_len(action_at(c.ret_addr).into())
        })
        .sum();
    // cg_clif always writes its catch-all action and null type entry.
    let (cg_actions, cg_types) = if type_len == 0 {
        (2, 4)
    } else {
        (action_len, type_len)
    };
    let cg_clif = itanium_len(cg_clif_records, cg_actions, cg_types, false);
    Sizes {
        ours,
        cg_clif,
        wasmer: wasmer_len(&calls, prepared.types().entries(), code_len as u32),
    }
}

/// Bytes of an LSDA with `call_sites` bytes of call-site table (its length
/// field excluded), `actions` of action table and `types` of type table,
/// the type table 4-aligned: through a padded TType-base ULEB128 as ours
/// (`padded_base`), or through padding bytes before it as cg_clif.
fn itanium_len(call_sites: usize, actions: usize, types: usize, padded_base: bool) -> usize {
    // LPStart and TType encodings; the call-site encoding, table length
    // and table; the action table.
    let body = 1 + uleb_len(call_sites as u64) + call_sites + actions;
    if types == 0 {
        return 2 + body;
    }
    let len = |width: usize, padding: usize| 2 + width + body + padding + types;
    if padded_base {
        // The narrowest field that holds the base, padding after it.
        (1..=5)
            .map(|width| (width, (4 - len(width, 0) % 4) % 4))
            .find(|&(width, padding)| uleb_len((body + padding + types) as u64) <= width)
            .map(|(width, padding)| len(width, padding))
            .expect("a five-byte field holds any base")
    } else {
        // The fewest padding bytes that align the table after a minimal field.
        (0..4)
            .map(|padding| (uleb_len((body + padding + types) as u64), padding))
            .find(|&(width, padding)| len(width, padding).is_multiple_of(4))
            .map(|(width, padding)| len(width, padding))
            .expect("some padding aligns the type table")
    }
}

/// Wasmer 7.5's LSDA for these call sites (whose catches index
/// `type_entries`), or `None` if a clause is a cleanup.
fn wasmer_len(calls: &[CallSite], type_entries: &[TypeEntry], code_len: u32) -> Option<usize> {
    let mut types: Vec<&TypeEntry> = Vec::new();
    let mut lists: Vec<(Vec<u32>, usize)> = Vec::new();
    let mut actions = 0usize;
    let mut call_sites = 0usize;
    let mut end = 0u32;
    // A filler record (three udata4 fields, action 0) for a gap.
    let gap = |from: u32, to: u32| if to > from { 12 + 1 } else { 0 };
    for call in calls {
        let Some(pad) = &call.landing_pad else {
            continue;
        };
        let mut indices = Vec::new();
        for action in pad.actions.iter() {
            let Action::Catch(index) = *action else {
                return None;
            };
            let entry = &type_entries[index as usize - 1];
            let index = match types.iter().position(|t| *t == entry) {
                Some(i) => i,
                None => {
                    types.push(entry);
                    types.len() - 1
                }
            };
            indices.push(index as u32 + 1);
        }
        let head = match lists.iter().find(|(l, _)| *l == indices) {
            Some(&(_, head)) => head,
            None => {
                // Written innermost-last with back links: the chain's head
                // (first clause) is the last record written.
                let mut previous: Option<(usize, usize)> = None;
                for &index in indices.iter().rev() {
                    let index_len = sleb_len(index.into());
                    let link = previous.map_or(0, |(_, len)| -((len + index_len) as i64));
                    let len = index_len + sleb_len(link);
                    previous = Some((actions, len));
                    actions += len;
                }
                let head = previous.expect("a clause list is never empty").0;
                lists.push((indices, head));
                head
            }
        };
        let start = call.ret_addr - 1;
        call_sites += gap(end, start);
        call_sites += 12 + uleb_len(head as u64 + 1);
        end = call.ret_addr;
    }
    call_sites += gap(end, code_len);
    let type_table = types.len() * 4;
    let after_base = 1 + uleb_len(call_sites as u64) + call_sites + actions + type_table;
    Some(2 + uleb_len(after_base as u64) + after_base)
}

fn uleb_len(value: u64) -> usize {
    let mut bytes = Vec::new();
    gimli::leb128::write::unsigned(&mut bytes, value).unwrap()
}

fn sleb_len(value: i64) -> usize {
    let mut bytes = Vec::new();
    gimli::leb128::write::signed(&mut bytes, value).unwrap()
}

pub fn rows(_mode: Mode) -> Vec<Row> {
    // Every shape in smoke mode too: the sizes are the gated figures.
    let corpus = shapes::corpus();
    let mut rows = Vec::new();
    let (mut vs_cxx, mut vs_cg_clif, mut vs_wasmer) = (Vec::new(), Vec::new(), Vec::new());
    // EH_BENCH_DUMP=<dir>: write each shape's CLIF and C++ there, to look
    // at what was compared (`clif-eh show`, `g++ -S`).
    let dump = std::env::var_os("EH_BENCH_DUMP").map(std::path::PathBuf::from);
    for (i, shape) in corpus.iter().enumerate() {
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("shape{i}.clif")), shapes::clif(shape)).unwrap();
            std::fs::write(dir.join(format!("shape{i}.cpp")), shapes::cxx(shape)).unwrap();
        }
        let sizes = sizes(shape);
        let gcc = cxx_bytes(shape, i, "g++", "g++");
        let clang = cxx_bytes(shape, i, "clang++", "clang");
        let best = gcc.min(clang);
        let ours = sizes.ours as f64;
        vs_cxx.push(ours / best as f64);
        vs_cg_clif.push(ours / sizes.cg_clif as f64);
        let wasmer = match sizes.wasmer {
            Some(bytes) => {
                vs_wasmer.push(ours / bytes as f64);
                bytes.to_string()
            }
            None => "—".into(),
        };
        rows.push(
            Row::new(PART, format!("{} ({} calls)", shape.name, shape.calls()))
                .values(
                    format!("{}", sizes.ours),
                    format!(
                        "g++ {gcc}, clang {clang}, cg_clif {}, Wasmer {wasmer}",
                        sizes.cg_clif
                    ),
                )
                .ratio(ours, best as f64)
                .gated(format!("lsda-bytes/{}", shape.name), ours),
        );
    }
    let geomean_row = |versus: &str, ratios: &[f64]| {
        Row::new(
            PART,
            format!("geomean over {} shapes, vs {versus}", ratios.len()),
        )
        .values("", "")
        .ratio(geomean(ratios), 1.0)
    };
    rows.push(
        geomean_row("min(g++, clang)", &vs_cxx)
            .target(1.0)
            .headline(),
    );
    rows.push(
        geomean_row(
            "cg_clif's layout (one ULEB128 record per call)",
            &vs_cg_clif,
        )
        .target(0.6)
        .headline(),
    );
    rows.push(geomean_row(
        "Wasmer 7.5's layout (udata4 records, gap fillers)",
        &vs_wasmer,
    ));
    rows
}
