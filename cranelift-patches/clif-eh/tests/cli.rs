//! The `clif-eh` command as a user runs it.

use std::process::{Command, Stdio};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples");

fn clif_eh(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clif-eh"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn show_prints_the_decoded_lsda_and_selectors() {
    let (ok, out, err) = clif_eh(&["show", &format!("{EXAMPLES}/three-clauses.clif")]);
    assert!(ok, "{err}");
    assert!(
        out.contains("selectors: catch _ZTIi => 1; catch _ZTI3Foo => 2; cleanup => 0;"),
        "{out}"
    );
    assert!(
        out.contains("catch #1 _ZTIi, catch #2 _ZTI3Foo, cleanup"),
        "{out}"
    );
    assert!(out.contains("no landing pad"), "{out}");
}

#[test]
fn run_reports_what_was_caught() {
    let (ok, out, err) = clif_eh(&[
        "run",
        &format!("{EXAMPLES}/cxx-suite.clif"),
        "catch_base",
        "2",
        "3",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("%catch_base(2) returned 2011"), "{out}");
    assert!(
        out.contains("%catch_base(3) let a C++ Unrelated escape (value 13)"),
        "{out}"
    );
}

#[test]
fn object_writes_an_elf_with_both_cies() {
    let path = std::env::temp_dir().join(format!("clif-eh-cli-{}.o", std::process::id()));
    let (ok, out, err) = clif_eh(&[
        "object",
        &format!("{EXAMPLES}/cxx-suite.clif"),
        "-o",
        path.to_str().unwrap(),
        "--target",
        "x86_64",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("augmentation \"zLPR\", personality __gxx_personality_v0"),
        "{out}"
    );
    assert!(out.contains("augmentation \"zR\""), "{out}");
    let (ok, dumped, err) = clif_eh(&["dump", path.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.ends_with(&dumped), "dump of the written file differs");
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bad_input_is_a_message_not_a_panic() {
    let (ok, _, err) = clif_eh(&["show", "/nonexistent.clif"]);
    assert!(
        !ok && err.starts_with("clif-eh: /nonexistent.clif:"),
        "{err}"
    );
    let (ok, _, err) = clif_eh(&["frobnicate"]);
    // clap's own message, with the usage line.
    assert!(
        !ok && err.contains("unrecognized subcommand 'frobnicate'") && err.contains("Usage:"),
        "{err}"
    );
    let (ok, _, err) = clif_eh(&["run", &format!("{EXAMPLES}/cxx-suite.clif"), "catch_int"]);
    assert!(
        !ok && err.contains("required arguments were not provided"),
        "{err}"
    );
    let (ok, _, err) = clif_eh(&["run", &format!("{EXAMPLES}/cxx-suite.clif"), "nope", "1"]);
    assert!(!ok && err.contains("no function %nope"), "{err}");
    let (ok, _, err) = clif_eh(&[
        "run",
        &format!("{EXAMPLES}/cxx-suite.clif"),
        "catch_int",
        "x",
    ]);
    assert!(!ok && err.contains("`x` is not an integer"), "{err}");
    assert!(!err.contains("panicked"));
}

/// Each kind of bad input file gets its message, prefixed by the path.
#[test]
fn bad_files_get_their_messages() {
    let dir = std::env::temp_dir().join(format!("clif-eh-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let no_target = write(
        "no-target.clif",
        "function %f() system_v {\nblock0:\n    return\n}\n",
    );
    let (ok, _, err) = clif_eh(&["show", &no_target]);
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "clif-eh: {no_target}: the file has no `target` line (e.g. `target x86_64`); add one\n"
        )
    );
    let truncated = write("truncated.clif", "target x86_64\nfunction %f(");
    let (ok, _, err) = clif_eh(&["show", &truncated]);
    assert!(!ok);
    assert_eq!(
        err,
        format!("clif-eh: {truncated}: parse error: 2: expected parameter type\n")
    );
    // `dump` reads ELF objects, not CLIF.
    let suite = format!("{EXAMPLES}/cxx-suite.clif");
    let (ok, _, err) = clif_eh(&["dump", &suite]);
    assert!(!ok);
    assert_eq!(
        err,
        format!("clif-eh: {suite}: parse error: reading exception tables: Unknown file magic\n")
    );
    // Objects use indirect type entries, which refer to a `DW.ref` slot
    // holding the symbol's address: an addend has nowhere to go.
    let addend = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../filetests/filetests/lsda/symbol-addend.clif"
    );
    let out = dir.join("addend.o");
    let (ok, _, err) = clif_eh(&["object", addend, "-o", out.to_str().unwrap()]);
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "clif-eh: {addend}: %addends: indirect type entry _ZTI3Foo+8 cannot carry an addend\n"
        )
    );
    let (ok, _, err) = clif_eh(&["run", &suite, "nope", "1"]);
    assert!(!ok);
    assert_eq!(
        err,
        format!("clif-eh: {suite}: compilation failed: no function %nope in the file\n")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // The reader goes away at once: the first write gets SIGPIPE, which ends
    // the process (default disposition) instead of a panic (exit 101).
    let mut child = Command::new(env!("CARGO_BIN_EXE_clif-eh"))
        .args(["show", &format!("{EXAMPLES}/cxx-suite.clif")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE));
}

/// Every ISA's object reads back: the PC-relative relocations of
/// `.eh_frame` and `.gcc_except_table` (riscv64's are `R_RISCV_32_PCREL`,
/// which `object` reads as an unknown kind) resolve to the personality
/// and typeinfo slots.
#[test]
fn objects_of_every_isa_read_back_with_their_symbols() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../filetests/filetests/lsda/several-tags-riscv64-s390x.clif"
    );
    for target in ["riscv64", "s390x"] {
        let path =
            std::env::temp_dir().join(format!("clif-eh-cli-{target}-{}.o", std::process::id()));
        let out_path = path.to_str().unwrap();
        let (ok, out, err) = clif_eh(&["object", file, "-o", out_path, "--target", target]);
        assert!(ok, "{target}: {err}");
        assert!(
            out.contains("personality __gxx_personality_v0 (through a DW.ref slot)"),
            "{target}: {out}"
        );
        assert!(
            out.contains("type #1: _ZTIi (via DW.ref slot)")
                && out.contains("type #2: _ZTI3Foo (via DW.ref slot)"),
            "{target}: {out}"
        );
        std::fs::remove_file(path).unwrap();
    }
}
