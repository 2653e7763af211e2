//! The vlm-shapes vocabulary: which shape and colour a caption names.

/// Shape words, singular and plural.
pub const SHAPES: [(&str, &str); 5] =
    [("circle", "circles"), ("square", "squares"), ("triangle", "triangles"), ("star", "stars"), ("cross", "crosses")];

/// Colour words.
pub const COLOURS: [&str; 6] = ["red", "green", "blue", "yellow", "purple", "orange"];

/// The first shape word (singular or plural, returned singular) and colour word of a caption.
pub fn named(caption: &str) -> (Option<&'static str>, Option<&'static str>) {
    let words: Vec<String> = caption
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect();
    let shape = words.iter().find_map(|w| SHAPES.iter().find(|(s, p)| w == s || w == p).map(|(s, _)| *s));
    let colour = words.iter().find_map(|w| COLOURS.iter().find(|c| *c == w).copied());
    (shape, colour)
}
