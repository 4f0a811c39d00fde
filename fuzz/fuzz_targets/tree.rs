#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = coop_formats::tree::Tree::decode(data);
});
