//! Part 4: JIT registration at scale, for both registrars on both
//! unwinders, each pair in a process of its own (libgcc takes its
//! lock-free path only while nothing was ever `__register_frame`d).
//!
//! Modules of `bench-throw.clif` are compiled and registered one by one
//! until 1, 100, 1,000 and 10,000 are alive. At each step: the first
//! throw after the step's registrations (through the newest module; its
//! baseline: the same with one module registered after as many compiled by
//! stock cranelift-jit, which leaves the process as cold), the first throw through each of 5 further modules
//! right after registering it (baseline: the same with one module), and
//! steady-state throws through the modules at the lowest, median and
//! highest addresses (rank by address, not by registration order) against
//! the steady throw with one module; all 10 frames deep, caught in
//! Cranelift. Then: finalizing and registering per module (for
//! arenas with the arenas' creation spread over the modules), dropping
//! each registration, mappings and heap per module, and throughput of 1,
//! 2, 4 and 8 threads throwing through different modules.

use crate::throw::{Entry, GxxHalf, gxx_library, llvm_libunwind_worker};
use crate::{Mode, Row, spread};
use cranelift_codegen::isa::{OwnedTargetIsa, TargetIsa};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_lsda::{
    ClausePolicy, JitTables, LoaderArenas, PreparedFunction, Registration, legalize_landing_pads,
};
use cranelift_module::default_libcall_names;
use std::path::Path;
use std::time::{Duration, Instant};

pub const PART: &str = "4 registration";
const FRAMES: i64 = 10;

/// How a module's tables reach the unwinder.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Registrar {
    /// `JitTables::register`: `__register_frame` per module.
    RegisterFrame,
    /// `JitTables::in_arenas`: loader-known arenas.
    Arenas,
}

impl Registrar {
    fn name(self) -> &'static str {
        match self {
            Self::RegisterFrame => "register-frame",
            Self::Arenas => "arenas",
        }
    }

    fn parse(name: &str) -> Self {
        match name {
            "register-frame" => Self::RegisterFrame,
            "arenas" => Self::Arenas,
            other => panic!("unknown registrar `{other}`"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::RegisterFrame => "__register_frame",
            Self::Arenas => "arenas",
        }
    }
}

struct Live {
    // Dropped first: deregistered before the module's code goes.
    registration: Option<Registration>,
    module: JITModule,
    catch: Entry,
}

fn line(key: &str, values: [f64; 3]) -> String {
    format!(
        "{key}\t{:.1}\t{:.1}\t{:.1}\n",
        values[0], values[1], values[2]
    )
}

/// Bytes the heap holds and the number of mappings, as figures.
fn memory_in_use() -> (f64, f64) {
    let (heap, maps) = eh_tests::jit::memory_in_use();
    (heap as f64, maps as f64)
}

struct Bench {
    gxx: GxxHalf,
    isa: OwnedTargetIsa,
    file: clif_eh::EhFile,
    policy: ClausePolicy,
    prepared: Vec<PreparedFunction>,
    personality: *const u8,
    arenas: Option<LoaderArenas>,
    /// Heap and mappings before anything was registered.
    before: (f64, f64),
}

impl Bench {
    fn new(library: &Path, registrar: Registrar) -> Self {
        let gxx = GxxHalf::load(library);
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("cxx/bench-throw.clif"),
        )
        .unwrap();
        let mut file = clif_eh::parse_file(&text).unwrap();
        let host = cranelift_native::builder().unwrap();
        let isa = host.finish(file.isas[0].flags().clone()).unwrap();
        let mut policy = file.policy.clone();
        let prepared = file
            .functions
            .iter_mut()
            .map(|func| legalize_landing_pads(func, &*isa, &mut policy).unwrap())
            .collect();
        // Before the first arena: its mappings count as the modules'.
        let before = memory_in_use();
        let arenas = (registrar == Registrar::Arenas).then(|| LoaderArenas::new().unwrap());
        Self {
            before,
            gxx,
            isa,
            file,
            policy,
            prepared,
            personality: eh_test_support::resolve_symbol("__gxx_personality_v0").unwrap(),
            arenas,
        }
    }

    /// Compile one module, then finalize and register it; the time each of
    /// the latter two took.
    fn add_module(&self) -> (Live, [Duration; 2]) {
        let mut builder = JITBuilder::with_isa(self.isa.clone(), default_libcall_names());
        builder.symbol("bench_thrower", self.gxx.thrower);
        let mut tables = match &self.arenas {
            Some(arenas) => {
                let (memory, arena_tables) = arenas.memory();
                builder.memory_provider(Box::new(memory));
                cranelift_lsda::jit_tables_in_arenas(self.personality, arena_tables)
            }
            None => JitTables::new(self.personality),
        };
        let mut module = JITModule::new(builder);
        let isa: &dyn TargetIsa = &*self.isa;
        let defined = clif_eh::module::define_all_then(&mut module, &self.file, |i, id, ctx| {
            tables
                .add_function(isa, id, ctx, &self.policy, &self.prepared[i])
                .map(|_| ())
                .map_err(|e| clif_eh::ToolError::Codegen(e.to_string()))
        })
        .unwrap();
        let start = Instant::now();
        module.finalize_definitions().unwrap();
        let finalized = Instant::now();
        let registration = tables
            .register(&module, &eh_test_support::resolve_symbol)
            .unwrap();
        let took = [finalized - start, finalized.elapsed()];
        let id = defined.iter().find(|f| f.name == "clif_catch").unwrap().id;
        // SAFETY: a finalized `(i64) -> i64 system_v` function of `module`,
        // which is kept with it.
        let catch =
            unsafe { std::mem::transmute::<*const u8, Entry>(module.get_finalized_function(id)) };
        (
            Live {
                registration,
                module,
                catch,
            },
            took,
        )
    }

    /// A module of the same functions compiled by stock cranelift-jit, no
    /// tables recorded or registered.
    fn stock_module(&self) -> JITModule {
        let mut builder = JITBuilder::with_isa(self.isa.clone(), default_libcall_names());
        builder.symbol("bench_thrower", self.gxx.thrower);
        let mut module = JITModule::new(builder);
        clif_eh::module::define_all_then(&mut module, &self.file, |_, _, _| Ok(())).unwrap();
        module.finalize_definitions().unwrap();
        module
    }

    /// Nanoseconds per throw over `n` throws through `catch`.
    fn throw_ns(&self, catch: Entry, n: i64) -> f64 {
        // SAFETY: `catch` is a `clif_catch` of bench-throw.clif, which
        // catches the int `bench_thrower` throws 10 frames down.
        unsafe { self.gxx.best_ns(Some(catch), None, FRAMES, n, 1) }
    }

    /// Time spent creating arenas so far.
    fn arena_time(&self) -> Duration {
        self.arenas
            .as_ref()
            .map_or(Duration::ZERO, |a| a.stats().open_time)
    }
}

/// Throws per round: about `budget` of throwing at `estimate_ns` each.
fn throws_for(estimate_ns: f64, budget: Duration) -> i64 {
    ((budget.as_nanos() as f64 / estimate_ns) as i64).clamp(1, 20_000)
}

/// Prints `key<TAB>min<TAB>median<TAB>max` lines.
fn measure(mode: Mode, library: &Path, registrar: Registrar) -> String {
    let bench = Bench::new(library, registrar);
    let (counts, rounds, budget, thread_time): (&[usize], usize, _, _) = match mode {
        Mode::Full => (
            &[1, 100, 1_000, 10_000],
            15,
            Duration::from_millis(20),
            Duration::from_millis(700),
        ),
        Mode::Smoke => (
            &[1, 10, 100],
            3,
            Duration::from_millis(5),
            Duration::from_millis(50),
        ),
    };
    const FURTHER: usize = 5;
    let mut out = String::new();
    let mut live: Vec<Live> = Vec::new();
    let (mut finalize_ns, mut register_ns) = (Vec::new(), Vec::new());
    let mut add = |live: &mut Vec<Live>| {
        let (module, [finalize, register]) = bench.add_module();
        finalize_ns.push(finalize.as_nanos() as f64);
        register_ns.push(register.as_nanos() as f64);
        let catch = module.catch;
        live.push(module);
        catch
    };
    let free = |module: Live| {
        let Live {
            registration,
            module,
            ..
        } = module;
        drop(registration);
        // SAFETY: its tables are deregistered and none of its code runs.
        unsafe { module.free_memory() };
    };
    // The process's first throws (lazy initialisation in libstdc++ and the
    // unwinders) belong to no step.
    let warm_up = add(&mut live);
    bench.throw_ns(warm_up, 100);
    free(live.pop().unwrap());
    // First throws through a module just registered, when it is the only
    // one: the baseline of every first throw.
    let mut alone = Vec::new();
    for _ in 0..FURTHER {
        let catch = add(&mut live);
        alone.push(bench.throw_ns(catch, 1));
        free(live.pop().unwrap());
    }
    out += &line("1\tfirst-further", spread(&mut alone));
    // The same after a burst of modules compiled by stock cranelift-jit
    // and kept (nothing registered), as many as the first step adds: the
    // process is as cold and as large as after a step's registrations
    // (its first throw is slower whatever the registrar), but one module
    // is registered.
    let burst = counts[1] - FURTHER;
    let mut after_burst = Vec::new();
    for _ in 0..FURTHER {
        let stock: Vec<JITModule> = (0..burst).map(|_| bench.stock_module()).collect();
        let catch = add(&mut live);
        after_burst.push(bench.throw_ns(catch, 1));
        free(live.pop().unwrap());
        for module in stock {
            // SAFETY: none of its code ran or runs.
            unsafe { module.free_memory() };
        }
    }
    out += &line("1\tfirst", spread(&mut after_burst));
    for &count in counts {
        // Reach `count - FURTHER` (or `count`) at once, then add the rest
        // one by one, each with its first throw timed.
        let batch_to = if count > FURTHER {
            count - FURTHER
        } else {
            count
        };
        while live.len() < batch_to {
            add(&mut live);
        }
        let first = bench.throw_ns(live.last().unwrap().catch, 1);
        let mut further = Vec::new();
        while live.len() < count {
            let catch = add(&mut live);
            further.push(bench.throw_ns(catch, 1));
        }
        if count > 1 {
            out += &line(&format!("{count}\tfirst"), [first; 3]);
        }
        if !further.is_empty() {
            out += &line(&format!("{count}\tfirst-further"), spread(&mut further));
        }
        let mut by_address: Vec<Entry> = live.iter().map(|m| m.catch).collect();
        by_address.sort_by_key(|&f| f as usize);
        let positions = [
            ("lowest", by_address[0]),
            ("median", by_address[by_address.len() / 2]),
            ("highest", by_address[by_address.len() - 1]),
        ];
        // Rounds interleaved over the three, so that a slow spell of the
        // machine falls on all of them alike.
        let throws: Vec<i64> = positions
            .iter()
            .map(|&(_, catch)| throws_for(bench.throw_ns(catch, 1), budget))
            .collect();
        let mut samples = vec![Vec::new(); positions.len()];
        for _ in 0..rounds {
            for (i, &(_, catch)) in positions.iter().enumerate() {
                samples[i].push(bench.throw_ns(catch, throws[i]));
            }
        }
        for ((position, _), samples) in positions.iter().zip(&mut samples) {
            out += &line(&format!("{count}\t{position}"), spread(samples));
        }
    }
    let modules = live.len() as f64;
    let (heap_before, maps_before) = bench.before;
    let (heap_after, maps_after) = memory_in_use();
    out += &line("heap-per-module", [(heap_after - heap_before) / modules; 3]);
    out += &line(
        "maps-per-100-modules",
        [(maps_after - maps_before) * 100.0 / modules; 3],
    );
    out += &line("finalize", spread(&mut finalize_ns));
    // Arena creation, spread over every module registered.
    let arena_ns = bench.arena_time().as_nanos() as f64 / register_ns.len() as f64;
    let mut amortized: Vec<f64> = register_ns.iter().map(|ns| ns + arena_ns).collect();
    out += &line("register", spread(&mut amortized));

    // Threads throwing through different modules, spread over addresses.
    let mut by_address: Vec<Entry> = live.iter().map(|m| m.catch).collect();
    by_address.sort_by_key(|&f| f as usize);
    // Small batches, so that a thread stops soon after the deadline.
    let n = throws_for(bench.throw_ns(by_address[0], 1), budget).min(20);
    for threads in [1usize, 2, 4, 8] {
        // All threads start together and stop at one deadline: throughput
        // is every throw completed over that one window.
        let mut samples: Vec<f64> = (0..rounds.min(7))
            .map(|_| {
                let ready = std::sync::Barrier::new(threads + 1);
                let stop = std::sync::atomic::AtomicBool::new(false);
                std::thread::scope(|scope| {
                    let workers: Vec<_> = (0..threads)
                        .map(|t| {
                            let catch = by_address[(t * 2 + 1) * by_address.len() / 17];
                            let (gxx, ready, stop) = (&bench.gxx, &ready, &stop);
                            scope.spawn(move || {
                                ready.wait();
                                let mut throws = 0u64;
                                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                                    // SAFETY: as in `Bench::throw_ns`.
                                    unsafe { gxx.best_ns(Some(catch), None, FRAMES, n, 1) };
                                    throws += n as u64;
                                }
                                throws
                            })
                        })
                        .collect();
                    ready.wait();
                    let start = Instant::now();
                    std::thread::sleep(thread_time);
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    let throws: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
                    throws as f64 / start.elapsed().as_secs_f64()
                })
            })
            .collect();
        out += &line(&format!("threads\t{threads}"), spread(&mut samples));
    }

    let mut deregister = Vec::new();
    for module in &mut live {
        let start = Instant::now();
        module.registration.take();
        deregister.push(start.elapsed().as_nanos() as f64);
    }
    out += &line("deregister", spread(&mut deregister));
    live.into_iter().for_each(free);
    out
}

/// The worker: one registrar, under the unwinder this process has.
pub fn worker(mode: Mode, registrar: &str) {
    let library = std::env::var("EH_BENCH_LIBRARY").expect("EH_BENCH_LIBRARY");
    print!(
        "{}",
        measure(mode, Path::new(&library), Registrar::parse(registrar))
    );
}

type Figures = std::collections::BTreeMap<String, [f64; 3]>;

fn parse(text: &str) -> Figures {
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let (key, values) = fields.split_at(fields.len() - 3);
            let values: Vec<f64> = values.iter().map(|v| v.parse().unwrap()).collect();
            (key.join(" "), [values[0], values[1], values[2]])
        })
        .collect()
}

fn us([min, median, max]: [f64; 3]) -> String {
    format!("{:.2} µs ({:.2}–{:.2})", median / 1e3, min / 1e3, max / 1e3)
}

fn rows_of(rows: &mut Vec<Row>, unwinder: &str, registrar: Registrar, figures: &Figures) {
    let what = format!("{unwinder}, {}", registrar.label());
    let steady_base = figures["1 median"];
    let first_base = figures["1 first-further"];
    let burst_base = figures["1 first"];
    let counts: Vec<usize> = figures
        .keys()
        .filter_map(|k| k.strip_suffix(" lowest")?.parse().ok())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let largest = *counts.last().unwrap();
    for &count in &counts {
        let mut throw_row = |label: &str, key: &str| {
            let Some(&values) = figures.get(&format!("{count} {key}")) else {
                return;
            };
            let (base, base_label) = match key {
                "first" => (burst_base, "1 module, after as many stock modules"),
                "first-further" => (first_base, "first, 1 module"),
                _ => (steady_base, "1 module"),
            };
            let mut row = Row::new(PART, format!("{what}: {count} modules, {label}"))
                .values(us(values), format!("{base_label} {}", us(base)))
                .ratio(values[1], base[1]);
            if count > 1 {
                row = row.target(1.5);
            }
            if count == largest && key == "lowest" && registrar == Registrar::Arenas {
                row = row.headline();
            }
            rows.push(row);
        };
        throw_row("first throw after this step's registrations", "first");
        throw_row("first throw through each of 5 more", "first-further");
        for position in ["lowest", "median", "highest"] {
            throw_row(&format!("throw via the {position} address"), position);
        }
    }
    let register = figures["register"];
    let register_label = match registrar {
        Registrar::RegisterFrame => "JitTables::register per module",
        Registrar::Arenas => "JitTables::register per module, arena creation spread over them",
    };
    rows.push(
        Row::new(PART, format!("{what}: {register_label}"))
            .values(us(register), "target 10 µs")
            .ratio(register[1], 10_000.0)
            .target(1.0),
    );
    rows.push(
        Row::new(
            PART,
            format!("{what}: cranelift-jit's finalize_definitions per module"),
        )
        .values(us(figures["finalize"]), ""),
    );
    rows.push(
        Row::new(PART, format!("{what}: deregister per module"))
            .values(us(figures["deregister"]), ""),
    );
    let maps = figures["maps-per-100-modules"][1];
    rows.push(
        Row::new(
            PART,
            format!("{what}: memory mappings per 100 modules ({largest} live)"),
        )
        .values(format!("{maps:.1}"), "target 1")
        .ratio(maps.max(0.0), 1.0)
        .target(1.0),
    );
    rows.push(
        Row::new(PART, format!("{what}: heap per module ({largest} live)"))
            .values(format!("{:.0} B", figures["heap-per-module"][1]), ""),
    );
    let throughput = |t: usize| figures[&format!("threads {t}")];
    let per_second = |v: [f64; 3]| {
        format!(
            "{:.0} k/s ({:.0}–{:.0})",
            v[1] / 1e3,
            v[0] / 1e3,
            v[2] / 1e3
        )
    };
    for (threads, against, target) in [(2, 1, Some(1.0 / 1.8)), (4, 2, None), (8, 2, Some(1.0))] {
        let (ours, base) = (throughput(threads), throughput(against));
        // The ratio is `against`'s throughput over this one's (scaled for
        // 2 vs 1), so that "≤ target" reads as "fast enough".
        let row = Row::new(
                PART,
                format!(
                    "{what}: {threads} threads throwing through different modules, vs {against} (2 cores)"
                ),
            )
            .values(per_second(ours), format!("{against}: {}", per_second(base)))
            .ratio(base[1], ours[1]);
        rows.push(match target {
            Some(target) => row.target(target),
            None => row,
        });
    }
}

pub fn rows(mode: Mode) -> Vec<Row> {
    let library = gxx_library();
    let mut rows = Vec::new();
    for registrar in [Registrar::RegisterFrame, Registrar::Arenas] {
        let libgcc = crate::throw::worker_process(
            &["registration", registrar.name()],
            mode,
            &[("EH_BENCH_LIBRARY", library)],
            None,
        );
        rows_of(&mut rows, "libgcc", registrar, &parse(&libgcc));
        let llvm = llvm_libunwind_worker(
            &["registration", registrar.name()],
            mode,
            &[("EH_BENCH_LIBRARY", library)],
        );
        rows_of(&mut rows, "LLVM libunwind", registrar, &parse(&llvm));
    }
    rows
}
