//! Getting a pack's bytes from the store and opening them: whole, into reused buffers, as a
//! stream from a local file, or by byte ranges; the name and tenant checks, and why a pack
//! that does not open failed. The blobs, trees and walks built on them are in `mod.rs`.

use super::BlobReader;
use crate::error::{Error, Result};
use crate::index::Loc;
use crate::layout::Kind;
use coop_formats::id::Id;
use coop_formats::pack;

/// Reads the blob at `loc` from a pack stream that is at offset `*pos`: blobs are taken in
/// offset order, skipping the ones not needed. The blob's length comes from the index and is
/// bounded by the pack format's limit before anything is allocated.
pub(crate) fn read_next_blob(
    r: &mut impl std::io::Read,
    pos: &mut u64,
    loc: &Loc,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    use std::io::Read;
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let skip = (loc.offset as u64)
        .checked_sub(*pos)
        .ok_or_else(|| bad("the blob overlaps the one before it"))?;
    if loc.stored_len as usize > coop_formats::pack::MAX_PACK_LEN {
        return Err(bad("the index gives a blob larger than any pack"));
    }
    std::io::copy(&mut r.take(skip), &mut std::io::sink())?;
    buf.clear();
    let got = r.take(loc.stored_len as u64).read_to_end(buf)?;
    if got != loc.stored_len as usize {
        return Err(bad("the pack ends before the blob does"));
    }
    *pos = loc.offset as u64 + loc.stored_len as u64;
    Ok(())
}

fn name_mismatch(pack_id: &Id) -> Error {
    Error::damaged(
        pack_id.to_hex(),
        "pack bytes do not match its name (corrupt on disk)",
    )
}

impl BlobReader<'_> {
    /// Fetches a pack into `stored` and decrypts it into `plain` (both reused buffers),
    /// checking its bytes against its name in the same pass.
    /// A local store's pack is read from its file as it is decrypted, and `stored` is not used.
    pub fn fetch_pack_into(
        &self,
        pack_id: &Id,
        stored: &mut Vec<u8>,
        plain: &mut Vec<u8>,
    ) -> Result<()> {
        let ids = &self.keys.reader()?.identities;
        let opened = self
            .stored_reader(pack_id, stored)
            .map(|(src, size)| pack::open_read_into_named(ids, src, size as usize, plain))?;
        let (h, name) = opened.map_err(|e| self.open_error_of(pack_id, stored, e))?;
        if name != *pack_id {
            return Err(name_mismatch(pack_id));
        }
        self.check_tenant(pack_id, &h)
    }

    /// A pack's stored bytes as a buffered reader, with their size: a local store's file, read
    /// as it goes (the stored pack is never held whole), else fetched into `stored`. A stored
    /// object larger than any pack can be is refused before it is read.
    pub fn stored_reader<'s>(
        &self,
        pack_id: &Id,
        stored: &'s mut Vec<u8>,
    ) -> Result<(Box<dyn std::io::BufRead + 's>, u64)> {
        let path = Kind::Pack.path(&self.keys.tag, pack_id);
        match self.repo.store.open_local(&path, pack::MAX_STORED_PACK_LEN) {
            Ok(Some((f, size))) => {
                use std::io::Read;
                stored.clear();
                // The size it had when opened: a file that grows meanwhile is not read on.
                let f = f.take(size);
                Ok((
                    Box::new(std::io::BufReader::with_capacity(1 << 16, f)),
                    size,
                ))
            }
            Ok(None) => {
                self.fetch_stored_into(pack_id, stored)?;
                let size = stored.len() as u64;
                Ok((Box::new(&stored[..]), size))
            }
            Err(e) => Err(self.fetch_error(pack_id, e)),
        }
    }

    /// Fetches a pack's stored bytes into `stored` (a reused buffer). A stored object larger
    /// than any pack can be is refused before it is read.
    pub fn fetch_stored_into(&self, pack_id: &Id, stored: &mut Vec<u8>) -> Result<()> {
        let path = Kind::Pack.path(&self.keys.tag, pack_id);
        match self
            .repo
            .store
            .get_into(&path, stored, pack::MAX_STORED_PACK_LEN)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fetch_error(pack_id, e)),
        }
    }

    /// A pack that cannot be fetched: missing or too large is damage, the rest the store's.
    fn fetch_error(&self, pack_id: &Id, e: crate::store::StoreError) -> Error {
        if e.is_not_found() {
            Error::damaged(pack_id.to_hex(), "pack is missing from the store")
        } else if e.is_too_large() {
            Error::damaged(pack_id.to_hex(), e.to_string())
        } else {
            e.into()
        }
    }

    /// Reads the stored bytes of a few blobs of one pack by byte ranges, without fetching the
    /// whole pack: age's STREAM is decrypted chunk by chunk (64 KiB) from where each blob
    /// starts. `blobs` are (plaintext offset, stored length) pairs in offset order; each is
    /// handed to `each` as it is read. Returns the bytes fetched.
    pub fn read_ranges(
        &self,
        pack_id: &Id,
        stored_size: u64,
        blobs: &[(u32, u32)],
        mut each: impl FnMut(usize, std::io::Result<&[u8]>),
    ) -> Result<u64> {
        use coop_formats::envelope::HEADER_LEN;
        use std::io::{Read, Seek, SeekFrom};
        let path = Kind::Pack.path(&self.keys.tag, pack_id);
        let head = match self.repo.store.get_range(&path, 0..HEADER_LEN as u64) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::damaged(
                    pack_id.to_hex(),
                    "pack is missing from the store",
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let h = coop_formats::envelope::Header::decode_expect(
            &head,
            coop_formats::envelope::ObjectType::Pack,
        )
        .map_err(|e| Error::damaged(pack_id.to_hex(), e))?;
        self.check_tenant(pack_id, &h)?;
        let mut r = crate::packtable::RangedReader::new(&self.repo.store, path, stored_size)
            .starting_at(HEADER_LEN as u64);
        let ids = &self.keys.reader()?.identities;
        let mut plain = coop_formats::crypt::decrypt_seekable(ids, &mut r)
            .map_err(|e| Error::damaged(pack_id.to_hex(), e))?;
        // The header copy inside must be the stored header.
        let mut inner = [0u8; HEADER_LEN];
        plain
            .read_exact(&mut inner)
            .map_err(|e| Error::damaged(pack_id.to_hex(), e.to_string()))?;
        if inner[..] != head[..] {
            return Err(Error::damaged(
                pack_id.to_hex(),
                "the pack's inner header differs from its stored one",
            ));
        }
        let mut buf = Vec::new();
        for (n, (off, len)) in blobs.iter().enumerate() {
            if *len as usize > coop_formats::pack::MAX_PACK_LEN {
                each(
                    n,
                    Err(std::io::Error::other(
                        "the index gives a blob larger than any pack",
                    )),
                );
                continue;
            }
            buf.clear();
            let res = plain
                .seek(SeekFrom::Start(*off as u64))
                .and_then(|_| (&mut plain).take(*len as u64).read_to_end(&mut buf))
                .and_then(|got| {
                    if got == *len as usize {
                        Ok(())
                    } else {
                        Err(std::io::Error::other("the pack ends before the blob does"))
                    }
                });
            match res {
                Ok(()) => each(n, Ok(&buf)),
                Err(e) => each(n, Err(e)),
            }
        }
        drop(plain);
        Ok(r.fetched)
    }

    /// Opens fetched pack bytes for reading front to back (see [`pack::open_stream`]);
    /// the reader starts at the first blob (offset 24). The name is not hashed: the AEAD
    /// authenticates every byte and each blob is verified by its keyed ID; only when the
    /// pack does not open are its bytes compared with its name, to say why.
    pub fn open_stream<'s>(
        &self,
        pack_id: &Id,
        stored: &'s [u8],
    ) -> Result<impl std::io::Read + 's> {
        let ids = &self.keys.reader()?.identities;
        let (h, r) =
            pack::open_stream(ids, stored).map_err(|e| self.open_error(pack_id, stored, e))?;
        self.check_tenant(pack_id, &h)?;
        Ok(r)
    }

    /// [`Self::open_stream`] from a reader of the stored pack ([`Self::stored_reader`]).
    pub fn open_stream_read<'s>(
        &self,
        pack_id: &Id,
        src: impl std::io::BufRead + 's,
    ) -> Result<impl std::io::Read + 's> {
        let ids = &self.keys.reader()?.identities;
        let (h, r) =
            pack::open_stream_read(ids, src).map_err(|e| self.open_error_of(pack_id, &[], e))?;
        self.check_tenant(pack_id, &h)?;
        Ok(r)
    }

    /// Opens a pack's stored bytes for `check --read-data`: checks them against the pack's
    /// name (one BLAKE3 pass: every byte, including any a reader does not decrypt), reads its
    /// own table (seeking to it), and returns the table with a reader of the plaintext front
    /// to back, at the first blob (offset 24). The plaintext is never held whole.
    pub fn open_with_table<'s>(
        &self,
        pack_id: &Id,
        stored: &'s [u8],
    ) -> Result<(Vec<pack::PackEntry>, impl std::io::Read + 's)> {
        if Id::of_stored(stored) != *pack_id {
            return Err(name_mismatch(pack_id));
        }
        let ids = &self.keys.reader()?.identities;
        let (h, table) = pack::read_table(ids, std::io::Cursor::new(stored))
            .map_err(|e| self.open_error(pack_id, stored, e))?;
        self.check_tenant(pack_id, &h)?;
        let r = self.open_stream(pack_id, stored)?;
        Ok((table, r))
    }

    /// [`Self::open_error`] where the stored bytes were read as a stream (`stored` empty):
    /// they are fetched again to say why (only when the pack did not open).
    fn open_error_of(&self, pack_id: &Id, stored: &[u8], e: pack::PackError) -> Error {
        if !stored.is_empty() {
            return self.open_error(pack_id, stored, e);
        }
        let mut again = Vec::new();
        match self.fetch_stored_into(pack_id, &mut again) {
            Ok(()) => self.open_error(pack_id, &again, e),
            Err(fetch) => fetch,
        }
    }

    /// Why a pack did not open: bytes that do not match its name, not ours to read, or damage.
    fn open_error(&self, pack_id: &Id, stored: &[u8], e: pack::PackError) -> Error {
        match e {
            _ if Id::of_stored(stored) != *pack_id => name_mismatch(pack_id),
            pack::PackError::Crypt(coop_formats::crypt::CryptError::NotRecipient) => {
                Error::AccessDenied {
                    what: format!("your identity is not a recipient of pack {pack_id}"),
                }
            }
            e => Error::damaged(pack_id.to_hex(), e),
        }
    }

    fn check_tenant(&self, pack_id: &Id, h: &coop_formats::envelope::Header) -> Result<()> {
        if h.tenant != self.keys.tag {
            return Err(Error::damaged(
                pack_id.to_hex(),
                "pack belongs to another tenant",
            ));
        }
        Ok(())
    }
}
