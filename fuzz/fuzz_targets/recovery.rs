#![no_main]
//! Recovery shares and re-split files as a storage site could write them (an age file to an
//! admin's public key holds any JSON): the decoders, and combining arbitrary sub-shares.
use coop_formats::recovery::{combine_dealt, DealFile, Reshare, ShareFile};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ShareFile>(data);
    let _ = serde_json::from_slice::<DealFile>(data);
    if let Ok(r) = serde_json::from_slice::<Reshare>(data) {
        let _ = r.check();
    }
    // Sub-shares cut from the input: (old index, bytes) pairs of any lengths.
    if let Some((&k, rest)) = data.split_first() {
        let dealt: Vec<(u8, Vec<u8>)> = rest
            .chunks(9)
            .map(|c| (c.first().copied().unwrap_or(0), c.to_vec()))
            .collect();
        let _ = combine_dealt(k, rest.first().copied().unwrap_or(1), &dealt);
    }
});
