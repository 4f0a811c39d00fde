//! Packs: many compressed blobs in one age-encrypted object.
//!
//! ```text
//! stored    = header(pack, tenant) || age(recipients, plaintext)
//! plaintext = header || blob_0 || … || blob_n-1 || table || table_len:u32le || "CPKT"
//! table     = count:u32le || entry*count
//! entry     = type:u8 || compression:u8 || id:32 || stored_len:u32le || raw_len:u32le   (42 bytes)
//! ```
//! Blob `i` starts at `24 + Σ stored_len[0..i]`. The table lets a reader with keys rebuild
//! the index from the packs alone; the index is the normal way to find a blob.

use crate::blob::{Compression, Compressor, MAX_BLOB_LEN};
use crate::crypt::{self, CryptError, Identity, Recipient};
use crate::envelope::{Header, HeaderError, ObjectType, TenantTag, HEADER_LEN};
use crate::id::{BlobType, Id};

/// Magic at the very end of the plaintext.
pub const TRAILER_MAGIC: [u8; 4] = *b"CPKT";
/// Length of one table entry.
pub const ENTRY_LEN: usize = 42;
/// The largest pack plaintext a reader accepts.
pub const MAX_PACK_LEN: usize = 160 << 20;
/// The largest stored pack a reader fetches: the largest plaintext, age's 16-byte tag per
/// 64 KiB chunk, and 1 MiB for the envelope and age's header (its recipient stanzas).
/// Anything larger cannot decrypt to a pack and is refused before it is read into memory.
pub const MAX_STORED_PACK_LEN: usize = MAX_PACK_LEN + MAX_PACK_LEN / 4096 + (1 << 20);

/// One blob in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub ty: BlobType,
    pub compression: u8,
    pub id: Id,
    /// Offset of the stored blob in the pack plaintext.
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// Errors from reading a pack.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("pack plaintext does not start with its header (damaged or forged)")]
    HeaderMismatch,
    #[error("pack table is damaged: {reason}")]
    BadTable { reason: &'static str },
}

/// Builds one pack, encrypting as blobs arrive: the plaintext is never held whole, only the
/// ciphertext, which is hashed as it is written (the pack's name comes out of `finish`).
pub struct PackBuilder {
    w: crypt::StreamWriter<HashingVec>,
    /// Plaintext bytes written so far (the next blob's offset).
    len: usize,
    entries: Vec<PackEntry>,
}

/// Errors from writing a pack.
fn write_err(e: std::io::Error) -> PackError {
    PackError::Crypt(CryptError::Encrypt {
        reason: e.to_string(),
    })
}

impl PackBuilder {
    /// Starts a pack of `tenant` encrypted to `recipients`, written into `out` (cleared
    /// first; pass the buffer of an earlier pack back in to reuse its memory).
    pub fn new(
        tenant: TenantTag,
        recipients: &[Recipient],
        mut out: Vec<u8>,
    ) -> Result<Self, PackError> {
        out.clear();
        let header = Header::new(ObjectType::Pack, tenant).encode();
        let mut hv = HashingVec {
            out,
            hasher: blake3::Hasher::new(),
        };
        std::io::Write::write_all(&mut hv, &header).map_err(write_err)?;
        let mut w = crypt::encrypt_stream(recipients, hv)?;
        std::io::Write::write_all(&mut w, &header).map_err(write_err)?;
        Ok(Self {
            w,
            len: HEADER_LEN,
            entries: Vec::new(),
        })
    }

    /// Bytes of plaintext so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[PackEntry] {
        &self.entries
    }

    /// Compresses `data` (or not, see [`Compressor::compress`]) into the pack; returns the
    /// stored length.
    pub fn add(
        &mut self,
        compressor: &mut Compressor,
        ty: BlobType,
        id: Id,
        data: &[u8],
    ) -> Result<u32, PackError> {
        let c = compressor.compress(data);
        let stored = match c {
            Compression::Zstd => compressor.output(),
            Compression::None => data,
        };
        self.push(ty, id, c, data.len() as u32, stored)?;
        Ok(stored.len() as u32)
    }

    /// Adds an already stored (compressed or raw) blob, as repacking does.
    pub fn add_stored(
        &mut self,
        ty: BlobType,
        id: Id,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<(), PackError> {
        self.push(ty, id, compression, raw_len, stored)
    }

    fn push(
        &mut self,
        ty: BlobType,
        id: Id,
        compression: Compression,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<(), PackError> {
        std::io::Write::write_all(&mut self.w, stored).map_err(write_err)?;
        self.entries.push(PackEntry {
            ty,
            compression: compression as u8,
            id,
            offset: self.len as u32,
            stored_len: stored.len() as u32,
            raw_len,
        });
        self.len += stored.len();
        Ok(())
    }

    /// Appends the table and finishes the encryption. Returns the stored bytes, the entries
    /// and the pack's name (BLAKE3 of the stored bytes).
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<PackEntry>, Id), PackError> {
        let mut table = Vec::with_capacity(12 + self.entries.len() * ENTRY_LEN);
        table.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            table.push(e.ty as u8);
            table.push(e.compression);
            table.extend_from_slice(&e.id.0);
            table.extend_from_slice(&e.stored_len.to_le_bytes());
            table.extend_from_slice(&e.raw_len.to_le_bytes());
        }
        let table_len = table.len() as u32;
        table.extend_from_slice(&table_len.to_le_bytes());
        table.extend_from_slice(&TRAILER_MAGIC);
        std::io::Write::write_all(&mut self.w, &table).map_err(write_err)?;
        let hv = self.w.finish().map_err(write_err)?;
        Ok((hv.out, self.entries, Id(*hv.hasher.finalize().as_bytes())))
    }
}

/// Appends to a Vec and hashes what it appends.
pub struct HashingVec {
    out: Vec<u8>,
    hasher: blake3::Hasher,
}

impl std::io::Write for HashingVec {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.out.extend_from_slice(b);
        self.hasher.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decrypts a pack; returns its plaintext (blob offsets index into it).
pub fn open(identities: &[Identity], stored: &[u8]) -> Result<(Header, Vec<u8>), PackError> {
    let mut plain = Vec::new();
    let (header, _) = open_into_named(identities, stored, &mut plain)?;
    Ok((header, plain))
}

/// Opens a pack for reading its plaintext front to back, without holding it whole: checks
/// the outer header, the header inside the plaintext, and returns a reader positioned just
/// after it (at offset 24, where the first blob starts).
pub fn open_stream<'a>(
    identities: &[Identity],
    stored: &'a [u8],
) -> Result<(Header, impl std::io::Read + 'a), PackError> {
    Header::decode_expect(stored, ObjectType::Pack)?;
    open_stream_read(identities, stored)
}

/// [`open_stream`] from a reader of the stored pack (a buffered file: the stored bytes are
/// never held whole either).
pub fn open_stream_read<'a, R: std::io::BufRead + 'a>(
    identities: &[Identity],
    mut stored: R,
) -> Result<(Header, impl std::io::Read + 'a), PackError> {
    let damaged = |e: std::io::Error| {
        PackError::Crypt(CryptError::Damaged {
            reason: e.to_string(),
        })
    };
    let mut outer = [0u8; HEADER_LEN];
    std::io::Read::read_exact(&mut stored, &mut outer).map_err(damaged)?;
    let header = Header::decode_expect(&outer, ObjectType::Pack)?;
    let mut r = crypt::decrypt_stream(identities, stored)?;
    let mut inner = [0u8; HEADER_LEN];
    std::io::Read::read_exact(&mut r, &mut inner).map_err(damaged)?;
    if inner != outer {
        return Err(PackError::HeaderMismatch);
    }
    Ok((header, r))
}

/// Decrypts a pack into `plain` (a reusable buffer) and returns the BLAKE3 of `stored`, its
/// object name, computed in the same pass as the decryption.
pub fn open_into_named(
    identities: &[Identity],
    stored: &[u8],
    plain: &mut Vec<u8>,
) -> Result<(Header, Id), PackError> {
    Header::decode_expect(stored, ObjectType::Pack)?;
    open_read_into_named(identities, stored, stored.len(), plain)
}

/// [`open_into_named`] from a reader of the stored pack, `size` bytes long (a buffered file:
/// only the plaintext is held). The caller bounds `stored`: it is read to its end.
pub fn open_read_into_named(
    identities: &[Identity],
    mut stored: impl std::io::BufRead,
    size: usize,
    plain: &mut Vec<u8>,
) -> Result<(Header, Id), PackError> {
    let mut outer = [0u8; HEADER_LEN];
    std::io::Read::read_exact(&mut stored, &mut outer).map_err(|e| {
        PackError::Crypt(CryptError::Damaged {
            reason: e.to_string(),
        })
    })?;
    let header = Header::decode_expect(&outer, ObjectType::Pack)?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&outer);
    let res = crypt::decrypt_read_into_hashing(
        identities,
        stored,
        size.saturating_sub(HEADER_LEN),
        MAX_PACK_LEN,
        plain,
        &mut hasher,
    );
    let name = Id(*hasher.finalize().as_bytes());
    res?;
    if plain.len() < HEADER_LEN || plain[..HEADER_LEN] != outer {
        return Err(PackError::HeaderMismatch);
    }
    Ok((header, name))
}

/// Parses and checks the table of a decrypted pack plaintext.
pub fn parse_table(plain: &[u8]) -> Result<Vec<PackEntry>, PackError> {
    let n = plain.len();
    if n < HEADER_LEN + 12 || plain[n - 4..] != TRAILER_MAGIC {
        return Err(PackError::BadTable {
            reason: "missing trailer",
        });
    }
    let table_len = table_len_of(n, &plain[n - 8..])?;
    parse_table_bytes(&plain[n - 8 - table_len..n - 8], n)
}

/// The table length from the last 8 plaintext bytes (`table_len || "CPKT"`) of a plaintext of
/// `n` bytes, checked to fit.
fn table_len_of(n: usize, tail: &[u8]) -> Result<usize, PackError> {
    let bad = |reason| Err(PackError::BadTable { reason });
    if tail.len() != 8 || tail[4..] != TRAILER_MAGIC {
        return bad("missing trailer");
    }
    let table_len = u32::from_le_bytes(tail[..4].try_into().expect("4")) as usize;
    if table_len < 4 || n < 8 + HEADER_LEN || table_len > n - 8 - HEADER_LEN {
        return bad("table length out of range");
    }
    Ok(table_len)
}

/// Parses a table (`count || entries`) of a pack whose plaintext is `n` bytes long.
fn parse_table_bytes(table: &[u8], n: usize) -> Result<Vec<PackEntry>, PackError> {
    let bad = |reason| Err(PackError::BadTable { reason });
    let table_len = table.len();
    let count = u32::from_le_bytes(table[..4].try_into().expect("4")) as usize;
    if count.checked_mul(ENTRY_LEN).and_then(|x| x.checked_add(4)) != Some(table_len) {
        return bad("table length does not match entry count");
    }
    let data_end = n - 8 - table_len;
    let mut entries = Vec::with_capacity(count);
    let mut offset = HEADER_LEN;
    for e in table[4..].chunks_exact(ENTRY_LEN) {
        let ty = BlobType::from_u8(e[0]).ok_or(PackError::BadTable {
            reason: "unknown blob type",
        })?;
        if Compression::from_u8(e[1]).is_none() {
            return bad("unknown compression");
        }
        let stored_len = u32::from_le_bytes(e[34..38].try_into().expect("4"));
        let raw_len = u32::from_le_bytes(e[38..42].try_into().expect("4"));
        if raw_len > MAX_BLOB_LEN {
            return bad("blob larger than the limit");
        }
        let end = offset
            .checked_add(stored_len as usize)
            .filter(|&e| e <= data_end);
        let Some(end) = end else {
            return bad("blob extends past the data");
        };
        entries.push(PackEntry {
            ty,
            compression: e[1],
            id: Id(e[2..34].try_into().expect("32")),
            offset: offset as u32,
            stored_len,
            raw_len,
        });
        offset = end;
    }
    if offset != data_end {
        return bad("blob data and table do not line up");
    }
    Ok(entries)
}

/// Reads only a pack's table, seeking in the stored object: the age header, the first
/// 64 KiB chunk (for the header copy) and the chunks holding the table are decrypted and
/// authenticated; the blobs in between are never read. `stored` is positioned at the start
/// of the stored object.
pub fn read_table<R: std::io::BufRead + std::io::Seek>(
    identities: &[Identity],
    mut stored: R,
) -> Result<(Header, Vec<PackEntry>), PackError> {
    use std::io::{Read, Seek, SeekFrom};
    let damaged = |e: std::io::Error| {
        PackError::Crypt(CryptError::Damaged {
            reason: e.to_string(),
        })
    };
    let mut outer = [0u8; HEADER_LEN];
    stored.read_exact(&mut outer).map_err(damaged)?;
    let header = Header::decode_expect(&outer, ObjectType::Pack)?;
    let mut r = crypt::decrypt_seekable(identities, stored)?;
    let mut inner = [0u8; HEADER_LEN];
    r.read_exact(&mut inner).map_err(damaged)?;
    if inner != outer {
        return Err(PackError::HeaderMismatch);
    }
    let n = r.seek(SeekFrom::End(0)).map_err(damaged)? as usize;
    if !(HEADER_LEN + 12..=MAX_PACK_LEN).contains(&n) {
        return Err(PackError::BadTable {
            reason: "pack size out of range",
        });
    }
    let mut tail = [0u8; 8];
    r.seek(SeekFrom::Start((n - 8) as u64)).map_err(damaged)?;
    r.read_exact(&mut tail).map_err(damaged)?;
    let table_len = table_len_of(n, &tail)?;
    let mut table = vec![0u8; table_len];
    r.seek(SeekFrom::Start((n - 8 - table_len) as u64))
        .map_err(damaged)?;
    r.read_exact(&mut table).map_err(damaged)?;
    Ok((header, parse_table_bytes(&table, n)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::blob_id;
    use proptest::prelude::*;

    #[test]
    fn read_table_of_a_large_pack_and_refuse_damage() {
        let (id_text, rcpt) = crypt::generate_identity();
        let ids = crypt::parse_identities(id_text.as_bytes()).unwrap();
        let r = vec![crypt::parse_recipient(&rcpt).unwrap()];
        let mut c = Compressor::new(0);
        let mut b = PackBuilder::new([1; 16], &r, Vec::new()).unwrap();
        // Several 64 KiB chunks of incompressible-looking data, so the table sits far away.
        for i in 0..40u8 {
            let d: Vec<u8> = (0..20_000u32)
                .map(|x| (x.wrapping_mul(2654435761) >> 13) as u8 ^ i)
                .collect();
            b.add(&mut c, BlobType::Data, Id([i; 32]), &d).unwrap();
        }
        let (stored, entries, _) = b.finish().unwrap();
        assert_eq!(
            read_table(&ids, std::io::Cursor::new(&stored)).unwrap().1,
            entries
        );
        // A flipped byte in the last chunk, or a truncation, is refused.
        let mut bad = stored.clone();
        let at = bad.len() - 100;
        bad[at] ^= 1;
        assert!(read_table(&ids, std::io::Cursor::new(&bad)).is_err());
        assert!(read_table(&ids, std::io::Cursor::new(&stored[..stored.len() - 1000])).is_err());
    }

    #[test]
    fn build_open_parse() {
        let (id_text, rcpt) = crypt::generate_identity();
        let ids = crypt::parse_identities(id_text.as_bytes()).unwrap();
        let r = vec![crypt::parse_recipient(&rcpt).unwrap()];
        let key = [1u8; 32];
        let mut c = Compressor::new(3);
        let mut b = PackBuilder::new([5; 16], &r, Vec::new()).unwrap();
        let blobs: Vec<Vec<u8>> = vec![b"hello".repeat(100), vec![], b"tree".to_vec()];
        for (i, d) in blobs.iter().enumerate() {
            let ty = if i == 2 {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            b.add(&mut c, ty, blob_id(&key, ty, d), d).unwrap();
        }
        let (stored, entries, name) = b.finish().unwrap();
        assert_eq!(name, Id::of_stored(&stored));
        let mut plain2 = Vec::new();
        let (_, named) = open_into_named(&ids, &stored, &mut plain2).unwrap();
        assert_eq!(named, name);
        assert_eq!(plain2, open(&ids, &stored).unwrap().1);
        let mut longer = stored.clone();
        longer.push(0);
        let n2 = open_into_named(&ids, &longer, &mut plain2).map(|(_, n)| n);
        assert!(
            n2.is_err() || n2.unwrap() != name,
            "trailing bytes change the name"
        );
        let (_, mut r) = open_stream(&ids, &stored).unwrap();
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut rest).unwrap();
        assert_eq!(rest, open(&ids, &stored).unwrap().1[HEADER_LEN..]);
        // From a reader (a file read as it goes, here through a small buffer): the same
        // plaintext and name; trailing bytes make it fail or change the name.
        let small =
            |b: &[u8]| std::io::BufReader::with_capacity(100, std::io::Cursor::new(b.to_vec()));
        let mut plain3 = Vec::new();
        let (_, n3) =
            open_read_into_named(&ids, small(&stored), stored.len(), &mut plain3).unwrap();
        assert_eq!((n3, &plain3), (name, &open(&ids, &stored).unwrap().1));
        let n4 = open_read_into_named(&ids, small(&longer), longer.len(), &mut plain3);
        assert!(
            n4.map_or(true, |(_, n)| n != name),
            "trailing bytes change the name"
        );
        assert!(open_read_into_named(&ids, small(&stored[..10]), 10, &mut plain3).is_err());
        let (_, mut r) = open_stream_read(&ids, small(&stored)).unwrap();
        let mut rest2 = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut rest2).unwrap();
        assert_eq!(rest2, rest);
        let mut bad = stored.clone();
        bad[3] ^= 1; // the outer header's magic
        assert!(open_stream_read(&ids, small(&bad)).is_err());
        let (h, plain) = open(&ids, &stored).unwrap();
        assert_eq!(h.tenant, [5; 16]);
        assert_eq!(parse_table(&plain).unwrap(), entries);
        for (e, d) in entries.iter().zip(&blobs) {
            let mut out = Vec::new();
            let s = &plain[e.offset as usize..(e.offset + e.stored_len) as usize];
            crate::blob::decode(&key, e.id, e.ty, e.compression, e.raw_len, s, &mut out).unwrap();
            assert_eq!(&out, d);
        }
    }

    proptest! {
        #[test]
        fn table_roundtrip(sizes in proptest::collection::vec(0usize..3000, 0..20)) {
            let (id_text, rcpt) = crypt::generate_identity();
            let ids = crypt::parse_identities(id_text.as_bytes()).unwrap();
            let r = vec![crypt::parse_recipient(&rcpt).unwrap()];
            let mut c = Compressor::new(0);
            let mut b = PackBuilder::new([0; 16], &r, Vec::new()).unwrap();
            for (i, s) in sizes.iter().enumerate() {
                let d = vec![i as u8; *s];
                b.add(&mut c, BlobType::Data, Id([i as u8; 32]), &d).unwrap();
            }
            let expected = b.entries().to_vec();
            let (stored, entries, _) = b.finish().unwrap();
            prop_assert_eq!(&entries, &expected);
            let (_, plain) = open(&ids, &stored).unwrap();
            prop_assert_eq!(parse_table(&plain).unwrap(), expected.clone());
            // Seeking to the table gives the same entries.
            let (h, seeked) = read_table(&ids, std::io::Cursor::new(&stored)).unwrap();
            prop_assert_eq!(h.tenant, [0; 16]);
            prop_assert_eq!(seeked, expected);
        }

        #[test]
        fn table_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_table(&b);
            let mut t = b.clone();
            t.extend_from_slice(&TRAILER_MAGIC);
            let _ = parse_table(&t);
        }
    }
}
