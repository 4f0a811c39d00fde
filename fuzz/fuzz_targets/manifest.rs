#![no_main]
use coop_formats::manifest::{Manifest, SignedManifest, SIG_DOMAIN};
use ed25519_dalek::Signer;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<SignedManifest>(data) {
        let _ = s.verify();
    }
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let _ = m.export_paths();
    }
    // An arbitrary payload under a valid signature: the payload decoder and export paths.
    if let Ok(payload) = std::str::from_utf8(data) {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(payload.as_bytes());
        let s = SignedManifest {
            payload: payload.to_string(),
            signer: hex(&sk.verifying_key().to_bytes()),
            signature: hex(&sk.sign(&msg).to_bytes()),
        };
        if let Ok((m, _)) = s.verify() {
            let _ = m.export_paths();
        }
    }
});
