//! A small element tree over quick-xml's reader, with the line each element starts on, for the
//! XML lists (they are read whole anyway). Namespaces are dropped: element and attribute names
//! are local names.

use std::path::Path;

use quick_xml::{
    Reader,
    events::{BytesStart, Event},
};

use super::{Lines, ListError};

/// One element.
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Element>,
    /// 1-based line of its start tag.
    pub line: usize,
}

impl Element {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child `name`, if any and not blank.
    pub fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).and_then(|c| super::non_empty(&c.text))
    }
}

fn local(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

fn start(
    path: &Path,
    lines: &Lines<'_>,
    at: usize,
    e: &BytesStart<'_>,
) -> Result<Element, ListError> {
    let line = lines.line(at);
    let mut el = Element {
        name: local(e.local_name().as_ref()),
        line,
        ..Element::default()
    };
    for a in e.attributes() {
        let a =
            a.map_err(|err| ListError::new(path, line, format!("malformed attribute: {err}")))?;
        let value = a.unescape_value().map_err(|err| {
            ListError::new(path, line, format!("malformed attribute value: {err}"))
        })?;
        el.attrs
            .push((local(a.key.local_name().as_ref()), value.into_owned()));
    }
    Ok(el)
}

/// Parses `text` into its root element; any XML error or a document that ends before its
/// elements are closed is refused with the line.
pub(crate) fn parse(path: &Path, text: &str) -> Result<Element, ListError> {
    let lines = Lines::new(text);
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            ListError::new(
                path,
                lines.line(reader.error_position() as usize),
                format!("not well-formed XML: {e}; is the file complete?"),
            )
        })?;
        // The event starts after any whitespace the reader skipped.
        let at = before + text[before.min(text.len())..].len()
            - text[before.min(text.len())..].trim_start().len();
        match event {
            Event::Start(e) => stack.push(start(path, &lines, at, &e)?),
            Event::Empty(e) => {
                let el = start(path, &lines, at, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack.pop().expect("quick-xml checks end names");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.decode().map_err(|e| {
                        ListError::new(path, lines.line(at), format!("bad text: {e}"))
                    })?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name = r.decode().map_err(|e| {
                            ListError::new(path, lines.line(at), format!("bad reference: {e}"))
                        })?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .map(str::to_owned)
                            .ok_or_else(|| {
                                ListError::new(
                                    path,
                                    lines.line(at),
                                    format!("unknown entity `&{name};`"),
                                )
                            })?
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(ListError::new(
            path,
            lines.line(text.len()),
            format!(
                "the file ends before <{}> (opened on line {}) is closed; the file is truncated, download it again",
                open.name, open.line
            ),
        ));
    }
    root.ok_or_else(|| ListError::new(path, 1, "no XML element in the file; is it the right file?"))
}
