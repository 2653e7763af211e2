//! mmrt's compact tokenizer file (`tokenizer.bin`, written by
//! `exporters/common/compact_tokenizer.py`, which documents the layout): a
//! SentencePiece-style BPE tokenizer as flat arrays, mapped and read in
//! place. Opening it parses a small JSON header and checks every array; no
//! hash map is built and no token string is copied (Gemma 3's 262k tokens
//! and 515k merges cost ~0.45 s and ~100 MiB through `tokenizer.json`).
//!
//! The file is untrusted input: every offset, id and count is checked at
//! open against the file and the vocabulary, so lookups never index out of
//! bounds and binary searches run over arrays known to be sorted.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;

use crate::limits;

const MAGIC: &[u8; 8] = b"MMRTBPE1";
/// The header is JSON of a few hundred kilobytes (the added tokens' ids); anything far larger is not this format.
const MAX_HEADER: usize = 64 << 20;
/// Merges per vocabulary entry, a generous bound on `merges` (Gemma 3: ~2).
const MAX_MERGES_PER_TOKEN: usize = 64;

/// The header's fields (`deny_unknown_fields`: a newer writer's file is refused, not misread).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    vocab: usize,
    merges: usize,
    unk: Option<u32>,
    fuse_unk: bool,
    byte_fallback: bool,
    normalizer: NormalizerSpec,
    prefix: Vec<u32>,
    suffix: Vec<u32>,
    decoder: DecoderSpec,
    /// (id, special) of each added token, matched in text as written.
    added: Vec<(u32, bool)>,
    /// Section name → (byte offset, byte length).
    sections: BTreeMap<String, (usize, usize)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizerSpec {
    /// String replacements applied in order to text outside added tokens.
    replace: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecoderSpec {
    /// One replacement applied to each token's text before byte fallback and fusing.
    replace: (String, String),
    byte_fallback: bool,
}

/// A mapped, checked compact tokenizer. Encoding and decoding live in [`super::bpe`].
pub struct CompactTokenizer {
    map: memmap2::Mmap,
    pub(super) vocab: usize,
    offsets: Range<usize>,
    strings: Range<usize>,
    sorted: Range<usize>,
    merge_start: Range<usize>,
    merges: Range<usize>,
    pub(super) unk: Option<u32>,
    pub(super) fuse_unk: bool,
    /// The `<0xXX>` token of each byte (None where the vocabulary lacks it), when the model falls back to bytes.
    pub(super) byte_ids: Option<Box<[Option<u32>; 256]>>,
    pub(super) normalizer: Vec<(String, String)>,
    pub(super) prefix: Vec<u32>,
    pub(super) suffix: Vec<u32>,
    pub(super) decode_replace: (String, String),
    /// Added tokens' ids ordered by their text's bytes (found by binary search).
    pub(super) added_sorted: Vec<u32>,
    /// Distinct added-token lengths in bytes, longest first (leftmost-longest matching tries each).
    pub(super) added_lengths: Vec<usize>,
    /// Which bytes can start an added token (skips the search everywhere else).
    pub(super) added_first_bytes: [bool; 256],
    /// Bit per id: the special tokens (dropped by `decode(.., skip_special = true)`).
    special: Vec<u64>,
    /// The one-character tokens (Gemma: ~14k), the first lookup for every character encoded: a
    /// binary search over the mapped index would touch a dozen scattered pages per character.
    single_chars: HashMap<char, u32>,
}

impl CompactTokenizer {
    /// Map and check `path`. Errors name what is wrong; the caller adds the path.
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
        // SAFETY: the bundle's files are read-only inputs; a file changed while mapped is outside the
        // contract (as for the token table and ONNX Runtime's own mapping).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| e.to_string())?;
        Self::from_map(map)
    }

    fn from_map(map: memmap2::Mmap) -> Result<Self, String> {
        let header = read_header(&map)?;
        let vocab = header.vocab;
        if vocab == 0 || vocab > limits::MAX_VOCAB_SIZE {
            return Err(format!("vocab {vocab} must be in 1..={} (limits::MAX_VOCAB_SIZE)", limits::MAX_VOCAB_SIZE));
        }
        if header.merges > vocab * MAX_MERGES_PER_TOKEN {
            return Err(format!("{} merges for a vocabulary of {vocab} is beyond {MAX_MERGES_PER_TOKEN} per token", header.merges));
        }
        let section = |name: &str, len: Option<usize>| section(&header.sections, name, len, map.len());
        let offsets = section("offsets", Some(4 * (vocab + 1)))?;
        let strings = section("strings", None)?;
        let sorted = section("sorted", Some(4 * vocab))?;
        let merge_start = section("merge_start", Some(4 * (vocab + 1)))?;
        let merges = section("merges", Some(12 * header.merges))?;
        let named_ids = header.named_ids();
        let mut tokenizer = CompactTokenizer {
            map,
            vocab,
            offsets,
            strings,
            sorted,
            merge_start,
            merges,
            unk: header.unk,
            fuse_unk: header.fuse_unk,
            byte_ids: None,
            normalizer: header.normalizer.replace,
            prefix: header.prefix,
            suffix: header.suffix,
            decode_replace: header.decoder.replace,
            added_sorted: Vec::new(),
            added_lengths: Vec::new(),
            added_first_bytes: [false; 256],
            special: vec![0; vocab.div_ceil(64)],
            single_chars: HashMap::new(),
        };
        tokenizer.check_strings()?;
        tokenizer.check_sorted()?;
        tokenizer.check_merges()?;
        tokenizer.check_ids(&named_ids)?;
        if tokenizer.normalizer.iter().any(|(from, _)| from.is_empty()) || tokenizer.decode_replace.0.is_empty() {
            return Err("a normalizer or decoder replacement has an empty pattern".into());
        }
        if !header.decoder.byte_fallback {
            return Err("the decoder must fall back to bytes (the only decoder this format holds)".into());
        }
        tokenizer.byte_ids = header.byte_fallback.then(|| tokenizer.find_byte_tokens());
        tokenizer.index_added(&header.added)?;
        tokenizer.release_pages();
        Ok(tokenizer)
    }

    /// Drops the file's pages from this process's resident set. The checks at open touch every
    /// page (Gemma: 11 MiB); encoding and decoding touch a few, scattered (a token's offsets and
    /// text, a merge group), but Linux maps 64 KiB around every touched page of a file mapping
    /// (fault-around, whatever the access advice), so a 128-token answer left ~10 MiB of the
    /// file resident. Dropping costs little: the mapping is shared and read-only, so a page used
    /// again comes back from the page cache with the same bytes. Called after opening and after
    /// every encode and decode (one `madvise`, a few microseconds). Random-access advice: no
    /// readahead on a cold cache.
    pub(super) fn release_pages(&self) {
        #[cfg(unix)]
        {
            // SAFETY: DONTNEED on a shared read-only file mapping only unmaps resident pages; their
            // contents are unchanged when touched again (unlike a private or anonymous mapping's).
            let dropped = unsafe { self.map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
            if let Err(e) = dropped.and_then(|()| self.map.advise(memmap2::Advice::Random)) {
                log::debug!("compact tokenizer: madvise failed ({e}); its pages stay resident");
            }
        }
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// The text of token `id`.
    pub fn token(&self, id: u32) -> Option<&str> {
        // SAFETY: checked at open: the strings are UTF-8 and every offset is a character boundary.
        ((id as usize) < self.vocab).then(|| unsafe { std::str::from_utf8_unchecked(self.token_bytes(id)) })
    }

    /// The id of the token whose text is exactly `text`.
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.find_in(self.u32s(&self.sorted), text)
    }

    /// The id of the one-character token `c`.
    pub(super) fn id_of_char(&self, c: char) -> Option<u32> {
        self.single_chars.get(&c).copied()
    }

    /// Binary search `ids`, sorted by their tokens' bytes, for `text`.
    pub(super) fn find_in(&self, ids: &[u32], text: &str) -> Option<u32> {
        ids.binary_search_by(|&id| self.token_bytes(id).cmp(text.as_bytes())).ok().map(|i| ids[i])
    }

    /// (rank, merged id) of the merge of `left` then `right`.
    pub fn merge(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let starts = self.u32s(&self.merge_start);
        let rows = self.u32s(&self.merges);
        let (from, to) = (starts[left as usize] as usize, starts[left as usize + 1] as usize);
        let group = &rows[3 * from..3 * to];
        let (mut lo, mut hi) = (0, to - from);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match group[3 * mid].cmp(&right) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some((group[3 * mid + 1], group[3 * mid + 2])),
            }
        }
        None
    }

    /// Whether `id` is a special token.
    pub fn is_special(&self, id: u32) -> bool {
        (id as usize) < self.vocab && self.special[id as usize / 64] >> (id % 64) & 1 == 1
    }

    pub(super) fn token_bytes(&self, id: u32) -> &[u8] {
        let offsets = self.u32s(&self.offsets);
        &self.map[self.strings.clone()][offsets[id as usize] as usize..offsets[id as usize + 1] as usize]
    }

    fn u32s(&self, range: &Range<usize>) -> &[u32] {
        // SAFETY: sections start at multiples of 4 (checked at open) in a page-aligned map; any bit pattern
        // is a valid u32. Read in native order: the file is little-endian, as every target mmrt builds for is.
        let (head, words, _) = unsafe { self.map[range.clone()].align_to::<u32>() };
        debug_assert!(head.is_empty());
        words
    }

    /// Check the offsets against the strings, and collect the one-character tokens.
    fn check_strings(&mut self) -> Result<(), String> {
        let offsets = self.u32s(&self.offsets);
        let text = std::str::from_utf8(&self.map[self.strings.clone()]).map_err(|e| format!("token strings are not UTF-8: {e}"))?;
        if offsets[0] != 0 || offsets[self.vocab] as usize != text.len() {
            return Err(format!("token offsets must run from 0 to the strings' {} bytes", text.len()));
        }
        let mut single_chars = HashMap::new();
        for (id, pair) in offsets.windows(2).enumerate() {
            if pair[0] > pair[1] || !text.is_char_boundary(pair[1] as usize) {
                return Err(format!("token {id}'s offsets {}..{} are not a piece of the strings", pair[0], pair[1]));
            }
            let mut chars = text[pair[0] as usize..pair[1] as usize].chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                single_chars.insert(c, id as u32);
            }
        }
        self.single_chars = single_chars;
        Ok(())
    }

    fn check_sorted(&self) -> Result<(), String> {
        let sorted = self.u32s(&self.sorted);
        if let Some(&id) = sorted.iter().find(|&&id| id as usize >= self.vocab) {
            return Err(format!("sorted index holds id {id}, beyond the vocabulary of {}", self.vocab));
        }
        // Strictly increasing texts: a binary search is sound, and no id appears twice (so all appear).
        if let Some(pair) = sorted.windows(2).find(|p| self.token_bytes(p[0]) >= self.token_bytes(p[1])) {
            return Err(format!("sorted index is not in strictly increasing token order at ids {} and {}", pair[0], pair[1]));
        }
        Ok(())
    }

    fn check_merges(&self) -> Result<(), String> {
        let starts = self.u32s(&self.merge_start);
        let rows = self.u32s(&self.merges);
        let total = rows.len() / 3;
        if starts[0] != 0 || starts[self.vocab] as usize != total {
            return Err(format!("merge_start must run from 0 to the {total} merges"));
        }
        for (left, pair) in starts.windows(2).enumerate() {
            if pair[0] > pair[1] || pair[1] as usize > total {
                return Err(format!("merge_start at token {left} ({}..{}) is not a range of the {total} merges", pair[0], pair[1]));
            }
            let group = &rows[3 * pair[0] as usize..3 * pair[1] as usize];
            for (i, row) in group.chunks_exact(3).enumerate() {
                if row[0] as usize >= self.vocab || row[2] as usize >= self.vocab {
                    return Err(format!("merge of token {left} with {} into {} names an id beyond the vocabulary", row[0], row[2]));
                }
                if i > 0 && group[3 * (i - 1)] >= row[0] {
                    return Err(format!("merges of token {left} are not in strictly increasing right-token order"));
                }
            }
        }
        Ok(())
    }

    fn check_ids(&self, ids: &[(&str, u32)]) -> Result<(), String> {
        match ids.iter().find(|(_, id)| *id as usize >= self.vocab) {
            Some((what, id)) => Err(format!("{what} id {id} is beyond the vocabulary of {}", self.vocab)),
            None => Ok(()),
        }
    }

    /// The byte tokens `<0x00>`..`<0xFF>` the vocabulary has.
    fn find_byte_tokens(&self) -> Box<[Option<u32>; 256]> {
        let mut ids = Box::new([None; 256]);
        for (byte, slot) in ids.iter_mut().enumerate() {
            *slot = self.id_of(&format!("<0x{byte:02X}>"));
        }
        ids
    }

    fn index_added(&mut self, added: &[(u32, bool)]) -> Result<(), String> {
        for &(id, special) in added {
            let text = self.token(id).ok_or_else(|| format!("added token id {id} is beyond the vocabulary of {}", self.vocab))?;
            let (Some(&first), len) = (text.as_bytes().first(), text.len()) else {
                return Err(format!("added token {id} is empty"));
            };
            self.added_first_bytes[first as usize] = true;
            self.added_lengths.push(len);
            if special {
                self.special[id as usize / 64] |= 1 << (id % 64);
            }
        }
        self.added_lengths.sort_unstable_by(|a, b| b.cmp(a));
        self.added_lengths.dedup();
        let mut sorted: Vec<u32> = added.iter().map(|&(id, _)| id).collect();
        sorted.sort_unstable_by(|&a, &b| self.token_bytes(a).cmp(self.token_bytes(b)));
        sorted.dedup();
        self.added_sorted = sorted;
        Ok(())
    }
}

impl Header {
    /// The ids the header names outside the arrays, labelled for errors.
    fn named_ids(&self) -> Vec<(&'static str, u32)> {
        let affixes = self.prefix.iter().chain(&self.suffix).map(|&id| ("post-processor", id));
        affixes.chain(self.unk.map(|id| ("unk", id))).collect()
    }
}

fn read_header(map: &[u8]) -> Result<Header, String> {
    if map.len() < 12 || &map[..8] != MAGIC {
        return Err("not an mmrt compact tokenizer (no MMRTBPE1 magic)".into());
    }
    let len = u32::from_le_bytes(map[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_HEADER || 12 + len > map.len() {
        return Err(format!("header of {len} bytes does not fit the file's {} bytes", map.len()));
    }
    let header: Header = serde_json::from_slice(&map[12..12 + len]).map_err(|e| format!("header: {e}"))?;
    if header.format != "mmrt.bpe" || header.version != 1 {
        return Err(format!("format {:?} version {} is not mmrt.bpe version 1", header.format, header.version));
    }
    Ok(header)
}

/// The byte range of section `name`, checked: present, 4-aligned, inside the file, of `len` bytes when given.
fn section(sections: &BTreeMap<String, (usize, usize)>, name: &str, len: Option<usize>, file_len: usize) -> Result<Range<usize>, String> {
    let &(offset, bytes) = sections.get(name).ok_or_else(|| format!("section \"{name}\" is missing"))?;
    if offset % 4 != 0 || offset.checked_add(bytes).is_none_or(|end| end > file_len) {
        return Err(format!("section \"{name}\" at {offset} of {bytes} bytes is misaligned or beyond the file's {file_len} bytes"));
    }
    if let Some(expected) = len.filter(|&l| l != bytes) {
        return Err(format!("section \"{name}\" has {bytes} bytes, the header's counts need {expected}"));
    }
    Ok(offset..offset + bytes)
}
