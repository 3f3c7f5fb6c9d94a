//! Fuzzes the whole front end: lexing, parsing, import resolution, unit checking and
//! diagnostic rendering. Any panic, or a label span outside its file, is a bug.

#![no_main]

use libfuzzer_sys::fuzz_target;
use snnc::diagnostics::{render_json, render_text};
use snnc::driver::{check_source, MemoryLoader};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut loader = MemoryLoader::default();
    // `import "fuzz.snn"` is a cycle back to the root; `import "a.snn"` checks the input
    // again as a second file.
    loader
        .files
        .insert("fuzz.snn".to_string(), text.to_string());
    loader.files.insert("a.snn".to_string(), text.to_string());
    let checked = check_source("fuzz.snn", &text, &loader);
    let files: Vec<_> = checked.sources.files().map(|(_, f)| f).collect();
    for diagnostic in &checked.diagnostics {
        for label in &diagnostic.labels {
            let file = files
                .get(label.span.file.0 as usize)
                .expect("label names a loaded file");
            let (start, end) = (label.span.start as usize, label.span.end as usize);
            assert!(
                start <= end && end <= file.text.len(),
                "label {start}..{end} outside {} ({} bytes): {}",
                file.name,
                file.text.len(),
                diagnostic.message
            );
            assert!(
                file.text.is_char_boundary(start) && file.text.is_char_boundary(end),
                "label {start}..{end} splits a character: {}",
                diagnostic.message
            );
        }
    }
    let _ = render_text(&checked.sources, &checked.diagnostics);
    let json = render_json(&checked.sources, &checked.diagnostics);
    assert!(
        serde_json::from_str::<serde_json::Value>(&json).is_ok(),
        "render_json gave invalid JSON: {json}"
    );
});
