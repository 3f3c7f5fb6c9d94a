//! The lexer: source text to tokens.
//!
//! Built on logos. It owns the token set of the language and three small pieces of layout:
//! `///` doc comments are set aside (with their spans) rather than passed to the parser, so the
//! grammar need not allow them everywhere; a newline ends a statement where a statement could
//! end (the rule Go uses), so users need no semicolons; and a malformed character becomes an
//! error token that the parser reports and skips. The lexer knows nothing of units or meaning:
//! `20 ms` is a number followed by an identifier, and the grammar makes a quantity of it.

use logos::Logos;
use std::fmt;

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\f]+")]
pub enum Token<'input> {
    // Keywords.
    #[token("import")]
    Import,
    #[token("as")]
    As,
    #[token("neuron")]
    Neuron,
    #[token("synapse")]
    Synapse,
    #[token("network")]
    Network,
    #[token("param")]
    Param,
    #[token("state")]
    State,
    #[token("shared")]
    Shared,
    #[token("pre")]
    Pre,
    #[token("post")]
    Post,
    #[token("let")]
    Let,
    #[token("target")]
    Target,
    #[token("spike")]
    Spike,
    #[token("when")]
    When,
    #[token("reset")]
    Reset,
    #[token("refractory")]
    Refractory,
    #[token("unless")]
    Unless,
    #[token("method")]
    Method,
    #[token("on")]
    On,
    #[token("if")]
    If,
    #[token("else")]
    Else,
    #[token("and")]
    And,
    #[token("or")]
    Or,
    #[token("not")]
    Not,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("connect")]
    Connect,
    #[token("where")]
    Where,
    #[token("from")]
    From,
    #[token("delay")]
    Delay,
    #[token("record")]
    Record,
    #[token("of")]
    Of,
    #[token("every")]
    Every,
    #[token("input")]
    Input,
    #[token("spikes")]
    Spikes,
    #[token("run")]
    Run,

    // Literals and names.
    #[regex(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", |lex| lex.slice())]
    Number(&'input str),
    #[regex(r#""[^"\n]*""#, |lex| { let s = lex.slice(); &s[1..s.len() - 1] })]
    Str(&'input str),
    /// A string the line ends inside; [`tokenize`] reports it and passes on a [`Token::Str`].
    #[regex(r#""[^"\n]*"#, |lex| &lex.slice()[1..])]
    UnterminatedStr(&'input str),
    /// A string in single quotes; reported like an unterminated one, passed on as a string.
    #[regex(r"'[^'\n]*'", |lex| { let s = lex.slice(); &s[1..s.len() - 1] })]
    SingleQuotedStr(&'input str),
    #[regex(r"[A-Za-z_µΩ][A-Za-z0-9_µΩ]*", |lex| lex.slice())]
    Ident(&'input str),
    /// `dv/dt`: the time derivative of `v`, written without spaces.
    #[regex(r"d[A-Za-z_][A-Za-z0-9_]*/dt", |lex| { let s = lex.slice(); &s[1..s.len() - 3] }, priority = 5)]
    Derivative(&'input str),

    // Punctuation.
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(";")]
    Semi,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token("->")]
    Arrow,
    #[token("=")]
    Eq,
    #[token("+=")]
    PlusEq,
    #[token("-=")]
    MinusEq,
    #[token("*=")]
    StarEq,
    #[token("/=")]
    SlashEq,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("^")]
    Caret,
    #[token("%")]
    Percent,
    #[token("==")]
    EqEq,
    #[token("!=")]
    NotEq,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,

    /// A line break; turned into [`Token::Semi`] or dropped by [`tokenize`].
    #[token("\n")]
    Newline,
    #[regex(r"//[^\n]*", logos::skip, allow_greedy = true)]
    Comment,
    /// A `#` comment, as in Python; [`tokenize`] reports it and skips it like a comment.
    #[regex(r"#[^\n]*", allow_greedy = true)]
    HashComment,
    #[regex(r"///[^\n]*", |lex| lex.slice()[3..].trim(), priority = 10, allow_greedy = true)]
    DocComment(&'input str),
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Token::Number(s) => return write!(f, "number `{s}`"),
            Token::Str(s) | Token::UnterminatedStr(s) | Token::SingleQuotedStr(s) => {
                return write!(f, "string \"{s}\"")
            }
            Token::Ident(s) => return write!(f, "identifier `{s}`"),
            Token::Derivative(s) => return write!(f, "derivative `d{s}/dt`"),
            Token::DocComment(_) => "doc comment",
            Token::Comment | Token::HashComment => "comment",
            Token::Newline => "end of line",
            other => return write!(f, "`{}`", other.text()),
        };
        f.write_str(text)
    }
}

impl Token<'_> {
    /// The literal text of a keyword or punctuation token.
    pub fn text(&self) -> &'static str {
        match self {
            Token::Import => "import",
            Token::As => "as",
            Token::Neuron => "neuron",
            Token::Synapse => "synapse",
            Token::Network => "network",
            Token::Param => "param",
            Token::State => "state",
            Token::Shared => "shared",
            Token::Pre => "pre",
            Token::Post => "post",
            Token::Let => "let",
            Token::Target => "target",
            Token::Spike => "spike",
            Token::When => "when",
            Token::Reset => "reset",
            Token::Refractory => "refractory",
            Token::Unless => "unless",
            Token::Method => "method",
            Token::On => "on",
            Token::If => "if",
            Token::Else => "else",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
            Token::True => "true",
            Token::False => "false",
            Token::Connect => "connect",
            Token::Where => "where",
            Token::From => "from",
            Token::Delay => "delay",
            Token::Record => "record",
            Token::Of => "of",
            Token::Every => "every",
            Token::Input => "input",
            Token::Spikes => "spikes",
            Token::Run => "run",
            Token::LBrace => "{",
            Token::RBrace => "}",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::Comma => ",",
            Token::Colon => ":",
            Token::Semi => ";",
            Token::Dot => ".",
            Token::DotDot => "..",
            Token::Arrow => "->",
            Token::Eq => "=",
            Token::PlusEq => "+=",
            Token::MinusEq => "-=",
            Token::StarEq => "*=",
            Token::SlashEq => "/=",
            Token::Plus => "+",
            Token::Minus => "-",
            Token::Star => "*",
            Token::Slash => "/",
            Token::Caret => "^",
            Token::Percent => "%",
            Token::EqEq => "==",
            Token::NotEq => "!=",
            Token::Lt => "<",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Ge => ">=",
            Token::Newline => "\\n",
            Token::Number(_)
            | Token::Str(_)
            | Token::UnterminatedStr(_)
            | Token::SingleQuotedStr(_)
            | Token::Ident(_)
            | Token::Derivative(_)
            | Token::Comment
            | Token::HashComment
            | Token::DocComment(_) => "",
        }
    }

    /// Whether a statement may end with this token, so that a following newline ends it.
    fn can_end_statement(&self) -> bool {
        matches!(
            self,
            Token::Number(_)
                | Token::Str(_)
                | Token::Ident(_)
                | Token::True
                | Token::False
                | Token::RParen
                | Token::RBracket
                | Token::RBrace
                | Token::Spikes
                | Token::Refractory
        )
    }

    /// Whether a line starting with this token continues the previous line's statement.
    fn continues_statement(&self) -> bool {
        matches!(
            self,
            Token::Else
                | Token::Connect
                | Token::Delay
                | Token::Every
                | Token::Unless
                | Token::From
                | Token::Where
                | Token::And
                | Token::Or
                | Token::Plus
                | Token::Minus
                | Token::Star
                | Token::Slash
                | Token::Caret
                | Token::Percent
                | Token::EqEq
                | Token::NotEq
                | Token::Lt
                | Token::Le
                | Token::Gt
                | Token::Ge
                | Token::Comma
                | Token::RParen
                | Token::RBracket
                | Token::Arrow
                | Token::Colon
                | Token::DotDot
        )
    }
}

/// A lexical error: a character or sequence no token starts with, explained.
#[derive(Clone, Debug, PartialEq)]
pub struct LexError {
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// The headline, such as "unexpected character `$`".
    pub message: String,
    /// What the primary label says about the text.
    pub label: String,
    pub help: Option<String>,
}

/// What a run of characters that starts no token most likely meant: the help line, and the
/// token (if any) the parser gets in its place, so one slip gives one message.
fn explain_stray<'input>(text: &'input str) -> (String, Option<String>, Option<Token<'input>>) {
    let unexpected = format!("unexpected character `{}`", text.escape_debug());
    let simple = |help: &str, token: Option<Token<'input>>| {
        (unexpected.clone(), Some(help.to_string()), token)
    };
    match text {
        "&&" | "&" => simple("write `and` to combine conditions", Some(Token::And)),
        "||" | "|" => simple("write `or` to combine conditions", Some(Token::Or)),
        "!" => simple("write `not` to negate a condition", Some(Token::Not)),
        "\u{2212}" | "\u{2013}" | "\u{2014}" => (
            format!("unexpected character `{text}` (a typographic dash)"),
            Some("write the ASCII minus sign `-`".to_string()),
            Some(Token::Minus),
        ),
        "\u{00d7}" | "\u{00b7}" | "\u{22c5}" => simple("write `*` to multiply", Some(Token::Star)),
        "\u{2264}" => simple("write `<=`", Some(Token::Le)),
        "\u{2265}" => simple("write `>=`", Some(Token::Ge)),
        "\u{2260}" => simple("write `!=`", Some(Token::NotEq)),
        "$" | "@" => simple("names are written without a sigil: drop it", None),
        "`" => simple("names are written without quotes: drop the backticks", None),
        _ if text.chars().all(char::is_alphabetic) => (
            format!("unexpected character `{text}`"),
            Some(
                "names use ASCII letters, digits and `_` (units may also use `µ` and `Ω`); spell Greek letters out, as in `tau`"
                    .to_string(),
            ),
            None,
        ),
        _ => (unexpected, None, None),
    }
}

/// A `///` comment, kept so the driver can attach it to the declaration that follows.
#[derive(Clone, Debug, PartialEq)]
pub struct DocComment {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// The parser's input: `(start, token, end)` triples, as LALRPOP expects them.
pub type Spanned<'input> = (usize, Token<'input>, usize);

/// Everything the lexer produced for one file.
#[derive(Debug, Default)]
pub struct Lexed<'input> {
    pub tokens: Vec<Spanned<'input>>,
    pub errors: Vec<LexError>,
    pub docs: Vec<DocComment>,
}

/// Lexes a whole file, applying the statement-ending newline rule.
///
/// A newline becomes `;` when the token before it can end a statement and the next line does
/// not start with a token that continues a statement (`else`, `connect`, a binary operator,
/// a closing bracket...). Otherwise it is dropped. Characters that start no token become
/// [`LexError`]s; where their meaning is clear (`&&`, a typographic minus) the parser gets the
/// intended token instead, and an unterminated string still reaches it as a string.
pub fn tokenize(text: &str) -> Lexed<'_> {
    let mut raw: Vec<Spanned<'_>> = Vec::new();
    let mut lexed = Lexed::default();
    let mut lexer = Token::lexer(text);
    // Adjacent stray characters (`&&`, a run of Greek letters) make one error.
    let mut stray: Option<(usize, usize)> = None;
    fn flush<'input>(
        text: &'input str,
        stray: &mut Option<(usize, usize)>,
        lexed: &mut Lexed<'input>,
        raw: &mut Vec<Spanned<'input>>,
    ) {
        if let Some((start, end)) = stray.take() {
            let slice = &text[start..end];
            let (message, help, replacement) = explain_stray(slice);
            lexed.errors.push(LexError {
                start,
                end,
                text: slice.to_string(),
                message,
                label: "not part of any token".to_string(),
                help,
            });
            if let Some(token) = replacement {
                raw.push((start, token, end));
            }
        }
    }
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        if result.is_err() {
            match &mut stray {
                Some((_, end)) if *end == span.start => *end = span.end,
                _ => {
                    flush(text, &mut stray, &mut lexed, &mut raw);
                    stray = Some((span.start, span.end));
                }
            }
            continue;
        }
        flush(text, &mut stray, &mut lexed, &mut raw);
        match result {
            Ok(Token::DocComment(doc)) => lexed.docs.push(DocComment {
                start: span.start,
                end: span.end,
                text: doc.to_string(),
            }),
            Ok(Token::UnterminatedStr(body)) => {
                lexed.errors.push(LexError {
                    start: span.start,
                    end: span.end,
                    text: lexer.slice().to_string(),
                    message: "unterminated string".to_string(),
                    label: "the line ends before the closing `\"`".to_string(),
                    help: Some(
                        "strings end on the line they start on; add the closing `\"`".to_string(),
                    ),
                });
                raw.push((span.start, Token::Str(body), span.end));
            }
            Ok(Token::SingleQuotedStr(body)) => {
                lexed.errors.push(LexError {
                    start: span.start,
                    end: span.end,
                    text: lexer.slice().to_string(),
                    message: "strings are written in double quotes".to_string(),
                    label: "single quotes".to_string(),
                    help: Some(format!("write \"{body}\"")),
                });
                raw.push((span.start, Token::Str(body), span.end));
            }
            Ok(Token::HashComment) => lexed.errors.push(LexError {
                start: span.start,
                end: span.start + 1,
                text: "#".to_string(),
                message: "`#` does not start a comment".to_string(),
                label: "not part of any token".to_string(),
                help: Some("comments start with `//`".to_string()),
            }),
            Ok(token) => raw.push((span.start, token, span.end)),
            Err(()) => {}
        }
    }
    flush(text, &mut stray, &mut lexed, &mut raw);

    // Whether the first token after position i that is not a newline continues a statement,
    // computed back to front so long runs of blank lines cost linear time.
    let mut continues_after = vec![false; raw.len() + 1];
    for index in (0..raw.len()).rev() {
        continues_after[index] = match &raw[index].1 {
            Token::Newline => continues_after[index + 1],
            token => token.continues_statement(),
        };
    }
    for index in 0..raw.len() {
        let (start, token, end) = &raw[index];
        if *token != Token::Newline {
            lexed.tokens.push((*start, token.clone(), *end));
            continue;
        }
        let previous_ends = lexed
            .tokens
            .last()
            .is_some_and(|(_, t, _)| t.can_end_statement());
        let next_continues = continues_after[index + 1];
        // Inside parentheses too: two operands on consecutive lines never form an
        // expression, so ending the statement there reports an unclosed `(` where it is.
        if previous_ends && !next_continues {
            lexed.tokens.push((*start, Token::Semi, *end));
        }
    }
    lexed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Token<'_>> {
        tokenize(text)
            .tokens
            .into_iter()
            .map(|(_, t, _)| t)
            .collect()
    }

    #[test]
    fn quantities_are_a_number_then_a_unit_name() {
        assert_eq!(
            kinds("x = -65 mV"),
            vec![
                Token::Ident("x"),
                Token::Eq,
                Token::Minus,
                Token::Number("65"),
                Token::Ident("mV")
            ]
        );
        assert_eq!(kinds("1.5e-3"), vec![Token::Number("1.5e-3")]);
    }

    #[test]
    fn derivatives_are_one_token() {
        assert_eq!(
            kinds("dv/dt = -v"),
            vec![
                Token::Derivative("v"),
                Token::Eq,
                Token::Minus,
                Token::Ident("v")
            ]
        );
        assert_eq!(kinds("dx_pre/dt")[0], Token::Derivative("x_pre"));
    }

    #[test]
    fn ranges_are_not_decimals() {
        assert_eq!(
            kinds("0..10"),
            vec![Token::Number("0"), Token::DotDot, Token::Number("10")]
        );
    }

    #[test]
    fn newlines_end_statements_only_where_one_can_end() {
        assert_eq!(
            kinds("a = b\nc = d"),
            vec![
                Token::Ident("a"),
                Token::Eq,
                Token::Ident("b"),
                Token::Semi,
                Token::Ident("c"),
                Token::Eq,
                Token::Ident("d")
            ]
        );
        // A trailing operator, an open parenthesis or a continuing keyword joins lines.
        assert!(!kinds("a = b +\n c").contains(&Token::Semi));
        assert!(!kinds("f(a,\n b)").contains(&Token::Semi));
        assert!(!kinds("} \n else {").contains(&Token::Semi));
        assert!(!kinds("E -> E : S\n  connect all_to_all").contains(&Token::Semi));
    }

    #[test]
    fn comments_are_skipped_and_doc_comments_kept_aside() {
        let lexed = tokenize("/// A neuron.\n// plain\nneuron");
        assert_eq!(lexed.docs.len(), 1);
        assert_eq!(lexed.docs[0].text, "A neuron.");
        let tokens: Vec<_> = lexed.tokens.into_iter().map(|(_, t, _)| t).collect();
        assert_eq!(tokens, vec![Token::Neuron]);
    }

    #[test]
    fn unknown_characters_are_errors_not_panics() {
        let lexed = tokenize("a = $ b # c");
        assert_eq!(lexed.errors.len(), 2);
        assert_eq!(lexed.errors[0].text, "$");
    }
}
