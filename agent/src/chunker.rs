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
                // Fewer than `max` bytes buffered. A cut found before their end is the cut
                // the full window gives (see `cut`), so it is taken without moving anything;
                // only when none is found are the buffered bytes moved to the front and the
                // buffer refilled. Refilling as soon as fewer than `max` bytes were left used
                // to move most of every file once (up to 8 MiB per refill).
                if end - start > self.min {
                    let n = self.cut(start, end);
                    if n < end - start {
                        f(&self.buf[start..start + n])?;
                        start += n;
                        continue;
                    }
                }
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
            let n = self.cut(start, end).max(1).min(end - start);
            f(&self.buf[start..start + n])?;
            start += n;
        }
    }

    /// The length of the next chunk in `buf[start..end]`: the first cut point, or the whole
    /// window (at most `max`) if there is none.
    ///
    /// FastCDC scans front to back from `min`, testing each position with a mask that
    /// depends only on the position (the stricter one before `avg`); a window shorter than
    /// `avg` only moves that change to where it scans no more. So a result shorter than the
    /// window is a cut found at that position, the same one a longer window gives, and a
    /// result equal to the window's length means none was found within it.
    fn cut(&self, start: usize, end: usize) -> usize {
        cut_gear(
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
        )
        .1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunking loop as it was before cuts were taken from a partly filled buffer: it
    /// refills whenever fewer than `max` bytes are buffered. Every backup so far was cut by
    /// it, so the chunker must cut exactly as it does (same chunks, same blob IDs).
    fn reference(c: &mut Chunker, mut r: impl Read) -> Vec<usize> {
        let (mut start, mut end, mut eof, mut out) = (0usize, 0usize, false, Vec::new());
        loop {
            if !eof && end - start < c.max {
                c.buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < c.buf.len() {
                    match r.read(&mut c.buf[end..]).unwrap() {
                        0 => {
                            eof = true;
                            break;
                        }
                        n => end += n,
                    }
                }
            }
            if start == end {
                return out;
            }
            let (_, n) = cut_gear(
                &c.buf[start..end],
                c.min,
                c.avg,
                c.max,
                c.mask_s,
                c.mask_l,
                c.mask_s << 1,
                c.mask_l << 1,
                &c.gear,
                &c.gear_ls,
            );
            let n = n.max(1).min(end - start);
            out.push(n);
            start += n;
        }
    }

    /// A reader that hands out its data in pieces of varying size, as pipes and short reads
    /// do.
    struct Pieces<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.step = (self.step * 7 + 3) % 997;
            let n = buf.len().min(self.data.len()).min(1 + self.step * 4096);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn cuts_exactly_as_the_refilling_loop_did() {
        // Random data, long runs of zeros (no cut point: maximum-size chunks) and text-like
        // repetition, with small and with the default parameters, read whole and in pieces.
        let mut d = data(24 << 20);
        d[3 << 20..(3 << 20) + (9 << 20)].fill(0);
        d[15 << 20..(15 << 20) + (2 << 20)].fill(0);
        for (i, b) in d[20 << 20..].iter_mut().enumerate() {
            *b = b"row\tcoop\t"[i % 9];
        }
        let small = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            ..Default::default()
        };
        for p in [small, ChunkerParams::default()] {
            for len in [0, 1, 100_000, 5 << 20, 13 << 20, d.len()] {
                let want = reference(&mut Chunker::new(&p, 42), &d[..len]);
                for step in [None, Some(1), Some(500)] {
                    let mut got = Vec::new();
                    let mut c = Chunker::new(&p, 42);
                    let mut push = |s: &[u8]| {
                        got.push(s.len());
                        Ok(())
                    };
                    let n = match step {
                        None => c.chunk::<io::Error>(&d[..len], |e| e, &mut push),
                        Some(step) => c.chunk::<io::Error>(
                            Pieces {
                                data: &d[..len],
                                step,
                            },
                            |e| e,
                            &mut push,
                        ),
                    }
                    .unwrap();
                    assert_eq!(n as usize, len);
                    assert_eq!(got, want, "params {p:?}, length {len}, reads {step:?}");
                }
            }
        }
    }

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
