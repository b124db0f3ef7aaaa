// The exception types of the C++ runtime (eh_runtime.cpp), shared with the
// drivers that catch them in C++.
#pragma once
#include <cstdint>

struct Base {
    explicit Base(int64_t v) : value(v) {}
    virtual ~Base() {}
    int64_t value;
};
struct Derived : Base {
    explicit Derived(int64_t v) : Base(v) {}
};
struct Unrelated {
    int64_t value;
};

extern "C" {
int64_t eh_throw(int64_t kind);
void eh_note_cleanup();
int64_t eh_cleanups();
void eh_reset_cleanups();
int64_t eh_call(int64_t (*f)(int64_t), int64_t arg, int64_t* escaped);
}
