//! age encryption helpers: recipients, identities, and bounded decryption.
//!
//! age gives confidentiality only: anyone who holds a recipient (public) key can produce a
//! valid age file. Every caller therefore authenticates what it decrypted by other means
//! (keyed blob IDs, MACs, signatures).

use std::io::{Read, Write};
use std::str::FromStr;

/// An age recipient (public key): native X25519 or ssh-ed25519/ssh-rsa.
pub type Recipient = Box<dyn age::Recipient + Send + Sync>;
/// An age identity (secret key).
pub type Identity = Box<dyn age::Identity + Send + Sync>;

/// Errors from encryption, decryption and key parsing.
#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("not an age or ssh recipient: {text:?} ({reason})")]
    BadRecipient { text: String, reason: String },
    #[error("no recipients were given")]
    NoRecipients,
    #[error("the identity file holds no usable key ({reason})")]
    BadIdentity { reason: String },
    #[error("none of the given identities is a recipient of this object")]
    NotRecipient,
    #[error("decryption failed: the object is damaged or was not written by coop ({reason})")]
    Damaged { reason: String },
    #[error("decrypted plaintext is larger than the {limit}-byte limit for this object")]
    TooLarge { limit: usize },
    #[error("encryption failed: {reason}")]
    Encrypt { reason: String },
}

/// Parses one recipient string (`age1…` or `ssh-ed25519 …`).
///
/// An `ssh-ed25519` key is used as the X25519 key it converts to (the birational map
/// from Edwards to Montgomery form, as age's own ssh-ed25519 recipient does internally),
/// written as a native X25519 stanza. age's ssh-ed25519 stanza carries a tag computed from
/// the SSH public key, which is often public (a forge, a key server): a storage site could
/// then link a member's tenant to the person. The X25519 stanza carries no tag. `ssh-rsa`
/// keys are refused for the same reason (their stanza is tagged too, and nothing converts).
pub fn parse_recipient(text: &str) -> Result<Recipient, CryptError> {
    let t = text.trim();
    if let Ok(r) = age::x25519::Recipient::from_str(t) {
        return Ok(Box::new(r));
    }
    let bad = |reason: String| CryptError::BadRecipient {
        text: t.chars().take(100).collect(),
        reason,
    };
    if t.starts_with("ssh-ed25519 ") {
        let x = ssh_ed25519_to_x25519_recipient(t)
            .ok_or_else(|| bad("not a valid ssh-ed25519 public key".into()))?;
        return age::x25519::Recipient::from_str(&x)
            .map(|r| Box::new(r) as Recipient)
            .map_err(|e| bad(e.to_string()));
    }
    if t.starts_with("ssh-rsa ") {
        return Err(bad(
            "ssh-rsa keys are not accepted: their age stanza names the key, so storage sites could link data to it; \
             use an ssh-ed25519 key or an age key (age-keygen)"
                .into(),
        ));
    }
    Err(bad(
        "expected an age key (age1…) or an ssh-ed25519 public key".into(),
    ))
}

/// The 32-byte public key inside an OpenSSH `ssh-ed25519 AAAA… comment` line.
fn ssh_ed25519_public(line: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let b64 = line.split_whitespace().nth(1)?;
    let blob = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let mut r = WireReader(&blob);
    if r.string()? != b"ssh-ed25519" {
        return None;
    }
    let key: [u8; 32] = r.string()?.try_into().ok()?;
    r.0.is_empty().then_some(key)
}

/// The `age1…` X25519 recipient an ssh-ed25519 public key converts to.
pub fn ssh_ed25519_to_x25519_recipient(line: &str) -> Option<String> {
    let ed = ssh_ed25519_public(line)?;
    let point = curve25519_dalek::edwards::CompressedEdwardsY(ed).decompress()?;
    if point.is_small_order() {
        return None;
    }
    let mont = point.to_montgomery().to_bytes();
    bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("age").ok()?, &mont).ok()
}

/// Reads SSH wire-format strings (u32 big-endian length, bytes).
struct WireReader<'a>(&'a [u8]);

impl<'a> WireReader<'a> {
    fn string(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
        let s = self.0.get(4..4usize.checked_add(n)?)?;
        self.0 = &self.0[4 + n..];
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        let v = u32::from_be_bytes(self.0.get(..4)?.try_into().ok()?);
        self.0 = &self.0[4..];
        Some(v)
    }
}

/// The X25519 identity (`AGE-SECRET-KEY-1…`) of an unencrypted OpenSSH ed25519 private key:
/// the clamped first half of SHA-512 of its seed, the scalar whose Montgomery public key is
/// what [`ssh_ed25519_to_x25519_recipient`] gives for the matching public key.
fn ssh_ed25519_to_x25519_identity(pem: &[u8]) -> Option<String> {
    use base64::Engine;
    use sha2::Digest;
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let rest = raw.strip_prefix(b"openssh-key-v1\0")?;
    let mut r = WireReader(rest);
    let (cipher, kdf, _kdf_opts) = (r.string()?, r.string()?, r.string()?);
    if cipher != b"none" || kdf != b"none" || r.u32()? != 1 {
        return None;
    }
    let _public = r.string()?;
    let mut p = WireReader(r.string()?);
    let (c1, c2) = (p.u32()?, p.u32()?);
    if c1 != c2 || p.string()? != b"ssh-ed25519" {
        return None;
    }
    let _pk = p.string()?;
    let sk = p.string()?;
    let seed: [u8; 32] = sk.get(..32)?.try_into().ok()?;
    let mut scalar: [u8; 32] = sha2::Sha512::digest(seed)[..32].try_into().ok()?;
    scalar[0] &= 248;
    scalar[31] &= 127;
    scalar[31] |= 64;
    let s = bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("age-secret-key-").ok()?, &scalar)
        .ok()?;
    scalar.fill(0);
    Some(s.to_uppercase())
}

/// The recipient coop encrypts to for an identity file's first key: the `age1…` recipient of
/// an age identity, or the X25519 recipient an unencrypted OpenSSH ed25519 private key
/// converts to (the same one [`parse_recipient`] uses for its `ssh-ed25519` public key).
pub fn recipient_of_ssh_identity(pem: &[u8]) -> Option<String> {
    let x = ssh_ed25519_to_x25519_identity(pem)?;
    age::x25519::Identity::from_str(&x)
        .ok()
        .map(|i| i.to_public().to_string())
}

/// One form of a recipient for comparing: an `ssh-ed25519` public key as the `age1…` X25519
/// recipient coop encrypts to for it; anything else trimmed.
pub fn canonical_recipient(r: &str) -> String {
    let t = r.trim();
    if t.starts_with("ssh-ed25519 ") {
        if let Some(x) = ssh_ed25519_to_x25519_recipient(t) {
            return x;
        }
    }
    t.to_string()
}

/// Parses the lines of a recipients file (blank lines and `#` comments skipped).
pub fn parse_recipients_file(text: &str) -> Result<Vec<String>, CryptError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        parse_recipient(l)?;
        out.push(l.to_string());
    }
    Ok(out)
}

/// Parses an identity file: an age identity file (`AGE-SECRET-KEY-1…` lines) or an
/// unencrypted OpenSSH private key (ed25519 or RSA).
pub fn parse_identities(bytes: &[u8]) -> Result<Vec<Identity>, CryptError> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        let id =
            age::ssh::Identity::from_buffer(bytes, None).map_err(|e| CryptError::BadIdentity {
                reason: e.to_string(),
            })?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => {
                // The converted X25519 identity opens what coop writes (see parse_recipient);
                // the SSH identity itself opens anything written to the SSH stanza.
                let mut out: Vec<Identity> = Vec::new();
                if let Some(x) = ssh_ed25519_to_x25519_identity(bytes) {
                    if let Ok(i) = age::x25519::Identity::from_str(&x) {
                        out.push(Box::new(i));
                    }
                }
                out.push(Box::new(id));
                Ok(out)
            }
            age::ssh::Identity::Encrypted(_) => Err(CryptError::BadIdentity {
                reason: "the SSH key is passphrase-protected; coop needs an unencrypted copy \
                         (ssh-keygen -p -N '' -f COPY)"
                    .into(),
            }),
            age::ssh::Identity::Unsupported(k) => Err(CryptError::BadIdentity {
                reason: format!("unsupported SSH key type: {k:?}"),
            }),
        };
    }
    let f = age::IdentityFile::from_buffer(bytes).map_err(|e| CryptError::BadIdentity {
        reason: e.to_string(),
    })?;
    let ids = f.into_identities().map_err(|e| CryptError::BadIdentity {
        reason: e.to_string(),
    })?;
    if ids.is_empty() {
        return Err(CryptError::BadIdentity {
            reason: "the file contains no keys".into(),
        });
    }
    Ok(ids)
}

/// Generates a new X25519 identity; returns (identity file text, recipient string).
pub fn generate_identity() -> (String, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let created = chrono_free_now();
    let text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        id.to_string().expose_secret()
    );
    (text, recipient)
}

fn chrono_free_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("unix time {secs}")
}

/// Encrypts the concatenation of `parts` to the recipients, appending the age file to `out`.
pub fn encrypt_to(
    recipients: &[Recipient],
    parts: &[&[u8]],
    out: &mut Vec<u8>,
) -> Result<(), CryptError> {
    let encrypt_err = |e: std::io::Error| CryptError::Encrypt {
        reason: e.to_string(),
    };
    let mut w = encrypt_stream(recipients, out)?;
    for p in parts {
        w.write_all(p).map_err(encrypt_err)?;
    }
    w.finish().map_err(encrypt_err)?;
    Ok(())
}

/// An age encryption stream; `finish` it to get the writer back.
pub type StreamWriter<W> = age::stream::StreamWriter<W>;

/// Starts an age file to `recipients`, written to `out` as plaintext is written to the
/// returned stream.
pub fn encrypt_stream<W: std::io::Write>(
    recipients: &[Recipient],
    out: W,
) -> Result<StreamWriter<W>, CryptError> {
    if recipients.is_empty() {
        return Err(CryptError::NoRecipients);
    }
    let enc = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
    )
    .map_err(|e| CryptError::Encrypt {
        reason: e.to_string(),
    })?;
    enc.wrap_output(out).map_err(|e| CryptError::Encrypt {
        reason: e.to_string(),
    })
}

/// Decrypts an age file, refusing plaintexts larger than `limit` bytes.
pub fn decrypt(
    identities: &[Identity],
    age_bytes: &[u8],
    limit: usize,
) -> Result<Vec<u8>, CryptError> {
    let mut out = Vec::new();
    read_limited(
        open_reader(identities, age_bytes)?,
        age_bytes.len(),
        limit,
        &mut out,
    )?;
    Ok(out)
}

/// A reader of an age file's plaintext: each 64 KiB chunk is authenticated as it is read, so
/// a read error means damage at that point. `input` is the age file (a slice, or a buffered
/// file read as it goes).
pub fn decrypt_stream<'a, R: std::io::BufRead + 'a>(
    identities: &[Identity],
    input: R,
) -> Result<impl std::io::Read + 'a, CryptError> {
    open_reader(identities, input)
}

/// Decrypts into `out` (cleared first, so a reader can reuse one buffer) and feeds every byte
/// of `age_bytes` to `hasher` as age reads them: one pass over the ciphertext, not two, when
/// the caller checks the object's name.
pub fn decrypt_into_hashing(
    identities: &[Identity],
    age_bytes: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    hasher: &mut blake3::Hasher,
) -> Result<(), CryptError> {
    decrypt_read_into_hashing(identities, age_bytes, age_bytes.len(), limit, out, hasher)
}

/// [`decrypt_into_hashing`] from a reader of the age file (`size_hint`: its length, to
/// reserve `out` once). Whatever age does not read of `input` (nothing, for an intact file)
/// is hashed too, so the caller must bound `input`.
pub fn decrypt_read_into_hashing(
    identities: &[Identity],
    input: impl std::io::BufRead,
    size_hint: usize,
    limit: usize,
    out: &mut Vec<u8>,
    hasher: &mut blake3::Hasher,
) -> Result<(), CryptError> {
    out.clear();
    let mut input = Hashing {
        inner: input,
        hasher,
    };
    let res =
        open_reader(identities, &mut input).and_then(|r| read_limited(r, size_hint, limit, out));
    let rest = std::io::copy(&mut input, &mut std::io::sink());
    res?;
    rest.map(|_| ()).map_err(|e| CryptError::Damaged {
        reason: e.to_string(),
    })
}

/// A seekable reader of an age file's plaintext (age STREAM is seekable in 64 KiB chunks):
/// only the chunks read are fetched and authenticated.
pub fn decrypt_seekable<R: std::io::BufRead + std::io::Seek>(
    identities: &[Identity],
    input: R,
) -> Result<age::stream::StreamReader<R>, CryptError> {
    let dec = age::Decryptor::new_buffered(input).map_err(map_decrypt_err)?;
    dec.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(map_decrypt_err)
}

fn open_reader<'a, R: std::io::BufRead + 'a>(
    identities: &[Identity],
    input: R,
) -> Result<impl std::io::Read + 'a, CryptError> {
    let dec = age::Decryptor::new_buffered(input).map_err(map_decrypt_err)?;
    dec.decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(map_decrypt_err)
}

/// Reads all of `r` into `out`, refusing more than `limit` bytes.
fn read_limited(
    r: impl Read,
    size_hint: usize,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), CryptError> {
    // Exactly: a reused buffer grown by `reserve` would double (32 MiB for a 16 MiB pack).
    out.reserve_exact(size_hint.min(limit));
    r.take(limit as u64 + 1)
        .read_to_end(out)
        .map_err(|e| CryptError::Damaged {
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(CryptError::TooLarge { limit });
    }
    Ok(())
}

/// A byte slice read through `BufRead`, hashing what is consumed.
/// A buffered reader that feeds every byte consumed from it to a hasher.
struct Hashing<'h, R> {
    inner: R,
    hasher: &'h mut blake3::Hasher,
}

impl<R: std::io::BufRead> std::io::Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let avail = self.inner.fill_buf()?;
        let n = buf.len().min(avail.len());
        buf[..n].copy_from_slice(&avail[..n]);
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for Hashing<'_, R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        // What can be consumed was returned by the last `fill_buf`, which is still buffered:
        // asking again reads nothing.
        if let Ok(b) = self.inner.fill_buf() {
            self.hasher.update(&b[..n.min(b.len())]);
        }
        self.inner.consume(n);
    }
}

fn map_decrypt_err(e: age::DecryptError) -> CryptError {
    match e {
        age::DecryptError::NoMatchingKeys => CryptError::NotRecipient,
        other => CryptError::Damaged {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_wrong_key() {
        let (id_text, rcpt) = generate_identity();
        let (other_text, _) = generate_identity();
        let r = vec![parse_recipient(&rcpt).unwrap()];
        let mut out = Vec::new();
        encrypt_to(&r, &[b"ab", b"cd"], &mut out).unwrap();
        let ids = parse_identities(id_text.as_bytes()).unwrap();
        assert_eq!(decrypt(&ids, &out, 100).unwrap(), b"abcd");
        assert!(matches!(
            decrypt(&ids, &out, 3),
            Err(CryptError::TooLarge { .. })
        ));
        let other = parse_identities(other_text.as_bytes()).unwrap();
        assert!(matches!(
            decrypt(&other, &out, 100),
            Err(CryptError::NotRecipient)
        ));
        assert!(matches!(
            decrypt(&ids, b"garbage", 100),
            Err(CryptError::Damaged { .. })
        ));
    }

    /// A test-only OpenSSH key (generated for this test, used nowhere else).
    const TEST_SSH_PRIVATE: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACDJRpRzHGdylhxo8huZcZs0DvKJWMzdICvo8bwWfFBzLgAAAJDq1qwq6tas
KgAAAAtzc2gtZWQyNTUxOQAAACDJRpRzHGdylhxo8huZcZs0DvKJWMzdICvo8bwWfFBzLg
AAAEA2X6Szeve6bJ4s4FAjsCllp0Vw/2s2rN5IiG353uOUV8lGlHMcZ3KWHGjyG5lxmzQO
8olYzN0gK+jxvBZ8UHMuAAAACXRlc3RAY29vcAECAwQ=
-----END OPENSSH PRIVATE KEY-----
";
    const TEST_SSH_PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMlGlHMcZ3KWHGjyG5lxmzQO8olYzN0gK+jxvBZ8UHMu test@coop";

    #[test]
    fn ssh_ed25519_keys_become_untagged_x25519_stanzas() {
        let r = vec![parse_recipient(TEST_SSH_PUBLIC).unwrap()];
        let mut out = Vec::new();
        encrypt_to(&r, &[b"secret"], &mut out).unwrap();
        let header = String::from_utf8_lossy(&out[..out.len().min(400)]).into_owned();
        assert!(header.contains("-> X25519 "), "{header}");
        assert!(
            !header.contains("ssh-ed25519"),
            "no stanza names the SSH key: {header}"
        );
        let ids = parse_identities(TEST_SSH_PRIVATE.as_bytes()).unwrap();
        assert_eq!(decrypt(&ids, &out, 100).unwrap(), b"secret");
        // The same key always converts to the same recipient (members can be re-added).
        assert_eq!(
            ssh_ed25519_to_x25519_recipient(TEST_SSH_PUBLIC),
            ssh_ed25519_to_x25519_recipient(TEST_SSH_PUBLIC)
        );
        assert!(parse_recipient("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ x").is_err());
        assert!(parse_recipient("ssh-ed25519 AAAAnotbase64!! x").is_err());
    }

    #[test]
    fn bad_inputs() {
        assert!(parse_recipient("age1nope").is_err());
        assert!(parse_identities(b"hello").is_err());
        assert!(parse_identities(b"").is_err());
    }
}
