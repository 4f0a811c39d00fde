#![no_main]
use coop_formats::envelope::{Header, ObjectType};
use coop_formats::writers::{WriterList, SIG_DOMAIN};
use ed25519_dalek::Signer;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = WriterList::open(data, |_| true);
    // Arbitrary JSON, framed and signed as SPEC section 18 says: the JSON decoder.
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let header = Header::new(ObjectType::Writers, [0; 16]).encode();
    let mut msg = SIG_DOMAIN.to_vec();
    msg.extend_from_slice(&header);
    msg.extend_from_slice(data);
    let mut stored = header.to_vec();
    stored.extend_from_slice(&(data.len() as u32).to_le_bytes());
    stored.extend_from_slice(data);
    stored.extend_from_slice(&sk.verifying_key().to_bytes());
    stored.extend_from_slice(&sk.sign(&msg).to_bytes());
    let _ = WriterList::open(&stored, |_| true);
});
