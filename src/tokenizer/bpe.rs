//! Encoding and decoding with a [`CompactTokenizer`], giving the ids and
//! text the `tokenizers` crate gives for the same `tokenizer.json`
//! (`tests/compact_tokenizer.rs` checks this on Gemma 3's tokenizer):
//!
//! 1. added tokens are cut out of the text where they appear as written,
//!    leftmost first and longest at a place;
//! 2. each piece between them is normalized (string replacements) and split
//!    into characters, a character outside the vocabulary becoming its
//!    `<0xXX>` byte tokens (else the unk token);
//! 3. the pair of neighbours with the lowest merge rank is merged, leftmost
//!    first among equal ranks, until no neighbouring pair has a merge;
//! 4. the post-processor's fixed ids go around the result.
//!
//! Decoding replaces in each token's text, turns runs of byte tokens back
//! into UTF-8 (U+FFFD per byte of an invalid run) and concatenates.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::compact::CompactTokenizer;

/// A symbol of a piece during merging: a token id in a doubly linked list.
#[derive(Clone, Copy)]
struct Symbol {
    id: u32,
    prev: usize,
    next: usize,
    merged_away: bool,
}

const NONE: usize = usize::MAX;

impl CompactTokenizer {
    /// Token ids of `text`; `add_special` adds the post-processor's ids (e.g. BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> Vec<u32> {
        let mut ids = Vec::with_capacity(text.len() / 3 + self.prefix.len() + self.suffix.len() + 1);
        if add_special {
            ids.extend_from_slice(&self.prefix);
        }
        let bytes = text.as_bytes();
        let (mut piece_start, mut at) = (0, 0);
        while at < bytes.len() {
            match self.added_token_at(text, at) {
                Some((id, len)) => {
                    self.encode_piece(&text[piece_start..at], &mut ids);
                    ids.push(id);
                    at += len;
                    piece_start = at;
                }
                None => at += utf8_len(bytes[at]),
            }
        }
        self.encode_piece(&text[piece_start..], &mut ids);
        if add_special {
            ids.extend_from_slice(&self.suffix);
        }
        self.release_pages();
        ids
    }

    /// The text of `ids`; ids beyond the vocabulary are dropped, special tokens too when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> String {
        let (from, to) = (&self.decode_replace.0, &self.decode_replace.1);
        let mut text = String::new();
        let mut pending_bytes = Vec::new();
        for &id in ids {
            let Some(token) = self.token(id) else { continue };
            if skip_special && self.is_special(id) {
                continue;
            }
            let token = token.replace(from.as_str(), to);
            match byte_token(&token) {
                Some(byte) => pending_bytes.push(byte),
                None => {
                    flush_bytes(&mut pending_bytes, &mut text);
                    text.push_str(&token);
                }
            }
        }
        flush_bytes(&mut pending_bytes, &mut text);
        self.release_pages();
        text
    }

    /// The added token that starts at byte `at` of `text`, the longest if several do: (id, length).
    fn added_token_at(&self, text: &str, at: usize) -> Option<(u32, usize)> {
        if !self.added_first_bytes[text.as_bytes()[at] as usize] {
            return None;
        }
        let rest = &text[at..];
        self.added_lengths
            .iter()
            .filter(|&&len| len <= rest.len() && rest.is_char_boundary(len))
            .find_map(|&len| self.find_in(&self.added_sorted, &rest[..len]).map(|id| (id, len)))
    }

    /// Normalize one piece of text between added tokens and append its merged tokens.
    fn encode_piece(&self, piece: &str, ids: &mut Vec<u32>) {
        if piece.is_empty() {
            return;
        }
        let mut normalized = piece.to_string();
        for (from, to) in &self.normalizer {
            normalized = normalized.replace(from.as_str(), to);
        }
        let mut symbols = self.initial_symbols(&normalized);
        self.merge_all(&mut symbols);
        ids.extend(symbols.iter().filter(|s| !s.merged_away).map(|s| s.id));
    }

    /// One symbol per character: its token, else its byte tokens, else unk (consecutive unknowns
    /// fused into one when `fuse_unk`). As in `tokenizers`, a pending unk is placed only when the
    /// next known character comes (byte tokens in between go before it).
    fn initial_symbols(&self, text: &str) -> Vec<Symbol> {
        let mut ids: Vec<u32> = Vec::with_capacity(text.len());
        let mut unk_pending = false;
        let mut buf = [0u8; 4];
        for c in text.chars() {
            let char_text: &str = c.encode_utf8(&mut buf);
            if let Some(id) = self.id_of_char(c) {
                if std::mem::take(&mut unk_pending) {
                    ids.extend(self.unk);
                }
                ids.push(id);
            } else if let Some(fallback) = self.byte_tokens(char_text) {
                ids.extend(fallback);
            } else if self.unk.is_some() {
                if unk_pending && !self.fuse_unk {
                    ids.extend(self.unk);
                }
                unk_pending = true;
            }
        }
        if unk_pending {
            ids.extend(self.unk);
        }
        let last = ids.len().saturating_sub(1);
        ids.iter()
            .enumerate()
            .map(|(i, &id)| Symbol { id, prev: if i == 0 { NONE } else { i - 1 }, next: if i == last { NONE } else { i + 1 }, merged_away: false })
            .collect()
    }

    /// The byte tokens of `char_text`, if the model falls back to bytes and has a token for each of them.
    fn byte_tokens<'a>(&'a self, char_text: &'a str) -> Option<impl Iterator<Item = u32> + 'a> {
        let table = self.byte_ids.as_ref()?;
        char_text.bytes().all(|b| table[b as usize].is_some()).then(|| char_text.bytes().filter_map(|b| table[b as usize]))
    }

    /// Merge neighbours, lowest rank first and leftmost among equal ranks, until no pair merges.
    ///
    /// Candidates wait in a min-heap keyed (rank, position, merged id). A candidate is stale when
    /// its left symbol was merged away or its pair now merges into another token; as in
    /// `tokenizers`, it is still taken when the pair now there merges into the same token.
    fn merge_all(&self, symbols: &mut [Symbol]) {
        let mut queue = BinaryHeap::with_capacity(symbols.len());
        for pos in 0..symbols.len().saturating_sub(1) {
            self.push_candidate(symbols, pos, &mut queue);
        }
        while let Some(Reverse((_, pos, merged))) = queue.pop() {
            let left = symbols[pos];
            if left.merged_away || left.next == NONE {
                continue;
            }
            let right = symbols[left.next];
            if self.merge(left.id, right.id).map(|(_, id)| id) != Some(merged) {
                continue;
            }
            symbols[left.next].merged_away = true;
            symbols[pos].id = merged;
            symbols[pos].next = right.next;
            if right.next != NONE {
                symbols[right.next].prev = pos;
            }
            if left.prev != NONE {
                self.push_candidate(symbols, left.prev, &mut queue);
            }
            self.push_candidate(symbols, pos, &mut queue);
        }
    }

    /// Queue the merge of the symbol at `pos` with its next neighbour, if that pair merges.
    fn push_candidate(&self, symbols: &[Symbol], pos: usize, queue: &mut BinaryHeap<Reverse<(u32, usize, u32)>>) {
        let next = symbols[pos].next;
        if next == NONE {
            return;
        }
        if let Some((rank, merged)) = self.merge(symbols[pos].id, symbols[next].id) {
            queue.push(Reverse((rank, pos, merged)));
        }
    }
}

/// Byte length of the UTF-8 character that starts with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// The byte a `<0xXX>` token stands for (parsed as `tokenizers`' ByteFallback decoder does).
fn byte_token(token: &str) -> Option<u8> {
    if token.len() == 6 && token.starts_with("<0x") && token.ends_with('>') {
        u8::from_str_radix(&token[3..5], 16).ok()
    } else {
        None
    }
}

/// Append a run of byte tokens: as UTF-8 if it is, else one U+FFFD per byte.
fn flush_bytes(bytes: &mut Vec<u8>, text: &mut String) {
    if bytes.is_empty() {
        return;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => text.push_str(s),
        Err(_) => text.extend(std::iter::repeat_n('\u{FFFD}', bytes.len())),
    }
    bytes.clear();
}
