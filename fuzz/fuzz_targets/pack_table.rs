#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = coop_formats::pack::parse_table(data);
});
