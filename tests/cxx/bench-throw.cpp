// The g++ half of the throw-latency benchmark (tests/benches/eh), and the
// timing loop both halves run in: `gxx_rec` / `gxx_catch` have the shape of
// `clif_rec` / `clif_catch` in bench-throw.clif and throw through the same
// `bench_thrower`. Built as a shared library for the JIT runs, and with
// BENCH_MAIN as an executable linked with the Cranelift object.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

extern "C" __attribute__((noinline)) long bench_thrower(long) { throw 42; }

extern "C" __attribute__((noinline)) long gxx_rec(long d) {
    if (d == 0) return bench_thrower(d);
    long r = gxx_rec(d - 1);
    // Opaque to the optimizer: no accumulator turns the recursion into a loop.
    asm volatile("" : "+r"(r));
    return r + 1;
}

extern "C" __attribute__((noinline)) long gxx_catch(long d) {
    try {
        return gxx_rec(d);
    } catch (int) {
        return -1;
    }
}

typedef long (*entry_fn)(long);

// A C++ frame catching what `rec` throws.
extern "C" __attribute__((noinline)) long cxx_catch(entry_fn rec, long d) {
    try {
        return rec(d);
    } catch (int) {
        return -1;
    }
}

// Nanoseconds per call of `catcher(depth)`, or of `cxx_catch(rec, depth)`
// when `catcher` is null; every call must end in the catch.
extern "C" double bench_ns(entry_fn catcher, entry_fn rec, long depth, long iterations) {
    auto start = std::chrono::steady_clock::now();
    long caught = 0;
    for (long i = 0; i < iterations; i++) {
        caught += catcher ? catcher(depth) : cxx_catch(rec, depth);
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
    if (caught != -iterations) {
        std::fprintf(stderr, "bench_ns: %ld of %ld calls caught\n", -caught, iterations);
        std::abort();
    }
    return ns.count() / iterations;
}

#ifdef BENCH_MAIN
extern "C" long clif_rec(long);
extern "C" long clif_catch(long);

// usage: bench-throw ITERATIONS; prints `depth<TAB>variant<TAB>ns` lines.
int main(int argc, char **argv) {
    long iterations = argc > 1 ? std::atol(argv[1]) : 10000;
    for (long frames : {1L, 10L, 100L}) {
        long n = frames == 100 ? iterations / 4 + 1 : iterations;
        for (int round = 0; round < 3; round++) {
            std::printf("%ld\tgxx\t%.1f\n", frames, bench_ns(gxx_catch, nullptr, frames - 1, n));
            std::printf("%ld\tclif\t%.1f\n", frames, bench_ns(clif_catch, nullptr, frames - 1, n));
            std::printf("%ld\tclif-in-cxx\t%.1f\n", frames, bench_ns(nullptr, clif_rec, frames - 1, n));
        }
    }
    return 0;
}
#endif
