//! The tar files `coop export` writes, and a strict reader for `coop verify`.
//!
//! Tar has several ways to name one entry (the header's name field, a ustar prefix, a GNU
//! long-name entry, a PAX `path` record), and tools disagree on which wins: the `tar` crate
//! prefers a GNU long name over a PAX path, GNU tar the opposite. A verifier that reads one
//! name while `tar xf` extracts another can be shown a file it did not check. So the reader
//! here accepts exactly what the writer writes, GNU-format headers with regular files and
//! GNU long names, and refuses everything else: PAX headers, links, devices, directories,
//! a long name not followed by a file, two entries of one name, a bad checksum, and anything
//! but zeros after the end-of-archive marker.

use std::io::Read;

const BLOCK: usize = 512;
const GNU_MAGIC: &[u8; 8] = b"ustar  \0";

/// One regular file in a tar.
pub struct Entry {
    pub name: Vec<u8>,
    pub size: u64,
}

/// Why a tar is refused.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    #[error("reading the tar failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a tar coop writes: {0}")]
    Refused(String),
}

fn refused(m: impl Into<String>) -> TarError {
    TarError::Refused(m.into())
}

fn octal(field: &[u8]) -> Result<u64, TarError> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .filter(|b| *b != b' ')
        .collect();
    if s.is_empty() {
        return Ok(0);
    }
    let t = std::str::from_utf8(&s).map_err(|_| refused("a numeric field is not octal"))?;
    u64::from_str_radix(t, 8).map_err(|_| refused("a numeric field is not octal"))
}

fn name_field(h: &[u8]) -> Vec<u8> {
    h[..100].iter().copied().take_while(|b| *b != 0).collect()
}

/// Reads a tar strictly; `each` gets every regular file with a reader of its content.
pub fn read_strict(
    mut r: impl Read,
    mut each: impl FnMut(&Entry, &mut dyn Read) -> Result<(), TarError>,
) -> Result<(), TarError> {
    let mut h = [0u8; BLOCK];
    let mut long_name: Option<Vec<u8>> = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        if let Err(e) = r.read_exact(&mut h) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                refused("the tar ends without its end-of-archive marker (truncated)")
            } else {
                e.into()
            });
        }
        if h.iter().all(|b| *b == 0) {
            // End of archive: a second zero block, then nothing but zeros.
            r.read_exact(&mut h)
                .map_err(|_| refused("the end-of-archive marker is incomplete"))?;
            if h.iter().any(|b| *b != 0) {
                return Err(refused("the end-of-archive marker is incomplete"));
            }
            if long_name.is_some() {
                return Err(refused("a long name without the file it names"));
            }
            let mut rest = Vec::new();
            r.read_to_end(&mut rest)?;
            if rest.iter().any(|b| *b != 0) {
                return Err(refused("data after the end-of-archive marker"));
            }
            return Ok(());
        }
        if &h[257..265] != GNU_MAGIC {
            return Err(refused(
                "an entry that is not in GNU format (ustar or PAX headers are not what coop writes)",
            ));
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    b' ' as u64
                } else {
                    *b as u64
                }
            })
            .sum();
        if octal(&h[148..156])? != sum {
            return Err(refused("a header checksum does not match"));
        }
        if h[124] & 0x80 != 0 {
            return Err(refused("a size in base-256"));
        }
        let size = octal(&h[124..136])?;
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        match h[156] {
            b'L' => {
                if long_name.is_some() {
                    return Err(refused("two long names for one entry"));
                }
                if size > 64 << 10 {
                    return Err(refused("a long name longer than 64 KiB"));
                }
                let mut buf = vec![0u8; padded as usize];
                r.read_exact(&mut buf)?;
                buf.truncate(size as usize);
                while buf.last() == Some(&0) {
                    buf.pop();
                }
                long_name = Some(buf);
            }
            b'0' | 0 => {
                let name = long_name.take().unwrap_or_else(|| name_field(&h));
                if name.is_empty() {
                    return Err(refused("an entry without a name"));
                }
                if !seen.insert(name.clone()) {
                    return Err(refused(format!(
                        "two entries named {:?}",
                        String::from_utf8_lossy(&name)
                    )));
                }
                let e = Entry { name, size };
                let mut body = (&mut r).take(size);
                each(&e, &mut body)?;
                // Whatever the callback did not read, and the padding.
                std::io::copy(&mut body, &mut std::io::sink())?;
                std::io::copy(&mut (&mut r).take(padded - size), &mut std::io::sink())?;
            }
            t => {
                return Err(refused(format!(
                    "an entry of type {:?} (only regular files are in a coop export)",
                    t as char
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names(t: &[u8]) -> Result<Vec<String>, TarError> {
        let mut out = Vec::new();
        read_strict(t, |e, r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v)?;
            assert_eq!(v.len() as u64, e.size);
            out.push(String::from_utf8_lossy(&e.name).into_owned());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn what_the_writer_writes_reads_back() {
        let long = format!("files/{}", "x".repeat(300));
        let t = tar_of(&[("manifest.json", b"{}"), (long.as_str(), b"data")]);
        assert_eq!(names(&t).unwrap(), vec!["manifest.json".to_string(), long]);
    }

    #[test]
    fn ambiguous_tars_are_refused() {
        let t = tar_of(&[("a", b"1"), ("a", b"2")]);
        assert!(names(&t).is_err(), "duplicate names");
        let mut extra = tar_of(&[("a", b"1")]);
        extra.extend_from_slice(b"trailing");
        assert!(names(&extra).is_err(), "data after the end");
        let t = tar_of(&[("a", b"1")]);
        assert!(names(&t[..t.len() - 600]).is_err(), "truncated");
        // A PAX header (what `tar --format=pax` writes) is refused.
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("path", b"files/evil".as_slice())])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_cksum();
        b.append_data(&mut h, "files/good", &b"x"[..]).unwrap();
        assert!(names(&b.into_inner().unwrap()).is_err(), "PAX path");
        // A symlink entry is refused.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "files/l", "/etc/passwd").unwrap();
        assert!(names(&b.into_inner().unwrap()).is_err(), "symlink");
        // A flipped byte in a header breaks its checksum.
        let mut t = tar_of(&[("a", b"1")]);
        t[10] ^= 1;
        assert!(names(&t).is_err(), "checksum");
    }
}
