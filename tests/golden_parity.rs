//! Parity of the Rust pipeline with PyTorch on the tiny bundle: projected
//! image embeddings within 1e-4 and greedy token ids equal to the ids the
//! PyTorch model's own `generate()` produced (`tests/golden/tiny.json`,
//! written by `exporters/tiny/build.sh`).

mod common;

use mmrt::generate::Sampling;
use mmrt::manifest::Modality;
use mmrt::pipeline::StageTimings;
use mmrt::{Pipeline, Request};

use common::golden::{paths, tiny};
use common::{image_fixture, root, tiny_pipeline};

#[test]
fn projected_image_embeddings_match_pytorch() {
    let mut p = tiny_pipeline();
    let cases = tiny().embeddings;
    assert!(cases.len() >= 2);
    for case in cases {
        let image = root().join(&case.image);
        let media = p.encode_media(Modality::Image, &[image.clone().into()], &mut StageTimings::default()).expect("encode");
        let got = mmrt::tensor::to_f32_array(&media.values[0], "test", "embeddings").expect("f32");
        let want = &case.values;
        assert_eq!(&got.shape()[1..], &case.shape[..], "{}", image.display());
        let max_abs = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_abs <= 1e-4, "{}: max abs diff {max_abs}", image.display());
        assert_eq!(got.len(), want.len());
    }
}

#[test]
fn greedy_ids_match_pytorch_generate() {
    let mut p = tiny_pipeline();
    let cases = tiny().generate;
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"text_only") && names.contains(&"one_image") && names.contains(&"two_images"));
    for case in &cases {
        let name = &case.name;
        let request = Request::new(case.prompt.as_str())
            .with_images(paths(&case.images))
            .with_max_new_tokens(case.max_new_tokens);
        let mut streamed = String::new();
        let out = p
            .run(&request, |piece| {
                streamed.push_str(piece);
                Ok(())
            })
            .expect(name);
        assert_eq!(out.prompt_ids, case.input_ids, "{name}: prompt ids");
        assert_eq!(out.token_ids, case.output_ids, "{name}: generated ids");
        assert_eq!(streamed, out.text, "{name}: streamed text equals the final text");
        let decoded = p.tokenizer().decode(&out.token_ids, true).unwrap();
        assert_eq!(out.text, decoded, "{name}: streaming detokenizer equals a full decode");
        assert_eq!(out.text, case.text, "{name}: text equals the Python tokenizer's decode");
    }
}

#[test]
fn seeded_sampling_is_reproducible() {
    let mut p = tiny_pipeline();
    let sample = |p: &mut Pipeline, seed| {
        let sampling = Sampling::Random { temperature: 1.0, top_k: Some(50), top_p: 0.95 };
        let request = Request::new("Tell me about the picture.")
            .with_images([image_fixture("b_32.png")])
            .with_sampling(sampling, seed)
            .with_repetition_penalty(1.1)
            .with_max_new_tokens(20);
        p.run(&request, |_| Ok(())).expect("run").token_ids
    };
    let a = sample(&mut p, 7);
    assert_eq!(a, sample(&mut p, 7), "same seed, same tokens");
    assert_ne!(a, sample(&mut p, 8), "another seed draws other tokens");
    let greedy = p.run(&Request::new("Tell me about the picture.").with_max_new_tokens(20), |_| Ok(())).unwrap();
    assert_ne!(a, greedy.token_ids, "sampling at T=1 differs from greedy");
}

/// A golden that does not match its struct fails naming the file and serde's reason.
#[test]
fn malformed_golden_names_the_file_and_the_field() {
    let path = common::temp_file("tiny.json", br#"{"preprocess": [], "embeddings": []}"#);
    let panic = std::panic::catch_unwind(|| common::golden::load::<common::golden::Tiny>(&path)).expect_err("a missing field");
    let message = panic.downcast_ref::<String>().expect("a formatted panic message");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("missing field `generate`"), "{message}");
}
