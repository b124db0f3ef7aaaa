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
//!   and `__cxa_end_catch`, so the CLIF handler calls both too, covered by
//!   the clauses outside the catch's `try` as in C++ (`begin_catch` is
//!   `noexcept` in C++ and needs no cover there; IR has no such notion, so
//!   it gets the same cover as `end_catch`, in the same record);
//! * a cleanup is a C++ guard whose destructor calls nothing (it bumps a
//!   global); its pad ends with `_Unwind_Resume`, as the CLIF pad does when
//!   no catch of the region matched;
//! * the CLIF is natural IR: one handler block per clause, sent to by one
//!   item per tag, which legalization turns into landing-pad form; handler
//!   blocks are `cold`, laid out after the normal path, where both C++
//!   compilers put landing pads.

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

/// The compile-time cases: the corpus, 1,000 calls with 4 catches each
/// (between the corpus's 1 and 16), and functions without any `try_call`.
pub fn compile_cases() -> Vec<Shape> {
    let mut cases = corpus();
    cases.push(Shape::new(
        "1000 calls, 4 catches",
        vec![region(1000, &catches(4))],
    ));
    for calls in [10, 1000] {
        cases.push(Shape::new(
            format!("{calls} plain calls, no try_call"),
            vec![region(calls, &[])],
        ));
    }
    cases
}

/// The typeinfo symbol of `T<n>`.
pub fn typeinfo(n: u32) -> String {
    let name = format!("T{n}");
    format!("_ZTI{}{name}", name.len())
}

/// The exception tag of a clause in the CLIF: `tagN` for `catch (TN&)`.
fn tag(clause: Clause) -> u32 {
    match clause {
        Clause::Catch(n) => n,
        Clause::Cleanup => 998,
        Clause::All => 999,
    }
}

/// Where the handlers of `clauses` (innermost first) leave their region
/// in C++: for a catch, the clauses outside its `try` (after its run of
/// catches), which also cover the calls in its body.
fn outside(clauses: &[Clause], at: usize) -> &[Clause] {
    let end = clauses[at..]
        .iter()
        .position(|c| *c == Clause::Cleanup)
        .map_or(clauses.len(), |offset| at + offset);
    &clauses[end..]
}

/// CLIF text writer with fresh block and value numbers.
struct Clif {
    text: String,
    blocks: u32,
    values: u32,
}

impl Clif {
    fn block(&mut self) -> u32 {
        self.blocks += 1;
        self.blocks
    }

    fn value(&mut self) -> u32 {
        self.values += 1;
        self.values
    }

    /// The items `[ tagN: block(exn0), ... ]` sending `clauses` to their
    /// handler blocks: catches to `handlers[index]`, cleanups to `resume`;
    /// a clause already listed is not listed again.
    fn items(clauses: &[Clause], first: usize, handlers: &[u32], resume: u32) -> String {
        let mut seen = Vec::new();
        let mut items = Vec::new();
        for (offset, clause) in clauses.iter().enumerate() {
            if seen.contains(clause) {
                continue;
            }
            seen.push(*clause);
            let target = match clause {
                Clause::Cleanup => resume,
                _ => handlers[first + offset],
            };
            items.push(format!("tag{}: block{target}(exn0)", tag(*clause)));
        }
        format!("[ {} ]", items.join(", "))
    }

    /// A call of `callee` (`fnN`) with `args`, covered by `clauses` (a
    /// `try_call`) or by nothing (a plain call); returns its result value,
    /// if `returns`.
    fn call(
        &mut self,
        callee: &str,
        sig: &str,
        args: &str,
        returns: bool,
        covered: Option<String>,
    ) -> Option<u32> {
        match covered {
            None => {
                let result = returns.then(|| self.value());
                let assign = result.map(|v| format!("v{v} = ")).unwrap_or_default();
                writeln!(self.text, "    {assign}call {callee}({args})").unwrap();
                result
            }
            Some(items) => {
                let next = self.block();
                let ret = if returns { "ret0" } else { "" };
                writeln!(
                    self.text,
                    "    try_call {callee}({args}), {sig}, block{next}({ret}), {items}"
                )
                .unwrap();
                let result = returns.then(|| self.value());
                let param = result.map(|v| format!("v{v}: i64")).unwrap_or_default();
                writeln!(self.text, "\nblock{next}({param}):").unwrap();
                result
            }
        }
    }
}

/// The shape as a CLIF file for `clif-eh`: function `%shape` in natural
/// IR, each handler its own block, which legalization puts into landing-pad
/// form as it would a front end's output.
pub fn clif(shape: &Shape) -> String {
    // Compiled as embedders compile for speed: optimizing, the verifier off
    // (legalization, like Cranelift's passes, verifies only with it on).
    let mut header = String::from(
        "set unwind_info=true\nset opt_level=speed\nset enable_verifier=false\ntarget x86_64\n\n",
    );
    let mut tags = std::collections::BTreeMap::new();
    for clause in shape.regions.iter().flat_map(|r| &r.clauses) {
        let meaning = match clause {
            Clause::Catch(n) => format!("catch {}", typeinfo(*n)),
            Clause::All => "catch-all".into(),
            Clause::Cleanup => "cleanup".into(),
        };
        tags.insert(tag(*clause), meaning);
    }
    for (tag, meaning) in &tags {
        writeln!(header, "; eh-tag: tag{tag} = {meaning}").unwrap();
    }
    let mut clif = Clif {
        text: String::new(),
        blocks: 1,
        values: 0,
    };
    clif.text.push_str(
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
    // Region i starts at block `start`, with x in its parameter.
    let mut start = 1;
    for region in &shape.regions {
        let clauses = &region.clauses;
        let end = clif.block();
        let x_in = clif.value();
        writeln!(clif.text, "\nblock{start}(v{x_in}: i64):").unwrap();
        let handlers: Vec<u32> = clauses.iter().map(|_| clif.block()).collect();
        let resume = clif.block();
        let covered = |at: usize, list: &[Clause]| {
            (!list.is_empty()).then(|| Clif::items(list, at, &handlers, resume))
        };
        let mut x = x_in;
        for _ in 0..region.calls {
            let items = covered(0, clauses);
            x = clif
                .call("fn0", "sig0", &format!("v{x}"), true, items)
                .unwrap();
        }
        writeln!(clif.text, "    jump block{end}(v{x})").unwrap();
        // Each catch's body, in C++ inside the clauses outside its `try`.
        for (at, clause) in clauses.iter().enumerate() {
            if *clause == Clause::Cleanup {
                continue;
            }
            let exn = clif.value();
            writeln!(clif.text, "\nblock{}(v{exn}: i64) cold:", handlers[at]).unwrap();
            let outer = outside(clauses, at);
            let first = clauses.len() - outer.len();
            let items = covered(first, outer);
            clif.call("fn1", "sig1", &format!("v{exn}"), true, items.clone());
            clif.call("fn2", "sig2", "", false, items);
            writeln!(clif.text, "    jump block{end}(v{x_in})").unwrap();
        }
        if clauses.contains(&Clause::Cleanup) {
            let exn = clif.value();
            writeln!(
                clif.text,
                "\nblock{resume}(v{exn}: i64) cold:\n    call fn3(v{exn})\n    trap user1"
            )
            .unwrap();
        }
        start = end;
    }
    let x = clif.value();
    writeln!(clif.text, "\nblock{start}(v{x}: i64):\n    return v{x}\n}}").unwrap();
    header + &clif.text
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
