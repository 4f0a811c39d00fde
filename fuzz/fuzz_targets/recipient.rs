#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = coop_formats::crypt::parse_identities(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = coop_formats::crypt::parse_recipient(s);
        let _ = coop_formats::crypt::parse_recipients_file(s);
        let _ = coop_formats::crypt::ssh_ed25519_to_x25519_recipient(s);
    }
});
