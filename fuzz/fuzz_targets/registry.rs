#![no_main]
use coop_formats::control;
use coop_formats::envelope::{Header, ObjectType};
use coop_formats::registry::Registry;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let tag = [1u8; 16];
    let _ = Registry::open(&key, tag, data, |_| true);
    // Arbitrary JSON behind a valid AEAD and signature: the JSON decoder and name checks.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let sealed = control::seal_signed(&key, &Header::new(ObjectType::Registry, tag), data, &sk);
    let _ = Registry::open(&key, tag, &sealed, |_| true);
});
