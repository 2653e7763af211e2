//! Scoring transcripts: word error rate, and the English text normalizer that
//! speech-recognition results are conventionally scored with (both reference
//! and hypothesis are normalized, so casing, punctuation, spelling variants and
//! number formatting are not counted as recognition errors).
//!
//! The normalizer, in order:
//! 1. lowercase; curly apostrophes become `'`; text in `[…]` or `(…)` is dropped
//!    (annotations such as `[music]`);
//! 2. contractions are expanded (`won't` → `will not`, `n't` → ` not`, `'re` →
//!    ` are`, `'ll` → ` will`, `'ve` → ` have`, `'m` → ` am`, `'d` → ` would`,
//!    `it's`/`that's`/… → `… is`, `let's` → `let us`); other apostrophes are removed;
//! 3. every character that is not a letter or digit becomes a space, except a
//!    `.` between digits (a decimal point); a `,` between digits is removed (`1,000`);
//! 4. British spellings of a fixed word list become American (`colour` → `color`,
//!    plural `-s` forms included);
//! 5. runs of spelled-out cardinal numbers become digits (`twenty one` → `21`,
//!    `nine` → `9`, `two hundred and five` → `205`), so `9` and `nine` agree;
//! 6. hesitation fillers (`uh`, `um`, `hmm`, `mm`, `mhm`) are dropped and
//!    whitespace is collapsed.

/// Word error rate: the word-level Levenshtein distance (substitutions,
/// insertions, deletions) between whitespace-separated words, over the
/// reference's word count (an empty reference counts as one word).
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r: Vec<&str> = reference.split_whitespace().collect();
    let h: Vec<&str> = hypothesis.split_whitespace().collect();
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(rw != hw)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len().max(1) as f64
}

/// [`word_error_rate`] after [`normalize_english`] on both sides.
pub fn normalized_wer(reference: &str, hypothesis: &str) -> f64 {
    word_error_rate(&normalize_english(reference), &normalize_english(hypothesis))
}

/// Normalize English text for scoring (see the module docs for the rules).
pub fn normalize_english(text: &str) -> String {
    let lower = drop_brackets(&text.to_lowercase().replace(['\u{2019}', '\u{2018}'], "'"));
    let expanded: Vec<String> = lower.split_whitespace().map(expand_contraction).collect();
    let plain = strip_symbols(&expanded.join(" "));
    let words: Vec<&str> = plain.split_whitespace().map(american).filter(|w| !FILLERS.contains(w)).collect();
    numbers_to_digits(&words).join(" ")
}

/// Remove `[…]` and `(…)` spans (not nested).
fn drop_brackets(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut closing = None;
    for c in text.chars() {
        match (closing, c) {
            (None, '[') => closing = Some(']'),
            (None, '(') => closing = Some(')'),
            (None, c) => out.push(c),
            (Some(end), c) if c == end => {
                closing = None;
                out.push(' ');
            }
            (Some(_), _) => {}
        }
    }
    out
}

/// Words whose `'s` is "is" (not a possessive).
const IS_CONTRACTIONS: &[&str] = &["it", "that", "what", "he", "she", "there", "here", "where", "who", "how"];

/// Expand one lowercase word's contraction, if any; other apostrophes are removed.
/// Punctuation around the word (`won't;`) is dropped first.
fn expand_contraction(word: &str) -> String {
    let word = word.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
    let whole = match word {
        "won't" => Some("will not"),
        "can't" | "cannot" => Some("can not"),
        "shan't" => Some("shall not"),
        "ain't" => Some("is not"),
        "let's" => Some("let us"),
        _ => None,
    };
    if let Some(w) = whole {
        return w.to_string();
    }
    const SUFFIXES: &[(&str, &str)] = &[("n't", " not"), ("'re", " are"), ("'ll", " will"), ("'ve", " have"), ("'m", " am"), ("'d", " would")];
    for (suffix, full) in SUFFIXES {
        if let Some(stem) = word.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            return format!("{stem}{full}");
        }
    }
    if let Some(stem) = word.strip_suffix("'s").filter(|s| IS_CONTRACTIONS.contains(s)) {
        return format!("{stem} is");
    }
    word.replace('\'', "")
}

/// Letters and digits stay; `.` between digits stays, `,` between digits goes; anything else is a space.
fn strip_symbols(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digit_at = |i: Option<usize>| i.and_then(|i| chars.get(i)).is_some_and(|c| c.is_ascii_digit());
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = digit_at(i.checked_sub(1)) && digit_at(Some(i + 1));
        match c {
            c if c.is_alphanumeric() => out.push(c),
            '.' if between_digits => out.push('.'),
            ',' if between_digits => {}
            _ => out.push(' '),
        }
    }
    out
}

const FILLERS: &[&str] = &["uh", "um", "hmm", "mm", "mhm"];

/// British → American spellings (singular forms; a trailing `s` is handled by [`american`]).
const BRITISH_AMERICAN: &[(&str, &str)] = &[
    ("analyse", "analyze"),
    ("apologise", "apologize"),
    ("behaviour", "behavior"),
    ("cancelled", "canceled"),
    ("catalogue", "catalog"),
    ("centre", "center"),
    ("colour", "color"),
    ("coloured", "colored"),
    ("defence", "defense"),
    ("dialogue", "dialog"),
    ("favour", "favor"),
    ("favourite", "favorite"),
    ("flavour", "flavor"),
    ("grey", "gray"),
    ("harbour", "harbor"),
    ("honour", "honor"),
    ("humour", "humor"),
    ("labour", "labor"),
    ("licence", "license"),
    ("litre", "liter"),
    ("metre", "meter"),
    ("neighbour", "neighbor"),
    ("organise", "organize"),
    ("programme", "program"),
    ("realise", "realize"),
    ("recognise", "recognize"),
    ("theatre", "theater"),
    ("travelled", "traveled"),
    ("travelling", "traveling"),
];

fn american(word: &str) -> &str {
    let lookup = |w: &str| BRITISH_AMERICAN.iter().find(|(b, _)| *b == w).map(|(_, a)| *a);
    if let Some(a) = lookup(word) {
        return a;
    }
    // Plurals: the table holds singulars, so map "colours" through "colour".
    match word.strip_suffix('s').and_then(lookup) {
        Some(a) => PLURALS.iter().find(|(s, _)| *s == a).map_or(word, |(_, p)| *p),
        None => word,
    }
}

/// Plural American forms of the table entries that take an `s`.
const PLURALS: &[(&str, &str)] = &[
    ("behavior", "behaviors"),
    ("catalog", "catalogs"),
    ("center", "centers"),
    ("color", "colors"),
    ("dialog", "dialogs"),
    ("favor", "favors"),
    ("favorite", "favorites"),
    ("flavor", "flavors"),
    ("harbor", "harbors"),
    ("honor", "honors"),
    ("license", "licenses"),
    ("liter", "liters"),
    ("meter", "meters"),
    ("neighbor", "neighbors"),
    ("program", "programs"),
    ("theater", "theaters"),
];

fn small_number(word: &str) -> Option<u64> {
    const UNITS: [&str; 20] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    ];
    const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    UNITS.iter().position(|u| *u == word).map(|i| i as u64).or_else(|| TENS.iter().position(|t| *t == word).map(|i| 20 + 10 * i as u64))
}

fn scale(word: &str) -> Option<u64> {
    match word {
        "hundred" => Some(100),
        "thousand" => Some(1_000),
        "million" => Some(1_000_000),
        "billion" => Some(1_000_000_000),
        _ => None,
    }
}

/// Replace each maximal run of spelled-out cardinal number words by its value.
fn numbers_to_digits(words: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        match parse_number(&words[i..]) {
            Some((value, used)) => {
                out.push(value.to_string());
                i += used;
            }
            None => {
                out.push(words[i].to_string());
                i += 1;
            }
        }
    }
    out
}

/// Parse a cardinal at the start of `words`: `(value, words used)`.
/// `and` is consumed only between a scale word and a following number
/// (`two hundred and five`); a scale word needs a number before it.
fn parse_number(words: &[&str]) -> Option<(u64, usize)> {
    let (mut total, mut current, mut used) = (0u64, 0u64, 0usize);
    let mut last_small: Option<u64> = None;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if let Some(n) = small_number(w) {
            // "twenty one" combines; "one two" or "five twenty" are two numbers.
            let combines = match last_small {
                None => true,
                Some(prev) => prev >= 20 && prev % 10 == 0 && n < 10 && n > 0,
            };
            if !combines {
                break;
            }
            current += n;
            last_small = Some(n);
        } else if let Some(s) = scale(w) {
            if used == 0 || (current == 0 && total == 0) {
                break;
            }
            if s == 100 {
                current = current.max(1) * 100;
            } else {
                total += current.max(1) * s;
                current = 0;
            }
            last_small = None;
        } else if w == "and" && last_small.is_none() && used > 0 && words.get(i + 1).is_some_and(|n| small_number(n).is_some()) {
            // only after a scale word
        } else {
            break;
        }
        i += 1;
        if small_number(w).is_some() || scale(w).is_some() {
            used = i;
        }
    }
    (used > 0).then_some((total + current, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_counts_substitutions_insertions_deletions() {
        assert_eq!(word_error_rate("a b c d", "a b c d"), 0.0);
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5);
        assert_eq!(word_error_rate("a b", "a b c d"), 1.0);
        assert_eq!(word_error_rate("", ""), 0.0);
    }

    #[test]
    fn case_punctuation_and_spelling_are_not_errors() {
        let table = [
            ("My favourite season is autumn because the leaves change colour.", "my favorite season is autumn because the leaves change color"),
            ("The quick brown fox, jumps!", "the quick brown fox jumps"),
            ("Grey colours [music] (laughs)", "gray colors"),
            ("It's nine o'clock; we'll see.", "it is 9 oclock we will see"),
            ("I can't and won't; they're here, aren't they?", "i can not and will not they are here are not they"),
            ("Stella's well-known store", "stellas well known store"),
            ("Uh, um, hmm yes", "yes"),
            ("Pi is 3.14, a 1,000 times", "pi is 3.14 a 1000 times"),
        ];
        for (text, want) in table {
            assert_eq!(normalize_english(text), want, "{text}");
        }
    }

    #[test]
    fn spelled_numbers_become_digits() {
        let table = [
            ("at nine in the morning", "at 9 in the morning"),
            ("twenty one pilots", "21 pilots"),
            ("two hundred and five", "205"),
            ("three thousand four hundred twelve", "3412"),
            ("one two three", "1 2 3"),
            ("hundred", "hundred"),
            ("bread and butter", "bread and butter"),
            ("five and six", "5 and 6"),
        ];
        for (text, want) in table {
            assert_eq!(normalize_english(text), want, "{text}");
        }
    }

    #[test]
    fn normalized_wer_ignores_formatting_only() {
        assert_eq!(normalized_wer("We meet at nine.", "we meet at 9"), 0.0);
        assert_eq!(normalized_wer("the colour red", "the color bread"), 1.0 / 3.0);
    }
}
