// Drives the Cranelift suite linked from an object file: calls each
// function with each throw kind through eh_call and prints one line per
// call, after naming the library that provides the unwinder.
#include <cstdint>
#include <cstdio>
#include <dlfcn.h>
#include <unwind.h>

extern "C" {
int64_t eh_call(int64_t (*f)(int64_t), int64_t arg, int64_t* escaped);
int64_t eh_cleanups();
void eh_reset_cleanups();
int64_t catch_int(int64_t);
int64_t catch_base(int64_t);
int64_t catch_all(int64_t);
int64_t indirect(int64_t);
int64_t cleanup(int64_t);
int64_t rethrow(int64_t);
int64_t depth1(int64_t);
}

int main() {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&_Unwind_RaiseException), &info) && info.dli_fname) {
        std::printf("unwinder %s\n", info.dli_fname);
    }
    struct {
        const char* name;
        int64_t (*f)(int64_t);
    } functions[] = {
        {"catch_int", catch_int}, {"catch_base", catch_base}, {"catch_all", catch_all},
        {"indirect", indirect},   {"cleanup", cleanup},       {"rethrow", rethrow},
        {"depth1", depth1},
    };
    for (auto& fn : functions) {
        for (int64_t kind = 0; kind <= 5; ++kind) {
            eh_reset_cleanups();
            int64_t escaped = 0;
            int64_t value = eh_call(fn.f, kind, &escaped);
            std::printf("%s %ld %ld %ld %ld\n", fn.name, static_cast<long>(kind),
                        static_cast<long>(value), static_cast<long>(escaped),
                        static_cast<long>(eh_cleanups()));
        }
    }
    return 0;
}
