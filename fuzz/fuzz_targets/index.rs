#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = coop_formats::index::IndexFile::decode_plain(data, &[0u8; 24]);
    let _ = coop_formats::index::IndexFile::open(&[7; 32], data);
});
