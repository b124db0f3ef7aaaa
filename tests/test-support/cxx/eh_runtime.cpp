// A small C++ runtime that Cranelift code calls and catches from: it throws
// exceptions of several types and gives their payloads back to the pads.
#include "eh_runtime.h"

#include <typeinfo>

// Per thread: the concurrency tests throw from several threads at once.
static thread_local int64_t cleanups = 0;

extern "C" {

// kind 0 returns 42; 1 throws int 7; 2 throws Derived(11); 3 throws
// Unrelated{13}; 4 throws Base(17); 5 throws double 2.5.
int64_t eh_throw(int64_t kind) {
    switch (kind) {
    case 1: throw int(7);
    case 2: throw Derived(11);
    case 3: throw Unrelated{13};
    case 4: throw Base(17);
    case 5: throw 2.5;
    default: return 42;
    }
}

void eh_note_cleanup() { ++cleanups; }
int64_t eh_cleanups() { return cleanups; }
void eh_reset_cleanups() { cleanups = 0; }

// Payload readers for pads, given what __cxa_begin_catch returned.
int64_t eh_int_value(const void* object) { return *static_cast<const int*>(object); }
int64_t eh_base_value(const void* object) { return static_cast<const Base*>(object)->value; }
int64_t eh_unrelated_value(const void* object) {
    return static_cast<const Unrelated*>(object)->value;
}

// Addresses of typeinfo objects defined here (not exported dynamically).
const void* eh_typeinfo_base() { return &typeid(Base); }
const void* eh_typeinfo_unrelated() { return &typeid(Unrelated); }

// Call Cranelift code and report what escaped it: 0 nothing, 1 int,
// 2 Base (or Derived), 3 Unrelated, 4 double, 5 anything else.
int64_t eh_call(int64_t (*f)(int64_t), int64_t arg, int64_t* escaped) {
    *escaped = 0;
    try {
        return f(arg);
    } catch (int v) {
        *escaped = 1;
        return v;
    } catch (Base& b) {
        *escaped = 2;
        return b.value;
    } catch (Unrelated& u) {
        *escaped = 3;
        return u.value;
    } catch (double d) {
        *escaped = 4;
        return static_cast<int64_t>(d);
    } catch (...) {
        *escaped = 5;
        return -1;
    }
}

}  // extern "C"
