//! SPDY/3 name/value header blocks and their zlib compression. Each direction of a connection
//! has one zlib context for its whole life, primed with the SPDY/3 dictionary, and every block
//! ends with a sync flush; so one decoder and one encoder per connection, fed in frame order.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::SPDY3_DICTIONARY;

/// Why a header block could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("header block is not valid zlib data: {0}")]
    Zlib(String),
    #[error("header block asks for zlib dictionary {0:#010x}, not the SPDY/3 dictionary")]
    WrongDictionary(u32),
    #[error("decompressed header block exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("compressed header block is incomplete")]
    Incomplete,
    #[error("header block is truncated")]
    Truncated,
    #[error("header block declares {count} pairs, more than the limit of {max}")]
    TooManyPairs { count: u32, max: usize },
    #[error("header block has {0} bytes after its last pair")]
    TrailingBytes(usize),
    #[error("header block has an empty name")]
    EmptyName,
    #[error("header name {0:?} appears twice")]
    DuplicateName(String),
    #[error("header block holds a name or value that is not UTF-8")]
    NotUtf8,
}

/// A stream's headers as sent: lower-case names, each with its value (SPDY joins several
/// values of one name with NUL).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a header; names are lower-cased as SPDY requires.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The first value of `name`, compared without regard to case (Go canonicalises names, so
    /// peers may send any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The uncompressed block: a pair count, then length-prefixed names and values.
    fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            4 + self
                .0
                .iter()
                .map(|(n, v)| 8 + n.len() + v.len())
                .sum::<usize>(),
        );
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (name, value) in &self.0 {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    fn parse(block: &[u8], max_pairs: usize) -> Result<Self, HeaderError> {
        let mut rest = block;
        let count = take_u32(&mut rest)?;
        // Every pair takes at least 8 bytes, so a count the block cannot hold is refused before
        // anything is allocated for it.
        if count as usize > max_pairs {
            return Err(HeaderError::TooManyPairs {
                count,
                max: max_pairs,
            });
        }
        if count as usize > rest.len() / 8 {
            return Err(HeaderError::Truncated);
        }
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let name = take_string(&mut rest)?;
            if name.is_empty() {
                return Err(HeaderError::EmptyName);
            }
            let value = take_string(&mut rest)?;
            if pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                return Err(HeaderError::DuplicateName(name));
            }
            pairs.push((name, value));
        }
        if !rest.is_empty() {
            return Err(HeaderError::TrailingBytes(rest.len()));
        }
        Ok(Self(pairs))
    }
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, HeaderError> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(HeaderError::Truncated)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(rest: &mut &[u8]) -> Result<String, HeaderError> {
    let len = take_u32(rest)? as usize;
    if len > rest.len() {
        return Err(HeaderError::Truncated);
    }
    let (bytes, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(bytes.to_vec()).map_err(|_| HeaderError::NotUtf8)
}

/// The SPDY/3 dictionary's id as zlib reports it (its Adler-32).
fn dictionary_id() -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in SPDY3_DICTIONARY.iter() {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// Reads the peer's header blocks with the connection's inbound zlib context.
pub struct HeaderDecoder {
    inflate: Decompress,
    max_block: usize,
    max_pairs: usize,
}

impl HeaderDecoder {
    pub fn new(max_block: usize, max_pairs: usize) -> Self {
        Self {
            inflate: Decompress::new(true),
            max_block,
            max_pairs,
        }
    }

    pub fn decode(&mut self, compressed: &[u8]) -> Result<Headers, HeaderError> {
        let block = self.inflate_block(compressed)?;
        Headers::parse(&block, self.max_pairs)
    }

    fn inflate_block(&mut self, compressed: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut input = compressed;
        let mut out = Vec::with_capacity((compressed.len() * 4).clamp(64, self.max_block.max(64)));
        loop {
            if out.len() == out.capacity() {
                if out.len() >= self.max_block {
                    return Err(HeaderError::TooLarge {
                        max: self.max_block,
                    });
                }
                out.reserve_exact((self.max_block - out.len()).min(out.len().max(256)));
            }
            let (in_before, out_before) = (self.inflate.total_in(), out.len());
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - in_before) as usize;
            input = &input[consumed..];
            match result {
                Ok(status) => {
                    let output_full = out.len() == out.capacity();
                    if input.is_empty() && !output_full {
                        return Ok(out);
                    }
                    let stuck = consumed == 0 && out.len() == out_before && !output_full;
                    if stuck || status == Status::StreamEnd {
                        return Err(HeaderError::Incomplete);
                    }
                }
                Err(err) => match err.needs_dictionary() {
                    Some(id) if id == dictionary_id() => {
                        self.inflate
                            .set_dictionary(&SPDY3_DICTIONARY)
                            .map_err(|e| HeaderError::Zlib(e.to_string()))?;
                    }
                    Some(id) => return Err(HeaderError::WrongDictionary(id)),
                    None => return Err(HeaderError::Zlib(err.to_string())),
                },
            }
        }
    }
}

/// Writes our header blocks with the connection's outbound zlib context.
pub struct HeaderEncoder {
    deflate: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    pub fn new() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(&SPDY3_DICTIONARY)
            .expect("a fresh zlib stream accepts a dictionary");
        Self { deflate }
    }

    pub fn encode(&mut self, headers: &Headers) -> Vec<u8> {
        let raw = headers.serialize();
        let mut input = raw.as_slice();
        let mut out = Vec::with_capacity(raw.len() / 2 + 64);
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .expect("deflate of in-memory data cannot fail");
            input = &input[(self.deflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
            out.reserve(out.capacity().max(64));
        }
    }
}
