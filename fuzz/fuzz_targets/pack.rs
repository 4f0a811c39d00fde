#![no_main]
const IDENTITY: &str = "AGE-SECRET-KEY-1PM0GKCHSLQTH7A9CSX3SEWUPTTZY94L5QKHQQC9JRG2M8UHW3XVQ4QU7S5";
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let ids = coop_formats::crypt::parse_identities(IDENTITY.as_bytes()).expect("fixed identity");
    let _ = coop_formats::pack::open(&ids, data);
    let _ = coop_formats::pack::read_table(&ids, std::io::Cursor::new(data));
});
