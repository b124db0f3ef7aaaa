//! The end-to-end suite's shared checks, used by this package's tests and
//! by the per-unwinder JIT packages (`jit-llvm-libunwind`,
//! `jit-nongnu-libunwind`): the selectors the crate predicts for the
//! scenario suite, the JIT checks, and LSDAs wrapped in ELF objects for
//! external decoders.

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_lsda::{DecodedAction, Lsda, ObjectTables, decode_back};
use cranelift_module::default_libcall_names;
use cranelift_object::{ObjectBuilder, ObjectModule};
pub use eh_test_support::*;

pub mod jit;

/// The JIT checks as `#[test]`s, for each package that runs them under its
/// own unwinder.
#[macro_export]
macro_rules! jit_checks {
    ($finds:path) => {
        $crate::jit_checks!(@placed $finds, $crate::jit::Placement::RegisterFrame);

        /// The same checks with the code in loader-known arenas.
        mod in_arenas {
            $crate::jit_checks!(@placed $finds, $crate::jit::Placement::arenas());
        }
    };
    (@placed $finds:path, $placement:expr) => {
        #[test]
        fn libstdcxx_catches_in_jit_frames() {
            $crate::jit::libstdcxx_catches_in_jit_frames(&$placement);
        }

        #[test]
        fn rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind() {
            $crate::jit::rust_panic_runs_cranelift_cleanups_and_reaches_catch_unwind(&$placement);
        }

        #[test]
        fn tables_are_deregistered_before_the_code_is_freed() {
            $crate::jit::tables_are_deregistered_before_the_code_is_freed(&$placement, $finds);
        }
    };
}

/// The selector the crate predicts for `clause` in the first try_call of
/// `function` that has it, from legalizing the suite for `isa`.
pub fn predicted_selectors() -> impl Fn(&str, &str) -> i64 {
    use cranelift_lsda::{Clause, TypeEntry};
    let rows: std::collections::HashMap<String, Vec<Vec<(Clause, i64)>>> = compiled_suite()
        .into_iter()
        .map(|c| {
            let rows = c.prepared.reports().iter().map(|r| r.selectors.to_vec());
            (c.name.trim_start_matches('%').to_string(), rows.collect())
        })
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
                &*isa,
                &mut file.policy,
                cranelift_lsda::LsdaEncoding::object(),
            )
            .unwrap()
        })
        .collect()
}

/// What each suite function must do for each `eh_throw` kind 0..=5, with
/// the selectors the crate predicts.
pub fn expected_suite_outcomes() -> Vec<Outcome> {
    expected_outcomes(predicted_selectors())
}

/// Per call site of our LSDA: (start, length, landing pad, type filters).
pub fn our_rows(lsda: &Lsda) -> Rows {
    let decoded = decode_back(lsda, gimli::RunTimeEndian::Little).unwrap();
    decoded
        .call_sites
        .iter()
        .map(|cs| {
            let filters = cs
                .chain
                .iter()
                .map(|a| match a {
                    DecodedAction::Cleanup => 0,
                    DecodedAction::Catch(n) => i64::from(*n),
                    DecodedAction::ExceptionSpec(f) => *f,
                    other => panic!("unexpected action {other:?}"),
                })
                .collect();
            (cs.start, cs.len, cs.landing_pad, filters)
        })
        .collect()
}

/// `lsda` as the only `.gcc_except_table` contents of an x86_64 ELF
/// relocatable object, through the crate's own object writer.
pub fn lsda_object(lsda: &Lsda) -> Vec<u8> {
    let isa = x86_64_isa();
    let builder = ObjectBuilder::new(isa.clone(), "golden", default_libcall_names()).unwrap();
    let mut product = ObjectModule::new(builder).finish();
    let mut tables = ObjectTables::new(&*isa, "__gxx_personality_v0").unwrap();
    tables.add_lsda(lsda).unwrap();
    tables.finish(&mut product).unwrap();
    product.emit().unwrap()
}

fn x86_64_isa() -> OwnedTargetIsa {
    use cranelift_codegen::settings::{self, Configurable};
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    cranelift_codegen::isa::lookup_by_name("x86_64")
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}
