//! The SSH wire encoding (RFC 4251 §5) as the agent protocol uses it, read
//! strictly: every read is bounded by what is left, and a message is only
//! accepted when nothing is left over.

/// Why a message did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

/// A cursor over one message's bytes.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub fn byte(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self.rest.split_first().ok_or(Malformed("truncated byte"))?;
        self.rest = rest;
        Ok(b)
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        if self.rest.len() < 4 {
            return Err(Malformed("truncated uint32"));
        }
        let (n, rest) = self.rest.split_at(4);
        self.rest = rest;
        Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
    }

    /// A `string`: a uint32 length, then that many bytes.
    pub fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let len = self.u32()? as usize;
        if self.rest.len() < len {
            return Err(Malformed("string longer than the message"));
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(s)
    }

    /// A `string` that must be UTF-8 (names, not data).
    pub fn text(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.string()?).map_err(|_| Malformed("name is not UTF-8"))
    }

    /// A `boolean`: 0 or 1, nothing else.
    pub fn boolean(&mut self) -> Result<bool, Malformed> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed("boolean is neither 0 nor 1")),
        }
    }

    /// Raw bytes of a fixed length.
    pub fn fixed(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if self.rest.len() < len {
            return Err(Malformed("truncated"));
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(s)
    }

    /// The message must end here.
    pub fn finish(self) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed("trailing bytes"))
        }
    }
}

/// Append a `string`.
pub fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Write `body` as one length-prefixed frame in a single write. The buffer
/// is wiped when dropped: a frame may carry a private key.
pub fn write_frame(to: &mut impl std::io::Write, body: &[u8]) -> std::io::Result<()> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(body.len() + 4));
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    to.write_all(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_bounded_and_trailing_bytes_refused() {
        let mut m = Vec::new();
        put_string(&mut m, b"abc");
        m.push(1);
        let mut r = Reader::new(&m);
        assert_eq!(r.string().unwrap(), b"abc");
        assert!(r.boolean().unwrap());
        r.finish().unwrap();

        let mut r = Reader::new(&[0, 0, 0, 9, b'a']);
        assert_eq!(r.string(), Err(Malformed("string longer than the message")));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(r.string().is_err());
        let mut r = Reader::new(&[2]);
        assert!(r.boolean().is_err());
        let r = Reader::new(&[0]);
        assert_eq!(r.finish(), Err(Malformed("trailing bytes")));
        let mut r = Reader::new(&[0, 0]);
        assert!(r.u32().is_err());
    }
}
