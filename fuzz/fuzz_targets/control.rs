#![no_main]
use coop_formats::control::{self, Control, ForgetRecord, Lock, PrunePlan, Protection};
use coop_formats::envelope::{Header, ObjectType};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let tag = [1u8; 16];
    // Arbitrary stored bytes.
    let _ = Lock::open(&key, tag, data);
    let _ = control::open_signed(&key, ObjectType::PrunePlan, data, control::MAX_CONTROL_LEN);
    // Arbitrary plaintext behind a valid AEAD: the length and signature checks.
    let _ = Lock::open(&key, tag, &control::aead_seal(&key, &Header::new(ObjectType::Lock, tag), data));
    // Arbitrary JSON behind a valid AEAD and signature: the JSON decoders.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let seal = |ty| control::seal_signed(&key, &Header::new(ty, tag), data, &sk);
    let _ = Lock::open(&key, tag, &seal(ObjectType::Lock));
    let _ = PrunePlan::open(&key, tag, &seal(ObjectType::PrunePlan));
    let _ = Protection::open(&key, tag, &seal(ObjectType::Protection));
    let _ = ForgetRecord::open(&key, tag, &seal(ObjectType::Forgotten));
});
