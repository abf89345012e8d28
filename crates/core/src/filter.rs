//! Query filters in the syntax of Plausible's Stats API v1: `event:page==/pricing;visit:source==Google`.
//!
//! `;` joins filters (all must hold); `==` is, `!=` is not, `~` contains, `!~` does not contain;
//! `|` separates alternatives (`visit:source==Google|Bing`); in `==` and `!=` a `*` matches any
//! run of characters (`event:page==/blog/*`). A backslash escapes `;`, `|`, `*` and itself
//! inside a value. A missing value (an event without the property, a session without a UTM
//! source) reads as `(none)`, as Plausible shows it.

use crate::batch::Dim;

/// How a missing value reads to a filter.
pub const NONE: &str = "(none)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Is,
    IsNot,
    Contains,
    NotContains,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Is => "==",
            Op::IsNot => "!=",
            Op::Contains => "~",
            Op::NotContains => "!~",
        }
    }
}

/// One condition on one dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub dim: Dim,
    pub op: Op,
    /// Alternatives, unescaped; a `==`/`!=` value keeps its wildcards as [`Pattern`]s.
    patterns: Vec<Pattern>,
}

/// A value to compare with: literal pieces between `*` wildcards.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    /// `["/blog/", ""]` for `/blog/*`; one piece when there is no wildcard.
    pieces: Vec<String>,
}

impl Pattern {
    fn matches(&self, s: &str) -> bool {
        let [first, middle @ .., last] = self.pieces.as_slice() else {
            return self.pieces.first().is_some_and(|p| p == s);
        };
        let Some(mut rest) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        for piece in middle {
            match rest.find(piece.as_str()) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last.as_str())
    }

    /// The value of a `~` or `!~` filter, which has no wildcards: one piece.
    fn literal(&self) -> &str {
        &self.pieces[0]
    }
}

impl Filter {
    /// Whether a value (or a missing one, `None`) passes.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let s = value.unwrap_or(NONE);
        match self.op {
            Op::Is => self.patterns.iter().any(|p| p.matches(s)),
            Op::IsNot => !self.patterns.iter().any(|p| p.matches(s)),
            Op::Contains => self.patterns.iter().any(|p| s.contains(p.literal())),
            Op::NotContains => !self.patterns.iter().any(|p| s.contains(p.literal())),
        }
    }

    /// `dim == value`, exactly: the filter a breakdown row stands for.
    pub fn is(dim: Dim, value: &str) -> Filter {
        Filter { dim, op: Op::Is, patterns: vec![Pattern { pieces: vec![value.to_owned()] }] }
    }
}

/// Why a `filters` parameter was refused; the query layer names the parameter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// Parses a `filters` value; `property` turns a property name into its dimension.
pub fn parse(
    input: &str,
    property: impl Fn(&str) -> Result<Dim, String>,
) -> Result<Vec<Filter>, FilterError> {
    let mut filters = Vec::new();
    for part in split_unescaped(input, ';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // The first operator after the property name; values may contain operator characters.
        let Some((at, op)) = find_op(part) else {
            return Err(FilterError(format!(
                "`{part}` has no operator; write PROPERTY==VALUE (or !=, ~, !~), e.g. \
                 `event:page==/pricing`"
            )));
        };
        let name = part[..at].trim();
        let raw = &part[at + op.symbol().len()..];
        let dim = property(name).map_err(|e| FilterError(format!("in `{part}`: {e}")))?;
        let mut patterns = Vec::new();
        for alt in split_unescaped(raw, '|') {
            let pieces: Vec<String> = match op {
                Op::Is | Op::IsNot => {
                    split_unescaped(&alt, '*').into_iter().map(unescape).collect()
                }
                Op::Contains | Op::NotContains => vec![unescape(alt)],
            };
            if pieces.iter().all(String::is_empty) {
                return Err(FilterError(format!(
                    "`{part}` has an empty value; give one after `{}`, or `(none)` for a \
                     missing one",
                    op.symbol()
                )));
            }
            patterns.push(Pattern { pieces });
        }
        filters.push(Filter { dim, op, patterns });
    }
    if filters.is_empty() {
        return Err(FilterError(
            "no filter in it; write e.g. `event:page==/pricing;visit:source==Google`".into(),
        ));
    }
    Ok(filters)
}

fn find_op(part: &str) -> Option<(usize, Op)> {
    let b = part.as_bytes();
    (0..b.len()).find_map(|i| match (b[i], b.get(i + 1)) {
        (b'=', Some(b'=')) => Some((i, Op::Is)),
        (b'!', Some(b'=')) => Some((i, Op::IsNot)),
        (b'!', Some(b'~')) => Some((i, Op::NotContains)),
        (b'~', _) => Some((i, Op::Contains)),
        _ => None,
    })
}

/// Splits at `sep` where it is not escaped, keeping escapes for [`unescape`].
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let current = parts.last_mut().expect("never empty");
        match c {
            '\\' => {
                current.push('\\');
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c == sep => parts.push(String::new()),
            c => current.push(c),
        }
    }
    parts
}

fn unescape(s: impl AsRef<str>) -> String {
    let mut out = String::new();
    let mut chars = s.as_ref().chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(name: &str) -> Result<Dim, String> {
        match name {
            "event:page" => Ok(Dim::Page),
            "visit:source" => Ok(Dim::Source),
            "event:props:plan" => Ok(Dim::Prop("plan".into())),
            other => Err(format!("`{other}` is not a property")),
        }
    }

    fn one(s: &str) -> Filter {
        let mut f = parse(s, property).unwrap();
        assert_eq!(f.len(), 1);
        f.remove(0)
    }

    #[test]
    fn operators_alternatives_and_wildcards() {
        let f = parse("event:page==/pricing;visit:source!=Google|Bing", property).unwrap();
        assert_eq!(f.len(), 2);
        assert!(f[0].matches(Some("/pricing")) && !f[0].matches(Some("/pricing/x")));
        assert_eq!(f[1].dim, Dim::Source);
        assert!(!f[1].matches(Some("Bing")) && f[1].matches(Some("Twitter")));

        let blog = one("event:page==/blog/*");
        assert!(blog.matches(Some("/blog/")) && blog.matches(Some("/blog/a/b")));
        assert!(!blog.matches(Some("/blogs")));
        let mid = one("event:page==/a*/x*z");
        assert!(mid.matches(Some("/a/b/xyz")) && mid.matches(Some("/a/xz")));
        assert!(!mid.matches(Some("/a/zx")));

        let has = one("event:page~pri");
        assert!(has.matches(Some("/pricing")) && !has.matches(Some("/about")));
        let hasnt = one("event:page!~pri");
        assert!(!hasnt.matches(Some("/pricing")) && hasnt.matches(None));
    }

    #[test]
    fn missing_values_read_as_none() {
        let f = one("event:props:plan==(none)");
        assert!(f.matches(None) && !f.matches(Some("pro")));
        // Not `pro` includes events without the property.
        assert!(one("event:props:plan!=pro").matches(None));
        assert!(!one("event:props:plan==pro").matches(None));
    }

    #[test]
    fn escapes_keep_separators_in_values() {
        let f = one(r"event:page==/a\;b\|c\*d\\e|/x");
        assert!(f.matches(Some(r"/a;b|c*d\e")) && f.matches(Some("/x")));
        assert!(!f.matches(Some("/a")));
        // Operators after the first belong to the value.
        assert!(one("event:page==/q==1").matches(Some("/q==1")));
    }

    #[test]
    fn mistakes_are_explained() {
        let err = |s: &str| parse(s, property).unwrap_err().0;
        assert_eq!(
            err("event:page"),
            "`event:page` has no operator; write PROPERTY==VALUE (or !=, ~, !~), e.g. \
             `event:page==/pricing`"
        );
        assert_eq!(err("visit:moon==1"), "in `visit:moon==1`: `visit:moon` is not a property");
        assert!(err("event:page==").contains("has an empty value"));
        assert!(err(" ; ").starts_with("no filter in it"));
    }
}
