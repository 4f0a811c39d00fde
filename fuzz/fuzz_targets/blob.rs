#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let raw_len = u32::from_le_bytes([data[0], data[1], data[2], 0]);
    let mut out = Vec::new();
    let _ = coop_formats::blob::decode(&[1; 32], coop_formats::id::Id([0; 32]), coop_formats::id::BlobType::Data, data[3] % 3, raw_len, &data[4..], &mut out);
});
