//! Memory stays flat while modules churn through small loader-known arenas
//! (alone in its process: the heap and mapping figures are process-wide).

use cranelift_lsda::{ArenaConfig, LoaderArenas};
use eh_tests::jit::{ONE_CATCH, memory_in_use};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Modules to churn through, unless the time budget runs out first.
const TARGET: usize = 100_000;
const BUDGET: Duration = Duration::from_secs(60);
/// Modules alive at once: compiled, registered and thrown through, then
/// all freed.
const BATCH: usize = 500;
const SLACK: i64 = 64 * 1024;
/// Mappings the process may gain: the arenas the pool keeps for the next
/// module (about five mappings each) and the allocator's.
const MAPPINGS_SLACK: i64 = 16;
/// Arenas the pool may keep leasable.
const OPEN_ARENAS: usize = 3;

/// Loaded arena images: the inodes of the memfds mapped.
fn loaded_arenas() -> BTreeSet<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|line| line.contains("/memfd:cranelift-jit-arena"))
        .filter_map(|line| line.split_whitespace().nth(4)?.parse().ok())
        .collect()
}

#[test]
fn memory_stays_flat_while_modules_churn_through_small_arenas() {
    let file = clif_eh::parse_file(ONE_CATCH).unwrap();
    // 1 MiB of code: each module takes a page of it, so an arena holds 256
    // and a batch fills two. Once a batch is freed, the next module's lease
    // empties one of them for reuse and unloads the other; another is
    // created when the reused one is full.
    let arenas = LoaderArenas::with_config(ArenaConfig {
        code_capacity: 1 << 20,
        eh_frame_capacity: 1 << 20,
    })
    .unwrap();
    let mut peak = (0, 0);
    let mut seen = BTreeSet::new();
    let mut batch = |seen: &mut BTreeSet<u64>| {
        let modules: Vec<_> = (0..BATCH)
            .map(|_| {
                let jit = clif_eh::module::jit_file_in_arenas(&file, &[], &arenas).unwrap();
                assert_eq!(jit.call("catch_int", 1).unwrap().value, 7);
                jit
            })
            .collect();
        let loaded = loaded_arenas();
        peak.0 = peak.0.max(loaded.len());
        seen.extend(loaded);
        peak.1 = peak.1.max(arenas.open_arenas());
        for jit in modules {
            // SAFETY: nothing of the module is used after this.
            unsafe { jit.module.free_memory() };
        }
    };
    // Warm up: the allocator, the loader's object lists, the unwinder and
    // libstdc++ settle over a few fills of arenas first.
    (0..4).for_each(|_| batch(&mut BTreeSet::new()));
    let before = memory_in_use();
    let start = Instant::now();
    let mut modules = 0;
    while modules < TARGET && start.elapsed() < BUDGET {
        batch(&mut seen);
        modules += BATCH;
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = memory_in_use();
    let (heap, mappings) = (
        after.0 as i64 - before.0 as i64,
        after.1 as i64 - before.1 as i64,
    );
    let open = arenas.open_arenas();
    eh_tests::report_figure(
        "memory-arenas",
        &format!(
            "{modules} modules in 1 MiB arenas, {BATCH} alive at a time, compiled, registered, \
             thrown through and freed in {seconds:.1} s ({:.0} µs each): heap {heap:+} B, \
             mappings {mappings:+} ({} before); {} arenas created and unloaded meanwhile (at \
             least), at most {} loaded at once and {} leasable; {open} leasable after",
            seconds * 1e6 / modules as f64,
            before.1,
            seen.len(),
            peak.0,
            peak.1,
        ),
    );
    assert!(
        modules >= 20 * BATCH,
        "only {modules} modules in {seconds:.0} s"
    );
    assert!(
        heap < SLACK && mappings <= MAPPINGS_SLACK,
        "memory grew: {before:?} -> {after:?}"
    );
    assert!(
        open <= OPEN_ARENAS && peak.1 <= OPEN_ARENAS,
        "{open} leasable arenas after, {} at most",
        peak.1
    );
    // 500 modules of a page each fill two 1 MiB arenas; one of them is
    // unloaded after each batch, and a fresh one created.
    assert!(peak.0 <= 4, "{} arenas loaded at once", peak.0);
    assert!(
        seen.len() >= modules / BATCH,
        "{} arenas over {} batches: they did not churn",
        seen.len(),
        modules / BATCH
    );
}
