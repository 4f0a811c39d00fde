#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = coop_formats::config::Config::decode(data);
});
