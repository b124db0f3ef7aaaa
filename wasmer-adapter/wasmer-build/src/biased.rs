//! A generator biased to exceptions, for the differential fuzzer: nested
//! `try_table`s with every kind of clause (`catch`, `catch_ref`,
//! `catch_all`, `catch_all_ref`), tags with multi-value payloads, `throw`,
//! `throw_ref` of a caught exception, and calls through tables and across
//! instances in both directions.
//!
//! Seed `n` is two modules. The helper, instantiated first, defines the
//! tags and exports a thrower per tag, a table, and `via`, which calls
//! through that table. The main module imports all of it, fills the
//! helper's table with its own functions, and exports `run0`, `run1`, ...:
//! an exception thrown in the helper is caught in main, and one thrown in
//! main passes through the helper's `via` frame to a handler in main
//! further up. A function only calls later ones and nothing loops, so
//! every run ends; handlers fold payloads into the result and into the
//! exported global `g`, so a wrong payload or a wrong handler shows.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::fmt::Write;

/// The two modules of one seed, as wasm bytes.
pub struct Modules {
    /// Instantiated first, without imports; its exports are main's
    /// `"helper"` imports.
    pub helper: Vec<u8>,
    pub main: Vec<u8>,
}

#[derive(Clone, Copy)]
enum ValType {
    I32,
    I64,
    F64,
    ExnRef,
}

impl ValType {
    fn name(self) -> &'static str {
        match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F64 => "f64",
            ValType::ExnRef => "exnref",
        }
    }
}

use ValType::{F64, I32, I64};

/// The payload shapes a tag is drawn from.
const PAYLOADS: [&[ValType]; 6] = [
    &[],
    &[I32],
    &[I32, I64],
    &[F64, I32],
    &[I64, I64, I32],
    &[F64],
];
/// Nesting of `try_table`s (and handlers) in one function.
const MAX_DEPTH: u32 = 3;

/// The modules of seed `seed`.
pub fn generate(seed: u64) -> Result<Modules, String> {
    let mut g = Generator {
        rng: StdRng::seed_from_u64(seed),
        tags: Vec::new(),
        functions: 0,
        labels: 0,
    };
    let tag_count = g.rng.random_range(1..=4);
    g.tags = (0..tag_count)
        .map(|_| PAYLOADS[g.rng.random_range(0..PAYLOADS.len())])
        .collect();
    g.functions = g.rng.random_range(2..=6);
    let helper = g.helper();
    let main = g.main();
    // Parsed and validated here: a module Wasmer rejected on both builds
    // alike would compare equal and hide a generator bug.
    let compile = |which: &str, text: &str| {
        use wasmer::wasmparser::{Validator, WasmFeatures};
        let fail = |e: &dyn std::fmt::Display| {
            format!("biased generator: seed {seed}: {which} module: {e}\n{text}")
        };
        let wasm = wasmer::wat2wasm(text.as_bytes())
            .map_err(|e| fail(&e))?
            .into_owned();
        Validator::new_with_features(WasmFeatures::default() | WasmFeatures::EXCEPTIONS)
            .validate_all(&wasm)
            .map_err(|e| fail(&e))?;
        Ok::<_, String>(wasm)
    };
    Ok(Modules {
        helper: compile("helper", &helper)?,
        main: compile("main", &main)?,
    })
}

struct Generator {
    rng: StdRng,
    /// Each tag's payload.
    tags: Vec<&'static [ValType]>,
    /// Main's functions `$f0`.., each `(param i32) (result i32)`.
    functions: usize,
    /// Labels made so far, for unique names.
    labels: usize,
}

impl Generator {
    fn helper(&mut self) -> String {
        let mut m = String::from("(module (type $sig (func (param i32) (result i32)))\n");
        for (k, payload) in self.tags.iter().enumerate() {
            let _ = writeln!(m, "(tag $t{k} (export \"t{k}\") {})", params(payload));
        }
        let _ = writeln!(m, "(table (export \"table\") {} funcref)", self.functions);
        for (k, payload) in self.tags.iter().enumerate() {
            let _ = writeln!(
                m,
                "(func (export \"throw{k}\") (param i32) {} throw $t{k})",
                payload_from(payload, "local.get 0")
            );
        }
        m.push_str(
            "(func (export \"via\") (param i32 i32) (result i32) \
             local.get 1 local.get 0 call_indirect (type $sig)))\n",
        );
        m
    }

    fn main(&mut self) -> String {
        let n = self.functions;
        let mut m = String::from("(module (type $sig (func (param i32) (result i32)))\n");
        for (k, payload) in self.tags.iter().enumerate() {
            let _ = writeln!(
                m,
                "(import \"helper\" \"t{k}\" (tag $t{k} {}))",
                params(payload)
            );
        }
        for k in 0..self.tags.len() {
            let _ = writeln!(
                m,
                "(import \"helper\" \"throw{k}\" (func $throw{k} (param i32)))"
            );
        }
        m.push_str("(import \"helper\" \"via\" (func $via (param i32 i32) (result i32)))\n");
        let _ = writeln!(
            m,
            "(import \"helper\" \"table\" (table $helper {n} funcref))"
        );
        for k in 0..self.tags.len() {
            let _ = writeln!(m, "(export \"t{k}\" (tag $t{k}))");
        }
        m.push_str("(global $g (export \"g\") (mut i32) (i32.const 0))\n");
        let _ = writeln!(m, "(table $own {n} funcref)");
        let all: String = (0..n).map(|i| format!("$f{i} ")).collect();
        let _ = writeln!(m, "(elem (table $helper) (i32.const 0) func {all})");
        let _ = writeln!(m, "(elem (table $own) (i32.const 0) func {all})");
        for i in 0..n {
            let body = self.statements(i, 0);
            let _ = writeln!(
                m,
                "(func $f{i} (type $sig) (local $acc i32) (local $exn exnref)\n\
                 local.get 0 local.set $acc\n{body}local.get $acc)"
            );
        }
        for r in 0..self.rng.random_range(1..=3) {
            let f = self.rng.random_range(0..n);
            let arg: i32 = self.rng.random_range(-4..=64);
            let _ = writeln!(
                m,
                "(func (export \"run{r}\") (result i32) i32.const {arg} call $f{f})"
            );
        }
        m.push(')');
        m
    }

    /// A few stack-neutral statements of function `f` at nesting `depth`.
    fn statements(&mut self, f: usize, depth: u32) -> String {
        let count = self.rng.random_range(1..=4);
        (0..count).map(|_| self.statement(f, depth)).collect()
    }

    fn statement(&mut self, f: usize, depth: u32) -> String {
        let later = (f + 1 < self.functions).then(|| self.rng.random_range(f + 1..self.functions));
        let tag = self.rng.random_range(0..self.tags.len());
        let when = self.condition();
        match self.rng.random_range(0..10) {
            0 => {
                let c: i32 = self.rng.random();
                format!("local.get $acc i32.const {c} i32.add local.set $acc\n")
            }
            1 => "global.get $g i32.const 7 i32.mul local.get $acc i32.add global.set $g\n".into(),
            2 if later.is_some() => {
                let j = later.unwrap_or_default();
                format!("local.get $acc call $f{j} {}", fold(I32))
            }
            3 if later.is_some() => {
                let j = later.unwrap_or_default();
                format!(
                    "local.get $acc i32.const {j} call_indirect $own (type $sig) {}",
                    fold(I32)
                )
            }
            4 if later.is_some() => {
                let j = later.unwrap_or_default();
                format!("i32.const {j} local.get $acc call $via {}", fold(I32))
            }
            5 => format!(
                "{when} if {} throw $t{tag} end\n",
                payload_from(self.tags[tag], "local.get $acc")
            ),
            6 => format!("{when} if local.get $acc call $throw{tag} end\n"),
            _ if depth < MAX_DEPTH => self.try_table(f, depth),
            _ => format!(
                "local.get $acc i32.const {} i32.xor local.set $acc\n",
                depth + 1
            ),
        }
    }

    /// Pushes whether `$acc` has some low bits clear: a throw happens on
    /// some arguments only (or always).
    fn condition(&mut self) -> String {
        let mask = [0, 1, 3, 7][self.rng.random_range(0..4)];
        format!("local.get $acc i32.const {mask} i32.and i32.eqz")
    }

    /// A `try_table` around statements, with 1 to 4 clauses, each to a
    /// handler block of its own whose code folds what it receives into
    /// `$acc` and `$g`, may rethrow a caught `exnref`, and may hold more
    /// statements (so a throw from a handler goes to an outer scope).
    fn try_table(&mut self, f: usize, depth: u32) -> String {
        self.labels += 1;
        let id = self.labels;
        let clauses: Vec<Clause> = (0..self.rng.random_range(1..=4))
            .map(|_| {
                let tag = self.rng.random_range(0..self.tags.len());
                match self.rng.random_range(0..4) {
                    0 => Clause::Catch(tag),
                    1 => Clause::CatchRef(tag),
                    2 => Clause::CatchAll,
                    _ => Clause::CatchAllRef,
                }
            })
            .collect();
        let mut code = format!("block $done{id}\n");
        for (c, clause) in clauses.iter().enumerate().rev() {
            let results = self.received(clause);
            let types: Vec<&str> = results.iter().map(|t| t.name()).collect();
            let result = if types.is_empty() {
                String::new()
            } else {
                format!("(result {})", types.join(" "))
            };
            let _ = writeln!(code, "block $h{id}_{c} {result}");
        }
        code.push_str("try_table");
        for (c, clause) in clauses.iter().enumerate() {
            let _ = match clause {
                Clause::Catch(t) => write!(code, " (catch $t{t} $h{id}_{c})"),
                Clause::CatchRef(t) => write!(code, " (catch_ref $t{t} $h{id}_{c})"),
                Clause::CatchAll => write!(code, " (catch_all $h{id}_{c})"),
                Clause::CatchAllRef => write!(code, " (catch_all_ref $h{id}_{c})"),
            };
        }
        code.push('\n');
        code.push_str(&self.statements(f, depth + 1));
        let _ = writeln!(code, "end br $done{id}");
        for (c, clause) in clauses.iter().enumerate() {
            let _ = writeln!(code, "end ;; $h{id}_{c}");
            for ty in self.received(clause).iter().rev() {
                code.push_str(&fold(*ty));
            }
            let _ = writeln!(
                code,
                "local.get $acc i32.const {} i32.xor local.set $acc \
                 global.get $g i32.const 31 i32.mul local.get $acc i32.add global.set $g",
                (id << 8) | c
            );
            if matches!(clause, Clause::CatchRef(_) | Clause::CatchAllRef) {
                let when = self.condition();
                let _ = writeln!(code, "{when} if local.get $exn throw_ref end");
            }
            if depth + 1 < MAX_DEPTH && self.rng.random_bool(0.3) {
                code.push_str(&self.statements(f, depth + 1));
            }
            let _ = writeln!(code, "br $done{id}");
        }
        let _ = writeln!(code, "end ;; $done{id}");
        code
    }

    /// What a clause's handler block receives.
    fn received(&self, clause: &Clause) -> Vec<ValType> {
        match clause {
            Clause::Catch(t) => self.tags[*t].to_vec(),
            Clause::CatchRef(t) => {
                let mut v = self.tags[*t].to_vec();
                v.push(ValType::ExnRef);
                v
            }
            Clause::CatchAll => Vec::new(),
            Clause::CatchAllRef => vec![ValType::ExnRef],
        }
    }
}

enum Clause {
    Catch(usize),
    CatchRef(usize),
    CatchAll,
    CatchAllRef,
}

fn params(payload: &[ValType]) -> String {
    if payload.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = payload.iter().map(|t| t.name()).collect();
    format!("(param {})", names.join(" "))
}

/// A payload made from one i32 (`get` pushes it), each value distinct.
fn payload_from(payload: &[ValType], get: &str) -> String {
    let mut code = String::new();
    for (j, ty) in payload.iter().enumerate() {
        let _ = match ty {
            ValType::I32 => write!(code, "{get} i32.const {j} i32.add "),
            ValType::I64 => write!(code, "{get} i64.extend_i32_s i64.const {} i64.mul ", j + 3),
            ValType::F64 => write!(code, "{get} f64.convert_i32_s f64.const {j}.5 f64.add "),
            ValType::ExnRef => unreachable!("payloads hold numbers only"),
        };
    }
    code
}

/// Pops a value of `ty` off the stack into `$acc` (an exnref into `$exn`).
fn fold(ty: ValType) -> String {
    let to_i32 = match ty {
        ValType::I32 => "",
        ValType::I64 => "i32.wrap_i64",
        ValType::F64 => "i32.trunc_sat_f64_s",
        ValType::ExnRef => return "local.set $exn\n".into(),
    };
    format!("{to_i32} local.get $acc i32.const 31 i32.mul i32.add local.set $acc\n")
}

/// Whether an outcome line's payload text (`i32:0x5,i64:0xf,`) is one
/// [`payload_from`] makes: every throw of this generator derives all its
/// fields from one `i32`, so a field the host reads wrong breaks the
/// relation (the fields stock's misreading zeroes are checked this way).
pub fn payload_is_consistent(payload: &str) -> bool {
    let Some(fields) = payload_fields(payload) else {
        return false;
    };
    // The i32 every field was made from, from the first field.
    let base = match fields.first() {
        None => return true,
        Some(&("i32", bits)) => bits as u32 as i32,
        Some(&("i64", bits)) => (bits as u64 as i64 / 3) as i32,
        Some(&("f64", bits)) => (f64::from_bits(bits as u64) - 0.5) as i32,
        Some(_) => return false,
    };
    let expected = payload_from_values(&fields.iter().map(|f| f.0).collect::<Vec<_>>(), base);
    expected.as_deref() == Some(payload)
}

/// The outcome text of the payload [`payload_from`] makes from `base`.
fn payload_from_values(types: &[&str], base: i32) -> Option<String> {
    let mut text = String::new();
    for (j, ty) in types.iter().enumerate() {
        let j32 = j as i32;
        let _ = match *ty {
            "i32" => write!(text, "i32:{:#x},", base.wrapping_add(j32)),
            "i64" => write!(
                text,
                "i64:{:#x},",
                i64::from(base).wrapping_mul(i64::from(j32 + 3))
            ),
            "f64" => write!(
                text,
                "f64:{:#x},",
                (f64::from(base) + f64::from(j32) + 0.5).to_bits()
            ),
            _ => return None,
        };
    }
    Some(text)
}

/// The fields of a payload text (`diff::values_text`'s `i32:0x3,f64:0x...,`)
/// as type and bits, or `None` where a field has no bits (references).
fn payload_fields(payload: &str) -> Option<Vec<(&str, u128)>> {
    payload
        .split(',')
        .filter(|f| !f.is_empty())
        .map(|field| {
            let (ty, value) = field.split_once(':')?;
            let bits = u128::from_str_radix(value.strip_prefix("0x")?, 16).ok()?;
            Some((ty, bits))
        })
        .collect()
}
