//! Hostile unwinding, each scenario compared with the same shape compiled
//! by g++ (`tests/cxx/hostile_main.cpp` runs either half):
//!
//! * a destructor that throws while a Cranelift cleanup frame unwinds;
//! * C++ frames between Cranelift frames;
//! * 10,000 nested Cranelift frames, each with a cleanup, in one throw;
//! * a throw from a PC that the LSDA has no call-site record for (the
//!   record removed by hand from the table the crate wrote).
//!
//! Process-ending outcomes (`std::terminate`) are observed from outside:
//! the signal and everything the process printed.

use cranelift_lsda::decode_lsda;
use eh_test_support::{RUNTIME_CPP, RUNTIME_INCLUDE, gxx};
use object::{Object, ObjectSection};
use pretty_assertions::assert_eq;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const MAIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cxx/hostile_main.cpp");
const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cxx/hostile.clif");
const NO_ENTRY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/cxx/no-entry.clif");

fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The object the crate writes for a CLIF file's host target.
fn object_bytes(clif: &str) -> Vec<u8> {
    let file = clif_eh::parse_file(&std::fs::read_to_string(clif).unwrap()).unwrap();
    let arch = target_lexicon::Triple::host().architecture;
    let isa = file
        .isas
        .iter()
        .find(|i| i.triple().architecture == arch)
        .unwrap_or_else(|| panic!("{clif} has no `target {arch}`"));
    clif_eh::module::emit_object(&file, isa, "__gxx_personality_v0").unwrap()
}

/// `bytes` (an object whose `.gcc_except_table` holds one LSDA) with the
/// length of the call-site record that has a landing pad set to 0, so that
/// no record covers the call. Call-site fields are ULEB128; the record is
/// found by its encoding, which must occur exactly once.
fn without_the_handler_record(mut bytes: Vec<u8>) -> Vec<u8> {
    let file = object::File::parse(&*bytes).unwrap();
    let section = file.section_by_name(".gcc_except_table").unwrap();
    let (offset, size) = section.file_range().unwrap();
    let table = &bytes[offset as usize..][..size as usize];
    let lsda = decode_lsda(table, gimli::RunTimeEndian::Little, 8).unwrap();
    let handler = lsda
        .call_sites
        .iter()
        .find(|cs| cs.landing_pad != 0)
        .expect("a record with a landing pad");
    let mut record = Vec::new();
    for field in [
        handler.start,
        handler.len,
        handler.landing_pad,
        handler.action,
    ] {
        gimli::leb128::write::unsigned(&mut record, field).unwrap();
    }
    let positions: Vec<usize> = table
        .windows(record.len())
        .enumerate()
        .filter(|(_, w)| *w == record.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(positions.len(), 1, "record {record:02x?} in {table:02x?}");
    let start_len = {
        let mut v = Vec::new();
        gimli::leb128::write::unsigned(&mut v, handler.start).unwrap();
        v.len()
    };
    assert!(
        handler.len < 0x80,
        "a one-byte length to overwrite in place"
    );
    let at = offset as usize + positions[0] + start_len;
    drop(file);
    bytes[at] = 0;
    bytes
}

/// Link the scenario driver with the Cranelift objects into `exe`.
fn link(exe: &Path, objects: &[&Path]) {
    let include = format!("-I{RUNTIME_INCLUDE}");
    let mut args = vec![
        "-O1",
        "-o",
        exe.to_str().unwrap(),
        &include,
        MAIN,
        RUNTIME_CPP,
    ];
    args.extend(objects.iter().map(|o| o.to_str().unwrap()));
    gxx(&args);
}

/// How a run ended: (exit code or signal, stdout, stderr).
#[derive(Debug, PartialEq, Eq)]
struct Ending {
    status: String,
    stdout: String,
    stderr: String,
}

fn run(exe: &Path, scenario: &str, half: &str) -> Ending {
    let out = Command::new(exe).args([scenario, half]).output().unwrap();
    let status = match (out.status.code(), out.status.signal()) {
        (Some(code), _) => format!("exit {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => unreachable!("a process ends by exit or signal"),
    };
    Ending {
        status,
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

struct Programs {
    /// The scenarios with the tables the crate wrote.
    intact: PathBuf,
    /// The same with `no_entry`'s handler record removed.
    no_entry_record: PathBuf,
}

/// The two programs, built once for all the tests of this file.
fn programs() -> &'static Programs {
    static PROGRAMS: std::sync::OnceLock<Programs> = std::sync::OnceLock::new();
    PROGRAMS.get_or_init(build_programs)
}

fn build_programs() -> Programs {
    let dir = scratch_dir("hostile");
    let hostile = dir.join("hostile.o");
    std::fs::write(&hostile, object_bytes(HOSTILE)).unwrap();
    let no_entry = object_bytes(NO_ENTRY);
    let intact_no_entry = dir.join("no-entry.o");
    std::fs::write(&intact_no_entry, &no_entry).unwrap();
    let removed = dir.join("no-entry-removed.o");
    std::fs::write(&removed, without_the_handler_record(no_entry)).unwrap();
    let programs = Programs {
        intact: dir.join("hostile"),
        no_entry_record: dir.join("hostile-no-entry-record"),
    };
    link(&programs.intact, &[&hostile, &intact_no_entry]);
    link(&programs.no_entry_record, &[&hostile, &removed]);
    programs
}

const TERMINATED: &str = "terminate called after throwing an instance of 'int'\n";

fn terminated(scenario: &str) -> Ending {
    Ending {
        status: format!("signal {}", libc::SIGABRT),
        stdout: format!("{scenario}\n"),
        stderr: TERMINATED.to_string(),
    }
}

#[test]
fn a_destructor_throwing_during_cleanup_terminates_as_in_gxx_code() {
    let programs = programs();
    let gxx = run(&programs.intact, "dtor-throws", "gxx");
    assert_eq!(gxx, terminated("dtor-throws"), "g++'s behaviour");
    assert_eq!(run(&programs.intact, "dtor-throws", "clif"), gxx);
}

#[test]
fn exceptions_cross_cxx_frames_between_cranelift_frames() {
    let programs = programs();
    let gxx = run(&programs.intact, "cxx-between", "gxx");
    // int passes the inner frame (Base only) and the C++ frame to the outer
    // frame; Base and Derived stop inside. The C++ frame's destructor runs
    // on every path.
    let expected = "cxx-between\n\
        0: returned 42, escaped 0, cleanups 1\n\
        1: returned 1007, escaped 0, cleanups 1\n\
        2: returned 2011, escaped 0, cleanups 1\n\
        3: returned 13, escaped 3, cleanups 1\n\
        4: returned 2017, escaped 0, cleanups 1\n\
        5: returned 2, escaped 4, cleanups 1\n";
    assert_eq!(gxx.stdout, expected, "g++'s behaviour");
    assert_eq!(run(&programs.intact, "cxx-between", "clif"), gxx);
}

#[test]
fn one_throw_unwinds_ten_thousand_cranelift_frames_with_cleanups() {
    let programs = programs();
    let gxx = run(&programs.intact, "deep", "gxx");
    assert_eq!(
        gxx.stdout, "deep\n10000: returned 1007, escaped 0, cleanups 10000\n",
        "g++'s behaviour"
    );
    assert_eq!(run(&programs.intact, "deep", "clif"), gxx);
}

#[test]
fn a_pc_without_a_call_site_record_terminates_never_a_wrong_pad() {
    let programs = programs();
    // With the record, the pad catches the int.
    assert_eq!(
        run(&programs.intact, "no-entry", "clif").stdout,
        "no-entry\n1: returned 1007, escaped 0, cleanups 0\n"
    );
    let gxx = run(&programs.intact, "no-entry", "gxx");
    assert_eq!(gxx, terminated("no-entry"), "g++'s behaviour (noexcept)");
    assert_eq!(run(&programs.no_entry_record, "no-entry", "clif"), gxx);
}
