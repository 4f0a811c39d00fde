//! Content-defined chunking with FastCDC v2020 over a large reusable buffer.
//!
//! fastcdc's `StreamCDC` copies its whole buffer after every chunk; this wrapper calls
//! fastcdc's own `cut_gear` over a 16 MiB buffer and hands out slices, so a chunk is
//! never copied before it is hashed. The gear table is seeded per tenant.

use coop_formats::config::ChunkerParams;
use fastcdc::v2020::{cut_gear, get_gear_with_seed, select_masks, Normalization};
use std::borrow::Cow;
use std::io::{self, Read};

pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Cow<'static, [u64]>,
    gear_ls: Cow<'static, [u64]>,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(p: &ChunkerParams, seed: u64) -> Self {
        let (mask_s, mask_l) = select_masks(p.avg_size as usize, Normalization::Level1);
        let (gear, gear_ls) = get_gear_with_seed(seed);
        let max = p.max_size as usize;
        Self {
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max,
            mask_s,
            mask_l,
            gear,
            gear_ls,
            buf: vec![0; (2 * max).max(4 << 20)],
        }
    }

    /// Splits everything `r` yields into chunks and calls `f` with each; returns the
    /// number of bytes read.
    /// Cuts everything `r` yields into chunks and hands each to `f`; a read error is turned
    /// into `E` by `on_read`. Returns the number of bytes read.
    pub fn chunk<E>(
        &mut self,
        mut r: impl Read,
        on_read: impl Fn(io::Error) -> E,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            if !eof && end - start < self.max {
                self.buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < self.buf.len() {
                    match r.read(&mut self.buf[end..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => {
                            end += n;
                            total += n as u64;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(on_read(e)),
                    }
                }
            }
            if start == end {
                return Ok(total);
            }
            let (_, n) = cut_gear(
                &self.buf[start..end],
                self.min,
                self.avg,
                self.max,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
                &self.gear,
                &self.gear_ls,
            );
            let n = n.max(1).min(end - start);
            f(&self.buf[start..start + n])?;
            start += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x9e3779b97f4a7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunks_cover_input_and_are_stable_under_insertion() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            ..Default::default()
        };
        let mut c = Chunker::new(&p, 42);
        let d = data(3 << 20);
        let mut chunks = Vec::new();
        let n = c
            .chunk::<io::Error>(
                &d[..],
                |e| e,
                |s| {
                    chunks.push(s.to_vec());
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(n as usize, d.len());
        assert_eq!(chunks.concat(), d);
        assert!(chunks.iter().all(|c| c.len() <= 65536));
        // Insert 10 bytes near the start: most chunks stay the same.
        let mut d2 = d.clone();
        d2.splice(1000..1000, [7u8; 10]);
        let mut chunks2 = Vec::new();
        c.chunk::<io::Error>(
            &d2[..],
            |e| e,
            |s| {
                chunks2.push(s.to_vec());
                Ok(())
            },
        )
        .unwrap();
        let same = chunks2.iter().filter(|c| chunks.contains(c)).count();
        assert!(same + 3 >= chunks.len(), "{same} of {}", chunks.len());
        // Empty input gives no chunk.
        assert_eq!(
            c.chunk::<io::Error>(&[][..], |e| e, |_| panic!("no chunk expected"))
                .unwrap(),
            0
        );
    }
}
