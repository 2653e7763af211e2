//! Chat templates rendered by `mmrt::chat` against transformers'
//! `apply_chat_template` (`tests/golden/chat_templates.json`, written by
//! `exporters/gguf/chat_goldens.py` from the SmolLM2 and Qwen2.5-Coder GGUFs'
//! templates and one template exercising Python methods, namespaces, loop
//! controls and `tojson`): every conversation must match byte for byte.

mod common;

use mmrt::chat::{ChatTemplate, Message};

#[test]
fn templates_render_as_transformers_does() {
    let goldens = common::golden::chat_templates();
    assert!(goldens.models.len() >= 3, "goldens for SmolLM2, Qwen2.5-Coder and the feature template");
    let mut checked = 0;
    for model in &goldens.models {
        if let Some(bos) = &model.bos_token {
            assert_eq!(bos, &model.gguf_bos_token, "{}: transformers' BOS string is the GGUF's", model.source);
        }
        let template = ChatTemplate::from_source(&model.source, model.template.clone(), model.bos_token.clone(), model.eos_token.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", model.source));
        assert!(model.cases.len() >= 6, "{}: at least six conversations", model.source);
        for case in &model.cases {
            let messages: Vec<Message> = case.messages.iter().map(|m| Message::new(&m.role, &m.content)).collect();
            let rendered = template
                .render(&messages, case.add_generation_prompt)
                .unwrap_or_else(|e| panic!("{} / {}: {e}", model.source, case.name));
            assert_eq!(
                rendered, case.expected,
                "{} / {}: differs from transformers {}",
                model.source, case.name, goldens.transformers
            );
            checked += 1;
        }
    }
    assert!(checked >= 18, "{checked} conversations checked");
}

#[test]
fn a_template_that_raises_refuses_with_its_message() {
    let goldens = common::golden::chat_templates();
    let features = goldens.models.iter().find(|m| m.source.starts_with("features")).expect("the feature template");
    let template = ChatTemplate::from_source("features", features.template.clone(), None, None).unwrap();
    let err = template.render(&[Message::new("tool", "x")], true).unwrap_err().to_string();
    assert!(err.contains("unknown role tool") && err.contains("features"), "{err}");
}
