//! Loading `tokenizer.json` fast and small.
//!
//! The `tokenizers` crate reads a model through two generic JSON trees (an
//! untagged enum over `serde_json::Value`, then the merges through another
//! untagged enum): for Gemma 3's 262k-token vocabulary and 515k merges that
//! is ~1.6 s and ~350 MiB at peak, most of it left fragmented on the heap.
//! A BPE model is read here straight into its typed vocabulary and merge
//! list, and the tokenizer assembled from the same parts the crate's own
//! reader uses (normalizer, pre-tokenizer, post-processor, decoder,
//! truncation, padding, added tokens in file order). Anything this reader
//! does not recognise (another model type, an unknown model key, an added
//! token whose id comes out other than the file says) falls back to the
//! crate's reader, so the result is always the crate's tokenizer.

use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::{
    AddedToken, DecoderWrapper, ModelWrapper, NormalizerWrapper, PaddingParams, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer,
    TokenizerBuilder, TruncationParams,
};

/// Read `path` as a tokenizer: the fast reader for BPE models, the
/// `tokenizers` crate's reader for everything else.
pub fn load(path: &Path) -> Result<Tokenizer, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    match fast(&bytes) {
        Ok(tokenizer) => Ok(tokenizer),
        Err(why) => {
            log::debug!("{}: read by the tokenizers crate ({why})", path.display());
            Tokenizer::from_bytes(&bytes).map_err(|e| e.to_string())
        }
    }
}

/// The fast reader alone: `Err` says why it declined (the caller falls back).
pub fn fast(bytes: &[u8]) -> Result<Tokenizer, String> {
    let file: TokenizerFile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let model = file.model.build()?;
    let mut tokenizer = TokenizerBuilder::<ModelWrapper, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
        .with_model(ModelWrapper::BPE(model))
        .with_normalizer(file.normalizer)
        .with_pre_tokenizer(file.pre_tokenizer)
        .with_post_processor(file.post_processor)
        .with_decoder(file.decoder)
        .with_truncation(file.truncation)
        .with_padding(file.padding)
        .build()
        .map_err(|e| e.to_string())?;
    let expected: Vec<(String, u32)> = file.added_tokens.iter().map(|t| (t.content.clone(), t.id)).collect();
    tokenizer.add_tokens(file.added_tokens.into_iter().map(FileAddedToken::into_token)).map_err(|e| e.to_string())?;
    for (content, id) in expected {
        match tokenizer.token_to_id(&content) {
            Some(got) if got == id => {}
            got => return Err(format!("added token {content:?} would get id {got:?}, the file says {id}")),
        }
    }
    Ok(tokenizer.into())
}

/// The top level of `tokenizer.json`, typed (unknown keys ignored, as the crate does).
#[derive(Deserialize)]
struct TokenizerFile {
    #[serde(default)]
    truncation: Option<TruncationParams>,
    #[serde(default)]
    padding: Option<PaddingParams>,
    #[serde(default)]
    added_tokens: Vec<FileAddedToken>,
    #[serde(default)]
    normalizer: Option<NormalizerWrapper>,
    #[serde(default)]
    pre_tokenizer: Option<PreTokenizerWrapper>,
    model: BpeFile,
    #[serde(default)]
    decoder: Option<DecoderWrapper>,
    #[serde(default)]
    post_processor: Option<PostProcessorWrapper>,
}

/// One entry of `added_tokens` (every field required, as the crate requires them).
#[derive(Deserialize)]
struct FileAddedToken {
    id: u32,
    content: String,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

impl FileAddedToken {
    fn into_token(self) -> AddedToken {
        AddedToken::from(self.content, self.special)
            .single_word(self.single_word)
            .lstrip(self.lstrip)
            .rstrip(self.rstrip)
            .normalized(self.normalized)
    }
}

/// A BPE model section. Any key other than these makes the fast reader decline.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BpeFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    dropout: Option<f32>,
    #[serde(default)]
    unk_token: Option<String>,
    #[serde(default)]
    continuing_subword_prefix: Option<String>,
    #[serde(default)]
    end_of_word_suffix: Option<String>,
    #[serde(default)]
    fuse_unk: Option<bool>,
    #[serde(default)]
    byte_fallback: Option<bool>,
    #[serde(default)]
    ignore_merges: Option<bool>,
    vocab: Vocab,
    merges: MergeList,
}

impl BpeFile {
    fn build(self) -> Result<BPE, String> {
        if self.kind.as_deref() != Some("BPE") {
            return Err(format!("model type {:?} is not BPE", self.kind));
        }
        let mut builder = BPE::builder().vocab_and_merges(self.vocab, self.merges.0);
        if let Some(p) = self.dropout {
            builder = builder.dropout(p);
        }
        if let Some(unk) = self.unk_token {
            builder = builder.unk_token(unk);
        }
        if let Some(prefix) = self.continuing_subword_prefix {
            builder = builder.continuing_subword_prefix(prefix);
        }
        if let Some(suffix) = self.end_of_word_suffix {
            builder = builder.end_of_word_suffix(suffix);
        }
        if let Some(fuse) = self.fuse_unk {
            builder = builder.fuse_unk(fuse);
        }
        if let Some(fallback) = self.byte_fallback {
            builder = builder.byte_fallback(fallback);
        }
        if let Some(ignore) = self.ignore_merges {
            builder = builder.ignore_merges(ignore);
        }
        builder.build().map_err(|e| e.to_string())
    }
}

/// `merges`: pairs `["a", "b"]` or the older `"a b"` strings, read one at a
/// time with no intermediate tree.
struct MergeList(Merges);

impl<'de> Deserialize<'de> for MergeList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(MergeListVisitor)
    }
}

struct MergeListVisitor;

impl<'de> Visitor<'de> for MergeListVisitor {
    type Value = MergeList;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of merges")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MergeList, A::Error> {
        let mut merges = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Merge(a, b)) = seq.next_element()? {
            merges.push((a, b));
        }
        Ok(MergeList(merges))
    }
}

struct Merge(String, String);

impl<'de> Deserialize<'de> for Merge {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MergeVisitor)
    }
}

struct MergeVisitor;

impl<'de> Visitor<'de> for MergeVisitor {
    type Value = Merge;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a merge: [\"a\", \"b\"] or \"a b\"")
    }

    fn visit_str<E: de::Error>(self, line: &str) -> Result<Merge, E> {
        // As the crate reads the legacy form: exactly two parts around one space.
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) => Ok(Merge(a.to_string(), b.to_string())),
            _ => Err(E::custom(format!("merge {line:?} is not two tokens around one space"))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Merge, A::Error> {
        let a: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let b: String = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(Merge(a, b))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Merge, A::Error> {
        Err(de::Error::custom("a merge is not an object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small BPE tokenizer.json exercising every part the reader assembles.
    fn sample(merges: &str) -> String {
        format!(
            r#"{{"version":"1.0","truncation":null,"padding":null,
            "added_tokens":[{{"id":5,"content":"<s>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}},
                            {{"id":6,"content":"<extra>","single_word":false,"lstrip":false,"rstrip":false,"normalized":true,"special":false}}],
            "normalizer":{{"type":"Replace","pattern":{{"String":" "}},"content":"▁"}},
            "pre_tokenizer":null,
            "model":{{"type":"BPE","dropout":null,"unk_token":"u","fuse_unk":true,"byte_fallback":false,
                      "vocab":{{"u":0,"a":1,"b":2,"ab":3,"▁":4}},"merges":{merges}}},
            "decoder":{{"type":"Replace","pattern":{{"String":"▁"}},"content":" "}},
            "post_processor":null}}"#
        )
    }

    #[test]
    fn fast_reader_builds_what_the_crate_builds() {
        for merges in [r#"[["a","b"]]"#, r#"["a b"]"#] {
            let json = sample(merges);
            let slow = Tokenizer::from_bytes(json.as_bytes()).unwrap();
            let quick = fast(json.as_bytes()).unwrap();
            assert_eq!(quick.to_string(false).unwrap(), slow.to_string(false).unwrap());
            for text in ["ab a b<s>ba", "<extra>abab c"] {
                let (q, s) = (quick.encode(text, true).unwrap(), slow.encode(text, true).unwrap());
                assert_eq!(q.get_ids(), s.get_ids(), "{text}");
            }
        }
    }

    #[test]
    fn declines_what_it_does_not_know() {
        let unigram = sample("[]").replace(r#""type":"BPE""#, r#""type":"Unigram""#);
        assert!(fast(unigram.as_bytes()).unwrap_err().contains("not BPE"));
        let unknown_key = sample("[]").replace(r#""fuse_unk":true"#, r#""fuse_unk":true,"novel":1"#);
        assert!(fast(unknown_key.as_bytes()).is_err());
        let bad_merge = sample(r#"["a b c"]"#);
        assert!(fast(bad_merge.as_bytes()).is_err());
        let wrong_id = sample("[]").replace(r#""id":6"#, r#""id":9"#);
        assert!(fast(wrong_id.as_bytes()).unwrap_err().contains("would get id"));
        // The public entry point still reads it, through the crate.
        let dir = std::env::temp_dir().join(format!("mmrt-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, sample(r#"[["a","b"]]"#)).unwrap();
        assert!(load(&path).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
