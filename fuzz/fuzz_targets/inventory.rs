#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = coop_formats::snapshot::Inventory::decode(data);
    let _ = coop_formats::snapshot::read_inventory(data);
});
