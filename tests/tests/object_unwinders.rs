//! Linked-object path: the suite compiled with cranelift-object and our
//! `.eh_frame` / `.gcc_except_table`, linked by g++ into executables (one per
//! unwinder: libgcc_s, LLVM libunwind, nongnu libunwind) and into a shared
//! library, caught by libstdc++'s `__gxx_personality_v0`. The linked tables
//! are read back by our dump and by readelf, llvm-dwarfdump and eu-readelf.

use clif_eh::dump::{EhDump, dump_elf};
use eh_test_support::{compile_cxx, gxx};
use eh_tests::{Outcome, cxx_suite, expected_suite_outcomes as expected_outcomes};
use pretty_assertions::assert_eq;
use std::path::{Path, PathBuf};
use std::process::Command;

const RUNTIME: &str = eh_test_support::RUNTIME_CPP;
const MAIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cxx/object_main.cpp");

fn multiarch_lib(name: &str) -> String {
    let path = format!("/usr/lib/{}-linux-gnu/{name}", std::env::consts::ARCH);
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install Debian's libunwind-14 (LLVM) and libunwind8 (nongnu), \
         as .ci/run does"
    );
    path
}

/// The suite as a relocatable object for the host.
fn suite_object(dir: &Path) -> PathBuf {
    suite_object_for(dir, target_lexicon::Triple::host().architecture)
}

/// The suite as a relocatable object for `arch`.
fn suite_object_for(dir: &Path, arch: target_lexicon::Architecture) -> PathBuf {
    let text = cxx_suite();
    let file = clif_eh::parse_file(&text).unwrap();
    let isa = file
        .isas
        .iter()
        .find(|i| i.triple().architecture == arch)
        .unwrap_or_else(|| panic!("the suite has no `target {arch}`"))
        .clone();
    #[cfg(not(cranelift_lsda_upstream))]
    let bytes = clif_eh::module::emit_object(&file, &isa, "__gxx_personality_v0").unwrap();
    #[cfg(cranelift_lsda_upstream)]
    let bytes = in_tree_object(file, &isa);
    let path = dir.join(format!("suite-{arch}.o"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The suite as the series' cranelift-object writes it (released.sh, with
/// the in-tree API): `ObjectBuilder::personality`, each function put into
/// landing-pad form, defined, then given its LSDA by
/// `ObjectModule::define_lsda` with the policy's action chains. Every test
/// of this file then runs on that object.
#[cfg(cranelift_lsda_upstream)]
fn in_tree_object(
    mut file: clif_eh::EhFile,
    isa: &cranelift_codegen::isa::OwnedTargetIsa,
) -> Vec<u8> {
    use cranelift_lsda::{LandingPads, actions_for_tags, prepare_function};
    use cranelift_object::{ObjectBuilder, ObjectModule};
    let isa = clif_eh::module::object_isa(isa).unwrap();
    let libcalls = cranelift_module::default_libcall_names();
    let mut builder = ObjectBuilder::new(isa.clone(), "suite", libcalls).unwrap();
    builder
        .unwind_info(true)
        .personality("__gxx_personality_v0");
    let mut module = ObjectModule::new(builder);
    let mut prepared = Vec::new();
    for func in &mut file.functions {
        let mode = LandingPads::Legalize;
        prepared.push(prepare_function(func, &*isa, &mut file.policy, mode).unwrap());
    }
    let mut defined = Vec::new();
    clif_eh::module::define_all_then(&mut module, &file, |index, id, _| {
        defined.push((index, id));
        Ok(())
    })
    .unwrap();
    for (index, id) in defined {
        let actions = actions_for_tags(&file.policy, &prepared[index]);
        let types = prepared[index].types().entries();
        module.define_lsda(id, types, actions).unwrap();
    }
    module.finish().emit().unwrap()
}

/// The suite's host object linked by g++ with the driver and `with` (the
/// C++ runtime, or what provides it) into `dir/name`.
fn link_suite(dir: &Path, name: &str, with: &[&str]) -> PathBuf {
    let object = suite_object(dir);
    let exe = dir.join(name);
    let mut args = vec!["-O1", "-o", exe.to_str().unwrap(), MAIN];
    args.push(object.to_str().unwrap());
    args.extend(with);
    gxx(&args);
    exe
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Run a linked suite executable: (unwinder library, outcomes).
fn run_suite(exe: &Path) -> (String, Vec<Outcome>) {
    run_suite_with(Command::new(exe))
}

/// Run a suite executable through `command` (the executable itself, or an
/// emulator with the executable as argument).
fn run_suite_with(mut command: Command) -> (String, Vec<Outcome>) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_suite_output(&String::from_utf8(out.stdout).unwrap())
}

/// What object_main.cpp printed: (unwinder library, outcomes).
fn parse_suite_output(text: &str) -> (String, Vec<Outcome>) {
    let mut lines = text.lines();
    let unwinder = lines
        .next()
        .unwrap()
        .strip_prefix("unwinder ")
        .unwrap()
        .to_string();
    let outcomes = lines
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Outcome {
                function: f[0].to_string(),
                kind: f[1].parse().unwrap(),
                value: f[2].parse().unwrap(),
                escaped: f[3].parse().unwrap(),
                cleanups: f[4].parse().unwrap(),
            }
        })
        .collect();
    (unwinder, outcomes)
}

#[test]
fn libstdcxx_catches_in_linked_objects_under_every_unwinder() {
    let dir = scratch_dir("object-unwinders");
    let llvm = multiarch_lib("libunwind.so.1");
    let nongnu = multiarch_lib("libunwind.so.8");
    for (name, extra, expected_library) in [
        ("libgcc", vec![], "libgcc_s.so"),
        (
            "llvm-libunwind",
            vec!["-Wl,--no-as-needed", llvm.as_str()],
            "libunwind.so.1",
        ),
        (
            "nongnu-libunwind",
            vec!["-Wl,--no-as-needed", nongnu.as_str()],
            "libunwind.so.8",
        ),
    ] {
        let mut with = vec![RUNTIME];
        with.extend(extra);
        let exe = link_suite(&dir, &format!("suite-{name}"), &with);
        let (unwinder, outcomes) = run_suite(&exe);
        assert!(
            unwinder.contains(expected_library),
            "{name}: unwinder is {unwinder}"
        );
        assert_eq!(outcomes, expected_outcomes(), "{name}");
    }
}

#[test]
fn libstdcxx_catches_in_a_shared_library() {
    let dir = scratch_dir("object-shared");
    let object = suite_object(&dir);
    let lib = dir.join("libsuite.so");
    gxx(&[
        "-shared",
        "-fPIC",
        "-o",
        lib.to_str().unwrap(),
        object.to_str().unwrap(),
        RUNTIME,
    ]);
    let exe = dir.join("suite-shared");
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    let search = format!("-L{}", dir.display());
    gxx(&[
        "-O1",
        "-o",
        exe.to_str().unwrap(),
        MAIN,
        &search,
        "-lsuite",
        &rpath,
    ]);
    let (_, outcomes) = run_suite(&exe);
    assert_eq!(outcomes, expected_outcomes());

    let dump = dump_elf(&std::fs::read(&lib).unwrap()).unwrap();
    for function in eh_tests::SUITE_FUNCTIONS {
        let fde = dump
            .fdes
            .iter()
            .find(|f| f.function.as_deref() == Some(function))
            .unwrap_or_else(|| panic!("no FDE for {function}"));
        assert_eq!(fde.found_by_hdr, Some(true), "{function} in .eh_frame_hdr");
    }
}

/// The linked suite under valgrind's memcheck: no memory error, nothing
/// lost; every exception caught in a Cranelift frame was freed (an
/// exception never ended would stay on libstdc++'s caught stack).
#[test]
fn the_linked_suite_leaks_nothing_under_memcheck() {
    let dir = scratch_dir("object-memcheck");
    let exe = link_suite(&dir, "suite-memcheck", &[RUNTIME]);
    let report = eh_test_support::memcheck(&exe, &[]);
    eh_test_support::report_figure("leaks-linked-suite", &report.to_string());
    let (_, outcomes) = parse_suite_output(&report.stdout);
    assert_eq!(outcomes, expected_outcomes());
    assert_eq!(
        (
            report.errors,
            report.definitely_lost,
            report.indirectly_lost,
            report.possibly_lost
        ),
        (0, 0, 0, 0),
        "{report}"
    );
}

/// The reverse: Cranelift frames in the executable, the C++ code that
/// throws (and the catch-all of `eh_call`) in a shared library.
#[test]
fn libstdcxx_catches_exceptions_thrown_in_a_shared_library() {
    let dir = scratch_dir("object-runtime-shared");
    let lib = dir.join("libehruntime.so");
    gxx(&["-shared", "-fPIC", "-o", lib.to_str().unwrap(), RUNTIME]);
    let search = format!("-L{}", dir.display());
    let rpath = format!("-Wl,-rpath,{}", dir.display());
    let exe = link_suite(
        &dir,
        "suite-runtime-shared",
        &[&search, "-lehruntime", &rpath],
    );
    let (_, outcomes) = run_suite(&exe);
    assert_eq!(outcomes, expected_outcomes());
}

/// The suite's objects for aarch64, riscv64 and s390x (big-endian), linked
/// by Debian's cross g++ with the same C++ runtime and run under qemu-user:
/// every call gives the outcome it gives on the host.
#[test]
fn libstdcxx_catches_in_linked_objects_of_every_isa_under_qemu() {
    use target_lexicon::Architecture;
    let dir = scratch_dir("object-cross");
    for (arch, gnu, qemu) in [
        (
            Architecture::Aarch64(target_lexicon::Aarch64Architecture::Aarch64),
            "aarch64-linux-gnu",
            "qemu-aarch64",
        ),
        (
            Architecture::Riscv64(target_lexicon::Riscv64Architecture::Riscv64),
            "riscv64-linux-gnu",
            "qemu-riscv64",
        ),
        (Architecture::S390x, "s390x-linux-gnu", "qemu-s390x"),
    ] {
        let object = suite_object_for(&dir, arch);
        let exe = dir.join(format!("suite-{arch}"));
        let compiler = format!("{gnu}-g++");
        compile_cxx(
            &compiler,
            &format!("g++-{gnu}"),
            &[
                "-O1",
                "-o",
                exe.to_str().unwrap(),
                MAIN,
                RUNTIME,
                object.to_str().unwrap(),
            ],
        );
        let sysroot = format!("/usr/{gnu}");
        assert!(
            Path::new(&sysroot).is_dir() && which(qemu),
            "{qemu} and {sysroot} are needed: install Debian's qemu-user and g++-{gnu}, \
             as ./test.sh does"
        );
        let mut command = Command::new(qemu);
        command.arg("-L").arg(&sysroot).arg(&exe);
        let (unwinder, outcomes) = run_suite_with(command);
        assert!(
            unwinder.contains("libgcc_s.so"),
            "{arch}: unwinder is {unwinder}"
        );
        assert_eq!(outcomes, expected_outcomes(), "{arch}");
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Per CIE offset: augmentation and personality pointer; per FDE:
/// (pc_begin, pc_end, CIE offset, LSDA address).
type Frames = (
    Vec<(usize, String, Option<u64>)>,
    Vec<(u64, u64, usize, Option<u64>)>,
);

fn our_frames(dump: &EhDump, ours: &[(u64, u64)]) -> Frames {
    let cies = dump
        .cies
        .iter()
        .map(|c| (c.offset, c.augmentation.clone(), c.personality_pointer))
        .collect();
    let fdes = dump
        .fdes
        .iter()
        .filter(|f| ours.contains(&(f.pc_begin, f.pc_end)))
        .map(|f| (f.pc_begin, f.pc_end, f.cie, f.lsda))
        .collect();
    (cies, fdes)
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap()
}

/// The same from `llvm-dwarfdump --eh-frame`.
fn dwarfdump_frames(text: &str, ours: &[(u64, u64)]) -> Frames {
    let mut cies: Vec<(usize, String, Option<u64>)> = Vec::new();
    let mut fdes = Vec::new();
    let mut current_fde: Option<(u64, u64, usize, Option<u64>)> = None;
    let flush = |fde: Option<(u64, u64, usize, Option<u64>)>, fdes: &mut Vec<_>| {
        if let Some(f) = fde
            && ours.contains(&(f.0, f.1))
        {
            fdes.push(f);
        }
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 4 && words[3] == "CIE" {
            flush(current_fde.take(), &mut fdes);
            cies.push((hex(words[0]) as usize, String::new(), None));
        } else if words.len() >= 6 && words[3] == "FDE" {
            flush(current_fde.take(), &mut fdes);
            let cie = hex(words[4].trim_start_matches("cie=")) as usize;
            let (begin, end) = words[5]
                .trim_start_matches("pc=")
                .split_once("...")
                .unwrap();
            current_fde = Some((hex(begin), hex(end), cie, None));
        } else if let Some(aug) = line.trim().strip_prefix("Augmentation:") {
            cies.last_mut().unwrap().1 = aug.trim().trim_matches('"').to_string();
        } else if let Some(p) = line.trim().strip_prefix("Personality Address:") {
            cies.last_mut().unwrap().2 = Some(hex(p));
        } else if let Some(l) = line.trim().strip_prefix("LSDA Address:") {
            current_fde.as_mut().unwrap().3 = Some(hex(l));
        }
    }
    flush(current_fde, &mut fdes);
    (cies, fdes)
}

#[test]
fn readelf_llvm_dwarfdump_and_eu_readelf_agree_with_our_decoding() {
    let dir = scratch_dir("object-decoders");
    let exe = link_suite(&dir, "suite-decoders", &[RUNTIME]);
    let dump = dump_elf(&std::fs::read(&exe).unwrap()).unwrap();

    // Our functions: the FDEs whose start is one of the suite's symbols.
    let ours: Vec<(u64, u64)> = dump
        .fdes
        .iter()
        .filter(|f| {
            f.function.as_deref().is_some_and(|n| {
                n == "catch_int"
                    || n == "catch_base"
                    || n == "catch_all"
                    || n == "indirect"
                    || n == "cleanup"
                    || n == "rethrow"
                    || n.starts_with("depth")
            })
        })
        .map(|f| (f.pc_begin, f.pc_end))
        .collect();
    assert_eq!(ours.len(), 16);
    for fde in dump
        .fdes
        .iter()
        .filter(|f| ours.contains(&(f.pc_begin, f.pc_end)))
    {
        assert_eq!(
            fde.found_by_hdr,
            Some(true),
            "{:?} in .eh_frame_hdr",
            fde.function
        );
    }
    let with_lsda = dump
        .fdes
        .iter()
        .filter(|f| ours.contains(&(f.pc_begin, f.pc_end)) && f.lsda.is_some());
    assert_eq!(with_lsda.count(), 9, "handler-free functions have no LSDA");

    // llvm-dwarfdump: augmentation, personality pointer, FDE ranges, LSDA addresses.
    let text = eh_tests::run_tool("llvm-dwarfdump", &["--eh-frame"], &exe);
    assert_eq!(dwarfdump_frames(&text, &ours), our_frames(&dump, &ours));

    // readelf: augmentation strings per CIE, FDE ranges and CIEs.
    let text = eh_tests::run_tool("readelf", &["--debug-dump=frames", "-W"], &exe);
    let mut readelf_cies = Vec::new();
    let mut readelf_fdes = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() == 4 && words[3] == "CIE" {
            readelf_cies.push((hex(words[0]) as usize, String::new()));
        } else if let Some(aug) = line.trim().strip_prefix("Augmentation:") {
            readelf_cies.last_mut().unwrap().1 = aug.trim().trim_matches('"').to_string();
        } else if words.len() >= 6 && words[3] == "FDE" {
            let cie = hex(words[4].trim_start_matches("cie=")) as usize;
            let (begin, end) = words[5].trim_start_matches("pc=").split_once("..").unwrap();
            if ours.contains(&(hex(begin), hex(end))) {
                readelf_fdes.push((hex(begin), hex(end), cie));
            }
        }
    }
    let our_cies: Vec<_> = dump
        .cies
        .iter()
        .map(|c| (c.offset, c.augmentation.clone()))
        .collect();
    assert_eq!(readelf_cies, our_cies);
    let our_fdes: Vec<_> = our_frames(&dump, &ours)
        .1
        .iter()
        .map(|f| (f.0, f.1, f.2))
        .collect();
    assert_eq!(readelf_fdes, our_fdes);
    // Our functions use exactly two CIEs: with and without a personality.
    let used: std::collections::BTreeSet<_> = our_fdes.iter().map(|f| f.2).collect();
    let augmentations: Vec<_> = used
        .iter()
        .map(|o| {
            dump.cies
                .iter()
                .find(|c| c.offset == *o)
                .unwrap()
                .augmentation
                .as_str()
        })
        .collect();
    assert_eq!(used.len(), 2, "{augmentations:?}");
    assert!(augmentations.contains(&"zR") && augmentations.contains(&"zLPR"));

    // eu-readelf decodes only the first LSDA of a section, so each compiled
    // LSDA is wrapped alone, exactly as the golden tests do.
    for compiled in eh_tests::compiled_suite() {
        let Some(lsda) = compiled.lsda else { continue };
        let path = eh_tests::scratch_file(
            &format!("{}.o", compiled.name.trim_start_matches('%')),
            &eh_tests::lsda_object(&lsda),
        );
        let text = eh_tests::run_tool("eu-readelf", &["--debug-dump=exception"], &path);
        assert_eq!(
            eh_tests::readelf_rows(&text),
            eh_tests::our_rows(&lsda),
            "{}",
            compiled.name
        );
    }
}
