//! The exception-handling shapes of the size corpus, each written twice
//! from one description: as CLIF for `clif-eh` and as the equivalent C++
//! for g++ and clang++.
//!
//! A shape is a run of regions; a region is `calls` calls of an external
//! `long g(long)` under an ordered clause list, innermost first (none:
//! plain calls). Both sides chain the calls (`x = g(x)`), so neither
//! compiler can drop or reorder them, and both leave the region when a
//! catch clause matches, as a C++ `try` block does. The bodies are as close
//! as the languages allow:
//!
//! * a catch body calls nothing itself; C++ still calls `__cxa_begin_catch`
//!   and `__cxa_end_catch`, so the CLIF pad calls both too;
//! * a cleanup is a C++ guard whose destructor calls nothing (it bumps a
//!   global); its pad ends with `_Unwind_Resume`, as the CLIF pad does when
//!   no catch of the region matched;
//! * handler blocks are `cold` in the CLIF, laid out after the normal path,
//!   where both C++ compilers put landing pads.

use std::fmt::Write;

/// One clause of a region's handler, innermost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clause {
    /// `catch (T<n>&)`.
    Catch(u32),
    /// `catch (...)`.
    All,
    /// A guard object's destructor.
    Cleanup,
}

/// `calls` chained calls under `clauses`.
#[derive(Clone, Debug)]
pub struct Region {
    pub calls: usize,
    pub clauses: Vec<Clause>,
}

/// A named function shape.
#[derive(Clone, Debug)]
pub struct Shape {
    pub name: String,
    pub regions: Vec<Region>,
}

impl Shape {
    fn new(name: impl Into<String>, regions: Vec<Region>) -> Self {
        Self {
            name: name.into(),
            regions,
        }
    }

    /// Calls in the function.
    pub fn calls(&self) -> usize {
        self.regions.iter().map(|r| r.calls).sum()
    }
}

fn region(calls: usize, clauses: &[Clause]) -> Region {
    Region {
        calls,
        clauses: clauses.to_vec(),
    }
}

fn catches(n: u32) -> Vec<Clause> {
    (1..=n).map(Clause::Catch).collect()
}

/// The corpus: 1 to 1,000 call sites, 1 to 64 clauses, nesting, cleanups,
/// catch-all, plain calls mixed in.
pub fn corpus() -> Vec<Shape> {
    use Clause::*;
    let mut shapes = Vec::new();
    for calls in [1, 10, 100, 1000] {
        shapes.push(Shape::new(
            format!("{calls} call(s), 1 catch"),
            vec![region(calls, &[Catch(1)])],
        ));
    }
    for k in [4, 16, 64] {
        shapes.push(Shape::new(
            format!("1 call, {k} catches"),
            vec![region(1, &catches(k))],
        ));
    }
    shapes.push(Shape::new(
        "10 calls, 64 catches",
        vec![region(10, &catches(64))],
    ));
    shapes.push(Shape::new(
        "100 calls, 4 catches",
        vec![region(100, &catches(4))],
    ));
    shapes.push(Shape::new(
        "1000 calls, 16 catches",
        vec![region(1000, &catches(16))],
    ));
    shapes.push(Shape::new("10 calls, catch-all", vec![region(10, &[All])]));
    shapes.push(Shape::new(
        "10 calls, 2 catches + catch-all",
        vec![region(10, &[Catch(1), Catch(2), All])],
    ));
    shapes.push(Shape::new(
        "10 calls, cleanup",
        vec![region(10, &[Cleanup])],
    ));
    shapes.push(Shape::new(
        "10 calls, cleanup then catch",
        vec![region(10, &[Cleanup, Catch(1)])],
    ));
    shapes.push(Shape::new(
        "10 calls, cleanup then catch-all",
        vec![region(10, &[Cleanup, All])],
    ));
    shapes.push(Shape::new(
        "nested try (outer, inner, outer)",
        vec![
            region(5, &[Catch(2)]),
            region(5, &[Catch(1), Catch(2)]),
            region(5, &[Catch(2)]),
        ],
    ));
    shapes.push(Shape::new(
        "8 levels: cleanup/catch interleaved",
        vec![region(
            4,
            &[
                Cleanup,
                Catch(1),
                Cleanup,
                Catch(2),
                Cleanup,
                Catch(3),
                Cleanup,
                Catch(4),
            ],
        )],
    ));
    shapes.push(Shape::new(
        "plain calls mixed in (4 x 5 + 5)",
        (0..4)
            .flat_map(|_| [region(5, &[]), region(5, &[Catch(1)])])
            .collect(),
    ));
    shapes.push(Shape::new(
        "20 tries alternating 2 types",
        (0..20).map(|i| region(1, &[Catch(1 + i % 2)])).collect(),
    ));
    shapes.push(Shape::new(
        "50 tries, 50 distinct types",
        (1..=50).map(|i| region(2, &[Catch(i)])).collect(),
    ));
    shapes.push(Shape::new(
        "500 calls: 50 plain/handled pairs",
        (0..50)
            .flat_map(|i| [region(5, &[]), region(5, &[Catch(1 + i % 4), Cleanup])])
            .collect(),
    ));
    shapes
}

/// The typeinfo symbol of `T<n>`.
pub fn typeinfo(n: u32) -> String {
    let name = format!("T{n}");
    format!("_ZTI{}{name}", name.len())
}

/// The shape as a CLIF file for `clif-eh`: function `%shape`, one tag per
/// region holding its clause set.
pub fn clif(shape: &Shape) -> String {
    // Compiled as embedders compile for speed: optimizing, the verifier off
    // (legalization, like Cranelift's passes, verifies only with it on).
    let mut text = String::from(
        "set unwind_info=true\nset opt_level=speed\nset enable_verifier=false\ntarget x86_64\n\n",
    );
    for (i, region) in shape.regions.iter().enumerate() {
        if region.clauses.is_empty() {
            continue;
        }
        let clauses: Vec<String> = region
            .clauses
            .iter()
            .map(|c| match c {
                Clause::Catch(n) => format!("catch {}", typeinfo(*n)),
                Clause::All => "catch-all".into(),
                Clause::Cleanup => "cleanup".into(),
            })
            .collect();
        writeln!(text, "; eh-tag: tag{} = {}", i + 1, clauses.join(", ")).unwrap();
    }
    text.push_str(
        "\nfunction %shape(i64) -> i64 system_v {\n    \
         sig0 = (i64) -> i64 system_v\n    \
         sig1 = (i64) -> i64 system_v\n    \
         sig2 = () system_v\n    \
         sig3 = (i64) system_v\n    \
         fn0 = %g sig0\n    \
         fn1 = %__cxa_begin_catch sig1\n    \
         fn2 = %__cxa_end_catch sig2\n    \
         fn3 = %_Unwind_Resume sig3\n\n\
         block0(v0: i64):\n    jump block1(v0)\n",
    );
    let mut next_block = 2;
    let mut next_value = 1;
    let mut fresh_block = || {
        next_block += 1;
        next_block - 1
    };
    let mut value = || {
        next_value += 1;
        next_value - 1
    };
    // Region i starts at block `start`, with x in its parameter.
    let mut start = 1;
    for (i, region) in shape.regions.iter().enumerate() {
        let end = fresh_block();
        let x_in = value();
        writeln!(text, "\nblock{start}(v{x_in}: i64):").unwrap();
        let mut x = x_in;
        // One pad for the region's calls, as a C++ `try` block has.
        let pad = fresh_block();
        for _ in 0..region.calls {
            if region.clauses.is_empty() {
                let y = value();
                writeln!(text, "    v{y} = call fn0(v{x})").unwrap();
                x = y;
            } else {
                let ok = fresh_block();
                writeln!(
                    text,
                    "    try_call fn0(v{x}), sig0, block{ok}(ret0), [ tag{}: block{pad}(exn0, exn1) ]",
                    i + 1
                )
                .unwrap();
                let y = value();
                writeln!(text, "\nblock{ok}(v{y}: i64):").unwrap();
                x = y;
            }
        }
        writeln!(text, "    jump block{end}(v{x})").unwrap();
        let has_catch = region.clauses.iter().any(|c| *c != Clause::Cleanup);
        let has_cleanup = region.clauses.contains(&Clause::Cleanup);
        if !region.clauses.is_empty() {
            let (exn, selector) = (value(), value());
            writeln!(text, "\nblock{pad}(v{exn}: i64, v{selector}: i64) cold:").unwrap();
            let catch = fresh_block();
            if has_cleanup {
                let resume = fresh_block();
                if has_catch {
                    writeln!(text, "    brif v{selector}, block{catch}, block{resume}").unwrap();
                } else {
                    writeln!(text, "    jump block{resume}").unwrap();
                }
                writeln!(
                    text,
                    "\nblock{resume} cold:\n    call fn3(v{exn})\n    trap user1"
                )
                .unwrap();
            } else {
                writeln!(text, "    jump block{catch}").unwrap();
            }
            if has_catch {
                let ignored = value();
                writeln!(
                    text,
                    "\nblock{catch} cold:\n    v{ignored} = call fn1(v{exn})\n    call fn2()\n    jump block{end}(v{x_in})"
                )
                .unwrap();
            }
        }
        start = end;
    }
    let x = value();
    writeln!(text, "\nblock{start}(v{x}: i64):\n    return v{x}\n}}").unwrap();
    text
}

/// The shape as C++: `long shape(long)` with one `try` block (and guard
/// scopes) per region.
pub fn cxx(shape: &Shape) -> String {
    let mut types = std::collections::BTreeSet::new();
    for clause in shape.regions.iter().flat_map(|r| &r.clauses) {
        if let Clause::Catch(n) = clause {
            types.insert(*n);
        }
    }
    let mut text = String::new();
    for n in &types {
        writeln!(text, "struct T{n} {{}};").unwrap();
    }
    text.push_str(
        "long g(long);\nextern int guards;\n\
         struct Guard { ~Guard() { ++guards; } };\n\
         long shape(long x) {\n",
    );
    for region in &shape.regions {
        let mut body = "x = g(x); ".repeat(region.calls);
        let mut clauses = region.clauses.iter().peekable();
        let mut guard = 0;
        while let Some(clause) = clauses.next() {
            match clause {
                Clause::Cleanup => {
                    guard += 1;
                    body = format!("{{ Guard guard{guard}; {body}}} ");
                }
                _ => {
                    let mut handlers = vec![*clause];
                    while let Some(c) = clauses.next_if(|c| **c != Clause::Cleanup) {
                        handlers.push(*c);
                    }
                    let handlers: String = handlers
                        .iter()
                        .map(|c| match c {
                            Clause::Catch(n) => format!("catch (T{n}&) {{}} "),
                            _ => "catch (...) {} ".to_string(),
                        })
                        .collect();
                    body = format!("try {{ {body}}} {handlers}");
                }
            }
        }
        writeln!(text, "  {body}").unwrap();
    }
    text.push_str("  return x;\n}\n");
    text
}
