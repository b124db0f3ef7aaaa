//! The decoder on arbitrary bytes: a typed error or a table, never a panic
//! or an out-of-bounds read; a decoded table prints and answers lookups.

#![no_main]

use cranelift_lsda::decode_lsda;
use gimli::RunTimeEndian;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, bool, u64, &[u8])| {
    let (big, narrow, lookup, bytes) = input;
    let endian = if big {
        RunTimeEndian::Big
    } else {
        RunTimeEndian::Little
    };
    let address_size = if narrow { 4 } else { 8 };
    if let Ok(decoded) = decode_lsda(bytes, endian, address_size) {
        assert!(decoded.size <= bytes.len());
        let _ = decoded.to_string();
        let _ = decoded.lookup(lookup);
        for index in 0..=decoded.type_entries.len() + 1 {
            let _ = decoded.type_entry_target(index, lookup);
        }
    }
});
