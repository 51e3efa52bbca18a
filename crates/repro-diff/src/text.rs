//! Inline unified diffs of small text files.

/// A unified diff (3 lines of context) of two UTF-8 texts without NUL bytes; `None` for
/// anything else (binary content is left to the report dir and diffoscope).
pub(crate) fn unified(a: &[u8], b: &[u8], path: &[u8]) -> Option<String> {
    let is_text = |x: &[u8]| !x.contains(&0);
    let (Ok(x), Ok(y)) = (std::str::from_utf8(a), std::str::from_utf8(b)) else {
        return None;
    };
    if !is_text(a) || !is_text(b) {
        return None;
    }
    let name = String::from_utf8_lossy(path);
    let diff = similar::TextDiff::from_lines(x, y);
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(&format!("a/{name}"), &format!("b/{name}"))
            .to_string(),
    )
}
