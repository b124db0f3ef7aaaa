//! Property: for random handler layouts, encoding then decoding (with the
//! independent decoder) gives, at every call's return address, the landing
//! pad and the ordered clause list of the input; every call is covered; and
//! no two adjacent records could have been merged.

use cranelift_lsda::{
    CallSite, CallSiteEncoding, Clause, ClauseList, LandingPad, Lsda, LsdaEncoding, TypeEncoding,
    TypeEntry, TypeTable, decode_back, decode_lsda,
};
use gimli::RunTimeEndian;
use proptest::prelude::*;

/// The raw shape of a generated call site: distance from the previous
/// return address, and optionally (pad seed, clause seeds).
type RawSite = (u32, Option<(u32, Vec<u8>)>);

fn layout() -> impl Strategy<Value = Vec<RawSite>> {
    let site = (
        1u32..48,
        prop::option::weighted(0.6, (any::<u32>(), prop::collection::vec(0u8..10, 1..6))),
    );
    prop_oneof![
        6 => prop::collection::vec(site.clone(), 1..20),
        3 => prop::collection::vec(site.clone(), 1..200),
        1 => prop::collection::vec(site, 1..3000),
    ]
}

/// A clause the encoding `types` can carry: absolute entries only under
/// absptr, addends only where the entry is not a `DW.ref` slot.
fn clause_of(seed: u8, types: TypeEncoding) -> Clause {
    match seed {
        0 => Clause::Cleanup,
        1 => Clause::Catch(TypeEntry::CatchAll),
        2 if types == TypeEncoding::Absptr => Clause::Catch(TypeEntry::Address(0x7f00_1000)),
        n => Clause::Catch(TypeEntry::Symbol {
            name: format!("_ZTI{n}"),
            addend: match types {
                TypeEncoding::IndirectPcRelSdata4 => 0,
                _ => i64::from(n % 3) * 8,
            },
        }),
    }
}

/// Encodings, byte order and pointer size of a generated case.
fn encoding(seed: u8) -> (LsdaEncoding, RunTimeEndian, u8) {
    let mut e = LsdaEncoding::object();
    e.call_sites = if seed & 1 == 0 {
        CallSiteEncoding::Uleb128
    } else {
        CallSiteEncoding::Udata4
    };
    e.types = match (seed >> 1) % 3 {
        0 => TypeEncoding::Absptr,
        1 => TypeEncoding::PcRelSdata4,
        _ => TypeEncoding::IndirectPcRelSdata4,
    };
    let endian = if seed & 8 != 0 {
        RunTimeEndian::Big
    } else {
        RunTimeEndian::Little
    };
    let address_size = if seed & 16 != 0 { 4 } else { 8 };
    (e, endian, address_size)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("LSDA_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
    ))]

    #[test]
    fn encode_decode_round_trip(raw in layout(), enc_seed in 0u8..32, tail in 1u32..64) {
        let (enc, endian, address_size) = encoding(enc_seed);
        let mut ret = 0u32;
        let mut sites_raw = Vec::new();
        for (gap, handler) in &raw {
            ret += gap;
            sites_raw.push((ret, handler.clone()));
        }
        let code_len = ret + tail;

        let mut types = TypeTable::new();
        let mut sites = Vec::new();
        let mut clause_lists = Vec::new();
        for (ret_addr, handler) in sites_raw {
            let landing_pad = match handler {
                None => None,
                Some((pad_seed, clause_seeds)) => {
                    let clauses = ClauseList::new(
                        clause_seeds.iter().map(|&s| clause_of(s, enc.types)),
                    ).unwrap();
                    types.add_clauses(&clauses).unwrap();
                    let actions = clauses.actions(&types).unwrap();
                    clause_lists.push(Some(clauses));
                    Some(LandingPad::new(1 + pad_seed % (code_len - 1), actions))
                }
            };
            if landing_pad.is_none() {
                clause_lists.push(None);
            }
            sites.push(CallSite::new(ret_addr, landing_pad));
        }

        let encoded = Lsda::new(&sites, code_len, types.entries(), enc, address_size).unwrap();
        let Some(lsda) = encoded else {
            prop_assert!(sites.iter().all(|s| s.landing_pad.is_none()));
            return Ok(());
        };
        let decoded = decode_back(&lsda, endian).unwrap();
        prop_assert_eq!(decoded.size, lsda.len());
        let records = &decoded.call_sites;

        // A partition of [0, last return address), with nothing mergeable.
        prop_assert_eq!(records[0].start, 0);
        for pair in records.windows(2) {
            prop_assert_eq!(pair[0].start + pair[0].len, pair[1].start);
            prop_assert!(
                (pair[0].landing_pad, pair[0].action) != (pair[1].landing_pad, pair[1].action),
                "adjacent records {:?} and {:?} should have been merged", pair[0], pair[1]
            );
        }
        let last = records.last().unwrap();
        prop_assert_eq!(last.start + last.len, u64::from(sites.last().unwrap().ret_addr));

        // Each call, looked up as a personality does (return address - 1).
        let mut r = 0;
        for (site, clauses) in sites.iter().zip(&clause_lists) {
            let ip = u64::from(site.ret_addr) - 1;
            while records[r].start + records[r].len <= ip {
                r += 1;
            }
            let record = &records[r];
            prop_assert!(record.start <= ip);
            match &site.landing_pad {
                None => prop_assert_eq!(record.landing_pad, 0),
                Some(pad) => {
                    prop_assert_eq!(record.landing_pad, u64::from(pad.offset));
                    prop_assert_eq!(
                        decoded.clauses(record).unwrap(),
                        clauses.as_ref().unwrap().clauses().to_vec()
                    );
                }
            }
        }

        // The type table is 4-byte aligned.
        if let Some(first) = decoded.type_entry_offsets.iter().min() {
            prop_assert_eq!(first % 4, 0);
        }
    }

    #[test]
    fn decoder_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        let _ = decode_lsda(&bytes, RunTimeEndian::Little, 8);
    }
}
