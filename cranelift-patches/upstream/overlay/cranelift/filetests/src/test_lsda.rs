//! Test command for the LSDA of each function (`isa::unwind::lsda`).
//!
//! The `lsda` test command compiles each function and prints its
//! disassembly, then the LSDA `Lsda::new` lays out for it and
//! `Lsda::write` writes: the bytes, then the call-site records, action
//! chains and type table read back from them, so the offsets can be
//! checked against the code. What a tag means is given on the test line,
//! as an embedder would give it:
//!
//! ```text
//! test lsda precise-output tag1=_ZTIi tag2=catch-all default=cleanup
//! ```
//!
//! `tagN=SYMBOL` catches the type whose type-table entry is `SYMBOL`,
//! `catch-all` catches everything (a null entry), `cleanup` runs the pad
//! and resumes unwinding; `default` is the `default:` handler. Each call's
//! handlers become one chain in table order, a cleanup last. The output is
//! always precise (`precise-output` is required, as a reminder).

use crate::subtest::{Context, SubTest, check_precise_output};
use anyhow::{Context as _, Result, anyhow, bail};
use cranelift_codegen::ir::{self, ExceptionTag};
use cranelift_codegen::isa::unwind::lsda::{
    self, Action, EncodeError, Lsda, LsdaEncoding, TypeEntry,
};
use cranelift_reader::{TestCommand, TestOption};
use gimli::write::{Address, EndianVec};
use gimli::{EndianSlice, LittleEndian, Reader, RunTimeEndian, leb128};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the personality does for a handler's tag.
#[derive(Clone, Debug)]
enum Handler {
    Catch(TypeEntry),
    Cleanup,
}

struct TestLsda {
    /// By tag; `None` is the `default:` handler.
    handlers: BTreeMap<Option<ExceptionTag>, Handler>,
}

pub fn subtest(parsed: &TestCommand) -> Result<Box<dyn SubTest>> {
    assert_eq!(parsed.command, "lsda");
    let mut precise_output = false;
    let mut handlers = BTreeMap::new();
    for option in &parsed.options {
        let (key, value) = match option {
            TestOption::Flag("precise-output") => {
                precise_output = true;
                continue;
            }
            TestOption::Flag(_) => bail!("unknown option {option} on {parsed}"),
            TestOption::Value(key, value) => (*key, *value),
        };
        let tag = match key {
            "default" => None,
            _ => {
                let index = key
                    .strip_prefix("tag")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| format!("tag{n}") == key)
                    .ok_or_else(|| anyhow!("unknown option {key} on {parsed}"))?;
                Some(ExceptionTag::from_u32(index))
            }
        };
        let handler = match value {
            "" => bail!("{key} needs a value on {parsed}: a symbol, catch-all or cleanup"),
            "cleanup" => Handler::Cleanup,
            "catch-all" => Handler::Catch(TypeEntry::CatchAll),
            symbol => Handler::Catch(TypeEntry::symbol(symbol)),
        };
        if handlers.insert(tag, handler).is_some() {
            bail!("{key} given twice on {parsed}");
        }
    }
    if !precise_output {
        bail!("{parsed}: the output is precise; write `test lsda precise-output ...`");
    }
    Ok(Box::new(TestLsda { handlers }))
}

/// Why a call's chain could not be made: the encoder's refusal, which is
/// the test's output, or a handler the test line does not give, which
/// fails the test.
enum Failure {
    Encode(EncodeError),
    NoHandler(String),
}

impl From<EncodeError> for Failure {
    fn from(e: EncodeError) -> Self {
        Failure::Encode(e)
    }
}

impl SubTest for TestLsda {
    fn name(&self) -> &'static str {
        "lsda"
    }

    fn is_mutating(&self) -> bool {
        false
    }

    fn needs_isa(&self) -> bool {
        true
    }

    fn run(&self, func: Cow<ir::Function>, context: &Context) -> Result<()> {
        let isa = context.isa.expect("lsda needs an ISA");
        let params = func.params.clone();
        let mut ctx = cranelift_codegen::Context::for_function(func.into_owned());
        ctx.set_disasm(true);
        let compiled = ctx
            .compile(isa, &mut Default::default())
            .map_err(|e| crate::pretty_anyhow_error(&e.func, e.inner))?;
        let code_len = u32::try_from(compiled.buffer.data().len())?;
        let cs = isa.to_capstone().map_err(|e| anyhow!("{e}"))?;
        let disassembly = compiled.disassemble(Some(&params), &cs)?;

        let mut types = Vec::new();
        let sites = lsda::call_sites(&ctx, |tags| self.actions(tags, &mut types));
        let laid_out = match sites {
            Ok(sites) => Lsda::new(
                &sites,
                code_len,
                &types,
                LsdaEncoding::object(),
                isa.pointer_bytes(),
            ),
            Err(Failure::Encode(e)) => Err(e),
            Err(Failure::NoHandler(e)) => bail!(e),
        };
        let text = match laid_out {
            Ok(Some(lsda)) => {
                let endian = match isa.endianness() {
                    ir::Endianness::Little => RunTimeEndian::Little,
                    ir::Endianness::Big => RunTimeEndian::Big,
                };
                describe(&lsda, endian)?
            }
            Ok(None) => "no LSDA: no call has a landing pad".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let actual = Vec::from_iter(
            std::iter::once("Disassembled:")
                .chain(disassembly.lines())
                .chain([""])
                .chain(text.lines()),
        );
        check_precise_output(&actual, context)
    }
}

impl TestLsda {
    /// The action chain of a call whose handlers have `tags`, interning
    /// caught types into `types`.
    fn actions(
        &self,
        tags: &[Option<ExceptionTag>],
        types: &mut Vec<TypeEntry>,
    ) -> Result<Vec<Action>, Failure> {
        let mut chain = Vec::new();
        let mut cleanup = false;
        for tag in tags {
            let handler = self.handlers.get(tag).ok_or_else(|| {
                Failure::NoHandler(match tag {
                    Some(tag) => format!("{tag} has no handler: give {tag}=... on the test line"),
                    None => "the default handler has none: give default=... on the test line"
                        .to_string(),
                })
            })?;
            match handler {
                Handler::Cleanup => cleanup = true,
                Handler::Catch(entry) => {
                    let index = match types.iter().position(|t| t == entry) {
                        Some(i) => i,
                        None => {
                            types.push(entry.clone());
                            types.len() - 1
                        }
                    };
                    let index = u32::try_from(index + 1).expect("fewer types than tags");
                    if !chain.contains(&Action::Catch(index)) {
                        chain.push(Action::Catch(index));
                    }
                }
            }
        }
        if cleanup {
            chain.push(Action::Cleanup);
        }
        Ok(chain)
    }
}

/// The LSDA as `Lsda::write` writes it (type entries resolved as if every
/// symbol were at the start of the section), then its header, call-site
/// records, action chains and type table read back from those bytes.
fn describe(lsda: &Lsda, endian: RunTimeEndian) -> Result<String> {
    let mut out = EndianVec::new(endian);
    lsda.write(&mut out, |_| Some(Address::Constant(0)))?;
    let bytes = out.into_vec();
    let mut text = format!("LSDA: {} bytes\n", bytes.len());
    for line in bytes.chunks(16) {
        let hex: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
        writeln!(text, "  {}", hex.join(" "))?;
    }
    read_back(&bytes, endian, &mut text).context("reading back the LSDA")?;
    for (i, entry) in lsda.type_entries().iter().enumerate() {
        writeln!(text, "  type #{}: {entry}", i + 1)?;
    }
    Ok(text)
}

/// The header and call-site table of an LSDA written with
/// `LsdaEncoding::object()` (ULEB128 call sites), and each record's chain.
fn read_back(bytes: &[u8], endian: RunTimeEndian, text: &mut String) -> Result<()> {
    let mut r = EndianSlice::new(bytes, endian);
    let lpstart = r.read_u8()?;
    let ttype = r.read_u8()?;
    if ttype != gimli::DW_EH_PE_omit.0 {
        let base = r.read_uleb128()?;
        writeln!(
            text,
            "  lpstart {lpstart:#04x}, ttype {ttype:#04x}, type table base +{base}"
        )?;
    } else {
        writeln!(text, "  lpstart {lpstart:#04x}, ttype omitted")?;
    }
    let encoding = r.read_u8()?;
    let table_len = usize::try_from(r.read_uleb128()?)?;
    writeln!(text, "  call sites {encoding:#04x}, {table_len} bytes")?;
    let actions_at = bytes.len() - r.len() + table_len;
    let mut table = r.split(table_len)?;
    while !table.is_empty() {
        let start = table.read_uleb128()?;
        let len = table.read_uleb128()?;
        let pad = table.read_uleb128()?;
        let action = table.read_uleb128()?;
        let range = format!("[{start:#x}, {:#x})", start + len);
        match (pad, action) {
            (0, _) => writeln!(text, "  call site {range}: no landing pad")?,
            (_, 0) => writeln!(text, "  call site {range}: landing pad {pad:#x}, cleanup")?,
            _ => writeln!(
                text,
                "  call site {range}: landing pad {pad:#x}, action {action}: {}",
                chain(&bytes[actions_at..], action)?
            )?,
        }
    }
    Ok(())
}

/// The chain starting at call-site action value `action` (1 + an offset in
/// the action table `table`): `(filter, next)` pairs of SLEB128s, `next`
/// relative to its own position.
fn chain(table: &[u8], action: u64) -> Result<String> {
    let mut steps = Vec::new();
    let mut at = usize::try_from(action - 1)?;
    while steps.len() <= table.len() {
        let mut reader = EndianSlice::new(table.get(at..).unwrap_or_default(), LittleEndian);
        let filter = leb128::read::signed(&mut reader)?;
        let next_at = table.len() - reader.len();
        let next = leb128::read::signed(&mut reader)?;
        steps.push(match filter {
            0 => "cleanup".to_string(),
            n if n > 0 => format!("catch #{n}"),
            n => format!("filter {n}"),
        });
        if next == 0 {
            return Ok(steps.join(", "));
        }
        at = usize::try_from(i64::try_from(next_at)? + next)?;
    }
    bail!("the action chain at {action} does not end")
}
