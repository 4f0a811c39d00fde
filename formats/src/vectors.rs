//! The test vectors of `formats/SPEC.md` (section 23).
//!
//! Each test builds one construction the way SPEC.md describes it, from fixed inputs, with
//! nothing but the primitives (BLAKE3, Ed25519, XChaCha20-Poly1305, age) and byte
//! concatenation; checks that this crate writes exactly those bytes and accepts them; and
//! compares them with the hex printed in SPEC.md. A change to any format therefore fails
//! here until SPEC.md is changed with it.
//!
//! Fixed inputs (also listed in SPEC.md):
//! - ID key: 32 × `42`; index key: 32 × `11`; tenant tag: 16 × `ab`;
//! - AEAD nonce: the 24 bytes `00 01 02 … 17`;
//! - Ed25519 seeds: authority/admin 32 × `01`, writer 32 × `02`;
//! - age identity [`IDENTITY`] (a test key, used nowhere else).

use crate::blob::Compressor;
use crate::config::Config;
use crate::control::{self, Control, ForgetRecord, Holder, Lock, LockKind, Protection, PrunePlan};
use crate::crypt;
use crate::envelope::{Header, ObjectType, TenantTag, HEADER_LEN};
use crate::id::{self, blob_id, BlobType, Id};
use crate::index::{IndexEntry, IndexFile, IndexPack};
use crate::keyring::{self, Keyring, Writer};
use crate::manifest::{Manifest, ManifestFile, SignedManifest};
use crate::pack::PackBuilder;
use crate::registry::{Member, Registry};
use crate::snapshot::{Inventory, Snapshot, Summary};
use crate::tree::{Node, NodeKind, Part, Tree, Xattr};
use crate::writers::{Revocation, SiteWriter, WriterList};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::Signer;

const ID_KEY: [u8; 32] = [0x42; 32];
const INDEX_KEY: [u8; 32] = [0x11; 32];
const TAG: TenantTag = [0xab; 16];
const AUTHORITY_SEED: [u8; 32] = [0x01; 32];
const WRITER_SEED: [u8; 32] = [0x02; 32];
/// A test-only age identity (the fuzz targets use it too).
const IDENTITY: &str = "AGE-SECRET-KEY-1PM0GKCHSLQTH7A9CSX3SEWUPTTZY94L5QKHQQC9JRG2M8UHW3XVQ4QU7S5";
/// A test-only OpenSSH ed25519 key pair (the one of `crypt`'s tests).
const SSH_PUBLIC: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlGlHMcZ3KWHGjyG5lxmzQO8olYzN0gK+jxvBZ8UHMu test@coop";
const SSH_PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDJRpRzHGdylhxo8huZcZs0DvKJWMzdICvo8bwWfFBzLgAAAJDq1qwq6tas
KgAAAAtzc2gtZWQyNTUxOQAAACDJRpRzHGdylhxo8huZcZs0DvKJWMzdICvo8bwWfFBzLg
AAAEA2X6Szeve6bJ4s4FAjsCllp0Vw/2s2rN5IiG353uOUV8lGlHMcZ3KWHGjyG5lxmzQO
8olYzN0gK+jxvBZ8UHMuAAAACXRlc3RAY29vcAECAwQ=
-----END OPENSSH PRIVATE KEY-----
";

/// `00 01 02 … 17`.
fn nonce() -> [u8; 24] {
    std::array::from_fn(|i| i as u8)
}

fn sk(seed: &[u8; 32]) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(seed)
}

fn pk(seed: &[u8; 32]) -> [u8; 32] {
    keyring::public_key_of(seed)
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

fn b3(b: &[u8]) -> String {
    blake3::hash(b).to_hex().to_string()
}

fn le32(n: usize) -> [u8; 4] {
    (n as u32).to_le_bytes()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The recipient of [`IDENTITY`].
fn recipient() -> String {
    use std::str::FromStr;
    age::x25519::Identity::from_str(IDENTITY)
        .expect("test identity")
        .to_public()
        .to_string()
}

fn identities() -> Vec<crypt::Identity> {
    crypt::parse_identities(IDENTITY.as_bytes()).expect("test identity")
}

/// An age file of `plain` to [`IDENTITY`] (age is randomised: only its plaintext is a vector).
fn age_to_test_identity(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crypt::encrypt_to(
        &[crypt::parse_recipient(&recipient()).expect("recipient")],
        &[plain],
        &mut out,
    )
    .expect("encrypts");
    out
}

/// XChaCha20-Poly1305 as SPEC.md section 3 describes it: ciphertext || 16-byte tag.
fn xchacha(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    XChaCha20Poly1305::new(key.into())
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plain, aad })
        .expect("encrypts")
}

#[track_caller]
fn same(got: impl AsRef<str>, want: &str) {
    assert_eq!(got.as_ref(), want, "differs from the vector in SPEC.md");
}

#[test]
fn keys_of_the_fixed_inputs() {
    same(
        h(&pk(&AUTHORITY_SEED)),
        "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c",
    );
    same(
        h(&pk(&WRITER_SEED)),
        "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
    );
    same(
        recipient(),
        "age1yrze7pqyw8r80tj24u3u0ep03x520vqm7wdjnv9l0yeh2u0x6uzql9jmxk",
    );
}

#[test]
fn header_vector() {
    same(
        h(&Header::new(ObjectType::Pack, TAG).encode()),
        "434f4f5001030000abababababababababababababababab",
    );
    for t in 1..=11u8 {
        let ty = ObjectType::from_u8(t).expect("types 1 to 11 exist");
        assert_eq!(Header::new(ty, [0; 16]).encode()[5], t);
    }
    assert!(ObjectType::from_u8(0).is_none() && ObjectType::from_u8(12).is_none());
}

#[test]
fn blob_id_vector() {
    same(
        blob_id(&ID_KEY, BlobType::Data, b"coop").to_hex(),
        "590a9ce3c877cb297c51262f2f67f170af85c9edad62152436897cfee23b945b",
    );
    same(
        blob_id(&ID_KEY, BlobType::Tree, b"coop").to_hex(),
        "78c2aef5b04c38f4e3b5e2b0e95e5e4a720d7d6920990425933615b6119bf302",
    );
    same(
        blob_id(&ID_KEY, BlobType::Data, b"").to_hex(),
        "0689039ab27bc10c7c81e7f6dda1a6d19208cf83677efd6c2cd1d51ce46e8566",
    );
    // keyed BLAKE3 (the ID key is the BLAKE3 key as it is) of the type byte and the plaintext
    same(
        blake3::keyed_hash(&ID_KEY, b"\x01coop").to_hex(),
        &blob_id(&ID_KEY, BlobType::Data, b"coop").to_hex(),
    );
}

#[test]
fn key_derivation_vectors() {
    same(
        h(&blake3::derive_key(id::kdf::KEYRING_MAC, &ID_KEY)),
        "7f20ba5c23afac7230b8310f484032d4c8681cc12d26cdf0924fb3137feb7299",
    );
    let seed_key = blake3::derive_key(id::kdf::CHUNKER_SEED, &ID_KEY);
    same(
        h(&seed_key),
        "05809f8245777cf87b5998cf573282f2b00b3410d8674501709be6b53b5ef540",
    );
    let seed = id::chunker_seed(&ID_KEY);
    assert_eq!(
        seed,
        u64::from_le_bytes(seed_key[..8].try_into().expect("8"))
    );
    same(format!("{seed:016x}"), "f87c7745829f8005");
    same(seed.to_string(), "17905317358946189317");
    // fastcdc 5.0.0's v2020 GEAR[0], XORed with the seed: the seeded table's first entry.
    same(
        format!("{:016x}", 0x3b5d_3c7d_207e_37dc_u64 ^ seed),
        "c3214b38a2e1b7d9",
    );
}

#[test]
fn config_hash_vector() {
    const JSON: &str = r#"{
  "version": 1,
  "repo_id": "0101010101010101010101010101010101010101010101010101010101010101",
  "created": "2026-11-23T00:00:00Z",
  "chunker": {
    "algorithm": "fastcdc-v2020",
    "min_size": 524288,
    "avg_size": 1048576,
    "max_size": 8388608
  },
  "compression_level": 3,
  "pack_size": 16777216
}
"#;
    let c = Config::new(Id([0x01; 32]), "2026-11-23T00:00:00Z".into());
    let bytes = c.encode();
    same(String::from_utf8_lossy(&bytes[HEADER_LEN..]), JSON);
    assert_eq!(
        bytes,
        cat(&[
            &Header::new(ObjectType::Config, [0; 16]).encode(),
            JSON.as_bytes()
        ])
    );
    // config_hash is BLAKE3 of the whole stored object, header included.
    same(
        b3(&bytes),
        "761fde8d12be7bf2c95a4f17d85ccb80ef2b655956d4433cff93f4f69270f159",
    );
    same(Config::hash(&bytes).to_hex(), &b3(&bytes));
    assert_eq!(Config::decode(&bytes).expect("decodes"), c);
}

fn fixed_keyring() -> Keyring {
    Keyring {
        tenant: "coop".into(),
        tenant_tag: TAG,
        repo_id: Id([0x01; 32]),
        generation: 1,
        created: "2026-11-23T00:00:00Z".into(),
        config_hash: Id([0x02; 32]),
        id_key: ID_KEY,
        index_key: INDEX_KEY,
        recipients: vec![recipient()],
        data_identity: IDENTITY.into(),
        old_data_identities: vec![],
        writers: vec![Writer {
            name: "default".into(),
            public_key: pk(&AUTHORITY_SEED),
            added: "2026-11-23T00:00:00Z".into(),
        }],
        signer: AUTHORITY_SEED,
        admins: vec![],
        owners: vec![],
    }
}

#[test]
fn keyring_mac_vector() {
    const JSON: &str = r#"{"tenant":"coop","tenant_tag":"abababababababababababababababab","repo_id":"0101010101010101010101010101010101010101010101010101010101010101","generation":1,"created":"2026-11-23T00:00:00Z","config_hash":"0202020202020202020202020202020202020202020202020202020202020202","id_key":"4242424242424242424242424242424242424242424242424242424242424242","index_key":"1111111111111111111111111111111111111111111111111111111111111111","recipients":["age1yrze7pqyw8r80tj24u3u0ep03x520vqm7wdjnv9l0yeh2u0x6uzql9jmxk"],"data_identity":"AGE-SECRET-KEY-1PM0GKCHSLQTH7A9CSX3SEWUPTTZY94L5QKHQQC9JRG2M8UHW3XVQ4QU7S5","writers":[{"name":"default","public_key":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","added":"2026-11-23T00:00:00Z"}],"signer":"0101010101010101010101010101010101010101010101010101010101010101"}"#;
    let k = fixed_keyring();
    let header = Header::new(ObjectType::Keyring, TAG).encode();
    let json = serde_json::to_vec(&k).expect("serializes");
    same(String::from_utf8_lossy(&json), JSON);
    let mac_key = blake3::derive_key(id::kdf::KEYRING_MAC, &ID_KEY);
    let mac = blake3::keyed_hash(&mac_key, &cat(&[&header, &json]));
    same(
        mac.to_hex(),
        "c60ccf16ab9ccfb6737d12130a0b3ad060755eeaab930a8cffd9b16f77971f28",
    );
    let plain = cat(&[&header, &json, mac.as_bytes()]);
    // The code writes exactly this plaintext, behind the header in clear.
    let sealed = k.seal().expect("seals");
    assert_eq!(sealed[..HEADER_LEN], header);
    let ids = identities();
    assert_eq!(
        crypt::decrypt(&ids, &sealed[HEADER_LEN..], keyring::MAX_KEYRING_LEN).expect("opens"),
        plain
    );
    // And accepts it, whoever did the age encryption.
    let stored = cat(&[&header, &age_to_test_identity(&plain)]);
    assert!(Keyring::open(&ids, &stored).expect("opens") == k);
    let mut bad = plain.clone();
    *bad.last_mut().expect("mac") ^= 1;
    let stored = cat(&[&header, &age_to_test_identity(&bad)]);
    assert!(Keyring::open(&ids, &stored).is_err());
}

#[test]
fn pack_plaintext_vector() {
    let data = b"coop";
    let tree = br#"{"nodes":[]}"#;
    let (d_id, t_id) = (
        blob_id(&ID_KEY, BlobType::Data, data),
        blob_id(&ID_KEY, BlobType::Tree, tree),
    );
    let r = vec![crypt::parse_recipient(&recipient()).expect("recipient")];
    let mut c = Compressor::new(0);
    let mut b = PackBuilder::new(TAG, &r, Vec::new()).expect("starts");
    b.add(&mut c, BlobType::Data, d_id, data).expect("adds");
    b.add(&mut c, BlobType::Tree, t_id, tree).expect("adds");
    let (stored, entries, name) = b.finish().expect("finishes");
    assert_eq!(name, Id::of_stored(&stored));
    let header = Header::new(ObjectType::Pack, TAG).encode();
    assert_eq!(stored[..HEADER_LEN], header);
    let entry = |ty: u8, id: &Id, len: usize| cat(&[&[ty, 0], &id.0, &le32(len), &le32(len)]);
    let table = cat(&[
        &le32(2),
        &entry(1, &d_id, data.len()),
        &entry(2, &t_id, tree.len()),
    ]);
    let plain = cat(&[
        header.as_slice(),
        data,
        tree,
        &table,
        &le32(table.len()),
        b"CPKT",
    ]);
    let got = crypt::decrypt(
        &identities(),
        &stored[HEADER_LEN..],
        crate::pack::MAX_PACK_LEN,
    )
    .expect("opens");
    assert_eq!(got, plain);
    same(h(&plain), "434f4f5001030000abababababababababababababababab636f6f707b226e6f646573223a5b5d7d020000000100590a9ce3c877cb297c51262f2f67f170af85c9edad62152436897cfee23b945b0400000004000000020015b2704ab0e3367ad900e277cfbb121150ee789d93bf238037c00615861e2ade0c0000000c0000005800000043504b54");
    assert_eq!((entries[0].offset, entries[1].offset), (24, 28));
    assert_eq!(crate::pack::parse_table(&plain).expect("parses"), entries);
}

#[test]
fn xchacha20poly1305_is_the_draft_construction() {
    // draft-irtf-cfrg-xchacha-03, appendix A.3.1.
    let key: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
    let nonce: [u8; 24] = std::array::from_fn(|i| 0x40 + i as u8);
    let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").expect("hex");
    let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
    let out = xchacha(&key, &nonce, &aad, plain);
    assert_eq!(out.len(), plain.len() + 16, "the 16-byte tag is appended");
    same(h(&out[..plain.len()]), "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e");
    same(h(&out[plain.len()..]), "c0875924c1c7987947deafd8780acf49");
}

fn fixed_index() -> IndexFile {
    IndexFile {
        packs: vec![IndexPack {
            id: Id([0xcd; 32]),
            stored_size: 1000,
        }],
        superseded: vec![],
        entries: vec![IndexEntry {
            id: blob_id(&ID_KEY, BlobType::Data, b"coop"),
            pack: 0,
            ty: BlobType::Data,
            compression: 0,
            offset: 24,
            stored_len: 4,
            raw_len: 4,
        }],
        signer: None,
    }
}

/// The index body of SPEC.md section 7 for [`fixed_index`], with `superseded`.
fn index_body(superseded: &[Id]) -> Vec<u8> {
    let mut b = cat(&[b"CIDX", &le32(1), &[0xcd; 32], &1000u64.to_le_bytes()]);
    b.extend_from_slice(&le32(superseded.len()));
    for s in superseded {
        b.extend_from_slice(&s.0);
    }
    b.extend_from_slice(&le32(1));
    let e = blob_id(&ID_KEY, BlobType::Data, b"coop");
    b.extend_from_slice(&cat(&[
        &e.0,
        &le32(0),
        &[1, 0],
        &le32(24),
        &le32(4),
        &le32(4),
    ]));
    b
}

#[test]
fn index_vector_unsigned() {
    let f = fixed_index();
    let header = Header::new(ObjectType::Index, TAG).encode();
    let body = index_body(&[]);
    let stored = cat(&[
        &header,
        &nonce(),
        &xchacha(&INDEX_KEY, &nonce(), &header, &body),
    ]);
    assert_eq!(f.seal_with_nonce(&INDEX_KEY, TAG, None, nonce()), stored);
    same(h(&stored), "434f4f5001040000abababababababababababababababab000102030405060708090a0b0c0d0e0f1011121314151617d853962ae32c5c5724e5aef1a5c4e714cc729514cda2b7481fc6d84f05dec449ee4cb9d7d40cc63bdd059ed82196b558ebd1ca78625b098d0bd5110c95133b719ee20e6bde4ab1d4d4cbf9ddcc589102e1d0f41b789aa7cd2cf343640b51a81ddc7d1d8b3c0157442b3318e227e54239e72b66d4ee95595a49fe");
    let (hd, back) = IndexFile::open(&INDEX_KEY, &stored).expect("opens");
    assert_eq!((hd.tenant, back), (TAG, f));
}

#[test]
fn index_vector_signed() {
    let mut f = fixed_index();
    f.superseded = vec![Id([0xee; 32])];
    let header = Header::new(ObjectType::Index, TAG).encode();
    let body = index_body(&f.superseded);
    let sig = sk(&AUTHORITY_SEED).sign(&cat(&[b"coop-index-v1\0", &header, &body]));
    same(h(&sig.to_bytes()), "746a5ccf7cb8a5540281273136c8560291cbf254caec058da12a9bcab28a44c4f34c6913e3632a9fd4f008ce11ce36ce720f2e7023a29fd64ea9fc959b38db03");
    let plain = cat(&[&body, &pk(&AUTHORITY_SEED), &sig.to_bytes()]);
    let stored = cat(&[
        &header,
        &nonce(),
        &xchacha(&INDEX_KEY, &nonce(), &header, &plain),
    ]);
    assert_eq!(
        f.seal_with_nonce(&INDEX_KEY, TAG, Some(&sk(&AUTHORITY_SEED)), nonce()),
        stored
    );
    same(
        b3(&stored),
        "65bc823ce3c0062d40c2d99ae3df1290eb134dda86f8523d9d990d0be60f2762",
    );
    let (_, back) = IndexFile::open(&INDEX_KEY, &stored).expect("opens");
    assert_eq!(back.signer, Some(pk(&AUTHORITY_SEED)));
    assert_eq!(back.superseded, f.superseded);
}

/// A signed control object as SPEC.md section 13 builds it.
fn control_object(ty: ObjectType, tag: TenantTag, json: &[u8], seed: &[u8; 32]) -> Vec<u8> {
    let header = Header::new(ty, tag).encode();
    let sig = sk(seed).sign(&cat(&[b"coop-control-v1\0", &header, json]));
    let plain = cat(&[&le32(json.len()), json, &pk(seed), &sig.to_bytes()]);
    cat(&[
        &header,
        &nonce(),
        &xchacha(&INDEX_KEY, &nonce(), &header, &plain),
    ])
}

#[test]
fn control_object_vector() {
    let p = Protection {
        snapshot: Id([0x5a; 32]),
        created: 1_764_000_000,
        note: "before the upgrade".into(),
    };
    let json = serde_json::to_vec(&p).expect("serializes");
    same(
        String::from_utf8_lossy(&json),
        r#"{"snapshot":"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a","created":1764000000,"note":"before the upgrade"}"#,
    );
    let header = Header::new(ObjectType::Protection, TAG);
    let sig = sk(&AUTHORITY_SEED).sign(&cat(&[b"coop-control-v1\0", &header.encode(), &json]));
    same(h(&sig.to_bytes()), "109985381b29490f6224459e93b0dc2525ab8c4328cc89122d049aa9d97d7edd92292354545b86f14491db1156254164481fada73831b2b839112231e4834904");
    let stored = control_object(ObjectType::Protection, TAG, &json, &AUTHORITY_SEED);
    assert_eq!(
        control::seal_signed_with_nonce(&INDEX_KEY, &header, &json, &sk(&AUTHORITY_SEED), nonce()),
        stored
    );
    same(h(&stored), "434f4f5001080000abababababababababababababababab000102030405060708090a0b0c0d0e0f10111213141516171b1ad272990e2f3988581054077d08e3238a39ec615a1bb0b33e74b7a92668b142b4152f78f46ac35433ffed40a3d46d8ae4ab4d026e68b833eaecda3c51916d83864971901821911a7b5105000fe513b67ba4c7f9d356f7589627463060872be84d29bb0c316368095dda07a73778881447885c3407422444608e2a0b056ffea1e51170432f1e00b671c94b82f95b93d44c7eb44bf19df8861d6edf35fbe2751d3c6c94a1a75dc298058a21a70d445f66203aee62a46bfc00030b4bc82664a1941505fb77cc6fb5b9180ce8b99510aec35a487ad4f03a5c0cd51061760c37a6a3a4e921523759857dc57aaf053c4f9ee5bfe5c3");
    assert_eq!(
        Protection::open(&INDEX_KEY, TAG, &stored).expect("opens"),
        (p, pk(&AUTHORITY_SEED))
    );
}

#[test]
fn control_json_shapes() {
    let lock = Lock {
        kind: LockKind::Backup,
        holder: Holder {
            host: "box".into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            boot_id: "6f1c3bde-5d1e-4c4e-9f43-2a8b2e8f6b1a".into(),
            pid_ns: 4_026_531_836,
            pid: 4242,
            start: 123_456,
            token: "00112233445566778899aabbccddeeff".into(),
        },
        created: 1_764_000_000,
        refreshed: 1_764_000_300,
        nonce: "0011223344556677".into(),
    };
    same(
        serde_json::to_string(&lock).expect("json"),
        r#"{"kind":"backup","holder":{"host":"box","machine_id":"0123456789abcdef0123456789abcdef","boot_id":"6f1c3bde-5d1e-4c4e-9f43-2a8b2e8f6b1a","pid_ns":4026531836,"pid":4242,"start":123456,"token":"00112233445566778899aabbccddeeff"},"created":1764000000,"refreshed":1764000300,"nonce":"0011223344556677"}"#,
    );
    let plan = PrunePlan {
        created: 1_764_000_000,
        packs: vec![Id([0xc1; 32])],
        index: vec![Id([0xc2; 32])],
        replacement: Some(Id([0xc3; 32])),
        new_packs: vec![Id([0xc4; 32])],
        verified: vec![(Id([0xc5; 32]), Id([0xc6; 32]))],
    };
    same(
        serde_json::to_string(&plan).expect("json"),
        r#"{"created":1764000000,"packs":["c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"],"index":["c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"],"replacement":"c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3","new_packs":["c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4"],"verified":[["c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5","c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6c6"]]}"#,
    );
    let rec = ForgetRecord {
        created: 1_764_000_000,
        snapshots: vec![Id([0x5a; 32])],
    };
    same(
        serde_json::to_string(&rec).expect("json"),
        r#"{"created":1764000000,"snapshots":["5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"]}"#,
    );
    // Each opens when sealed as SPEC.md says.
    for (ty, json) in [
        (ObjectType::Lock, serde_json::to_vec(&lock).expect("json")),
        (
            ObjectType::PrunePlan,
            serde_json::to_vec(&plan).expect("json"),
        ),
        (
            ObjectType::Forgotten,
            serde_json::to_vec(&rec).expect("json"),
        ),
    ] {
        let stored = control_object(ty, TAG, &json, &WRITER_SEED);
        let (_, got, signer) =
            control::open_signed(&INDEX_KEY, ty, &stored, control::MAX_CONTROL_LEN).expect("opens");
        assert_eq!((got, signer), (json, pk(&WRITER_SEED)));
    }
    assert!(Lock::open(
        &INDEX_KEY,
        TAG,
        &control_object(
            ObjectType::Lock,
            TAG,
            &serde_json::to_vec(&lock).expect("json"),
            &WRITER_SEED
        )
    )
    .is_ok());
}

#[test]
fn registry_vector() {
    let reg = Registry {
        generation: 3,
        updated: "2026-11-23T00:00:00Z".into(),
        recovery: vec![recipient()],
        recovery_setup: None,
        recovery_next: None,
        members: vec![Member {
            name: "alice".into(),
            recipients: vec![SSH_PUBLIC.into()],
            quota: Some(5 << 30),
            tenant_tag: [0xa1; 16],
            added: "2026-11-23T00:00:00Z".into(),
            id_key: [0xa2; 32],
            index_key: [0xa3; 32],
            data_recipient: recipient(),
            authority: pk(&[0xa4; 32]),
            removed: None,
            recovery: None,
            material: None,
        }],
        admins: vec![],
        groups: vec![],
        coop_data_recipient: None,
    };
    let json = serde_json::to_vec(&reg).expect("serializes");
    same(
        String::from_utf8_lossy(&json),
        r#"{"generation":3,"updated":"2026-11-23T00:00:00Z","recovery":["age1yrze7pqyw8r80tj24u3u0ep03x520vqm7wdjnv9l0yeh2u0x6uzql9jmxk"],"members":[{"name":"alice","recipients":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlGlHMcZ3KWHGjyG5lxmzQO8olYzN0gK+jxvBZ8UHMu test@coop"],"quota":5368709120,"tenant_tag":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1","added":"2026-11-23T00:00:00Z","id_key":"a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2","index_key":"a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3a3","data_recipient":"age1yrze7pqyw8r80tj24u3u0ep03x520vqm7wdjnv9l0yeh2u0x6uzql9jmxk","authority":"a0a0c227d8a1254393590789c18060efeaa0937196a6b7bdb7061841907975a7"}]}"#,
    );
    let header = Header::new(ObjectType::Registry, TAG);
    let sig = sk(&AUTHORITY_SEED).sign(&cat(&[b"coop-control-v1\0", &header.encode(), &json]));
    same(h(&sig.to_bytes()), "22063ed644e273ba9747408617980004d52d3a5498754e811580fe2545d591c99b1d3289667a9693ff29530ee0aa0dc8dcafbcbb37506a63addb16153be65704");
    let stored = control_object(ObjectType::Registry, TAG, &json, &AUTHORITY_SEED);
    same(
        b3(&stored),
        "7b0580160f986260330b8d449ed98fffd87f751937e8591987502b11721ef8c5",
    );
    let admin = pk(&AUTHORITY_SEED);
    assert_eq!(
        Registry::open(&INDEX_KEY, TAG, &stored, |k| k == &admin).expect("opens"),
        (reg.clone(), admin)
    );
    assert!(Registry::open(&INDEX_KEY, TAG, &stored, |_| false).is_err());
    // The code writes the same plaintext (its nonce is random).
    let sealed = reg.seal(&INDEX_KEY, TAG, &sk(&AUTHORITY_SEED));
    let (_, a) = control::aead_open(
        &INDEX_KEY,
        ObjectType::Registry,
        &sealed,
        control::MAX_CONTROL_LEN,
    )
    .expect("opens");
    let (_, b) = control::aead_open(
        &INDEX_KEY,
        ObjectType::Registry,
        &stored,
        control::MAX_CONTROL_LEN,
    )
    .expect("opens");
    assert_eq!(a, b);
}

#[test]
fn writer_list_vector() {
    let list = WriterList {
        repo_id: Id([0x01; 32]),
        generation: 2,
        updated: "2026-12-01T00:00:00Z".into(),
        writers: vec![
            SiteWriter {
                name: "hackspace".into(),
                public_key: pk(&WRITER_SEED),
                added: "2026-11-23T00:00:00Z".into(),
                revoked: None,
            },
            SiteWriter {
                name: "stolen".into(),
                public_key: pk(&[0x03; 32]),
                added: "2026-11-23T00:00:00Z".into(),
                revoked: Some(Revocation {
                    time: "2026-12-01T00:00:00Z".into(),
                    snapshots: vec![Id([0x5a; 32])],
                }),
            },
        ],
        log_quorum: 0,
        witnesses: vec![],
    };
    let json = serde_json::to_vec(&list).expect("serializes");
    same(
        String::from_utf8_lossy(&json),
        r#"{"repo_id":"0101010101010101010101010101010101010101010101010101010101010101","generation":2,"updated":"2026-12-01T00:00:00Z","writers":[{"name":"hackspace","public_key":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","added":"2026-11-23T00:00:00Z"},{"name":"stolen","public_key":"ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d1","added":"2026-11-23T00:00:00Z","revoked":{"time":"2026-12-01T00:00:00Z","snapshots":["5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"]}}]}"#,
    );
    let header = Header::new(ObjectType::Writers, [0; 16]).encode();
    let sig = sk(&AUTHORITY_SEED).sign(&cat(&[b"coop-writers-v1\0", &header, &json]));
    same(h(&sig.to_bytes()), "4a020f427b92eec136b70ad58419f637b3f91290300f6b1d9352824f6a0b65de7dbfc81637aa9f1e389331c4ffe9fa5450b36bc8d3153049b1d6895dfc087c0f");
    let stored = cat(&[
        &header,
        &le32(json.len()),
        &json,
        &pk(&AUTHORITY_SEED),
        &sig.to_bytes(),
    ]);
    assert_eq!(list.seal(&sk(&AUTHORITY_SEED)), stored);
    same(
        b3(&stored),
        "98a2d3891b12de2d0cb402ebb1bed937250589f9f6fe3f580f79260dd9b5646c",
    );
    let admin = pk(&AUTHORITY_SEED);
    assert_eq!(
        WriterList::open(&stored, |k| k == &admin).expect("opens"),
        (list, admin)
    );
}

#[test]
fn snapshot_vector() {
    let inv = Inventory {
        packs: vec![Id([0xcd; 32])],
        index: vec![Id([0xce; 32])],
    };
    let inv_bytes = cat(&[&le32(2), &[3], &[0xcd; 32], &[4], &[0xce; 32]]);
    assert_eq!(inv.encode(), inv_bytes);
    same(
        b3(&inv_bytes),
        "cc806116e304f58adb51101df397ef361ff5e1377a2a82044d9f95d70a68f9c3",
    );
    let s = Snapshot {
        version: 1,
        repo_id: Id([0x01; 32]),
        tenant: "coop".into(),
        time: "2026-11-23T18:00:00.123456789Z".into(),
        host: "box".into(),
        username: "root".into(),
        paths: vec!["/srv/forgejo".into()],
        tags: vec!["daily".into()],
        tree: blob_id(&ID_KEY, BlobType::Tree, br#"{"nodes":[]}"#),
        writer: pk(&WRITER_SEED),
        writer_name: "site-a".into(),
        program: "coop 0.1.0".into(),
        summary: Summary {
            files_new: 1,
            total_files: 1,
            total_bytes: 4,
            ..Default::default()
        },
        manifest: None,
        inventory: Id::of_stored(&inv_bytes),
    };
    let json = serde_json::to_vec(&s).expect("serializes");
    same(
        String::from_utf8_lossy(&json),
        r#"{"version":1,"repo_id":"0101010101010101010101010101010101010101010101010101010101010101","tenant":"coop","time":"2026-11-23T18:00:00.123456789Z","host":"box","username":"root","paths":["/srv/forgejo"],"tags":["daily"],"tree":"15b2704ab0e3367ad900e277cfbb121150ee789d93bf238037c00615861e2ade","writer":"8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394","writer_name":"site-a","program":"coop 0.1.0","summary":{"files_new":1,"files_changed":0,"files_unchanged":0,"dirs":0,"total_files":1,"total_bytes":4,"bytes_read":0,"blobs_added":0,"bytes_added":0,"bytes_stored":0,"duration_ms":0},"inventory":"cc806116e304f58adb51101df397ef361ff5e1377a2a82044d9f95d70a68f9c3"}"#,
    );
    let header = Header::new(ObjectType::Snapshot, TAG).encode();
    let sig = sk(&WRITER_SEED).sign(&cat(&[b"coop-snapshot-v1\0", &header, &json]));
    same(h(&sig.to_bytes()), "8b7a65e3498e7a2224b2b8cdd25f1a571840e931c150e9f9f333db2c6bfb1e64cb10a9bf1d83446511390a84761b023faf9bc0347b1616aa476a3eb9cb196401");
    let plain = cat(&[&header, &le32(json.len()), &json, &sig.to_bytes()]);
    let front = cat(&[&header, &le32(inv_bytes.len()), &inv_bytes]);
    let stored = cat(&[&front, &age_to_test_identity(&plain)]);
    let writer = pk(&WRITER_SEED);
    let ids = identities();
    assert_eq!(
        Snapshot::open(&ids, &stored, (Id([0x01; 32]), TAG), |k| k == &writer).expect("opens"),
        s
    );
    // The code writes exactly this clear front and plaintext.
    let mut unsealed = s.clone();
    unsealed.writer = [0; 32];
    unsealed.inventory = Id::default();
    let r = vec![crypt::parse_recipient(&recipient()).expect("recipient")];
    let sealed = unsealed
        .seal(&sk(&WRITER_SEED), &r, TAG, &inv)
        .expect("seals");
    assert_eq!(sealed[..front.len()], front);
    assert_eq!(
        crypt::decrypt(
            &ids,
            &sealed[front.len()..],
            crate::snapshot::MAX_SNAPSHOT_LEN
        )
        .expect("opens"),
        plain
    );
}

#[test]
fn manifest_vector() {
    let m = Manifest {
        format: "coop-manifest".into(),
        version: 1,
        repo_id: Id([0x01; 32]),
        tenant: "member/alice".into(),
        site: "hackspace".into(),
        time: "2026-11-23T18:00:00Z".into(),
        tree: Id([0x02; 32]),
        sources: vec!["srv/nextcloud/data/alice/files".into()],
        files: vec![ManifestFile {
            path: "srv/nextcloud/data/alice/files/a.txt".into(),
            path_hex: None,
            size: 4,
            mode: 0o644,
            mtime_ns: 1_700_000_000_123_456_789,
            blake3: b3(b"coop"),
        }],
    };
    let signed = SignedManifest::sign(&m, &sk(&WRITER_SEED));
    same(
        &signed.payload,
        r#"{"format":"coop-manifest","version":1,"repo_id":"0101010101010101010101010101010101010101010101010101010101010101","tenant":"member/alice","site":"hackspace","time":"2026-11-23T18:00:00Z","tree":"0202020202020202020202020202020202020202020202020202020202020202","sources":["srv/nextcloud/data/alice/files"],"files":[{"path":"srv/nextcloud/data/alice/files/a.txt","size":4,"mode":420,"mtime_ns":1700000000123456789,"blake3":"b81a09d3061e78b0d968b51cf6e6154b66e8e82aba7a13923885d82a2e0ad106"}]}"#,
    );
    let sig = sk(&WRITER_SEED).sign(&cat(&[b"coop-manifest-v1\0", signed.payload.as_bytes()]));
    same(&signed.signature, &h(&sig.to_bytes()));
    same(&signed.signature, "bc688afa63e3d5902fac154d5bffff79df12ab075cd99d858119851c7334b81de14326f6335d33989c1d9fc397c63ce1c87f36509c27bafa197e199dab586d09");
    same(&signed.signer, &h(&pk(&WRITER_SEED)));
    assert_eq!(
        signed.verify().expect("verifies"),
        (m.clone(), pk(&WRITER_SEED))
    );
    assert_eq!(m.export_paths(), vec![b"files/a.txt".to_vec()]);
}

#[test]
fn tree_vector() {
    let mut file = Node::new(b"a.txt".to_vec(), NodeKind::File);
    file.mode = 0o644;
    file.uid = 1000;
    file.gid = 1000;
    file.user = Some("alice".into());
    file.group = Some("alice".into());
    file.mtime_ns = 1_700_000_000_123_456_789;
    file.size = 4 + (1 << 20);
    file.content = vec![
        Part::Blob(blob_id(&ID_KEY, BlobType::Data, b"coop")),
        Part::Hole { hole: 1 << 20 },
    ];
    file.xattrs = vec![Xattr {
        name: "user.k".into(),
        value: b"v".to_vec(),
    }];
    file.link_group = Some(1);
    let mut dir = Node::new(b"dir".to_vec(), NodeKind::Dir);
    dir.mode = 0o755;
    dir.mtime_ns = -1;
    dir.subtree = Some(blob_id(&ID_KEY, BlobType::Tree, br#"{"nodes":[]}"#));
    let mut empty = Node::new(b"empty".to_vec(), NodeKind::File);
    empty.mode = 0o600;
    let mut link = Node::new(b"link".to_vec(), NodeKind::Symlink);
    link.mode = 0o777;
    link.target = Some(b"a.txt".to_vec());
    let mut null = Node::new(b"null".to_vec(), NodeKind::Chardev);
    null.mode = 0o666;
    null.rdev = Some((1 << 8) | 3); // major 1, minor 3 in the Linux dev_t encoding
    let mut odd = Node::new(vec![0xff, b'x'], NodeKind::Symlink);
    odd.mode = 0o777;
    odd.target = Some(vec![0xfe]);
    let mut t = Tree {
        nodes: vec![odd, null, link, empty, dir, file],
        parts: vec![],
    };
    let json = t.encode();
    same(
        String::from_utf8_lossy(&json),
        r#"{"nodes":[{"name":"a.txt","type":"file","mode":420,"uid":1000,"gid":1000,"user":"alice","group":"alice","mtime_ns":1700000000123456789,"size":1048580,"content":["590a9ce3c877cb297c51262f2f67f170af85c9edad62152436897cfee23b945b",{"hole":1048576}],"xattrs":[{"name":"user.k","value":"76"}],"link_group":1},{"name":"dir","type":"dir","mode":493,"uid":0,"gid":0,"mtime_ns":-1,"subtree":"15b2704ab0e3367ad900e277cfbb121150ee789d93bf238037c00615861e2ade"},{"name":"empty","type":"file","mode":384,"uid":0,"gid":0,"mtime_ns":0},{"name":"link","type":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":0,"target":"a.txt"},{"name":"null","type":"chardev","mode":438,"uid":0,"gid":0,"mtime_ns":0,"rdev":259},{"name_hex":"ff78","type":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":0,"target_hex":"fe"}]}"#,
    );
    same(
        blob_id(&ID_KEY, BlobType::Tree, &json).to_hex(),
        "283a043bda53b205d4ba212ae542ddd596e10a290a25db7964b04209df91d461",
    );
    assert_eq!(Tree::decode(&json).expect("decodes"), t);
    same(
        blob_id(&ID_KEY, BlobType::Tree, br#"{"nodes":[]}"#).to_hex(),
        "15b2704ab0e3367ad900e277cfbb121150ee789d93bf238037c00615861e2ade",
    );
}

#[test]
fn ssh_ed25519_recipient_vector() {
    let r = crypt::ssh_ed25519_to_x25519_recipient(SSH_PUBLIC).expect("converts");
    same(
        &r,
        "age1hg2sa7sest9jsxzxpuchnfz6hrgqzusx0emj5gh4urgh0jsknsss40ts97",
    );
    let (hrp, u) = bech32::decode(&r).expect("bech32");
    assert_eq!(hrp.as_str(), "age");
    same(
        h(&u),
        "ba150efa1982cb2818460f3179a45ab8d00172067e772a22f5e0d177ca169c21",
    );
    // The SSH key's own Edwards point, for reference.
    use base64::Engine;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(SSH_PUBLIC.split_whitespace().nth(1).expect("base64"))
        .expect("base64");
    same(
        h(&blob[blob.len() - 32..]),
        "c94694731c6772961c68f21b99719b340ef28958ccdd202be8f1bc167c50732e",
    );
    // What is encrypted to it opens with the SSH private key.
    let mut out = Vec::new();
    crypt::encrypt_to(
        &[crypt::parse_recipient(SSH_PUBLIC).expect("recipient")],
        &[b"x"],
        &mut out,
    )
    .expect("encrypts");
    let ids = crypt::parse_identities(SSH_PRIVATE.as_bytes()).expect("identity");
    assert_eq!(crypt::decrypt(&ids, &out, 10).expect("opens"), b"x");
}

/// Every decoder refuses every proper prefix of a valid object (the fuzz targets in `fuzz/`
/// call the same decoders on arbitrary bytes).
#[test]
fn every_decoder_refuses_every_truncation() {
    fn prefixes(b: &[u8]) -> impl Iterator<Item = &[u8]> {
        (0..b.len()).map(move |n| &b[..n])
    }
    let sk = sk(&AUTHORITY_SEED);
    let admin = pk(&AUTHORITY_SEED);
    let index = fixed_index().seal_with_nonce(&INDEX_KEY, TAG, Some(&sk), nonce());
    for p in prefixes(&index) {
        assert!(IndexFile::open(&INDEX_KEY, p).is_err());
    }
    let plan = PrunePlan {
        created: 1,
        packs: vec![Id([1; 32])],
        index: vec![],
        replacement: None,
        new_packs: vec![],
        verified: vec![],
    }
    .seal(&INDEX_KEY, TAG, &sk);
    for p in prefixes(&plan) {
        assert!(PrunePlan::open(&INDEX_KEY, TAG, p).is_err());
    }
    let registry = Registry::default().seal(&INDEX_KEY, TAG, &sk);
    for p in prefixes(&registry) {
        assert!(Registry::open(&INDEX_KEY, TAG, p, |k| k == &admin).is_err());
    }
    let list = WriterList::default().seal(&sk);
    for p in prefixes(&list) {
        assert!(WriterList::open(p, |k| k == &admin).is_err());
    }
    let inv = Inventory {
        packs: vec![Id([1; 32])],
        index: vec![Id([2; 32])],
    }
    .encode();
    for p in prefixes(&inv) {
        assert!(Inventory::decode(p).is_err());
        assert!(crate::snapshot::read_inventory(p).is_err());
    }
    let config = Config::new(Id([1; 32]), "t".into()).encode();
    // (The last byte is the newline after the JSON.)
    for p in prefixes(&config[..config.len() - 1]) {
        assert!(Config::decode(p).is_err());
    }
    let mut tree = Tree {
        nodes: vec![Node::new(b"a".to_vec(), NodeKind::Fifo)],
        parts: vec![],
    };
    for p in prefixes(&tree.encode()) {
        assert!(Tree::decode(p).is_err());
    }
    let m = serde_json::to_vec(&SignedManifest {
        payload: "{}".into(),
        signer: h(&admin),
        signature: h(&[0; 64]),
    })
    .expect("json");
    for p in prefixes(&m) {
        assert!(serde_json::from_slice::<SignedManifest>(p).is_err());
    }
}

/// What the fuzz targets added with these vectors (`fuzz/fuzz_targets/{control, registry,
/// writers, manifest, inventory, recipient, pack}.rs`) do with their input, run here on a few
/// inputs so that a change of these decoders' signatures or a panic shows up in `cargo test`.
fn fuzz_target_bodies(data: &[u8]) {
    let key = [7u8; 32];
    let tag = [1u8; 16];
    let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    // control
    let _ = Lock::open(&key, tag, data);
    let _ = control::open_signed(&key, ObjectType::PrunePlan, data, control::MAX_CONTROL_LEN);
    let _ = Lock::open(
        &key,
        tag,
        &control::aead_seal(&key, &Header::new(ObjectType::Lock, tag), data),
    );
    let seal = |ty| control::seal_signed(&key, &Header::new(ty, tag), data, &sk);
    let _ = Lock::open(&key, tag, &seal(ObjectType::Lock));
    let _ = PrunePlan::open(&key, tag, &seal(ObjectType::PrunePlan));
    let _ = Protection::open(&key, tag, &seal(ObjectType::Protection));
    let _ = ForgetRecord::open(&key, tag, &seal(ObjectType::Forgotten));
    // registry
    let _ = Registry::open(&key, tag, data, |_| true);
    let _ = Registry::open(&key, tag, &seal(ObjectType::Registry), |_| true);
    // writers
    let _ = WriterList::open(data, |_| true);
    let header = Header::new(ObjectType::Writers, [0; 16]).encode();
    let sig = sk.sign(&cat(&[crate::writers::SIG_DOMAIN, &header, data]));
    let stored = cat(&[
        &header,
        &le32(data.len()),
        data,
        &sk.verifying_key().to_bytes(),
        &sig.to_bytes(),
    ]);
    let _ = WriterList::open(&stored, |_| true);
    // manifest
    if let Ok(s) = serde_json::from_slice::<SignedManifest>(data) {
        let _ = s.verify();
    }
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let _ = m.export_paths();
    }
    if let Ok(payload) = std::str::from_utf8(data) {
        let sig = sk.sign(&cat(&[crate::manifest::SIG_DOMAIN, payload.as_bytes()]));
        let s = SignedManifest {
            payload: payload.to_string(),
            signer: h(&sk.verifying_key().to_bytes()),
            signature: h(&sig.to_bytes()),
        };
        if let Ok((m, _)) = s.verify() {
            let _ = m.export_paths();
        }
    }
    // inventory
    let _ = Inventory::decode(data);
    let _ = crate::snapshot::read_inventory(data);
    // recipient
    let _ = crypt::parse_identities(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crypt::parse_recipient(s);
        let _ = crypt::parse_recipients_file(s);
        let _ = crypt::ssh_ed25519_to_x25519_recipient(s);
    }
    // pack
    let ids = identities();
    let _ = crate::pack::open(&ids, data);
    let _ = crate::pack::read_table(&ids, std::io::Cursor::new(data));
}

#[test]
fn fuzz_target_bodies_do_not_panic_on_samples() {
    let manifest = SignedManifest::sign(
        &Manifest {
            format: "coop-manifest".into(),
            version: 1,
            repo_id: Id([1; 32]),
            tenant: "member/a".into(),
            site: "s".into(),
            time: "t".into(),
            tree: Id([2; 32]),
            sources: vec!["x".into()],
            files: vec![],
        },
        &sk(&WRITER_SEED),
    );
    let samples: Vec<Vec<u8>> = vec![
        vec![],
        b"COOP".to_vec(),
        Header::new(ObjectType::Lock, [1; 16]).encode().to_vec(),
        br#"{"kind":"backup"}"#.to_vec(),
        br#"{"generation":1,"updated":"t","recovery":[],"members":[{"name":"../x"}]}"#.to_vec(),
        serde_json::to_vec(&manifest).expect("json"),
        manifest.payload.clone().into_bytes(),
        SSH_PUBLIC.as_bytes().to_vec(),
        SSH_PRIVATE.as_bytes().to_vec(),
        IDENTITY.as_bytes().to_vec(),
        (0..=255u8).collect(),
    ];
    for s in &samples {
        fuzz_target_bodies(s);
    }
}

/// The access log (SPEC section 24): three entries, their RFC 9162 tree, an inclusion and a
/// consistency proof, a checkpoint signed by the admin key and a witness's cosignature, each
/// built by hand from SHA-256, Ed25519 and byte concatenation and compared with the crate's.
#[test]
fn log_vectors() {
    use crate::tlog::{self, Checkpoint, Entry, Event, Reason};
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let admin = sk(&AUTHORITY_SEED);
    let admin_pub = admin.verifying_key().to_bytes();
    let origin = "coop/0101010101010101/admin/8a88e3dd";
    let entries: Vec<Vec<u8>> = (0..3u8)
        .map(|i| {
            Entry {
                ty: tlog::ENTRY_TYPE.into(),
                time: format!("2026-11-23T00:00:0{i}Z"),
                event: if i == 1 { Event::Export } else { Event::Backup },
                actor: hex::encode(admin_pub),
                actor_name: "admin".into(),
                tenant: Some("ab".repeat(16)),
                reason: (i == 1).then_some(Reason::LegalRequest),
                object: Some(format!("{i:032x}")),
                data: Default::default(),
                detail: None,
            }
            .encode()
        })
        .collect();
    same(
        String::from_utf8(entries[1].clone()).unwrap(),
        r#"{"type":"coop-log-entry/1","time":"2026-11-23T00:00:01Z","event":"export","actor":"8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c","actor_name":"admin","tenant":"abababababababababababababababab","reason":"legal-request","object":"00000000000000000000000000000001"}"#,
    );
    let leaf = |e: &[u8]| -> [u8; 32] {
        Sha256::new()
            .chain_update([0u8])
            .chain_update(e)
            .finalize()
            .into()
    };
    let node = |l: &[u8; 32], r: &[u8; 32]| -> [u8; 32] {
        Sha256::new()
            .chain_update([1u8])
            .chain_update(l)
            .chain_update(r)
            .finalize()
            .into()
    };
    let l: Vec<[u8; 32]> = entries.iter().map(|e| leaf(e)).collect();
    let root = node(&node(&l[0], &l[1]), &l[2]);
    assert_eq!(tlog::root(&l), root);
    // Inclusion of entry 1 in the tree of 3: [leaf 0, leaf 2]; consistency 2 -> 3: [leaf 2].
    assert_eq!(tlog::inclusion_proof(&l, 1), vec![l[0], l[2]]);
    assert_eq!(tlog::consistency_proof(&l, 2), vec![l[2]]);
    same(
        hex::encode(l[1]),
        "b2c840d94c1b588d90163788664687808a67b3d987c7fd8c5d60cb45727a7418",
    );
    same(
        hex::encode(root),
        "8927067a408cb2a487b0320cc23b86f6c3e91c2589631bc44ff82fb51c71b352",
    );
    // The checkpoint: body, a blank line, the signature line.
    let body = format!("{origin}\n3\n{}\n", b64(&root));
    let kid = |name: &str, ty: u8, key: &[u8; 32]| -> [u8; 4] {
        let h: [u8; 32] = Sha256::new()
            .chain_update(name.as_bytes())
            .chain_update([0x0a, ty])
            .chain_update(key)
            .finalize()
            .into();
        [h[0], h[1], h[2], h[3]]
    };
    let sig = admin.sign(body.as_bytes()).to_bytes();
    let mut signed = kid(origin, 0x01, &admin_pub).to_vec();
    signed.extend_from_slice(&sig);
    let note = format!("{body}\n\u{2014} {origin} {}\n", b64(&signed));
    let cp = Checkpoint {
        origin: origin.into(),
        size: 3,
        root,
    };
    assert_eq!(tlog::sign_checkpoint(&cp, &admin), note.as_bytes());
    same(&note, "coop/0101010101010101/admin/8a88e3dd\n3\niScGekCMsqSHsDIMwjuG9sPpHCWJYxvET/gvtRxxs1I=\n\n— coop/0101010101010101/admin/8a88e3dd 9MN6XANGeu0bKiVfJsyY7IDgEoRZPONtqTDRl0C1xtAaiHNGJ1WcDbF5UY2KExkOssFy9FEwPylkvE8iErEH3439IQM=\n");
    // A cosignature by the witness `coop-witness/pi/8139770e` (writer seed), time 1764000000.
    let w = sk(&WRITER_SEED);
    let wpub = w.verifying_key().to_bytes();
    let name = "coop-witness/pi/8139770e";
    let t: u64 = 1_764_000_000;
    let msg = format!("cosignature/v1\ntime {t}\n{body}");
    let mut c = kid(name, 0x04, &wpub).to_vec();
    c.extend_from_slice(&t.to_be_bytes());
    c.extend_from_slice(&w.sign(msg.as_bytes()).to_bytes());
    let line = format!("\u{2014} {name} {}\n", b64(&c));
    assert_eq!(tlog::cosign(&cp, name, &w, t), line.as_bytes());
    assert_eq!(
        tlog::verify_cosignature(&cp, line.as_bytes(), name, &wpub).unwrap(),
        t
    );
    same(&line, "— coop-witness/pi/8139770e LYRcTwAAAABpJIEAPPGu7WvYSGtyk0lmfrJB4LnwnvTC7SQs4lgeIMBmMiMffgfNgFPPTPIWAuKfWzVDMBER6TrLcUqnP/et40c5Dw==\n");
}

/// The C2SP specifications' own examples (C2SP/C2SP at 5ba5ee8: signed-note.md,
/// tlog-checkpoint.md, tlog-cosignature.md), checked with coop's code so that outside C2SP
/// tooling and coop agree on key IDs, checkpoint bodies and cosignature lines. Only
/// signed-note.md publishes a key with its example; the checkpoint and cosignature examples
/// come without their public keys, so their signatures cannot be verified, only their
/// layout (body, key ID, timestamp, signature length) checked.
#[test]
fn c2sp_examples() {
    use crate::tlog::{self, Checkpoint};
    use base64::Engine;
    let b64d = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
    // signed-note.md, "Verifier keys / Example": the vkey and the note it verifies.
    let vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let parts: Vec<&str> = vkey.split('+').collect();
    let material = b64d(parts[2]);
    assert_eq!(material[0], 0x01, "an Ed25519 vkey");
    let public: [u8; 32] = material[1..].try_into().unwrap();
    assert_eq!(
        format!("{:08x}", tlog::key_id(parts[0], &public, false)),
        parts[1]
    );
    let text = "This is an example message.\n";
    let sig = b64d(
        "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=",
    );
    assert_eq!(hex::encode(&sig[..4]), parts[1], "the line names the key");
    ed25519_dalek::VerifyingKey::from_bytes(&public)
        .unwrap()
        .verify_strict(
            text.as_bytes(),
            &ed25519_dalek::Signature::from_slice(&sig[4..]).unwrap(),
        )
        .unwrap();
    // The same note, if it were a checkpoint body, would be refused by coop's checkpoint
    // reader (three lines: origin, size, root); the signature check is the signed-note one.
    // tlog-checkpoint.md's example: coop parses and re-emits the body byte for byte.
    let body =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    let cp = Checkpoint::parse_body(body.as_bytes()).unwrap();
    assert_eq!(cp.origin, "example.com/behind-the-sofa");
    assert_eq!(cp.size, 20_852_163);
    assert_eq!(cp.body(), body);
    // Its log signature line: key ID (4 bytes) and an Ed25519 signature (64 bytes).
    let log_sig = b64d("Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=");
    assert_eq!(log_sig.len(), 4 + 64);
    // tlog-cosignature.md's example line by `witness.example.com/w1`: key ID, the big-endian
    // Unix time (2023-03-20 12:25:47 UTC), then the Ed25519 signature: what
    // `tlog::cosign` writes and `tlog::verify_cosignature` reads.
    let co = b64d("jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==");
    assert_eq!(co.len(), 4 + 8 + 64);
    assert_eq!(hex::encode(&co[..4]), "8d66cf3f");
    assert_eq!(
        u64::from_be_bytes(co[4..12].try_into().unwrap()),
        1_679_315_147
    );
    // A coop cosignature has the same layout, so an outside C2SP witness's line is read as
    // one (and refused here only because the example's key is not published).
    let line = format!(
        "\u{2014} witness.example.com/w1 {}\n",
        base64::engine::general_purpose::STANDARD.encode(&co)
    );
    assert!(
        tlog::verify_cosignature(&cp, line.as_bytes(), "witness.example.com/w1", &public).is_err()
    );
}
