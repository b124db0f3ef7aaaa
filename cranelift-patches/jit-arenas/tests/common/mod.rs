//! Shared by the integration tests: tiny functions built with
//! cranelift-frontend, JIT-compiled into arenas, their `.eh_frame` written
//! with gimli (absolute pointers, as `ArenaTables::register` takes it), and
//! independent views of what the loader and the unwinder see.

#![allow(dead_code)] // Each test binary uses its own part.

use cranelift_codegen::ir::{AbiParam, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::isa::unwind::{UnwindInfo, systemv};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_jit_arenas::{ArenaError, ArenaRegistration, ArenaTables, LoaderArenas};
use cranelift_module::{FuncId, Linkage, Module, default_libcall_names};
use gimli::write::{
    Address, CallFrameInstruction, CommonInformationEntry, EhFrame, EndianVec,
    FrameDescriptionEntry, FrameTable,
};
use std::ffi::{CStr, c_int, c_void};

/// The host ISA, with unwind information.
pub fn isa() -> OwnedTargetIsa {
    let mut flags = settings::builder();
    flags.enable("unwind_info").unwrap();
    cranelift_native::builder()
        .unwrap()
        .finish(settings::Flags::new(flags))
        .unwrap()
}

/// A JIT module whose code goes to `arenas`, with the handle that
/// registers its `.eh_frame`.
pub fn module_in(arenas: &LoaderArenas) -> (JITModule, ArenaTables) {
    let (memory, tables) = arenas.memory();
    let mut builder = JITBuilder::with_isa(isa(), default_libcall_names());
    builder.memory_provider(Box::new(memory));
    (JITModule::new(builder), tables)
}

/// A function defined in a module, with its unwind information.
pub struct Defined {
    pub id: FuncId,
    /// Bytes of code.
    pub len: usize,
    /// The code, which has no relocations.
    pub code: Vec<u8>,
    pub unwind: systemv::UnwindInfo,
}

/// The type of the functions [`define_caller`] builds.
pub type Caller = extern "C-unwind" fn(i64, extern "C-unwind" fn(i64) -> i64) -> i64;

/// `name(x, callback) = callback(x) + add`: a function with a frame and a
/// call in it, so that a walk from `callback` crosses its frame.
pub fn define_caller(module: &mut JITModule, name: &str, add: i64) -> Defined {
    let pointer = module.isa().pointer_type();
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.push(AbiParam::new(types::I64));
    sig.params.push(AbiParam::new(pointer));
    sig.returns.push(AbiParam::new(types::I64));
    let id = module
        .declare_function(name, Linkage::Export, &sig)
        .unwrap();
    let mut ctx = module.make_context();
    ctx.func.signature = sig;
    ctx.func.name = UserFuncName::user(0, id.as_u32());
    let mut callee = Signature::new(CallConv::SystemV);
    callee.params.push(AbiParam::new(types::I64));
    callee.returns.push(AbiParam::new(types::I64));
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let callee = b.import_signature(callee);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let [x, callback] = b.block_params(entry)[..] else {
        unreachable!()
    };
    let call = b.ins().call_indirect(callee, callback, &[x]);
    let result = b.inst_results(call)[0];
    let sum = b.ins().iadd_imm_s(result, add);
    b.ins().return_(&[sum]);
    b.seal_all_blocks();
    b.finalize(module.isa().frontend_config());
    module.define_function(id, &mut ctx).unwrap();
    let compiled = ctx.compiled_code().unwrap();
    let code = compiled.code_buffer().to_vec();
    let unwind = match compiled.create_unwind_info(module.isa()).unwrap() {
        Some(UnwindInfo::SystemV(info)) => info,
        other => panic!("no System V unwind information: {other:?}"),
    };
    module.clear_context(&mut ctx);
    Defined {
        id,
        len: code.len(),
        code,
        unwind,
    }
}

/// Another function `name` with `like`'s code and unwind information,
/// defined from its bytes (no compilation).
pub fn define_copy(module: &mut JITModule, name: &str, like: &Defined) -> Defined {
    let sig = module
        .declarations()
        .get_function_decl(like.id)
        .signature
        .clone();
    let id = module
        .declare_function(name, Linkage::Export, &sig)
        .unwrap();
    module
        .define_function_bytes(id, 16, &like.code, &[])
        .unwrap();
    Defined {
        id,
        len: like.len,
        code: like.code.clone(),
        unwind: like.unwind.clone(),
    }
}

/// A finalized function: where it is and how long.
#[derive(Clone, Copy, Debug)]
pub struct Placed {
    pub address: usize,
    pub len: usize,
}

/// `tables.register(eh_frame)`.
pub fn register(tables: &ArenaTables, eh_frame: &[u8]) -> Result<ArenaRegistration, ArenaError> {
    // SAFETY: the tests' `.eh_frame`s carry no personality and no LSDA,
    // and cover functions of modules that outlive their registrations.
    unsafe { tables.register(eh_frame) }
}

/// A module in `arenas` with one finalized function `f` (a caller adding
/// 1): the module, its tables, `f` and where it was placed.
pub fn finalized_f(arenas: &LoaderArenas) -> (JITModule, ArenaTables, Defined, Placed) {
    let (mut module, tables) = module_in(arenas);
    let f = define_caller(&mut module, "f", 1);
    module.finalize_definitions().unwrap();
    let at = placed(&module, &f);
    (module, tables, f, at)
}

/// Where `defined` ended up (the module is finalized).
pub fn placed(module: &JITModule, defined: &Defined) -> Placed {
    Placed {
        address: module.get_finalized_function(defined.id) as usize,
        len: defined.len,
    }
}

/// The FDE of each function at the address given, under the host's CIE
/// (changed by `cie` first), written with absolute pointers unless the CIE
/// says otherwise, each FDE changed by `fde`, with a zero terminator.
pub fn eh_frame_with(
    isa: &dyn TargetIsa,
    fdes: &[(&Defined, u64)],
    cie: impl FnOnce(&mut CommonInformationEntry),
    fde: impl Fn(&mut FrameDescriptionEntry),
) -> Vec<u8> {
    let mut table = FrameTable::default();
    let mut host_cie = isa
        .create_systemv_cie()
        .expect("the host has a System V CIE");
    cie(&mut host_cie);
    let cie = table.add_cie(host_cie);
    for (defined, address) in fdes {
        let mut entry = defined.unwind.to_fde(Address::Constant(*address));
        fde(&mut entry);
        table.add_fde(cie, entry);
    }
    let mut eh_frame = EhFrame(EndianVec::new(gimli::NativeEndian));
    table.write_eh_frame(&mut eh_frame).unwrap();
    let mut bytes = eh_frame.0.into_vec();
    bytes.extend_from_slice(&[0; 4]);
    bytes
}

/// As [`eh_frame`], each FDE made about `2 * pad` bytes longer by CFA
/// instructions that change nothing (`DW_CFA_GNU_args_size 0`) after the
/// function's.
pub fn eh_frame_padded(isa: &dyn TargetIsa, fdes: &[(&Defined, u64)], pad: usize) -> Vec<u8> {
    eh_frame_with(
        isa,
        fdes,
        |_| {},
        |fde| {
            for _ in 0..pad {
                fde.add_instruction(fdes[0].0.len as u32, CallFrameInstruction::ArgsSize(0));
            }
        },
    )
}

/// As [`eh_frame_with`], with the host's CIE as it is.
pub fn eh_frame(isa: &dyn TargetIsa, fdes: &[(&Defined, u64)]) -> Vec<u8> {
    eh_frame_with(isa, fdes, |_| {}, |_| {})
}

unsafe extern "C" {
    fn _Unwind_Find_FDE(pc: *const u8, bases: *mut [usize; 3]) -> *const u8;
}

/// What the unwinder this process uses (libgcc_s) finds for `pc`: the FDE
/// and the `struct dwarf_eh_bases` (tbase, dbase, func).
pub fn find_fde(pc: usize) -> Option<(*const u8, [usize; 3])> {
    let mut bases = [0usize; 3];
    // SAFETY: only looks `pc` up; `bases` is a writable `struct
    // dwarf_eh_bases` (three pointers).
    let fde = unsafe { _Unwind_Find_FDE(pc as *const u8, &mut bases) };
    (!fde.is_null()).then_some((fde, bases))
}

/// glibc's `struct dl_find_object` (<dlfcn.h>, glibc 2.35).
#[repr(C)]
#[derive(Debug)]
pub struct DlFindObject {
    pub dlfo_flags: u64,
    pub dlfo_map_start: *mut c_void,
    pub dlfo_map_end: *mut c_void,
    pub dlfo_link_map: *mut c_void,
    pub dlfo_eh_frame: *mut c_void,
    reserved: [u64; 7],
}

unsafe extern "C" {
    fn _dl_find_object(address: *mut c_void, result: *mut DlFindObject) -> c_int;
}

/// `_dl_find_object(pc)`, as libgcc asks it.
pub fn dl_find_object(pc: usize) -> Option<DlFindObject> {
    // SAFETY: an all-zero dl_find_object is a valid value to overwrite.
    let mut result: DlFindObject = unsafe { std::mem::zeroed() };
    // SAFETY: `_dl_find_object` only reads the loader's object list and
    // fills `result`.
    let found = unsafe { _dl_find_object(pc as *mut c_void, &mut result) };
    (found == 0).then_some(result)
}

/// What `dl_iterate_phdr` (LLVM libunwind's route) says of the object whose
/// loadable segments hold `pc`: its load base and its `PT_GNU_EH_FRAME`'s
/// address.
pub fn phdr_eh_frame_hdr(pc: usize) -> Option<(usize, Option<usize>)> {
    struct Search {
        pc: usize,
        found: Option<(usize, Option<usize>)>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut c_void,
    ) -> c_int {
        // SAFETY: the loader passes a valid `info` whose `dlpi_phdr` has
        // `dlpi_phnum` headers; `data` is the `Search` below.
        unsafe {
            let search = &mut *data.cast::<Search>();
            let info = &*info;
            let base = info.dlpi_addr as usize;
            let headers = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into());
            let holds = headers.iter().any(|h| {
                h.p_type == libc::PT_LOAD
                    && (base + h.p_vaddr as usize..base + (h.p_vaddr + h.p_memsz) as usize)
                        .contains(&search.pc)
            });
            if !holds {
                return 0;
            }
            let hdr = headers
                .iter()
                .find(|h| h.p_type == libc::PT_GNU_EH_FRAME)
                .map(|h| base + h.p_vaddr as usize);
            search.found = Some((base, hdr));
            1
        }
    }
    let mut search = Search { pc, found: None };
    // SAFETY: `each` matches the callback type and only reads what the
    // loader gives it; `search` outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each), (&raw mut search).cast()) };
    search.found
}

/// `dladdr(pc)`: the object's file name and load base.
pub fn dladdr(pc: usize) -> Option<(String, usize)> {
    // SAFETY: an all-zero Dl_info is a valid value to overwrite.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's object list and fills `info`,
    // whose dli_fname it sets to a NUL-terminated path when it succeeds.
    unsafe {
        if libc::dladdr(pc as *const c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        let name = CStr::from_ptr(info.dli_fname)
            .to_string_lossy()
            .into_owned();
        Some((name, info.dli_fbase as usize))
    }
}

/// The mappings of this process whose file is an arena's memfd, and how
/// many distinct arena files (inodes) they map.
pub fn arena_mappings() -> (usize, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let lines: Vec<&str> = maps
        .lines()
        .filter(|line| line.contains("/memfd:cranelift-jit-arena"))
        .collect();
    let mut inodes: Vec<&str> = lines
        .iter()
        .map(|line| line.split_whitespace().nth(4).unwrap())
        .collect();
    inodes.sort_unstable();
    inodes.dedup();
    (lines.len(), inodes.len())
}

/// The inode of the arena whose image holds `address` (code included).
pub fn arena_of(address: usize) -> Option<u64> {
    let (_, base) = dladdr(address)?;
    arena_inode_at(base)
}

/// The inode of the arena file mapped at `address`, if an arena is.
pub fn arena_inode_at(address: usize) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (start, end) = fields.next()?.split_once('-')?;
        let range = usize::from_str_radix(start, 16).ok()?..usize::from_str_radix(end, 16).ok()?;
        let inode = fields.nth(3)?.parse().ok()?;
        (range.contains(&address) && line.contains("/memfd:cranelift-jit-arena")).then_some(inode)
    })
}

/// Whether an arena file with this inode is mapped.
pub fn arena_loaded(inode: u64) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|line| {
        line.contains("/memfd:cranelift-jit-arena")
            && line.split_whitespace().nth(4) == Some(&inode.to_string())
    })
}

/// What `eu-readelf --debug-dump=frames` reads in an image: its
/// `.eh_frame_hdr` search table, `fde_count` entries of (initial location
/// as an address of the image, offset of the FDE in `.eh_frame`), and its
/// `.eh_frame` FDEs by offset: (initial location, address range). `None`
/// if eu-readelf (elfutils) is absent.
pub struct Frames {
    pub text: String,
    pub table: Vec<(u64, u64)>,
    pub fdes: std::collections::BTreeMap<u64, (u64, u64)>,
}

pub fn eu_readelf_frames(image: &std::path::Path) -> Option<Frames> {
    let output = match std::process::Command::new("eu-readelf")
        .arg("--debug-dump=frames")
        .arg(image)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => panic!("eu-readelf: {error}"),
    };
    // Without its endless "Zero terminator" lines (the sections are as
    // large as their capacity) and the search table's zero entries past
    // the count, for messages.
    let text: String = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty() && !line.ends_with("Zero terminator"))
        .filter(|line| !line.starts_with("  0 (offset:"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert!(
        output.status.success(),
        "eu-readelf failed: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hex = |s: &str| {
        let s = s.trim().trim_start_matches('+').trim_start_matches("0x");
        u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("not hex: {s:?}"))
    };
    let field = |block: &str, name: &str| {
        let line = block
            .lines()
            .find_map(|line| line.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {block}"));
        hex(line)
    };
    let (hdr, eh_frame) = text
        .split_once("'.eh_frame_hdr':")
        .and_then(|(_, rest)| rest.split_once("'.eh_frame'"))
        .unwrap_or_else(|| panic!("no .eh_frame_hdr then .eh_frame in\n{text}"));
    let count = hdr
        .lines()
        .find_map(|line| line.trim().strip_prefix("fde_count:"))
        .unwrap_or_else(|| panic!("no fde_count in\n{text}"));
    let count: usize = count.trim().parse().unwrap();
    // "  0x<datarel> (offset: 0x<address>) -> 0x<datarel> fde=[<offset>]"
    let table = hdr
        .split_once("\n Table:\n")
        .unwrap_or_else(|| panic!("no search table in\n{text}"))
        .1
        .lines()
        .take(count)
        .map(|line| {
            let (_, after) = line.split_once("(offset:").unwrap();
            let (start, after) = after.split_once(") ->").unwrap();
            let (_, fde) = after.split_once("fde=[").unwrap();
            (hex(start), hex(fde.trim_end_matches(']')))
        })
        .collect();
    // " [    40] FDE length=28 cie=[    28]" and its fields.
    let fdes = eh_frame
        .split("\n [")
        .skip(1)
        .filter_map(|block| {
            let (offset, rest) = block.split_once(']').unwrap();
            rest.trim_start().starts_with("FDE").then(|| {
                (
                    hex(offset),
                    (
                        field(block, "initial_location:"),
                        field(block, "address_range:"),
                    ),
                )
            })
        })
        .collect();
    Some(Frames { text, table, fdes })
}

/// A copy of the live image of the arena holding `address`, read through
/// its `/proc/self/fd` name, in a temporary file named after `tag`.
pub fn copy_of_image(address: usize, tag: &str) -> std::path::PathBuf {
    let (name, _) = dladdr(address).expect("an arena holds the address");
    assert!(name.starts_with("/proc/self/fd/"), "{name}");
    let path = std::env::temp_dir().join(format!(
        "cranelift-jit-arena-{}-{tag}.so",
        std::process::id()
    ));
    std::fs::copy(&name, &path).unwrap();
    path
}
