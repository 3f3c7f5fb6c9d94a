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
            let d = Diagnostic::error(e.message.clone())
                .primary(Span::new(file, e.start, e.end), e.label.clone());
            match &e.help {
                Some(help) => d.help(help.clone()),
                None => d,
            }
        })
        .collect();

    let tokens: Vec<(usize, Token<'_>, usize)> = lexed.tokens.clone();
    let mut recovered = Vec::new();
    let result = grammar::FileParser::new().parse(
        file,
        &mut recovered,
        lexed.tokens.into_iter().map(Ok::<_, GrammarError>),
    );
    let mut ast = match result {
        Ok(ast) => ast,
        Err(error) => {
            diagnostics.push(syntax_error(file, text, &tokens, error));
            File::default()
        }
    };
    for recovery in recovered {
        diagnostics.push(syntax_error(file, text, &tokens, recovery.error));
    }
    attach_docs(&mut ast, &lexed.docs, text);
    (ast, diagnostics)
}

fn syntax_error(
    file: FileId,
    text: &str,
    tokens: &[(usize, Token<'_>, usize)],
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
            let mut d = Diagnostic::error("unexpected end of file")
                .primary(Span::new(file, start, end), "the file ends here");
            if let Some(open) = unclosed_brace(tokens) {
                d = d
                    .secondary(Span::new(file, open, open + 1), "this `{` is never closed")
                    .help("add the missing `}`");
            } else {
                d = d.note(expected_note(&expected));
            }
            d
        }
        ParseError::UnrecognizedToken {
            token: (start, token, end),
            expected,
        } => {
            let position = tokens.iter().position(|(s, _, _)| *s == start);
            let previous = position
                .and_then(|p| p.checked_sub(1))
                .map(|p| &tokens[p].1);
            let next = position.and_then(|p| tokens.get(p + 1)).map(|t| &t.1);
            let after_next = position.and_then(|p| tokens.get(p + 2)).map(|t| &t.1);
            let before_previous = position
                .and_then(|p| p.checked_sub(2))
                .map(|p| &tokens[p].1);
            let new_line = position
                .and_then(|p| p.checked_sub(1))
                .is_some_and(|p| text[tokens[p].2..start].contains('\n'));
            let (label, help) = explain_unexpected(
                &token,
                &expected,
                (before_previous, previous),
                (next, after_next),
                new_line,
            );
            // A `;` made from a line break would underline across two lines; point at the
            // end of the line instead.
            let end = if token == Token::Semi && text[start..end].starts_with('\n') {
                start
            } else {
                end
            };
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

/// The offset of the last `{` that no `}` closes, if any.
fn unclosed_brace(tokens: &[(usize, Token<'_>, usize)]) -> Option<usize> {
    let mut open = Vec::new();
    for (start, token, _) in tokens {
        match token {
            Token::LBrace => open.push(*start),
            Token::RBrace => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

fn explain_unexpected(
    token: &Token<'_>,
    expected: &[String],
    (before_previous, previous): (Option<&Token<'_>>, Option<&Token<'_>>),
    (next, after_next): (Option<&Token<'_>>, Option<&Token<'_>>),
    new_line: bool,
) -> (String, Option<String>) {
    let expects = |t: &str| expected.iter().any(|e| e == &format!("\"{t}\""));
    let expects_name = expected.iter().any(|e| e == "Ident");
    let is_keyword =
        !token.text().is_empty() && token.text().chars().all(|c| c.is_ascii_alphabetic());
    let declares = matches!(before_previous, Some(Token::Param | Token::State));
    if previous == Some(&Token::Percent) {
        return (
            "`%` is the remainder operator, so a value must follow it".to_string(),
            Some("write a percentage as a fraction: `2 %` is `0.02`".to_string()),
        );
    }
    if let (Token::Ident(name), Some(Token::Slash), Some(Token::Ident("dt"))) =
        (token, next, after_next)
    {
        if let Some(var) = name.strip_prefix('d') {
            return (
                "`d / dt` with spaces is a division, not a derivative".to_string(),
                Some(format!("write the derivative without spaces: `d{var}/dt`")),
            );
        }
    }
    if is_keyword && expects_name && previous == Some(&Token::Dot) {
        let plural = format!("{}s", token.text());
        return (
            format!(
                "`{}` is a keyword, so no module path contains it",
                token.text()
            ),
            Some(format!("did you mean `{plural}`?")),
        );
    }
    if is_keyword && expects_name && new_line {
        return (
            "the statement on the line above is incomplete".to_string(),
            None,
        );
    }
    let looks_like_name = matches!(
        next,
        Some(Token::Colon | Token::Eq | Token::Comma | Token::Dot | Token::LBracket)
    );
    if is_keyword && expects_name && looks_like_name {
        return (
            format!("`{}` is a keyword", token.text()),
            Some(format!(
                "keywords cannot be used as names; choose another name, such as `{}_`",
                token.text()
            )),
        );
    }
    if let (Token::Eq | Token::Semi, Some(Token::Ident(name)), true) =
        (token, previous, expects(":"))
    {
        return (
            format!("`{name}` needs a unit"),
            Some(format!(
                "write the unit after a colon, as in `{name}: ms`; use `{name}: 1` for a dimensionless value"
            )),
        );
    }
    if let (Token::Ident(name), true, true, Some(Token::Ident(first))) =
        (token, expects(":"), declares, previous)
    {
        if crate::units::lookup(first).is_some() && crate::units::lookup(name).is_none() {
            return (
                "the name comes before its unit".to_string(),
                Some(format!("write `{name}: {first}`")),
            );
        }
        return (
            "expected `:` between the name and its unit".to_string(),
            Some(format!("write `{first}: {name}`")),
        );
    }
    if let (Token::Ident(name), true, Some(Token::Ident(_))) = (token, expects(":"), previous) {
        if matches!(before_previous, Some(Token::Arrow | Token::Comma)) {
            return (
                "expected `:` and the synapse model".to_string(),
                Some(format!("write `: {name}`")),
            );
        }
    }
    if token == &Token::Comma && expects(";") {
        return (
            "a declaration ends at the end of its line".to_string(),
            Some("remove the `,`".to_string()),
        );
    }
    if expected.len() == 1 && expected[0].starts_with('"') {
        return (
            format!("expected {} here", pretty_expected(&expected[0])),
            None,
        );
    }
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
        Token::Ident(name) if expects(";") && expects("*") => (
            "expected the end of the statement here".to_string(),
            Some(format!(
                "put `{name}` on a new line or separate statements with `;`; to multiply, write `*`"
            )),
        ),
        Token::Eq if expects("==") => (
            "`=` assigns".to_string(),
            Some("to compare, write `==`".to_string()),
        ),
        Token::Else => (
            "`else` must follow the `}` of an `if` block".to_string(),
            None,
        ),
        Token::RBrace if expects("neuron") => (
            "this `}` closes nothing".to_string(),
            Some("remove it, or check the braces above".to_string()),
        ),
        _ if expects("(") && (expects_name || expected.iter().any(|e| e == "Number")) => {
            ("expected a value here".to_string(), None)
        }
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

/// Parses a single expression, such as a `--set` value from the command line (`10 ms`).
pub fn parse_expr(file: FileId, text: &str) -> Result<crate::ast::Expr, Vec<Diagnostic>> {
    let lexed = lexer::tokenize(text);
    if let Some(error) = lexed.errors.first() {
        let d = Diagnostic::error(error.message.clone())
            .primary(Span::new(file, error.start, error.end), error.label.clone());
        return Err(vec![match &error.help {
            Some(help) => d.help(help.clone()),
            None => d,
        }]);
    }
    let mut recovered = Vec::new();
    let all: Vec<(usize, Token<'_>, usize)> = lexed
        .tokens
        .into_iter()
        .filter(|(_, t, _)| *t != Token::Semi)
        .collect();
    let tokens = all.clone().into_iter().map(Ok::<_, GrammarError>);
    match grammar::ExprParser::new().parse(file, &mut recovered, tokens) {
        Ok(expr) if recovered.is_empty() => Ok(expr),
        Ok(_) => Err(recovered
            .into_iter()
            .map(|r| syntax_error(file, text, &all, r.error))
            .collect()),
        Err(error) => Err(vec![syntax_error(file, text, &all, error)]),
    }
}

/// Replaces an expression nested deeper than [`crate::ast::MAX_EXPR_DEPTH`] by an error node,
/// so no later pass recurses deep enough to exhaust the stack.
pub(crate) fn limit_depth<'input>(
    errors: &mut Vec<ErrorRecovery<usize, Token<'input>, GrammarError>>,
    expr: crate::ast::Expr,
) -> crate::ast::Expr {
    if expr.depth <= crate::ast::MAX_EXPR_DEPTH {
        return expr;
    }
    // Report once per too-deep expression: its children were within the limit.
    if expr.depth == crate::ast::MAX_EXPR_DEPTH + 1 {
        errors.push(user_error(
            expr.span.start as usize,
            expr.span.end as usize,
            format!(
                "this expression is nested more than {} levels deep",
                crate::ast::MAX_EXPR_DEPTH
            ),
        ));
    }
    crate::ast::Expr {
        kind: crate::ast::ExprKind::Error,
        span: expr.span,
        depth: crate::ast::MAX_EXPR_DEPTH + 1,
    }
}
