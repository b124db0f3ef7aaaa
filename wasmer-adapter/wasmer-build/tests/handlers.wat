;; A module with exception handlers of every kind, for comparing artifacts
;; (check.sh): try_table with catch, catch_ref, catch_all, catch_all_ref,
;; throw, throw_ref, calls direct, indirect and to an imported (dynamic
;; host) function, which gets a trampoline.
(module
  (import "host" "raise" (func $raise (param i32)))
  (tag $a (param i32))
  (tag $b (param i64 f64))
  (table 1 funcref)
  (elem (i32.const 0) func $throw_a)
  (type $thrower (func (param i32)))
  (func $throw_a (param i32) (throw $a (local.get 0)))
  (func (export "catch") (param i32) (result i32)
    (block $h (result i32)
      (try_table (catch $a $h)
        (call $throw_a (local.get 0))
        (call_indirect (type $thrower) (local.get 0) (i32.const 0))
        (call $raise (local.get 0)))
      (i32.const -1)))
  (func (export "nested") (param i32) (result i32)
    (block $all
      (block $b (result i64 f64)
        (try_table (catch $b $b) (catch_all $all)
          (block $ref (result exnref)
            (try_table (catch_all_ref $ref) (call $raise (local.get 0)))
            (return (i32.const 0)))
          (throw_ref))
        (return (i32.const 1)))
      (drop)
      (drop)
      (return (i32.const 2)))
    (i32.const 3)))
