//! The KV cache is handed from step n's `present` outputs to step n+1's
//! `past` inputs by move, never copied: checked through the `DecoderModel`
//! seam, both with a fake model and around the real ONNX decoder.

mod common;

use mmrt::generate::{generate, DecoderModel, Decoding, GenerationConfig, Generation, StepInput};
use mmrt::runtime::SessionConfig;
use mmrt::stages::decoder::Decoder;
use mmrt::stages::io::KvCache;
use ort::value::{DynValue, Tensor};

use common::runtime;

/// Data pointers of each tensor of a cache.
fn pointers(cache: &KvCache) -> Vec<usize> {
    cache.values().iter().map(|v| mmrt::tensor::data_address(v).expect("tensor")).collect()
}

/// Records, per forward call, the pointers received as past and returned as present.
#[derive(Default)]
struct Log {
    received: Vec<Vec<usize>>,
    returned: Vec<Vec<usize>>,
    seq_lens: Vec<usize>,
}

impl Log {
    fn assert_moved(&self) {
        assert!(self.received.len() >= 3, "several steps ran");
        for step in 1..self.received.len() {
            assert_eq!(self.received[step], self.returned[step - 1], "step {step} got step {}'s presents", step - 1);
        }
    }
}

/// A 2-layer fake decoder whose logits favour token (position % 5).
struct FakeModel {
    log: Log,
    vocab: usize,
}

fn tensor(shape: [usize; 4], fill: f32) -> DynValue {
    let n = shape.iter().product();
    Tensor::from_array((shape.to_vec(), vec![fill; n])).unwrap().into_dyn()
}

impl DecoderModel for FakeModel {
    type Cache = KvCache;

    fn step(&mut self, input: StepInput<'_>, cache: KvCache, logits: &mut Vec<f32>) -> mmrt::Result<KvCache> {
        let StepInput::Ids(ids) = input else { panic!("the fake model is fed ids") };
        let seq = ids.len();
        self.log.received.push(pointers(&cache));
        self.log.seq_lens.push(cache.seq_len());
        let total = cache.seq_len() + seq;
        drop(cache);
        let present = KvCache::new((0..4).map(|i| tensor([1, 2, total, 8], i as f32)).collect(), total);
        self.log.returned.push(pointers(&present));
        logits.clear();
        logits.resize(self.vocab, 0.0);
        logits[total % 5] = 1.0;
        Ok(present)
    }

    fn new_cache(&mut self) -> mmrt::Result<KvCache> {
        Ok(KvCache::new((0..4).map(|_| tensor([1, 2, 0, 8], 0.0)).collect(), 0))
    }

    fn context_length(&self) -> usize {
        64
    }

    fn name(&self) -> &str {
        "fake"
    }
}

/// Wraps the real decoder, recording the same pointers.
struct Recording {
    inner: Decoder,
    log: Log,
}

impl DecoderModel for Recording {
    type Cache = KvCache;

    fn step(&mut self, input: StepInput<'_>, cache: KvCache, logits: &mut Vec<f32>) -> mmrt::Result<KvCache> {
        self.log.received.push(pointers(&cache));
        self.log.seq_lens.push(cache.seq_len());
        let present = self.inner.step(input, cache, logits)?;
        self.log.returned.push(pointers(&present));
        Ok(present)
    }

    fn new_cache(&mut self) -> mmrt::Result<KvCache> {
        self.inner.new_cache()
    }

    fn context_length(&self) -> usize {
        self.inner.context_length()
    }

    fn name(&self) -> &str {
        "recording"
    }
}

fn generate_greedy<M: DecoderModel>(model: &mut M, prompt: &[u32], max_new_tokens: usize) -> mmrt::Result<Generation> {
    let config = GenerationConfig { max_new_tokens, ..Default::default() };
    generate(model, StepInput::Ids(prompt), prompt, &mut Decoding::new(&config, &[]), |_| Ok(()))
}

fn run<M: DecoderModel>(model: &mut M, prompt: &[u32], max_new_tokens: usize) -> Vec<u32> {
    generate_greedy(model, prompt, max_new_tokens).unwrap().ids
}

#[test]
fn fake_model_receives_previous_presents() {
    runtime();
    let mut model = FakeModel { log: Log::default(), vocab: 10 };
    let ids = run(&mut model, &[1, 2, 3], 6);
    assert_eq!(ids, vec![3, 4, 0, 1, 2, 3], "greedy follows the fake logits");
    model.log.assert_moved();
    assert_eq!(model.log.seq_lens, vec![0, 3, 4, 5, 6, 7], "cache length grows by one per step");
}

#[test]
fn real_decoder_receives_previous_presents() {
    let runtime = runtime();
    let decoder = common::decoder(&runtime, &common::tiny_dir(), SessionConfig::default());
    let mut model = Recording { inner: decoder, log: Log::default() };
    run(&mut model, &[1, 10, 20, 30], 8);
    model.log.assert_moved();
    assert_eq!(model.log.seq_lens, vec![0, 4, 5, 6, 7, 8, 9, 10]);
}

#[test]
fn generation_stops_at_the_context_length() {
    runtime();
    let mut model = FakeModel { log: Log::default(), vocab: 10 };
    let prompt: Vec<u32> = (0..60).collect();
    let g = generate_greedy(&mut model, &prompt, 100).unwrap();
    assert_eq!(g.stop_reason, mmrt::generate::StopReason::ContextFull);
    assert_eq!(60 + g.decode_steps, 64, "the last forward pass fills the context exactly");
}

#[test]
fn prompt_over_the_context_is_an_error() {
    runtime();
    let mut model = FakeModel { log: Log::default(), vocab: 10 };
    let prompt: Vec<u32> = (0..64).collect();
    let err = generate_greedy(&mut model, &prompt, 4).unwrap_err().to_string();
    assert!(err.contains("64 tokens") && err.contains("context length is 64"), "{err}");
}

/// A `[beams, 2, 3, 4]` cache whose every element encodes (tensor, beam, position, lane).
fn beam_cache(beams: usize) -> KvCache {
    let values = (0..2)
        .map(|t| {
            let data: Vec<f32> = (0..beams * 2 * 3 * 4).map(|i| (t * 10_000 + i) as f32).collect();
            Tensor::from_array((vec![beams, 2, 3, 4], data)).unwrap().into_dyn()
        })
        .collect();
    KvCache::new(values, 3)
}

/// Row `beam` of tensor `t` of `cache`, as written by [`beam_cache`].
fn beam_row(cache: &KvCache, t: usize, beam: usize) -> Vec<f32> {
    let (_, data) = cache.values()[t].try_extract_tensor::<f32>().unwrap();
    data[beam * 24..(beam + 1) * 24].to_vec()
}

#[test]
fn beams_are_selected_by_parent_row() {
    runtime();
    let original = beam_cache(3);
    let rows: Vec<Vec<Vec<f32>>> = (0..2).map(|t| (0..3).map(|b| beam_row(&original, t, b)).collect()).collect();
    // Same number of beams (rearranged in place), more beams (the prompt's
    // cache expanded), fewer beams.
    for parents in [vec![2, 0, 0], vec![1, 1, 2, 0, 1], vec![2]] {
        let selected = beam_cache(3).select_rows(&parents, "fake").unwrap();
        assert_eq!(selected.seq_len(), 3);
        for t in 0..2 {
            assert_eq!(mmrt::tensor::dims(&selected.values()[t]), vec![parents.len() as i64, 2, 3, 4]);
            for (i, &p) in parents.iter().enumerate() {
                assert_eq!(beam_row(&selected, t, i), rows[t][p], "tensor {t}, beam {i} should be the old beam {p}");
            }
        }
    }
    let err = beam_cache(3).select_rows(&[3], "fake").err().expect("a parent beyond the batch is refused");
    assert!(err.to_string().contains("beam 3 selected from a cache of 3 beams"), "{err}");
}
