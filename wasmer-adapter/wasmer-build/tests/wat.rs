//! WebAssembly exception handling through the `wasmer` 7.5 API, on the
//! backend this build links (`wasmer_eh_runner::BACKEND`). The same tests
//! run on stock Wasmer 7.5 and with `generic-lsda`; where stock behaves
//! differently the test says what stock does, as observed on stock here.

use wasmer::{
    Exception, ExternRef, Function, FunctionEnv, FunctionEnvMut, FunctionType, Imports, Instance,
    Module, RuntimeError, Store, Tag, Type, Value, imports,
};
use wasmer_eh_runner::engine;

const GENERIC_LSDA: bool = cfg!(feature = "generic-lsda");

fn instantiate(store: &mut Store, wat: &str, imports: &Imports) -> Instance {
    let module = Module::new(store, wat).expect("the module compiles");
    Instance::new(store, &module, imports).expect("the module links")
}

fn call(store: &mut Store, instance: &Instance, name: &str, args: &[Value]) -> Vec<Value> {
    let f = instance.exports.get_function(name).expect("exported");
    f.call(store, args)
        .unwrap_or_else(|e| panic!("{name} failed: {e}"))
        .into_vec()
}

/// generic-lsda lays payloads out unlike stock, so the engine's
/// `deterministic_id` (what artifact caches key on) says which build it is.
#[test]
fn deterministic_id_tells_the_payload_layouts_apart() {
    let id = engine().deterministic_id();
    assert!(id.starts_with("cranelift"), "{id}");
    assert_eq!(id.contains("generic_lsda"), GENERIC_LSDA, "{id}");
}

/// Every value type as a payload, wasm to wasm, bit-exact (NaN payloads,
/// all v128 lanes, references by identity).
#[test]
fn payloads_of_every_value_type_are_bit_exact() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $t (param i32 i64 f32 f64 v128 funcref externref exnref))
      (tag $inner (param i32))
      (func $f (export "f") (result i32) (i32.const 0x1234))
      (func $throw (param i32 i64 f32 f64 v128 funcref externref exnref)
        (throw $t (local.get 0) (local.get 1) (local.get 2) (local.get 3)
                  (local.get 4) (local.get 5) (local.get 6) (local.get 7)))
      (func $an_exnref (result exnref)
        (block $h (result exnref)
          (try_table (catch_all_ref $h) (throw $inner (i32.const 99)))
          (unreachable)))
      (func (export "roundtrip") (param i32 i64 f32 f64 v128 externref)
          (result i32 i64 f32 f64 v128 funcref externref i32)
        (local $exn exnref)
        (block $h (result i32 i64 f32 f64 v128 funcref externref exnref)
          (try_table (catch $t $h)
            (call $throw (local.get 0) (local.get 1) (local.get 2) (local.get 3)
                         (local.get 4) (ref.func $f) (local.get 5) (call $an_exnref)))
          (unreachable))
        ;; The exnref payload is the exception $an_exnref caught: raised
        ;; again, it is $inner with its payload.
        (local.set $exn)
        (block $again (result i32)
          (try_table (catch $inner $again) (throw_ref (local.get $exn)))
          (i32.const -1))))"#;
    let instance = instantiate(&mut store, wat, &imports! {});
    let marker = ExternRef::new(&mut store, 0xfeed_u32);
    let f32_nan = f32::from_bits(0x7fa0_0001);
    let f64_nan = f64::from_bits(0x7ff4_0000_0000_0001);
    let v128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100_u128;
    let out = call(
        &mut store,
        &instance,
        "roundtrip",
        &[
            Value::I32(-7),
            Value::I64(i64::MIN + 3),
            Value::F32(f32_nan),
            Value::F64(f64_nan),
            Value::V128(v128),
            Value::ExternRef(Some(marker.clone())),
        ],
    );
    assert_eq!(out[0].unwrap_i32(), -7);
    assert_eq!(out[1].unwrap_i64(), i64::MIN + 3);
    assert_eq!(out[2].unwrap_f32().to_bits(), 0x7fa0_0001);
    assert_eq!(out[3].unwrap_f64().to_bits(), 0x7ff4_0000_0000_0001);
    assert_eq!(out[4].unwrap_v128(), v128);
    let Value::FuncRef(Some(func)) = &out[5] else {
        panic!("funcref payload: {:?}", out[5])
    };
    assert_eq!(
        func.call(&mut store, &[]).unwrap().into_vec(),
        [Value::I32(0x1234)],
        "the funcref payload is $f"
    );
    let Value::ExternRef(Some(back)) = &out[6] else {
        panic!("externref payload: {:?}", out[6])
    };
    assert_eq!(back.downcast::<u32>(&store), Some(&0xfeed));
    assert_eq!(
        out[7].unwrap_i32(),
        99,
        "the exnref payload is the exception it was"
    );
}

/// `catch_ref` then `throw_ref` rethrows the same exception: the host sees
/// the very exception it created, payload included.
#[test]
fn catch_ref_and_throw_ref_keep_identity() {
    let mut store = Store::new(engine());
    let tag = Tag::new(&mut store, [Type::I32]);
    let exception = Exception::new(&mut store, &tag, &[Value::I32(41)]);
    let env = FunctionEnv::new(&mut store, exception.clone());
    let raise = Function::new_typed_with_env(
        &mut store,
        &env,
        |env: FunctionEnvMut<Exception>| -> Result<(), RuntimeError> {
            Err(RuntimeError::exception(&env, env.data().clone()))
        },
    );
    let wat = r#"(module
      (import "host" "tag" (tag $t (param i32)))
      (import "host" "raise" (func $raise))
      (func (export "rethrow_twice")
        (block $h (result i32 exnref)
          (try_table (catch_ref $t $h) (call $raise))
          (unreachable))
        (block $h2 (param i32 exnref) (result i32 exnref)
          (try_table (param i32 exnref) (catch_ref $t $h2) (throw_ref))
          (unreachable))
        (throw_ref)
        (drop)))"#;
    let imports = imports! { "host" => { "tag" => tag.clone(), "raise" => raise } };
    let instance = instantiate(&mut store, wat, &imports);
    let f = instance.exports.get_function("rethrow_twice").unwrap();
    let err = f.call(&mut store, &[]).expect_err("the exception escapes");
    let caught = err.to_exception().expect("an exception, not a trap");
    assert_eq!(caught, exception, "the same exception object");
    assert_eq!(caught.payload(&mut store), [Value::I32(41)]);
}

/// An exception crosses 50 Wasm frames to the handler.
#[test]
fn crosses_fifty_wasm_frames() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $t (param i32))
      (func $down (param i32)
        (if (i32.eqz (local.get 0)) (then (throw $t (i32.const 50))))
        (call $down (i32.sub (local.get 0) (i32.const 1))))
      (func (export "run") (result i32)
        (block $h (result i32)
          (try_table (catch $t $h) (call $down (i32.const 49)))
          (i32.const -1))))"#;
    let instance = instantiate(&mut store, wat, &imports! {});
    assert_eq!(call(&mut store, &instance, "run", &[]), [Value::I32(50)]);
}

/// Wasm → host → Wasm: the inner Wasm's exception crosses the host
/// function's frames and is caught by the outer Wasm.
#[test]
fn crosses_an_imported_host_function() {
    let mut store = Store::new(engine());
    let thrower = instantiate(
        &mut store,
        r#"(module (tag $t (export "t") (param i64))
             (func (export "throw") (param i64) (throw $t (local.get 0))))"#,
        &imports! {},
    );
    let throw = thrower.exports.get_function("throw").unwrap().clone();
    let tag = thrower.exports.get_extern("t").unwrap().clone();
    let env = FunctionEnv::new(&mut store, throw);
    let host = Function::new_typed_with_env(
        &mut store,
        &env,
        |mut env: FunctionEnvMut<Function>, x: i64| -> Result<(), RuntimeError> {
            let throw = env.data().clone();
            throw.call(&mut env, &[Value::I64(x * 2)]).map(|_| ())
        },
    );
    let wat = r#"(module
      (import "m" "t" (tag $t (param i64)))
      (import "m" "host" (func $host (param i64)))
      (func (export "run") (param i64) (result i64)
        (block $h (result i64)
          (try_table (catch $t $h) (call $host (local.get 0)))
          (i64.const -1))))"#;
    let imports = imports! { "m" => { "t" => tag, "host" => host } };
    let instance = instantiate(&mut store, wat, &imports);
    assert_eq!(
        call(&mut store, &instance, "run", &[Value::I64(21)]),
        [Value::I64(42)]
    );
}

/// A host function made with `Function::new_with_env` (a dynamic function:
/// its trampoline is compiled by Cranelift) raises an exception. With
/// `generic-lsda` the trampoline has CFI and Wasm catches it, `catch_all`
/// included; stock publishes no unwind info for that trampoline and the
/// exception escapes to the host.
#[test]
fn dynamic_host_function_exception_is_caught() {
    let mut store = Store::new(engine());
    let tag = Tag::new(&mut store, [Type::I32]);
    let env = FunctionEnv::new(&mut store, tag.clone());
    let host = Function::new_with_env(
        &mut store,
        &env,
        FunctionType::new(vec![Type::I32], vec![]),
        |mut env: FunctionEnvMut<Tag>, args: &[Value]| {
            let tag = env.data().clone();
            let exception = Exception::new(&mut env, &tag, &[args[0].clone()]);
            Err(RuntimeError::exception(&env, exception))
        },
    );
    let wat = r#"(module
      (import "host" "tag" (tag $t (param i32)))
      (import "host" "raise" (func $raise (param i32)))
      (func (export "catch") (param i32) (result i32)
        (block $h (result i32)
          (try_table (catch $t $h) (call $raise (local.get 0)))
          (i32.const -1)))
      (func (export "catch_all") (param i32) (result i32)
        (block $h
          (try_table (catch_all $h) (call $raise (local.get 0)))
          (return (i32.const -1)))
        (i32.const 1)))"#;
    let imports = imports! { "host" => { "tag" => tag, "raise" => host } };
    let instance = instantiate(&mut store, wat, &imports);
    for (name, expected) in [("catch", 9), ("catch_all", 1)] {
        let f = instance.exports.get_function(name).unwrap();
        let result = f.call(&mut store, &[Value::I32(9)]);
        if GENERIC_LSDA {
            assert_eq!(result.unwrap().into_vec(), [Value::I32(expected)], "{name}");
        } else {
            let err = result.expect_err("stock: the exception is not caught");
            assert!(
                err.is_exception(),
                "stock: it reaches the host as an exception"
            );
        }
    }
}

/// A host-made exception with several fields, caught by Wasm. Both the
/// host API and wasmer-vm lay the payload out one `RawValue` per field;
/// `generic-lsda` reads it so. Stock packs the fields, so it reads the
/// second field from the wrong offset (observed on stock: 0).
#[test]
fn host_made_multi_field_payload_is_read_correctly() {
    let mut store = Store::new(engine());
    let tag = Tag::new(&mut store, [Type::I32, Type::I64]);
    let env = FunctionEnv::new(&mut store, tag.clone());
    let raise = Function::new_typed_with_env(
        &mut store,
        &env,
        |mut env: FunctionEnvMut<Tag>| -> Result<(), RuntimeError> {
            let tag = env.data().clone();
            let exception = Exception::new(&mut env, &tag, &[Value::I32(7), Value::I64(1 << 40)]);
            Err(RuntimeError::exception(&env, exception))
        },
    );
    let wat = r#"(module
      (import "host" "tag" (tag $t (param i32 i64)))
      (import "host" "raise" (func $raise))
      (func (export "run") (result i32 i64)
        (block $h (result i32 i64)
          (try_table (catch $t $h) (call $raise))
          (unreachable))))"#;
    let imports = imports! { "host" => { "tag" => tag, "raise" => raise } };
    let instance = instantiate(&mut store, wat, &imports);
    let out = call(&mut store, &instance, "run", &[]);
    assert_eq!(out[0], Value::I32(7));
    if GENERIC_LSDA {
        assert_eq!(out[1], Value::I64(1 << 40));
    } else {
        assert_ne!(
            out[1],
            Value::I64(1 << 40),
            "stock misreads the second field"
        );
    }
}

/// An exception no Wasm handler catches reaches the host as an error that
/// carries the exception and its payload (a Wasm-made multi-field payload:
/// stock's field offsets disagree with the host API's, observed on stock).
#[test]
fn uncaught_exception_reaches_the_host() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $t (export "t") (param i32 f64))
      (tag $other)
      (func (export "run")
        (block $h
          (try_table (catch $other $h) (throw $t (i32.const 3) (f64.const 2.5))))))"#;
    let instance = instantiate(&mut store, wat, &imports! {});
    let f = instance.exports.get_function("run").unwrap();
    let err = f.call(&mut store, &[]).expect_err("not caught");
    assert!(err.is_exception());
    let exception = err.to_exception().unwrap();
    let Some(wasmer::Extern::Tag(tag)) = instance.exports.get_extern("t") else {
        panic!("tag export")
    };
    assert_eq!(exception.tag(&store), *tag);
    let payload = exception.payload(&mut store);
    if GENERIC_LSDA {
        assert_eq!(payload, [Value::I32(3), Value::F64(2.5)]);
    } else {
        // Stock packs the fields (the f64 at byte 8) while the host reads
        // one `RawValue` per field (the f64 at byte 16).
        assert_eq!(
            payload,
            [Value::I32(3), Value::F64(0.0)],
            "stock misreads it"
        );
    }
}

/// The differential fuzzer's model of stock's misreading
/// (`diff::stock_packed_reading`: fields packed by the code, a reference
/// pointer-sized, read one 16-byte slot each by the host) against the
/// runtime itself, on payloads where the model moves a value from one
/// field to another. The second is wasm-smith seed 29096900222's, which a
/// model without references reported as a divergence.
#[test]
fn stock_payload_misreading_is_what_the_fuzzer_models() {
    use wasmer_eh_runner::diff;
    let cases = [
        (
            "(param i64 i64 i32)",
            "(i64.const 0x1111) (i64.const 0x2222) (i32.const 0x33)",
            "i64:0x1111,i64:0x2222,i32:0x33,",
            "i64:0x1111,i64:0x33,i32:0x0,",
        ),
        (
            "(param funcref f32 i64)",
            "(ref.null func) (f32.const -1) (i64.const 0x36)",
            "funcref:null,f32:0xbf800000,i64:0x36,",
            "funcref:null,f32:0x36,i64:0x0,",
        ),
    ];
    for (params, args, thrown, misread) in cases {
        let mut store = Store::new(engine());
        let wat = format!(
            r#"(module
              (tag $t (export "t") {params})
              (func (export "run") (throw $t {args})))"#
        );
        let instance = instantiate(&mut store, &wat, &imports! {});
        let f = instance.exports.get_function("run").unwrap();
        let exception = f
            .call(&mut store, &[])
            .expect_err("not caught")
            .to_exception()
            .expect("an exception");
        let read = diff::values_text(&exception.payload(&mut store));
        let modelled = diff::stock_packed_reading(thrown).expect("modelled");
        assert_eq!(modelled, misread, "{params}");
        if GENERIC_LSDA {
            assert_eq!(read, thrown, "{params}");
        } else {
            assert_eq!(read, modelled, "stock reads the packed {params} so");
        }
    }
    // What the text cannot tell: a reference's bits, or what a reference
    // slot makes of another field's bytes.
    assert_eq!(diff::stock_packed_reading("i32:0x1,funcref:ref,"), None);
    assert_eq!(
        diff::stock_packed_reading("i64:0x1,funcref:null,i64:0x2,i64:0x3,"),
        None
    );
}

/// The biased fuzzer's payload relation (every field made from one `i32`)
/// holds for what its throws make and breaks for stock's misreading of
/// it, on payloads generated by a real module of the generator.
#[test]
fn biased_payload_relation_catches_a_misread_field() {
    use wasmer_eh_runner::{biased, diff};
    let mut store = Store::new(engine());
    let mut checked = 0;
    for seed in 0..40 {
        let generated = diff::generate(diff::Generator::Biased, seed).expect("generated");
        let line = diff::outcome(&mut store, &generated);
        for payload in diff::uncaught_payloads(&line).expect("readable") {
            if !GENERIC_LSDA {
                continue;
            }
            assert!(
                biased::payload_is_consistent(payload),
                "seed {seed}: {payload}"
            );
            let misread = diff::stock_packed_reading(payload).expect("numbers");
            if misread != payload {
                assert!(
                    !biased::payload_is_consistent(&misread),
                    "seed {seed}: {misread}"
                );
                checked += 1;
            }
        }
    }
    if GENERIC_LSDA {
        assert!(checked > 0, "some seed throws a multi-field payload out");
    }
    assert!(!biased::payload_is_consistent("i32:0x5,i64:0x0,"));
    assert!(biased::payload_is_consistent("i32:0x5,i64:0x14,"));
}

/// Two instances of one module have distinct tags: one instance's tag is
/// not caught by the other's `catch` (stage 2 resolves tags per instance),
/// while an imported tag is the exporter's.
#[test]
fn several_instances_and_imported_tags() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (import "env" "shared" (tag $shared (param i32)))
      (tag $own (export "own") (param i32))
      (import "env" "call" (func $call (param funcref) (result i32)))
      (func $throw_own (export "throw_own") (param i32) (throw $own (local.get 0)))
      (func $throw_shared (export "throw_shared") (param i32) (throw $shared (local.get 0)))
      (func (export "catch_own") (param funcref) (result i32)
        (block $h (result i32)
          (try_table (catch $own $h) (drop (call $call (local.get 0))))
          (i32.const -1)))
      (func (export "catch_shared") (param funcref) (result i32)
        (block $h (result i32)
          (try_table (catch $shared $h) (drop (call $call (local.get 0))))
          (i32.const -1))))"#;
    let shared = Tag::new(&mut store, [Type::I32]);
    // `call` invokes the given funcref with 5.
    let env = FunctionEnv::new(&mut store, ());
    let call_ref = Function::new_typed_with_env(
        &mut store,
        &env,
        |mut env: FunctionEnvMut<()>, f: Option<Function>| -> Result<i32, RuntimeError> {
            let f = f.expect("a function");
            f.call(&mut env, &[Value::I32(5)])?;
            Ok(0)
        },
    );
    let imports = imports! { "env" => { "shared" => shared, "call" => call_ref } };
    let a = instantiate(&mut store, wat, &imports);
    let b = instantiate(&mut store, wat, &imports);
    let fref = |i: &Instance, name: &str| {
        Value::FuncRef(Some(i.exports.get_function(name).unwrap().clone()))
    };
    // A catches its own tag...
    let own_a = fref(&a, "throw_own");
    assert_eq!(call(&mut store, &a, "catch_own", &[own_a]), [Value::I32(5)]);
    // ...but not B's, which has the same index in the same module.
    let own_b = fref(&b, "throw_own");
    let err = a
        .exports
        .get_function("catch_own")
        .unwrap()
        .call(&mut store, &[own_b])
        .expect_err("B's tag is not A's");
    assert!(err.is_exception());
    // The imported tag is one tag in both.
    let shared_b = fref(&b, "throw_shared");
    assert_eq!(
        call(&mut store, &a, "catch_shared", &[shared_b]),
        [Value::I32(5)]
    );
}

/// Four threads throw and catch at once (20,000 throws each), each in its
/// own store.
#[test]
fn four_threads_each_in_its_own_store() {
    let wat = r#"(module
      (tag $t (param i32))
      (func $throw (param i32) (throw $t (local.get 0)))
      (func (export "run") (param i32) (result i32)
        (local $i i32) (local $sum i32)
        (loop $l
          (block $h (result i32)
            (try_table (catch $t $h) (call $throw (local.get $i)))
            (i32.const 0))
          (local.set $sum (i32.add (local.get $sum)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $l (i32.lt_u (local.get $i) (local.get 0))))
        (local.get $sum)))"#;
    // All four start throwing together, once each has compiled.
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                let mut store = Store::new(engine());
                let instance = instantiate(&mut store, wat, &imports! {});
                start.wait();
                call(&mut store, &instance, "run", &[Value::I32(20_000)])
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), [Value::I32(19_999 * 20_000 / 2)]);
    }
}

/// A `try_table` whose clauses do not match lets the exception go on to
/// the enclosing handler in the calling function.
#[test]
fn unmatched_try_table_passes_to_the_caller() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $a (param i32))
      (tag $b (param i32))
      (func $throw_b (param i32) (throw $b (local.get 0)))
      (func $middle (param i32) (result i32)
        (block $h (result i32)
          (try_table (catch $a $h) (call $throw_b (local.get 0)))
          (i32.const -1)))
      (func (export "run") (param i32) (result i32)
        (block $h (result i32)
          (try_table (catch $b $h) (drop (call $middle (local.get 0))))
          (i32.const -2))))"#;
    let instance = instantiate(&mut store, wat, &imports! {});
    assert_eq!(
        call(&mut store, &instance, "run", &[Value::I32(77)]),
        [Value::I32(77)]
    );
}

/// A module serialized with `Module::serialize` and loaded into a fresh
/// engine with `Module::deserialize` still catches.
#[test]
fn serialized_module_still_catches() {
    let wat = r#"(module
      (tag $t (param i32))
      (func $throw (param i32) (throw $t (local.get 0)))
      (func (export "run") (param i32) (result i32)
        (block $h (result i32)
          (try_table (catch $t $h) (call $throw (local.get 0)))
          (i32.const -1))))"#;
    let bytes = {
        let store = Store::new(engine());
        Module::new(&store, wat).unwrap().serialize().unwrap()
    };
    let mut store = Store::new(engine());
    // SAFETY: the bytes were produced just above by `Module::serialize` of
    // this very build, which is what `deserialize` requires.
    let module = unsafe { Module::deserialize(&store, bytes) }.expect("loads");
    let instance = Instance::new(&mut store, &module, &imports! {}).unwrap();
    assert_eq!(
        call(&mut store, &instance, "run", &[Value::I32(12)]),
        [Value::I32(12)]
    );
}

/// The ELF artifact format (`Cranelift::experimental_artifact`) takes the
/// stock path with `generic-lsda` too: a module with handlers compiles on
/// both (check.sh also finds the artifacts byte-identical).
#[test]
fn elf_artifact_compiles_on_the_stock_path() {
    use wasmer::sys::{Cranelift, EngineBuilder, Features};
    let mut features = Features::default();
    features.exceptions(true);
    let mut cranelift = Cranelift::default();
    cranelift.experimental_artifact(true);
    let engine: wasmer::Engine = EngineBuilder::new(cranelift)
        .set_features(Some(features))
        .engine()
        .into();
    let store = Store::new(engine);
    let wat = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/handlers.wat"
    ))
    .unwrap();
    Module::new(&store, wat).expect("compiles");
}

/// `try_table` shapes: catch-all clauses only (no tag data at all), a throw
/// directly in the scope, a scope without calls, nested scopes in one
/// function, a catch to a loop label, a repeated clause (the first wins).
#[test]
fn try_table_shapes() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $a (param i32))
      (tag $b (param i32))
      (func $throw_a (param i32) (throw $a (local.get 0)))
      (func $throw_b (param i32) (throw $b (local.get 0)))
      (func (export "catch_all_only") (result i32)
        (block $h
          (try_table (catch_all $h) (call $throw_a (i32.const 1)))
          (return (i32.const -1)))
        (i32.const 1))
      (func (export "throw_in_scope") (param i32) (result i32)
        (block $h (result exnref)
          (try_table (catch_all_ref $h) (throw $a (local.get 0)))
          (return (i32.const -1)))
        (drop)
        (i32.const 2))
      (func (export "no_calls") (param i32) (result i32)
        (block $h (result i32)
          (try_table (result i32) (catch $a $h) (i32.add (local.get 0) (i32.const 3))))
        )
      (func (export "nested") (param i32) (result i32)
        (block $outer (result i32)
          (try_table (result i32) (catch $b $outer)
            (block $inner (result i32)
              (try_table (catch $a $inner)
                (if (local.get 0)
                  (then (call $throw_b (i32.const 20)))
                  (else (call $throw_a (i32.const 10)))))
              (i32.const -1))
            (i32.const 100) (i32.add)))
        )
      (func (export "to_loop") (result i32)
        (local $n i32)
        (i32.const 0)
        (loop $again (param i32)
          (drop)
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (if (i32.lt_u (local.get $n) (i32.const 5))
            (then
              (try_table (catch $a $again) (call $throw_a (local.get $n))))))
        (local.get $n))
      (func (export "repeated") (result i32)
        (block $second (result i32)
          (block $first (result i32)
            (try_table (catch $a $first) (catch $a $second) (call $throw_a (i32.const 7)))
            (i32.const -1) (return))
          (i32.const 1000) (i32.add) (return))
        ))"#;
    let instance = instantiate(&mut store, wat, &imports! {});
    let mut run = |name: &str, args: &[Value]| call(&mut store, &instance, name, args);
    assert_eq!(run("catch_all_only", &[]), [Value::I32(1)]);
    assert_eq!(run("throw_in_scope", &[Value::I32(5)]), [Value::I32(2)]);
    assert_eq!(run("no_calls", &[Value::I32(4)]), [Value::I32(7)]);
    assert_eq!(
        run("nested", &[Value::I32(0)]),
        [Value::I32(110)],
        "inner catches $a"
    );
    assert_eq!(
        run("nested", &[Value::I32(1)]),
        [Value::I32(20)],
        "outer catches $b"
    );
    assert_eq!(run("to_loop", &[]), [Value::I32(5)]);
    assert_eq!(
        run("repeated", &[]),
        [Value::I32(1007)],
        "the first clause wins"
    );
}

/// A module whose only clauses are catch-alls: LSDAs without any type entry
/// to relocate, so no tag data at all.
#[test]
fn module_with_only_catch_all_clauses() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $t (param i32))
      (func $throw (param i32) (throw $t (local.get 0)))
      (func (export "run") (param i32) (result i32)
        (block $h (result exnref)
          (try_table (catch_all_ref $h) (call $throw (local.get 0)))
          (return (i32.const -1)))
        (drop)
        (block $h2
          (try_table (catch_all $h2) (call $throw (local.get 0)))
          (return (i32.const -2)))
        (i32.const 3)))"#;
    let instance = instantiate(&mut store, wat, &imports! {});
    assert_eq!(
        call(&mut store, &instance, "run", &[Value::I32(1)]),
        [Value::I32(3)]
    );
}

/// A typed host function (`Function::new_typed_with_env`, no Cranelift
/// trampoline) returns `RuntimeError::exception`: Wasm catches it by tag
/// and with `catch_all_ref`, whose `throw_ref` hands the host the very
/// exception it made.
#[test]
fn typed_host_function_exception_is_caught() {
    let mut store = Store::new(engine());
    let tag = Tag::new(&mut store, [Type::I64]);
    let env = FunctionEnv::new(&mut store, tag.clone());
    let host = Function::new_typed_with_env(
        &mut store,
        &env,
        |mut env: FunctionEnvMut<Tag>, x: i64| -> Result<(), RuntimeError> {
            let tag = env.data().clone();
            let exception = Exception::new(&mut env, &tag, &[Value::I64(x + 1)]);
            Err(RuntimeError::exception(&env, exception))
        },
    );
    let wat = r#"(module
      (import "host" "tag" (tag $t (param i64)))
      (import "host" "raise" (func $raise (param i64)))
      (func (export "catch") (param i64) (result i64)
        (block $h (result i64)
          (try_table (catch $t $h) (call $raise (local.get 0)))
          (i64.const -1)))
      (func (export "rethrow") (param i64)
        (block $h (result exnref)
          (try_table (catch_all_ref $h) (call $raise (local.get 0)))
          (return))
        (throw_ref)))"#;
    let imports = imports! { "host" => { "tag" => tag.clone(), "raise" => host } };
    let instance = instantiate(&mut store, wat, &imports);
    assert_eq!(
        call(&mut store, &instance, "catch", &[Value::I64(41)]),
        [Value::I64(42)]
    );
    let err = instance
        .exports
        .get_function("rethrow")
        .unwrap()
        .call(&mut store, &[Value::I64(6)])
        .expect_err("rethrown to the host");
    let exception = err.to_exception().expect("an exception");
    assert!(exception.tag(&store) == tag, "the host's tag");
    assert_eq!(exception.payload(&mut store), [Value::I64(7)]);
}

/// An exception crosses instances through imported functions both ways:
/// B calls A's exported thrower and catches (A → B), and A calls B's
/// thrower through the table A exports, which B's element segment fills,
/// and catches (B → A). The tag is A's, imported by B.
#[test]
fn exceptions_cross_instances_through_imports_both_ways() {
    let mut store = Store::new(engine());
    let a = instantiate(
        &mut store,
        r#"(module
          (tag $t (export "t") (param i32))
          (table (export "table") 1 funcref)
          (type $thrower (func (param i32)))
          (func (export "throw") (param i32) (throw $t (local.get 0)))
          (func (export "catch_from_table") (param i32) (result i32)
            (block $h (result i32)
              (try_table (catch $t $h)
                (call_indirect (type $thrower) (local.get 0) (i32.const 0)))
              (i32.const -1))))"#,
        &imports! {},
    );
    let export = |name: &str| a.exports.get_extern(name).unwrap().clone();
    let imports = imports! { "a" => {
        "t" => export("t"), "throw" => export("throw"), "table" => export("table"),
    } };
    let b = instantiate(
        &mut store,
        r#"(module
          (import "a" "t" (tag $t (param i32)))
          (import "a" "throw" (func $throw_in_a (param i32)))
          (import "a" "table" (table 1 funcref))
          (elem (i32.const 0) func $throw_in_b)
          (func $throw_in_b (param i32) (throw $t (i32.mul (local.get 0) (i32.const 10))))
          (func (export "catch_from_a") (param i32) (result i32)
            (block $h (result i32)
              (try_table (catch $t $h) (call $throw_in_a (local.get 0)))
              (i32.const -1))))"#,
        &imports,
    );
    assert_eq!(
        call(&mut store, &b, "catch_from_a", &[Value::I32(3)]),
        [Value::I32(3)]
    );
    assert_eq!(
        call(&mut store, &a, "catch_from_table", &[Value::I32(4)]),
        [Value::I32(40)]
    );
}

/// Set in the child process of
/// [`serialized_module_catches_in_another_process`]: the file to load.
const SERIALIZED_MODULE_VAR: &str = "WASMER_EH_TEST_SERIALIZED_MODULE";

/// A module with handlers serialized by this process and deserialized by
/// another (this test binary run again on this test alone): its exception
/// tables work at the addresses the second process loads it at.
#[test]
fn serialized_module_catches_in_another_process() {
    let run_in = |store: &mut Store, module: &Module| {
        let instance = Instance::new(store, module, &imports! {}).unwrap();
        call(store, &instance, "run", &[Value::I32(5)])
    };
    if let Some(path) = std::env::var_os(SERIALIZED_MODULE_VAR) {
        let mut store = Store::new(engine());
        // SAFETY: the parent wrote the file with `Module::serialize` of
        // this very binary, which is what `deserialize_from_file` requires.
        let module = unsafe { Module::deserialize_from_file(&store, &path) }.expect("loads");
        assert_eq!(run_in(&mut store, &module), [Value::I32(15)]);
        println!("child: caught");
        return;
    }
    let wat = r#"(module
      (tag $t (param i32))
      (func $throw (param i32) (throw $t (i32.mul (local.get 0) (i32.const 3))))
      (func (export "run") (param i32) (result i32)
        (block $h (result i32)
          (try_table (catch $t $h) (call $throw (local.get 0)))
          (i32.const -1))))"#;
    let mut store = Store::new(engine());
    let module = Module::new(&store, wat).unwrap();
    assert_eq!(run_in(&mut store, &module), [Value::I32(15)]);
    let dir = std::env::temp_dir().join(format!("wasmer-eh-serialized-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("module.bin");
    module.serialize_to_file(&path).unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "serialized_module_catches_in_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SERIALIZED_MODULE_VAR, &path)
        .output()
        .expect("the test binary runs again");
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("child: caught"),
        "child process: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// 1,000 instances of one module in one store, each throwing its own tag
/// and catching it; then every instance's thrower called from the first
/// instance, whose `catch_all` takes them all.
#[test]
fn a_thousand_instances_of_one_module() {
    let mut store = Store::new(engine());
    let wat = r#"(module
      (tag $t (param i32))
      (type $thrower (func (param i32)))
      (func $throw (export "throw") (param i32) (throw $t (local.get 0)))
      (func (export "run") (param i32) (result i32)
        (block $h (result i32)
          (try_table (catch $t $h) (call $throw (local.get 0)))
          (i32.const -1)))
      (table $slot 1 funcref)
      (func (export "catch_any") (param funcref i32) (result i32)
        (table.set $slot (i32.const 0) (local.get 0))
        (block $h
          (try_table (catch_all $h)
            (call_indirect $slot (type $thrower) (local.get 1) (i32.const 0)))
          (return (i32.const -1)))
        (i32.const 1)))"#;
    let module = Module::new(&store, wat).unwrap();
    let instances: Vec<Instance> = (0..1000)
        .map(|_| Instance::new(&mut store, &module, &imports! {}).unwrap())
        .collect();
    for (i, instance) in instances.iter().enumerate() {
        let i = i as i32;
        assert_eq!(
            call(&mut store, instance, "run", &[Value::I32(i)]),
            [Value::I32(i)]
        );
    }
    let mut caught = 0;
    for instance in &instances {
        let thrower = instance.exports.get_function("throw").unwrap().clone();
        let result = call(
            &mut store,
            &instances[0],
            "catch_any",
            &[Value::FuncRef(Some(thrower)), Value::I32(0)],
        );
        caught += (result == [Value::I32(1)]) as usize;
    }
    assert_eq!(caught, instances.len());
}

/// A host function returns `RuntimeError::exception` after the store was
/// interrupted while it ran: the interrupt wins, so the call traps with
/// `HostInterrupt` and Wasm's `catch_all` does not run (what Wasmer's own
/// `tests/interrupt.rs` expects); the store then runs again, and the next
/// exception from the same host function is caught.
#[test]
fn host_exception_after_an_interrupt() {
    use std::sync::{Mutex, mpsc};
    use wasmer_types::TrapCode;
    type Env = (Tag, Mutex<mpsc::Receiver<()>>);
    let (go, wait) = mpsc::channel::<()>();
    let (interrupter_tx, interrupter_rx) = mpsc::channel();
    // A store stays on its thread: the worker makes it and hands out only
    // its interrupter.
    let worker = std::thread::spawn(move || {
        let mut store = Store::new(engine());
        let tag = Tag::new(&mut store, []);
        let env = FunctionEnv::new(&mut store, (tag.clone(), Mutex::new(wait)));
        let host = Function::new_typed_with_env(
            &mut store,
            &env,
            |mut env: FunctionEnvMut<Env>, wait: i32| -> Result<(), RuntimeError> {
                if wait != 0 {
                    env.data().1.lock().unwrap().recv().unwrap();
                }
                let tag = env.data().0.clone();
                let exception = Exception::new(&mut env, &tag, &[]);
                Err(RuntimeError::exception(&env, exception))
            },
        );
        let wat = r#"(module
          (import "host" "tag" (tag $t))
          (import "host" "raise" (func $raise (param i32)))
          (func (export "run") (param i32) (result i32)
            (block $h
              (try_table (catch_all $h) (call $raise (local.get 0)))
              (return (i32.const -1)))
            (i32.const 1)))"#;
        let imports = imports! { "host" => { "tag" => tag, "raise" => host } };
        let instance = instantiate(&mut store, wat, &imports);
        let run = instance.exports.get_function("run").unwrap().clone();
        interrupter_tx.send(store.interrupter()).unwrap();
        // Values hold store references: only plain data leaves the thread.
        let i32s = |values: Box<[Value]>| values.iter().map(Value::unwrap_i32).collect::<Vec<_>>();
        let interrupted = run.call(&mut store, &[Value::I32(1)]);
        let interrupted = interrupted.map(i32s).map_err(|e| e.to_trap());
        let after = run.call(&mut store, &[Value::I32(0)]);
        let after = after.map(i32s).map_err(|e| e.to_string());
        (interrupted, after)
    });
    let interrupter = interrupter_rx.recv().unwrap();
    // The host function is waiting by then (as in Wasmer's own test).
    std::thread::sleep(std::time::Duration::from_millis(500));
    interrupter.interrupt();
    go.send(()).unwrap();
    let (interrupted, after) = worker.join().unwrap();
    assert_eq!(interrupted, Err(Some(TrapCode::HostInterrupt)));
    assert_eq!(after, Ok(vec![1]));
}
