// Hostile-unwinding scenarios: `hostile <scenario> <clif|gxx>` runs one,
// either through the Cranelift functions of hostile.clif / no-entry.clif or
// through the same shape compiled by g++ below, and prints what happened.
// A scenario that ends in std::terminate prints nothing after its name.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "eh_runtime.h"

extern "C" {
// Cranelift (hostile.clif, no-entry.clif).
int64_t cleanup_then_throwing_dtor(int64_t);
int64_t outer_via_cxx(int64_t);
int64_t inner_catch_base(int64_t);
int64_t deep_catch(int64_t);
int64_t no_entry(int64_t);

// Called by the Cranelift code.
void eh_throwing_dtor() { throw int(99); }
}

namespace {
struct NotesCleanup {
    ~NotesCleanup() { eh_note_cleanup(); }
};
struct ThrowingDtor {
    ~ThrowingDtor() noexcept(false) { eh_throwing_dtor(); }
};
}  // namespace

extern "C" {
// The C++ frame between two Cranelift frames.
int64_t cxx_middle(int64_t kind) {
    NotesCleanup guard;
    return inner_catch_base(kind);
}

// The same shapes, all g++.
int64_t gxx_cleanup_then_throwing_dtor(int64_t kind) {
    ThrowingDtor dtor;
    return eh_throw(kind);
}
int64_t gxx_inner_catch_base(int64_t kind) {
    try {
        return eh_throw(kind);
    } catch (Base& b) {
        return 2000 + b.value;
    }
}
int64_t gxx_middle(int64_t kind) {
    NotesCleanup guard;
    return gxx_inner_catch_base(kind);
}
int64_t gxx_outer_via_cxx(int64_t kind) {
    try {
        return gxx_middle(kind);
    } catch (int v) {
        return 1000 + v;
    }
}
int64_t gxx_deep(int64_t n) {
    if (n == 0) return eh_throw(1);
    NotesCleanup guard;
    return gxx_deep(n - 1);
}
int64_t gxx_deep_catch(int64_t n) {
    try {
        return gxx_deep(n);
    } catch (int v) {
        return 1000 + v;
    }
}
// A call the LSDA has no call-site record for: g++ makes one with noexcept.
int64_t gxx_no_entry(int64_t kind) noexcept { return eh_throw(kind); }
}

static void report(int64_t (*f)(int64_t), int64_t arg) {
    eh_reset_cleanups();
    int64_t escaped = 0;
    int64_t value = eh_call(f, arg, &escaped);
    std::printf("%ld: returned %ld, escaped %ld, cleanups %ld\n", static_cast<long>(arg),
                static_cast<long>(value), static_cast<long>(escaped),
                static_cast<long>(eh_cleanups()));
}

int main(int argc, char** argv) {
    if (argc != 3 || (std::strcmp(argv[2], "clif") != 0 && std::strcmp(argv[2], "gxx") != 0)) {
        std::fprintf(stderr, "usage: hostile <scenario> <clif|gxx>\n");
        return 2;
    }
    bool clif = std::strcmp(argv[2], "clif") == 0;
    const char* scenario = argv[1];
    std::printf("%s\n", scenario);
    std::fflush(stdout);
    if (std::strcmp(scenario, "dtor-throws") == 0) {
        report(clif ? cleanup_then_throwing_dtor : gxx_cleanup_then_throwing_dtor, 1);
    } else if (std::strcmp(scenario, "cxx-between") == 0) {
        for (int64_t kind = 0; kind <= 5; ++kind) {
            report(clif ? outer_via_cxx : gxx_outer_via_cxx, kind);
        }
    } else if (std::strcmp(scenario, "deep") == 0) {
        report(clif ? deep_catch : gxx_deep_catch, 10000);
    } else if (std::strcmp(scenario, "no-entry") == 0) {
        report(clif ? no_entry : gxx_no_entry, 1);
    } else {
        std::fprintf(stderr, "unknown scenario %s\n", scenario);
        return 2;
    }
    return 0;
}
