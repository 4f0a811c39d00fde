//! Blob compression and verification.
//!
//! A blob is stored either raw (`compression = 0`) or as one zstd frame (`compression = 1`).
//! Incompressible data is detected from a sample and stored raw, so media files cost no
//! compression time.

use crate::id::{blob_id, BlobType, Id};

/// The largest plaintext blob a reader accepts (data chunks are at most 16 MiB, trees may
/// be larger for huge directories).
pub const MAX_BLOB_LEN: u32 = 64 << 20;

/// How a blob's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Compression {
    None = 0,
    Zstd = 1,
}

impl Compression {
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::None),
            1 => Some(Self::Zstd),
            _ => None,
        }
    }
}

/// Errors from decoding a blob.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlobError {
    #[error("blob {id} claims {raw_len} bytes, over the {MAX_BLOB_LEN}-byte limit")]
    TooLarge { id: Id, raw_len: u32 },
    #[error("blob {id} does not decompress: {reason}")]
    Decompress { id: Id, reason: String },
    #[error("blob {id} decompressed to {got} bytes, expected {expected}")]
    Length { id: Id, expected: u32, got: usize },
    #[error(
        "blob {id} failed verification: its content does not hash to its ID (corrupt or forged)"
    )]
    Mismatch { id: Id },
    #[error("blob {id} has unknown compression {found}")]
    UnknownCompression { id: Id, found: u8 },
}

/// A compressor that keeps its zstd context between blobs.
pub struct Compressor {
    level: i32,
    ctx: zstd::bulk::Compressor<'static>,
    probe: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Compressor {
    pub fn new(level: i32) -> Self {
        Self {
            level,
            ctx: zstd::bulk::Compressor::new(level).expect("valid zstd level"),
            probe: zstd::bulk::Compressor::new(1).expect("valid zstd level"),
            scratch: Vec::new(),
        }
    }

    pub fn level(&self) -> i32 {
        self.level
    }

    /// Appends the stored form of `data` to `out`; returns how it was stored.
    pub fn compress_into(&mut self, data: &[u8], out: &mut Vec<u8>) -> Compression {
        let c = self.compress(data);
        match c {
            Compression::Zstd => out.extend_from_slice(self.output()),
            Compression::None => out.extend_from_slice(data),
        }
        c
    }

    /// Decides how to store `data`. For [`Compression::Zstd`], [`Self::output`] holds the
    /// compressed bytes; for [`Compression::None`], `data` is stored as it is (no copy).
    ///
    /// A 32 KiB sample from the middle is compressed at level 1 first; if it does not
    /// shrink by at least 3%, the blob is stored raw. Otherwise the whole blob is
    /// compressed, and still stored raw if that did not save at least 1/32.
    pub fn compress(&mut self, data: &[u8]) -> Compression {
        self.scratch.clear();
        if self.level == 0 || data.len() < 64 {
            return Compression::None;
        }
        if data.len() > 128 << 10 {
            let mid = data.len() / 2;
            let sample = &data[mid - (16 << 10)..mid + (16 << 10)];
            self.scratch
                .reserve(zstd::zstd_safe::compress_bound(sample.len()));
            let probe = self.probe.compress_to_buffer(sample, &mut self.scratch);
            let shrunk = probe.is_ok_and(|n| n * 100 <= sample.len() * 97);
            self.scratch.clear();
            if !shrunk {
                return Compression::None;
            }
        }
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(data.len()));
        match self.ctx.compress_to_buffer(data, &mut self.scratch) {
            Ok(n) if n < data.len() - data.len() / 32 => Compression::Zstd,
            _ => {
                self.scratch.clear();
                Compression::None
            }
        }
    }

    /// The compressed bytes of the last [`Self::compress`] that returned `Zstd`.
    pub fn output(&self) -> &[u8] {
        &self.scratch
    }
}

/// Decodes a stored blob and verifies it against its keyed, typed ID.
pub fn decode(
    id_key: &[u8; 32],
    id: Id,
    ty: BlobType,
    compression: u8,
    raw_len: u32,
    stored: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), BlobError> {
    decode_ref(id_key, id, ty, compression, raw_len, stored, out)?;
    if matches!(Compression::from_u8(compression), Some(Compression::None)) {
        out.clear();
        out.extend_from_slice(stored); // stored raw: decode_ref verified it in place
    }
    Ok(())
}

/// Like [`decode`], without copying a blob stored raw: returns the verified plaintext,
/// either `stored` itself or the decompressed bytes in `scratch`.
pub fn decode_ref<'a>(
    id_key: &[u8; 32],
    id: Id,
    ty: BlobType,
    compression: u8,
    raw_len: u32,
    stored: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], BlobError> {
    if raw_len > MAX_BLOB_LEN {
        return Err(BlobError::TooLarge { id, raw_len });
    }
    let plain: &[u8] = match Compression::from_u8(compression) {
        Some(Compression::None) => stored,
        Some(Compression::Zstd) => {
            scratch.clear();
            scratch.reserve(raw_len as usize);
            let n = DCTX
                .with(|d| {
                    let mut d = d.borrow_mut();
                    if d.is_none() {
                        *d = Some(zstd::bulk::Decompressor::new()?);
                    }
                    d.as_mut()
                        .expect("set above")
                        .decompress_to_buffer(stored, scratch)
                })
                .map_err(|e| BlobError::Decompress {
                    id,
                    reason: e.to_string(),
                })?;
            scratch.truncate(n);
            scratch
        }
        None => {
            return Err(BlobError::UnknownCompression {
                id,
                found: compression,
            })
        }
    };
    if plain.len() != raw_len as usize {
        return Err(BlobError::Length {
            id,
            expected: raw_len,
            got: plain.len(),
        });
    }
    if blob_id(id_key, ty, plain) != id {
        return Err(BlobError::Mismatch { id });
    }
    Ok(plain)
}

thread_local! {
    /// One zstd decompression context per thread, reused for every blob.
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decode_ref_borrows_raw_blobs_and_reuses_scratch() {
        let key = [4u8; 32];
        let mut c = Compressor::new(3);
        let text = b"INSERT INTO t VALUES (1, 'abc');\n".repeat(4000);
        let raw: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut scratch = vec![7u8; 10];
        for data in [&text[..], &raw[..]] {
            let id = blob_id(&key, BlobType::Data, data);
            let mut stored = Vec::new();
            let comp = c.compress_into(data, &mut stored);
            let got = decode_ref(
                &key,
                id,
                BlobType::Data,
                comp as u8,
                data.len() as u32,
                &stored,
                &mut scratch,
            )
            .unwrap();
            assert_eq!(got, data);
            if comp == Compression::None {
                assert_eq!(got.as_ptr(), stored.as_ptr(), "a raw blob is not copied");
            }
            // decode() copies, even into a buffer that already has the right length.
            let mut out = vec![0u8; data.len()];
            decode(
                &key,
                id,
                BlobType::Data,
                comp as u8,
                data.len() as u32,
                &stored,
                &mut out,
            )
            .unwrap();
            assert_eq!(out, data);
            // A wrong ID is refused.
            let other = blob_id(&key, BlobType::Tree, data);
            assert!(decode_ref(
                &key,
                other,
                BlobType::Data,
                comp as u8,
                data.len() as u32,
                &stored,
                &mut scratch
            )
            .is_err());
        }
    }

    fn roundtrip(data: &[u8]) -> Compression {
        let key = [3u8; 32];
        let id = blob_id(&key, BlobType::Data, data);
        let mut c = Compressor::new(3);
        let mut stored = vec![9, 9]; // compress_into appends
        let comp = c.compress_into(data, &mut stored);
        let mut out = Vec::new();
        decode(
            &key,
            id,
            BlobType::Data,
            comp as u8,
            data.len() as u32,
            &stored[2..],
            &mut out,
        )
        .unwrap();
        assert_eq!(out, data);
        assert!(decode(
            &key,
            id,
            BlobType::Tree,
            comp as u8,
            data.len() as u32,
            &stored[2..],
            &mut out
        )
        .is_err());
        comp
    }

    #[test]
    fn text_compresses_random_does_not() {
        let text: Vec<u8> = b"INSERT INTO users VALUES (1, 'alice');\n".repeat(10_000);
        assert_eq!(roundtrip(&text), Compression::Zstd);
        let mut x = 1u64;
        let random: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(roundtrip(&random), Compression::None);
        assert_eq!(roundtrip(b""), Compression::None);
    }

    proptest! {
        #[test]
        fn prop_roundtrip(data in proptest::collection::vec(any::<u8>(), 0..5000), rep in 1usize..50) {
            let d: Vec<u8> = data.iter().cycle().take(data.len() * rep).copied().collect();
            roundtrip(&d);
        }
        #[test]
        fn decode_garbage_never_panics(stored in proptest::collection::vec(any::<u8>(), 0..2000), comp in 0u8..3, raw_len in 0u32..100_000) {
            let mut out = Vec::new();
            let _ = decode(&[0; 32], Id([0; 32]), BlobType::Data, comp, raw_len, &stored, &mut out);
        }
    }
}
