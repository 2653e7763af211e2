//! espeak-ng as a phonemizer: text -> IPA clauses, the way Piper's voices were
//! trained to read it.
//!
//! The library (`libespeak-ng.so.1`, Debian's `libespeak-ng1`) is opened at run
//! time, so mmrt runs without it until a voice bundle is used, and says how to
//! install it when it is missing. Its state is global and not thread-safe:
//! every call goes through one process-wide lock.
//!
//! Piper phonemizes with its own espeak-ng fork through
//! `espeak_TextToPhonemesWithTerminator`; upstream espeak-ng has only
//! `espeak_TextToPhonemes`. Two differences are made up for here:
//!
//! * **Clause terminators.** Piper keeps each clause's punctuation (`, : ; . ? !`)
//!   as a phoneme and starts a new sentence after `. ? !`. The terminator is read
//!   back from the text each call consumed (the call reads one character past
//!   the clause, which is left out).
//! * **The linking glide.** espeak-ng's English inserts a phoneme `;` between a
//!   final `i`/`ɪ` and a following vowel (`the end` -> `ðɪ; ˈɛnd`); the fork writes
//!   it as `ʲ`, upstream writes nothing. Each text is read twice, as IPA and as
//!   espeak mnemonics, both with a phoneme separator: where the mnemonic is `;`,
//!   `ʲ` goes into the IPA. When the two readings do not align (never seen), the
//!   IPA is kept as it is.
//!
//! After each reading the reader is drained with a newline: a text ending in an
//! unfinished clause (`0 ..`) otherwise leaks into the next text ("dot ...").

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libloading::Library;

use crate::error::{Error, Result};

/// espeak-ng's library names, most specific first.
const LIBRARY_NAMES: [&str; 3] = ["libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.dylib"];
/// `AUDIO_OUTPUT_SYNCHRONOUS`: no audio device is opened.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeakCHARS_UTF8`.
const CHARS_UTF8: c_int = 1;
/// `espeakPHONEMES_IPA` in `phonememode`; 0 gives espeak's ASCII mnemonics.
const PHONEMES_IPA: c_int = 0x02;
/// Phoneme separator (a private-use character, never in espeak's output), in bits 8-23 of `phonememode`.
const SEPARATOR: char = '\u{E000}';
/// Files every espeak-ng data folder has; espeak-ng silently falls back to its
/// built-in path when they are missing, so they are checked first.
const DATA_FILES: [&str; 4] = ["phontab", "phonindex", "phondata", "intonations"];

type Initialize = unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int;
type SetVoiceByName = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemes = unsafe extern "C" fn(*mut *const c_void, c_int, c_int) -> *const c_char;
type Terminate = unsafe extern "C" fn() -> c_int;

/// One clause as Piper sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// IPA, words separated by spaces (language-switch flags still in).
    pub phonemes: String,
    /// The clause's punctuation, if it is one Piper keeps.
    pub terminator: Option<char>,
    /// Whether a sentence ends here (`.`, `?`, `!`).
    pub ends_sentence: bool,
}

/// The loaded library, initialized for one data folder and voice.
struct Engine {
    _library: Library,
    initialize: Initialize,
    set_voice: SetVoiceByName,
    text_to_phonemes: TextToPhonemes,
    terminate: Terminate,
    data_parent: Option<PathBuf>,
    voice: Option<String>,
}

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

/// Text -> clauses with espeak-ng voice `voice`, using the espeak-ng data folder `data`.
pub fn phonemize(data: &Path, voice: &str, text: &str) -> Result<Vec<Clause>> {
    let text = CString::new(text.replace('\0', " ")).expect("NULs replaced");
    let mut guard = ENGINE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if guard.is_none() {
        *guard = Some(Engine::load()?);
    }
    let engine = guard.as_mut().expect("loaded above");
    engine.select(data, voice)?;
    let ipa = engine.read(&text, PHONEMES_IPA);
    let mnemonics = engine.read(&text, 0);
    let bytes = text.as_bytes();
    let aligned = ipa.len() == mnemonics.len() && ipa.iter().zip(&mnemonics).all(|(a, b)| a.span == b.span);
    if !aligned {
        log::warn!("espeak-ng read the text differently twice; linking glides left out");
    }
    Ok(ipa
        .iter()
        .enumerate()
        .map(|(i, clause)| {
            let phonemes = match mnemonics.get(i) {
                Some(m) if aligned => with_glides(&clause.text, &m.text),
                _ => clause.text.replace(SEPARATOR, ""),
            };
            let (terminator, ends_sentence) = terminator(bytes, clause.span);
            Clause { phonemes, terminator, ends_sentence }
        })
        .collect())
}

/// One call's output and the byte range of the text it consumed (`None` end: to the end).
struct Raw {
    text: String,
    span: (usize, Option<usize>),
}

impl Engine {
    fn load() -> Result<Engine> {
        let mut errors = Vec::new();
        for name in LIBRARY_NAMES {
            // SAFETY: loading espeak-ng runs its (trivial) initializers only.
            match unsafe { Library::new(name) } {
                Ok(library) => return Engine::bind(library, name),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Err(Error::Request(format!(
            "text to speech needs the espeak-ng library, which was not found ({}); install it \
             (Debian/Ubuntu: apt-get install libespeak-ng1, macOS: brew install espeak-ng)",
            errors.join("; ")
        )))
    }

    fn bind(library: Library, name: &str) -> Result<Engine> {
        let missing = |symbol: &str, e: libloading::Error| {
            Error::Request(format!("{name} has no {symbol} ({e}); espeak-ng 1.49 or newer is needed"))
        };
        // SAFETY: the signatures are espeak-ng's (speak_lib.h), stable since 1.49.
        unsafe {
            let initialize = *library.get::<Initialize>(b"espeak_Initialize\0").map_err(|e| missing("espeak_Initialize", e))?;
            let set_voice =
                *library.get::<SetVoiceByName>(b"espeak_SetVoiceByName\0").map_err(|e| missing("espeak_SetVoiceByName", e))?;
            let text_to_phonemes =
                *library.get::<TextToPhonemes>(b"espeak_TextToPhonemes\0").map_err(|e| missing("espeak_TextToPhonemes", e))?;
            let terminate = *library.get::<Terminate>(b"espeak_Terminate\0").map_err(|e| missing("espeak_Terminate", e))?;
            Ok(Engine { _library: library, initialize, set_voice, text_to_phonemes, terminate, data_parent: None, voice: None })
        }
    }

    /// Initialize for `data` (re-initialize when another folder was in use) and select `voice`.
    fn select(&mut self, data: &Path, voice: &str) -> Result<()> {
        let parent = check_data(data)?;
        if self.data_parent.as_deref() != Some(parent.as_path()) {
            if self.data_parent.take().is_some() {
                // SAFETY: initialized before; espeak-ng may be initialized again after terminating.
                unsafe { (self.terminate)() };
            }
            let path = CString::new(parent.to_string_lossy().as_bytes())
                .map_err(|_| Error::Request(format!("espeak-ng data path {} contains a NUL byte", data.display())))?;
            // SAFETY: a valid NUL-terminated path; synchronous output opens no audio device.
            let rate = unsafe { (self.initialize)(AUDIO_OUTPUT_SYNCHRONOUS, 0, path.as_ptr(), 0) };
            if rate <= 0 {
                return Err(Error::Request(format!("espeak-ng failed to initialize with data folder {}", data.display())));
            }
            self.data_parent = Some(parent);
            self.voice = None;
        }
        if self.voice.as_deref() != Some(voice) {
            let name = CString::new(voice).map_err(|_| Error::Request(format!("espeak voice {voice:?} contains a NUL byte")))?;
            // SAFETY: a valid NUL-terminated voice name.
            let status = unsafe { (self.set_voice)(name.as_ptr()) };
            if status != 0 {
                return Err(Error::Request(format!(
                    "espeak-ng has no voice \"{voice}\" in {} (status {status}); check `espeak.voice` in the voice config",
                    data.display()
                )));
            }
            self.voice = Some(voice.to_string());
        }
        Ok(())
    }

    /// Every clause of `text` in `mode` (IPA or mnemonics, with the separator), then drain the reader.
    fn read(&self, text: &CStr, mode: c_int) -> Vec<Raw> {
        let mode = mode | ((SEPARATOR as c_int) << 8);
        let out = self.clauses(text, mode);
        self.clauses(c"\n", mode);
        out
    }

    fn clauses(&self, text: &CStr, mode: c_int) -> Vec<Raw> {
        let base = text.as_ptr() as usize;
        let mut pointer = text.as_ptr() as *const c_void;
        let mut out = Vec::new();
        while !pointer.is_null() {
            let start = pointer as usize - base;
            // SAFETY: `pointer` walks the NUL-terminated `text`, which outlives the call;
            // espeak-ng advances it clause by clause and sets it to NULL at the end.
            let phonemes = unsafe { (self.text_to_phonemes)(&mut pointer, CHARS_UTF8, mode) };
            let end = (!pointer.is_null()).then(|| pointer as usize - base);
            let text = if phonemes.is_null() {
                String::new()
            } else {
                // SAFETY: espeak-ng returns a NUL-terminated string valid until the next call.
                unsafe { CStr::from_ptr(phonemes) }.to_string_lossy().into_owned()
            };
            out.push(Raw { text, span: (start, end) });
            if end.is_some_and(|e| e <= start) {
                break; // no progress: never loop forever on a misbehaving library
            }
        }
        out
    }
}

/// The folder espeak-ng is initialized with is the parent of `espeak-ng-data`;
/// `data` must be such a folder, with the files every data folder has.
fn check_data(data: &Path) -> Result<PathBuf> {
    if data.file_name().is_none_or(|n| n != "espeak-ng-data") {
        return Err(Error::Request(format!("espeak-ng data folder {} must be named espeak-ng-data", data.display())));
    }
    for file in DATA_FILES {
        if !data.join(file).is_file() {
            return Err(Error::Request(format!("espeak-ng data folder {} has no {file}", data.display())));
        }
    }
    Ok(data.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// Insert `ʲ` into separated IPA where the separated mnemonics have the linking phoneme `;`.
fn with_glides(ipa: &str, mnemonics: &str) -> String {
    let plain = || ipa.replace(SEPARATOR, "");
    let (ipa_words, mnemonic_words): (Vec<&str>, Vec<&str>) = (ipa.split(' ').collect(), mnemonics.split(' ').collect());
    if ipa_words.len() != mnemonic_words.len() {
        return plain();
    }
    let mut out = String::with_capacity(ipa.len() + 8);
    for (w, (ipa_word, mnemonic_word)) in ipa_words.iter().zip(&mnemonic_words).enumerate() {
        if w > 0 {
            out.push(' ');
        }
        let ipa_phonemes: Vec<&str> = ipa_word.split(SEPARATOR).collect();
        let mnemonic_phonemes: Vec<&str> = mnemonic_word.split(SEPARATOR).collect();
        if ipa_phonemes.len() != mnemonic_phonemes.len() {
            return plain();
        }
        for (p, m) in ipa_phonemes.iter().zip(&mnemonic_phonemes) {
            out.push_str(if *m == ";" { "ʲ" } else { p });
        }
    }
    out
}

/// Closing quotes and brackets that may follow a clause's punctuation.
const CLOSERS: &[char] = &['"', '\'', ')', ']', '}', '»', '”', '’'];

/// The punctuation that ended the clause `text[span]`, and whether it ends a sentence.
fn terminator(text: &[u8], span: (usize, Option<usize>)) -> (Option<char>, bool) {
    let (start, end) = span;
    let end = end.unwrap_or(text.len()).min(text.len());
    let consumed = String::from_utf8_lossy(&text[start.min(end)..end]);
    let mut clause: &str = &consumed;
    if span.1.is_some() {
        // The reader took one character of the next clause.
        clause = clause.char_indices().last().map_or("", |(i, _)| &clause[..i]);
    }
    let clause = clause.trim_end_matches(|c: char| c.is_whitespace() || CLOSERS.contains(&c));
    let body = clause.trim_end_matches(|c: char| !c.is_alphanumeric() && !c.is_whitespace());
    let run = &clause[body.len()..];
    if run.ends_with("...") || run.ends_with('…') {
        return (None, false);
    }
    for c in run.chars() {
        match c {
            '.' | '?' | '!' => return (Some(c), true),
            ',' | ':' | ';' => return (Some(c), false),
            _ => {}
        }
    }
    (None, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminators_are_read_back_from_the_consumed_text() {
        let text = b"Hello, world. Wait... what?! \"Fine,\" ok";
        assert_eq!(terminator(text, (0, Some(8))), (Some(','), false)); // "Hello, w"
        assert_eq!(terminator(text, (8, Some(15))), (Some('.'), true)); // "orld. W"
        assert_eq!(terminator(text, (15, Some(23))), (None, false)); // "ait... w"
        assert_eq!(terminator(text, (23, Some(30))), (Some('?'), true)); // "hat?! \""
        assert_eq!(terminator(text, (30, Some(38))), (Some(','), false)); // "Fine,\" o"
        assert_eq!(terminator(text, (38, None)), (None, false)); // "k"
    }

    #[test]
    fn glides_go_where_the_mnemonics_have_the_linking_phoneme() {
        let s = SEPARATOR;
        let ipa = format!("ð{s}ɪ{s} ˈɛ{s}n{s}d");
        let mnemonics = format!("D{s}I2{s}; 'E{s}n{s}d");
        assert_eq!(with_glides(&ipa, &mnemonics), "ðɪʲ ˈɛnd");
        // Misaligned readings keep the IPA.
        assert_eq!(with_glides(&ipa, "D"), "ðɪ ˈɛnd");
    }
}
