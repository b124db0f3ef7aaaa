//! Part 1: `.gcc_except_table` bytes per function over the shape corpus:
//! ours (the object `clif-eh` writes) against `g++ -O2` and `clang++ -O2`
//! on the equivalent C++ (both `-fPIC`, as our objects are), and against a
//! one-entry-per-call table with udata4 fields (rustc_codegen_cranelift's
//! scheme).
//!
//! The one-entry-per-call figure is our LSDA with its call-site table
//! replaced by one 12-byte udata4 record (start, length, pad) plus the
//! ULEB128 action per call, plain calls included (the personality
//! terminates on a call it finds no record for); header, action and type
//! tables are ours (the type table's alignment padding too, which the
//! longer table could change by up to 3 bytes either way).

use crate::shapes::{self, Shape};
use crate::{Mode, Row, geomean};
use cranelift_codegen::Context;
use cranelift_codegen::control::ControlPlane;
use cranelift_lsda::{
    CallSiteEncoding, LsdaEncoding, TypeEncoding, call_sites_from_compiled, legalize_landing_pads,
    tables_for_compiled,
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

/// Our object's `.gcc_except_table` bytes, and the one-entry-per-call
/// estimate from the same compiled function.
fn our_bytes(shape: &Shape) -> (usize, usize) {
    let file = clif_eh::parse_file(&shapes::clif(shape)).expect("a generated shape parses");
    let isa = &file.isas[0];
    let object = clif_eh::module::emit_object(&file, isa, "__gxx_personality_v0")
        .expect("a generated shape compiles");
    let ours = except_table_bytes(&object);

    let mut policy = file.policy.clone();
    let mut func = file.functions[0].clone();
    let prepared = legalize_landing_pads(&mut func, &**isa, &mut policy).unwrap();
    let mut ctx = Context::for_function(func);
    let code = ctx.compile(&**isa, &mut ControlPlane::default()).unwrap();
    let encoding = LsdaEncoding {
        types: TypeEncoding::IndirectPcRelSdata4,
        ..LsdaEncoding::object()
    };
    let tables = tables_for_compiled(code, &**isa, &policy, &prepared, encoding).unwrap();
    let lsda = tables.lsda.expect("every shape has a handler");
    let calls =
        call_sites_from_compiled(code.buffer.call_sites(), &policy, Some(&prepared)).unwrap();
    let records = lsda.call_site_table().records();
    let action_of = |ret_addr: u32| {
        records
            .iter()
            .find(|r| r.start < ret_addr && ret_addr <= r.start + r.len)
            .map_or(0, |r| r.action)
    };
    let per_call: usize = calls
        .iter()
        .map(|c| 12 + uleb_len(action_of(c.ret_addr).into()))
        .sum();
    let coalesced = lsda
        .call_site_table()
        .encoded_len(CallSiteEncoding::Uleb128)
        .unwrap();
    let table = |len: usize| uleb_len(len as u64) + len;
    let one_per_call = lsda.len() - table(coalesced) + table(per_call);
    (ours, one_per_call)
}

fn uleb_len(value: u64) -> usize {
    let mut bytes = Vec::new();
    gimli::leb128::write::unsigned(&mut bytes, value).unwrap()
}

pub fn rows(mode: Mode) -> Vec<Row> {
    let mut corpus = shapes::corpus();
    if mode == Mode::Smoke {
        corpus.truncate(3);
    }
    let mut rows = Vec::new();
    let (mut vs_cxx, mut vs_per_call) = (Vec::new(), Vec::new());
    // EH_BENCH_DUMP=<dir>: write each shape's CLIF and C++ there, to look
    // at what was compared (`clif-eh show`, `g++ -S`).
    let dump = std::env::var_os("EH_BENCH_DUMP").map(std::path::PathBuf::from);
    for (i, shape) in corpus.iter().enumerate() {
        if let Some(dir) = &dump {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("shape{i}.clif")), shapes::clif(shape)).unwrap();
            std::fs::write(dir.join(format!("shape{i}.cpp")), shapes::cxx(shape)).unwrap();
        }
        let (ours, per_call) = our_bytes(shape);
        let gcc = cxx_bytes(shape, i, "g++", "g++");
        let clang = cxx_bytes(shape, i, "clang++", "clang");
        let best = gcc.min(clang);
        vs_cxx.push(ours as f64 / best as f64);
        vs_per_call.push(ours as f64 / per_call as f64);
        rows.push(
            Row::new(PART, format!("{} ({} calls)", shape.name, shape.calls()))
                .values(
                    format!("{ours}"),
                    format!("g++ {gcc}, clang {clang}, 1/call {per_call}"),
                )
                .ratio(ours as f64, best as f64),
        );
    }
    rows.push(
        Row::new(
            PART,
            format!("geomean over {} shapes, vs min(g++, clang)", corpus.len()),
        )
        .values("", "")
        .target(1.0)
        .ratio(geomean(&vs_cxx), 1.0),
    );
    rows.push(
        Row::new(PART, "geomean, vs one entry per call (udata4)")
            .values("", "")
            .target(0.6)
            .ratio(geomean(&vs_per_call), 1.0),
    );
    rows
}
