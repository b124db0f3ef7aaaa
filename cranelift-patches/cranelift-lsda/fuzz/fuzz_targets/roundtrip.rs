//! Encode then decode arbitrary handler layouts and policies: at every
//! return address the decoded pad and ordered clause list equal the input,
//! and the table partitions the code up to the last call.

#![no_main]

use arbitrary::Arbitrary;
use cranelift_lsda::{
    CallSite, CallSiteEncoding, Clause, ClauseList, LandingPad, Lsda, LsdaEncoding, TypeEncoding,
    TypeEntry, TypeTable, decode_back,
};
use gimli::RunTimeEndian;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Site {
    /// Distance from the previous return address, 1 up.
    gap: u8,
    /// The pad (offset seed) and clause seeds, if the call has handlers.
    handlers: Option<(u16, Vec<u8>)>,
}

#[derive(Arbitrary, Debug)]
struct Layout {
    sites: Vec<Site>,
    tail: u8,
    udata4: bool,
    types: u8,
    big_endian: bool,
    narrow_pointers: bool,
}

/// A clause the type encoding `types` can carry: absolute entries only
/// under absptr, addends only where the entry is not a `DW.ref` slot (the
/// encoder refuses both otherwise).
fn clause(seed: u8, types: TypeEncoding) -> Clause {
    match seed % 12 {
        0 => Clause::Cleanup,
        1 => Clause::Catch(TypeEntry::CatchAll),
        2 if types == TypeEncoding::Absptr => {
            Clause::Catch(TypeEntry::Address(0x7f00_1000 + u64::from(seed)))
        }
        n => Clause::Catch(TypeEntry::Symbol {
            name: format!("_ZTI{n}"),
            addend: match types {
                TypeEncoding::IndirectPcRelSdata4 => 0,
                _ => i64::from(seed % 3) * 8,
            },
        }),
    }
}

fuzz_target!(|layout: Layout| {
    let encoding = LsdaEncoding::new(
        if layout.udata4 {
            CallSiteEncoding::Udata4
        } else {
            CallSiteEncoding::Uleb128
        },
        match layout.types % 3 {
            0 => TypeEncoding::Absptr,
            1 => TypeEncoding::PcRelSdata4,
            _ => TypeEncoding::IndirectPcRelSdata4,
        },
    );
    let code_len = layout
        .sites
        .iter()
        .map(|s| u32::from(s.gap) + 1)
        .sum::<u32>()
        + u32::from(layout.tail)
        + 1;
    let mut types = TypeTable::new();
    let mut sites = Vec::new();
    let mut clause_lists = Vec::new();
    let mut ret_addr = 0;
    for site in &layout.sites {
        ret_addr += u32::from(site.gap) + 1;
        let landing_pad = match &site.handlers {
            Some((pad, seeds)) if !seeds.is_empty() => {
                let clauses =
                    ClauseList::new(seeds.iter().map(|&s| clause(s, encoding.types))).unwrap();
                types.add_clauses(&clauses).unwrap();
                let offset = 1 + u32::from(*pad) % (code_len - 1);
                let actions = clauses.actions(&types).unwrap();
                clause_lists.push(Some(clauses));
                Some(LandingPad::new(offset, actions))
            }
            _ => {
                clause_lists.push(None);
                None
            }
        };
        sites.push(CallSite::new(ret_addr, landing_pad));
    }
    let address_size = if layout.narrow_pointers { 4 } else { 8 };
    let Some(lsda) = Lsda::new(&sites, code_len, types.entries(), encoding, address_size).unwrap()
    else {
        assert!(sites.iter().all(|s| s.landing_pad.is_none()));
        return;
    };
    let endian = if layout.big_endian {
        RunTimeEndian::Big
    } else {
        RunTimeEndian::Little
    };
    let decoded = decode_back(&lsda, endian).unwrap();
    assert_eq!(decoded.size, lsda.len());

    let records = &decoded.call_sites;
    assert_eq!(records[0].start, 0);
    for pair in records.windows(2) {
        assert_eq!(pair[0].start + pair[0].len, pair[1].start);
        assert!((pair[0].landing_pad, pair[0].action) != (pair[1].landing_pad, pair[1].action));
    }
    for (site, clause_list) in sites.iter().zip(&clause_lists) {
        let record = decoded
            .lookup(u64::from(site.ret_addr) - 1)
            .expect("every call is covered");
        match &site.landing_pad {
            None => assert_eq!(record.landing_pad, 0),
            Some(pad) => {
                assert_eq!(record.landing_pad, u64::from(pad.offset));
                let clauses = decoded.clauses(record).expect("chains name table entries");
                assert_eq!(clauses, clause_list.as_ref().unwrap().clauses());
            }
        }
    }
});
