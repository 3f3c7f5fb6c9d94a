//! The parser: tokens to a spanned AST, reporting every syntax error it can recover from.
//!
//! The grammar lives in `grammar.lalrpop` (LALRPOP, LR(1)); this module runs the lexer, feeds
//! the grammar, turns lexical errors, recovered syntax errors and the final unrecoverable one
//! into diagnostics, and attaches `///` doc comments to the declaration they precede. It
//! produces the AST and nothing else: no names are looked up here.

use crate::ast::{File, Item, Member};
use crate::diagnostics::Diagnostic;
use crate::lexer::{self, DocComment, Token};
use crate::source::{FileId, Span};
use lalrpop_util::{lalrpop_mod, ErrorRecovery, ParseError};

lalrpop_mod!(
    #[allow(clippy::all, clippy::pedantic, unused_parens, dead_code)]
    grammar,
    "/parser/grammar.rs"
);

/// An error raised from a grammar action (a malformed number, a derivative in an expression).
#[derive(Clone, Debug, PartialEq)]
pub struct GrammarError {
    pub start: usize,
    pub end: usize,
    pub message: String,
}

pub(crate) fn user_error<'input>(
    start: usize,
    end: usize,
    message: String,
) -> ErrorRecovery<usize, Token<'input>, GrammarError> {
    ErrorRecovery {
        error: ParseError::User {
            error: GrammarError {
                start,
                end,
                message,
            },
        },
        dropped_tokens: Vec::new(),
    }
}

/// Parses a numeric literal the lexer accepted; only overflow to infinity can fail.
pub(crate) fn number<'input>(
    text: &str,
    start: usize,
    errors: &mut Vec<ErrorRecovery<usize, Token<'input>, GrammarError>>,
) -> f64 {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => value,
        _ => {
            errors.push(user_error(
                start,
                start + text.len(),
                format!("the number `{text}` is too large to represent"),
            ));
            0.0
        }
    }
}

/// Parses one file. Always returns an AST (with `Error` nodes where input was skipped) and
/// every diagnostic found.
pub fn parse_file(file: FileId, text: &str) -> (File, Vec<Diagnostic>) {
    let lexed = lexer::tokenize(text);
    let mut diagnostics: Vec<Diagnostic> = lexed
        .errors
        .iter()
        .map(|e| {
            Diagnostic::error(format!("unexpected character `{}`", e.text.escape_debug()))
                .primary(Span::new(file, e.start, e.end), "not part of any token")
        })
        .collect();

    let mut recovered = Vec::new();
    let result = grammar::FileParser::new().parse(
        file,
        &mut recovered,
        lexed.tokens.into_iter().map(Ok::<_, GrammarError>),
    );
    let mut ast = match result {
        Ok(ast) => ast,
        Err(error) => {
            diagnostics.push(syntax_error(file, text, error));
            File::default()
        }
    };
    for recovery in recovered {
        diagnostics.push(syntax_error(file, text, recovery.error));
    }
    attach_docs(&mut ast, &lexed.docs, text);
    (ast, diagnostics)
}

fn syntax_error(
    file: FileId,
    text: &str,
    error: ParseError<usize, Token<'_>, GrammarError>,
) -> Diagnostic {
    match error {
        ParseError::InvalidToken { location } => Diagnostic::error("invalid token").primary(
            Span::new(file, location, location + 1),
            "not understood here",
        ),
        ParseError::UnrecognizedEof { location, expected } => {
            let end = text.len();
            let start = location.min(end);
            Diagnostic::error("unexpected end of file")
                .primary(Span::new(file, start, end), "the file ends here")
                .note(expected_note(&expected))
        }
        ParseError::UnrecognizedToken {
            token: (start, token, end),
            expected,
        } => {
            let (label, help) = explain_unexpected(&token, &expected);
            let mut diagnostic = Diagnostic::error(format!("unexpected {}", describe(&token)))
                .primary(Span::new(file, start, end), label)
                .note(expected_note(&expected));
            if let Some(help) = help {
                diagnostic = diagnostic.help(help);
            }
            diagnostic
        }
        ParseError::ExtraToken {
            token: (start, token, end),
        } => Diagnostic::error(format!("unexpected {}", describe(&token))).primary(
            Span::new(file, start, end),
            "nothing more was expected here",
        ),
        ParseError::User { error } => Diagnostic::error(error.message)
            .primary(Span::new(file, error.start, error.end), "here"),
    }
}

/// A `;` the user never typed comes from a line end, so call it that.
fn describe(token: &Token<'_>) -> String {
    match token {
        Token::Semi => "end of line".to_string(),
        other => other.to_string(),
    }
}

fn explain_unexpected(token: &Token<'_>, expected: &[String]) -> (String, Option<String>) {
    let expects = |t: &str| expected.iter().any(|e| e == &format!("\"{t}\""));
    match token {
        Token::Semi if expects(")") => (
            "the line ends before this parenthesis is closed".to_string(),
            Some("add the missing `)`".to_string()),
        ),
        Token::Semi if expects("]") => (
            "the line ends before this bracket is closed".to_string(),
            Some("add the missing `]`".to_string()),
        ),
        Token::Semi => ("the statement is incomplete".to_string(), None),
        Token::Ident(name) if expected.iter().any(|e| e == "\";\"") => (
            "expected the end of the statement here".to_string(),
            Some(format!(
                "put `{name}` on a new line or separate statements with `;`; to multiply, write `*`"
            )),
        ),
        Token::Eq if expects("==") => (
            "`=` assigns".to_string(),
            Some("to compare, write `==`".to_string()),
        ),
        _ => ("unexpected here".to_string(), None),
    }
}

fn expected_note(expected: &[String]) -> String {
    let mut names: Vec<String> = expected.iter().map(|e| pretty_expected(e)).collect();
    names.sort();
    names.dedup();
    match names.len() {
        0 => "nothing more was expected".to_string(),
        1..=8 => format!("expected one of: {}", names.join(", ")),
        n => format!(
            "expected one of {n} kinds of token, such as {}",
            names[..6].join(", ")
        ),
    }
}

fn pretty_expected(terminal: &str) -> String {
    match terminal {
        "Ident" => "a name".to_string(),
        "Number" => "a number".to_string(),
        "Str" => "a string".to_string(),
        "Derivative" => "an ODE `dx/dt = ...`".to_string(),
        "\";\"" => "end of line".to_string(),
        other => format!("`{}`", other.trim_matches('"')),
    }
}

/// Attaches each run of `///` lines to the model or variable declared right after it.
fn attach_docs(ast: &mut File, docs: &[DocComment], text: &str) {
    if docs.is_empty() {
        return;
    }
    let doc_before = |start: u32| -> Option<String> {
        let mut lines = Vec::new();
        let mut cursor = start as usize;
        for doc in docs.iter().rev() {
            if doc.end > cursor {
                continue;
            }
            if !text[doc.end..cursor].trim().is_empty() {
                break;
            }
            lines.push(doc.text.clone());
            cursor = doc.start;
        }
        if lines.is_empty() {
            return None;
        }
        lines.reverse();
        Some(lines.join("\n"))
    };
    for item in &mut ast.items {
        match item {
            Item::Model(model) => {
                model.doc = doc_before(model.span.start);
                for member in &mut model.members {
                    if let Member::Var(var) = member {
                        var.doc = doc_before(var.span.start);
                    }
                }
            }
            Item::Network(network) => network.doc = doc_before(network.span.start),
            Item::Import(_) | Item::Error(_) => {}
        }
    }
}
