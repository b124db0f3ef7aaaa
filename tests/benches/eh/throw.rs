//! Part 3: throw→catch latency through 1, 10 and 100 Cranelift frames,
//! caught by a Cranelift frame and by a C++ frame, against the same shape
//! compiled by g++ (`tests/cxx/bench-throw.{clif,cpp}`), all throwing
//! through one `bench_thrower`: (a) the Cranelift object linked by g++ into
//! one executable, (b) JIT code registered with libgcc, (c) JIT code
//! registered with LLVM libunwind (a worker process). Each figure is the
//! best of three rounds.
//!
//! Under libgcc, (b) compares against the g++ library with its own
//! `.eh_frame` registered as the JIT's is, so both halves are found through
//! the same lookup path (registered objects, which libgcc searches before
//! the loader's `_dl_find_object`); the difference between the two paths
//! is a row of its own. LLVM libunwind asks the loader
//! (`dl_iterate_phdr` + `.eh_frame_hdr`) before its registered FDEs, so no
//! registration moves g++ frames onto the JIT's path: (c) compares
//! different paths, and says so.

use crate::{Mode, Row};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const PART: &str = "3 throw→catch";
const FRAMES: [i64; 3] = [1, 10, 100];
/// Where `LD_PRELOAD` finds LLVM libunwind (Debian's libunwind-14).
pub const LLVM_LIBUNWIND: &str = "/usr/lib/x86_64-linux-gnu/libunwind.so.1";

fn cxx_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cxx")
}

fn clif_file() -> clif_eh::EhFile {
    let text = std::fs::read_to_string(cxx_dir().join("bench-throw.clif")).unwrap();
    clif_eh::parse_file(&text).expect("bench-throw.clif parses")
}

/// The g++ half as a shared library, for the JIT runs: built once, since
/// rewriting a library this process has loaded would corrupt its mapping.
pub fn gxx_library() -> &'static Path {
    static LIBRARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LIBRARY.get_or_init(|| {
        let library = eh_test_support::scratch_file("libbench-throw.so", b"");
        let source = cxx_dir().join("bench-throw.cpp");
        // Calls inside the library bind locally, as in the executable of
        // (a). Without it g++ ends `gxx_rec(0)` with a sibling jump to
        // `bench_thrower` through the PLT, one frame fewer than the shape.
        eh_test_support::gxx(&[
            "-O2",
            "-shared",
            "-fPIC",
            "-fno-semantic-interposition",
            source.to_str().unwrap(),
            "-o",
            library.to_str().unwrap(),
        ]);
        library
    })
}

/// `frames -> variant -> best ns` from `frames<TAB>variant<TAB>ns` lines.
type Figures = BTreeMap<i64, BTreeMap<String, f64>>;

fn parse_figures(text: &str) -> Figures {
    let mut figures = Figures::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [frames, variant, ns] = fields[..] else {
            panic!("not a figure line: {line:?}")
        };
        let best = figures
            .entry(frames.parse().unwrap())
            .or_default()
            .entry(variant.to_string())
            .or_insert(f64::INFINITY);
        *best = best.min(ns.parse().unwrap());
    }
    figures
}

/// (a): the Cranelift object and the C++ half in one executable.
fn linked(mode: Mode) -> Figures {
    let file = clif_file();
    let object = clif_eh::module::emit_object(&file, &file.isas[0], "__gxx_personality_v0")
        .expect("bench-throw.clif compiles");
    let object = eh_test_support::scratch_file("bench-throw-clif.o", &object);
    let program = object.with_file_name("bench-throw");
    let source = cxx_dir().join("bench-throw.cpp");
    eh_test_support::gxx(&[
        "-O2",
        "-DBENCH_MAIN",
        source.to_str().unwrap(),
        object.to_str().unwrap(),
        "-o",
        program.to_str().unwrap(),
    ]);
    let out = Command::new(&program)
        .arg(mode.iterations(20_000).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_figures(&String::from_utf8(out.stdout).unwrap())
}

/// A function of the shape `(i64) -> i64` (JIT or g++-built).
pub type Entry = unsafe extern "C" fn(i64) -> i64;

type BenchNs = unsafe extern "C" fn(Option<Entry>, Option<Entry>, i64, i64) -> f64;

/// The g++ half, loaded into this process.
pub struct GxxHalf {
    /// `bench_thrower`, for the JIT's symbol table.
    pub thrower: *const u8,
    bench_ns: BenchNs,
    gxx_catch: Entry,
}

// SAFETY: the fields are addresses of functions of a library that stays
// loaded for the life of the process; bench-throw.cpp's functions keep no
// shared state, and C++ throws are thread-safe, so they may be called from
// any thread.
unsafe impl Sync for GxxHalf {}

impl GxxHalf {
    /// Load the library of [`gxx_library`] (it stays loaded).
    pub fn load(library: &Path) -> Self {
        let path = std::ffi::CString::new(library.to_str().unwrap()).unwrap();
        // SAFETY: loading our own g++-built library runs no constructors of
        // note; it stays loaded for the life of the process.
        let handle = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        assert!(!handle.is_null(), "dlopen {}", library.display());
        let symbol = |name: &std::ffi::CStr| {
            // SAFETY: dlsym on a live handle with a NUL-terminated name.
            let ptr = unsafe { libc::dlsym(handle, name.as_ptr()) };
            assert!(!ptr.is_null(), "{name:?} missing from the library");
            ptr as *const u8
        };
        // SAFETY: these are the library's `extern "C"` functions of
        // bench-throw.cpp, with these signatures.
        unsafe {
            Self {
                thrower: symbol(c"bench_thrower"),
                bench_ns: std::mem::transmute::<*const u8, BenchNs>(symbol(c"bench_ns")),
                gxx_catch: std::mem::transmute::<*const u8, Entry>(symbol(c"gxx_catch")),
            }
        }
    }

    /// Nanoseconds per call, best of `rounds`: `catcher(frames - 1)`, or a
    /// C++ frame catching what `rec(frames - 1)` throws.
    ///
    /// # Safety
    ///
    /// `catcher` / `rec` must have the shapes of `clif_catch` / `clif_rec`
    /// in bench-throw.clif: the int `bench_thrower` throws is caught
    /// (`bench_ns` aborts the process otherwise).
    pub unsafe fn best_ns(
        &self,
        catcher: Option<Entry>,
        rec: Option<Entry>,
        frames: i64,
        n: i64,
        rounds: usize,
    ) -> f64 {
        (0..rounds)
            // SAFETY: forwarded from the caller.
            .map(|_| unsafe { (self.bench_ns)(catcher, rec, frames - 1, n) })
            .fold(f64::INFINITY, f64::min)
    }
}

/// (b) and (c): the C++ half loaded into this process, the Cranelift half
/// JIT-compiled and registered with whichever unwinder the process has.
/// Prints figure lines.
fn jit_figures(mode: Mode, library: &Path) -> String {
    let gxx = GxxHalf::load(library);
    let thrower = gxx.thrower;
    let jit = clif_eh::module::jit_file(&clif_file(), &[("bench_thrower", thrower)])
        .expect("bench-throw.clif JIT-compiles and registers");
    // SAFETY: both are finalized `(i64) -> i64 system_v` functions of the
    // module, which outlives every call below.
    let (clif_catch, clif_rec) = unsafe {
        (
            std::mem::transmute::<*const u8, Entry>(jit.function_ptr("clif_catch").unwrap()),
            std::mem::transmute::<*const u8, Entry>(jit.function_ptr("clif_rec").unwrap()),
        )
    };
    let mut out = String::new();
    let iterations = mode.iterations(20_000) as i64;
    for frames in FRAMES {
        let n = throws_at(frames, iterations);
        for _ in 0..3 {
            // SAFETY: all three have the shapes of bench-throw.clif's.
            let (gxx_ns, clif, clif_in_cxx) = unsafe {
                (
                    gxx.best_ns(Some(gxx.gxx_catch), None, frames, n, 1),
                    gxx.best_ns(Some(clif_catch), None, frames, n, 1),
                    gxx.best_ns(None, Some(clif_rec), frames, n, 1),
                )
            };
            out += &format!("{frames}\tgxx\t{gxx_ns:.1}\n{frames}\tclif\t{clif:.1}\n");
            out += &format!("{frames}\tclif-in-cxx\t{clif_in_cxx:.1}\n");
        }
    }
    // libgcc looks in registered objects before asking the loader, so the
    // g++ library's own `.eh_frame`, registered as the JIT's is, puts its
    // frames on the JIT's lookup path. LLVM libunwind asks the loader
    // first, so there no registration changes the g++ frames' path.
    if cranelift_lsda::detect_unwinder() == cranelift_lsda::Unwinder::Libgcc {
        let eh_frame = library_eh_frame(library, gxx.thrower);
        // SAFETY: `eh_frame` is the loaded library's whole, zero-terminated
        // `.eh_frame`, which stays mapped (the library is never unloaded)
        // until the deregistration below.
        unsafe { __register_frame(eh_frame) };
        for frames in FRAMES {
            let n = throws_at(frames, iterations);
            for _ in 0..3 {
                // SAFETY: g++'s catcher has the shape of bench-throw.clif's.
                let ns = unsafe { gxx.best_ns(Some(gxx.gxx_catch), None, frames, n, 1) };
                out += &format!("{frames}\tgxx-registered\t{ns:.1}\n");
            }
        }
        // SAFETY: registered above with the same pointer.
        unsafe { __deregister_frame(eh_frame) };
    }
    out
}

/// Throws per timed run through `frames` frames: fewer through 100.
fn throws_at(frames: i64, iterations: i64) -> i64 {
    if frames == 100 {
        iterations / 4 + 1
    } else {
        iterations
    }
}

unsafe extern "C" {
    fn __register_frame(begin: *const u8);
    fn __deregister_frame(begin: *const u8);
}

/// The in-memory `.eh_frame` of `library`, loaded in this process with
/// `symbol` among its definitions.
fn library_eh_frame(library: &Path, symbol: *const u8) -> *const u8 {
    use object::{Object, ObjectSection};
    // SAFETY: `Dl_info` is pointers and integers, for which zero is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let found = unsafe { libc::dladdr(symbol.cast(), &mut info) };
    assert!(found != 0, "dladdr found no object for bench_thrower");
    let bytes = std::fs::read(library).unwrap();
    let file = object::File::parse(&*bytes).expect("the g++ library is an ELF file");
    let section = file
        .section_by_name(".eh_frame")
        .expect("g++ wrote an .eh_frame");
    let data = section.data().unwrap();
    // crtend.o ends the section with a zero length, which libgcc walks to.
    assert!(
        data.ends_with(&[0; 4]),
        "the library's .eh_frame is not terminated"
    );
    (info.dli_fbase as *const u8).wrapping_add(section.address() as usize)
}

/// The worker of (c): this binary under `LD_PRELOAD=libunwind.so.1`.
pub fn worker(mode: Mode) {
    let unwinder = cranelift_lsda::detect_unwinder();
    assert_eq!(
        unwinder,
        cranelift_lsda::Unwinder::LlvmLibunwind,
        "the worker must run under LLVM libunwind"
    );
    let library = std::env::var("EH_BENCH_LIBRARY").expect("EH_BENCH_LIBRARY");
    print!("{}", jit_figures(mode, Path::new(&library)));
}

/// Run `args` of this binary again under LLVM libunwind; its stdout.
pub fn llvm_libunwind_worker(args: &[&str], mode: Mode, env: &[(&str, &Path)]) -> String {
    assert!(
        Path::new(LLVM_LIBUNWIND).exists(),
        "{LLVM_LIBUNWIND} is missing: install Debian's libunwind-14 (./test.sh does)"
    );
    worker_process(args, mode, env, Some(LLVM_LIBUNWIND))
}

/// Run `--worker ARGS` of this binary in a process of its own (with
/// `preload` as `LD_PRELOAD`); its stdout.
pub fn worker_process(
    args: &[&str],
    mode: Mode,
    env: &[(&str, &Path)],
    preload: Option<&str>,
) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.arg("--worker").args(args);
    if let Some(preload) = preload {
        command.env("LD_PRELOAD", preload);
    }
    if mode == Mode::Smoke {
        command.arg("--smoke");
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "worker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn us(ns: f64) -> String {
    format!("{:.2} µs", ns / 1e3)
}

/// Our throws against g++'s `baseline` variant (`gxx`: found through the
/// loader; `gxx-registered`: through registered FDEs, as the JIT's).
fn figure_rows(
    rows: &mut Vec<Row>,
    how: &str,
    figures: &Figures,
    baseline: &str,
    target: Option<f64>,
) {
    for frames in FRAMES {
        let f = &figures[&frames];
        let gxx = f[baseline];
        for (variant, catcher) in [("clif", "Cranelift"), ("clif-in-cxx", "C++")] {
            let mut row = Row::new(
                PART,
                format!("{how}, {frames} frame(s), caught by {catcher}"),
            )
            .values(us(f[variant]), format!("g++ {}", us(gxx)))
            .ratio(f[variant], gxx);
            if let Some(target) = target {
                row = row.target(target);
            }
            if how.starts_with("(a)") && frames == 10 && variant == "clif" {
                row = row.headline();
            }
            rows.push(row);
        }
    }
}

pub fn rows(mode: Mode) -> Vec<Row> {
    let mut rows = Vec::new();
    figure_rows(
        &mut rows,
        "(a) linked object",
        &linked(mode),
        "gxx",
        Some(1.2),
    );
    let library = gxx_library();
    assert_eq!(
        cranelift_lsda::detect_unwinder(),
        cranelift_lsda::Unwinder::Libgcc
    );
    let libgcc = parse_figures(&jit_figures(mode, library));
    figure_rows(
        &mut rows,
        "(b) JIT, libgcc, g++ registered as the JIT",
        &libgcc,
        "gxx-registered",
        Some(1.2),
    );
    // The two lookup paths of libgcc, on g++'s own frames.
    for frames in FRAMES {
        let f = &libgcc[&frames];
        rows.push(
            Row::new(
                PART,
                format!(
                    "(b) libgcc lookup paths, {frames} frame(s) of g++: registered FDEs vs the loader"
                ),
            )
            .values(
                format!("registered {}", us(f["gxx-registered"])),
                format!("loader {}", us(f["gxx"])),
            )
            .ratio(f["gxx-registered"], f["gxx"]),
        );
    }
    let llvm = llvm_libunwind_worker(&["throw-jit"], mode, &[("EH_BENCH_LIBRARY", library)]);
    figure_rows(
        &mut rows,
        "(c) JIT, LLVM libunwind, g++ through the loader (asked before registered FDEs)",
        &parse_figures(&llvm),
        "gxx",
        None,
    );
    rows
}
