//! Sentence streaming: text arriving piece by piece (an LLM's tokens) is cut
//! into sentences as soon as each one is complete, so speech can start while
//! the rest is still being written.
//!
//! A sentence ends at `.`, `!` or `?` (closing quotes and brackets included)
//! followed by whitespace, or at a blank line; not after a common abbreviation
//! (`Dr.`, `e.g.`) or a single-letter initial. A run longer than
//! [`MAX_SENTENCE_CHARS`] is cut at its last comma or space so a text without
//! punctuation still streams. espeak-ng splits each piece into clauses again.

/// Longest piece handed out without a sentence end.
pub const MAX_SENTENCE_CHARS: usize = 400;

/// Words ending in a period that rarely end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "approx", "inc", "ltd", "co",
    "a.m", "p.m", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mt", "ft", "u.s",
];

/// Accumulates text and hands out complete sentences.
#[derive(Debug)]
pub struct SentenceSplitter {
    pending: String,
    max_chars: usize,
    /// Until the first piece is out: also cut at a clause end (`, ; :`) once this many characters wait.
    first_clause_chars: Option<usize>,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        SentenceSplitter { pending: String::new(), max_chars: MAX_SENTENCE_CHARS, first_clause_chars: None }
    }
}

impl SentenceSplitter {
    /// A splitter with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cut runs without a sentence end at `max_chars` (at least 16) instead of
    /// [`MAX_SENTENCE_CHARS`]: a smaller first piece starts speech sooner.
    pub fn with_max_chars(max_chars: usize) -> Self {
        SentenceSplitter { max_chars: max_chars.max(16), ..Self::default() }
    }

    /// Hand out the first piece at its first clause end (`, ; :` + whitespace)
    /// once it is `min_chars` long: the listener hears the answer begin sooner,
    /// at the cost of a clause pause where the sentence would have flowed on.
    pub fn with_early_first_clause(mut self, min_chars: usize) -> Self {
        self.first_clause_chars = Some(min_chars);
        self
    }

    /// Add `text`; returns the sentences it completed, in order (trimmed, non-empty).
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        while let Some(end) = sentence_end(&self.pending, self.max_chars)
            .or_else(|| self.first_clause_chars.and_then(|min| clause_end(&self.pending, min)))
        {
            self.first_clause_chars = None;
            let rest = self.pending.split_off(end);
            let sentence = std::mem::replace(&mut self.pending, rest);
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
            }
        }
        out
    }

    /// The text left when the stream ends (`None` if only whitespace).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }
}

/// Split `text` into sentences at once (the same rules as streaming it).
pub fn split(text: &str) -> Vec<String> {
    let mut s = SentenceSplitter::new();
    let mut out = s.push(text);
    out.extend(s.finish());
    out
}

/// Byte offset just after the first complete sentence of `text`, if there is one.
fn sentence_end(text: &str, max_chars: usize) -> Option<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if c == '\n' && chars.get(k + 1).is_some_and(|&(_, n)| n == '\n') {
            return Some(i + 1);
        }
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        // Closing punctuation, quotes and brackets belong to the sentence.
        let mut j = k + 1;
        while chars.get(j).is_some_and(|&(_, n)| matches!(n, '.' | '!' | '?' | '"' | '\'' | ')' | ']' | '”' | '’' | '»')) {
            j += 1;
        }
        // Only whitespace after it tells the sentence is over (more text may still come).
        if !chars.get(j).is_some_and(|&(_, n)| n.is_whitespace()) {
            continue;
        }
        if c == '.' && is_abbreviation(&text[..i]) {
            continue;
        }
        return Some(chars[j].0);
    }
    if chars.len() > max_chars {
        let limit = chars[max_chars].0;
        let head = &text[..limit];
        let cut = head.rfind(", ").map(|p| p + 1).or_else(|| head.rfind(' ')).filter(|&p| p > 0).unwrap_or(limit);
        return Some(cut);
    }
    None
}

/// Byte offset just after the first clause end (`,` `;` `:` followed by whitespace) at or past `min_chars`.
fn clause_end(text: &str, min_chars: usize) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    let mut count = 0;
    while let Some((i, c)) = chars.next() {
        count += 1;
        if count >= min_chars && matches!(c, ',' | ';' | ':') && chars.peek().is_some_and(|&(_, n)| n.is_whitespace()) {
            return Some(i + c.len_utf8());
        }
    }
    None
}

/// Whether the word before a period at the end of `before` is an abbreviation or an initial.
fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(|c: char| c.is_whitespace() || c == '(' || c == '"').next().unwrap_or("");
    let lower = word.to_lowercase();
    let letters = lower.chars().filter(|c| c.is_alphabetic()).count();
    (letters == 1 && lower.chars().all(|c| c.is_alphabetic())) || ABBREVIATIONS.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_handed_out_as_soon_as_they_end() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Hello there.").is_empty(), "a period ends the sentence only once whitespace follows");
        assert_eq!(s.push(" How"), ["Hello there."]);
        assert_eq!(s.push(" are you? I'm"), ["How are you?"]);
        assert_eq!(s.push(" fine.\"\n"), ["I'm fine.\""]);
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn abbreviations_initials_and_numbers_do_not_end_sentences() {
        assert_eq!(split("Dr. Smith met J. R. Doe at 3.30 p.m. today. Then left"), ["Dr. Smith met J. R. Doe at 3.30 p.m. today.", "Then left"]);
        assert_eq!(split("Wait... really?! Yes."), ["Wait...", "really?!", "Yes."]);
    }

    #[test]
    fn the_first_piece_may_end_at_a_clause() {
        let mut s = SentenceSplitter::new().with_early_first_clause(10);
        assert!(s.push("Yes, it").is_empty(), "too short to cut at its comma");
        assert_eq!(s.push(" is blue, because light scatters, mostly"), ["Yes, it is blue,"]);
        assert!(s.push(" blue").is_empty(), "later pieces wait for the sentence end");
        assert_eq!(s.push(". Done."), ["because light scatters, mostly blue."]);
        assert_eq!(s.finish().as_deref(), Some("Done."));
    }

    #[test]
    fn long_runs_without_punctuation_are_cut_at_a_comma_or_space() {
        let text = "word, ".repeat(100);
        let parts = split(&text);
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|p| p.chars().count() <= MAX_SENTENCE_CHARS));
        assert_eq!(parts.join(" ").split_whitespace().count(), 100);
    }
}
