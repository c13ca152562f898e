//! A pre-parse estimate of how deeply a PAC nests, so that a hostile or
//! broken PAC cannot overflow the evaluator's stack.
//!
//! boa's parser and compiler recurse once per nesting level, using several
//! KiB of native stack per level (more in debug builds); a stack overflow
//! aborts the whole process, it cannot be caught. So before boa sees the
//! source, this module runs a small tokenizer (strings, comments, regular
//! expressions, templates) and scores the nesting the parser will recurse
//! through: each open bracket weighs [`BRACKET_WEIGHT`]; inside a bracket,
//! `else` chains, brace-less `if`/`for`/`while` bodies, prefix operators,
//! assignments, `?:` and `=>` each add one until the statement (or list
//! item) ends. The estimate errs high for odd code and is exact enough for
//! PACs as people write them (a few levels of brackets, `else if` chains of
//! some hundreds). The evaluator runs on a thread with a stack sized so that
//! the highest accepted score parses with room to spare.

/// Score of one open bracket: a bracket level costs the parser several times
/// what an operator level does.
pub const BRACKET_WEIGHT: u32 = 8;

#[derive(Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Root,
    Paren,
    Bracket,
    Brace,
    Template,
}

struct Frame {
    kind: FrameKind,
    /// `else` tokens in this bracket: an `else if` chain nests to the end.
    elses: u32,
    /// Brace-less statement heads (`if`, `for`, `while`, `with`, `do`) since
    /// the last statement end.
    heads: u32,
    /// Right-nesting operators since the last `;` or `,`.
    ops: u32,
}

impl Frame {
    fn new(kind: FrameKind) -> Self {
        Frame {
            kind,
            elses: 0,
            heads: 0,
            ops: 0,
        }
    }
    fn score(&self) -> u32 {
        let own = if self.kind == FrameKind::Root {
            0
        } else {
            BRACKET_WEIGHT
        };
        own + self.elses + self.heads + self.ops
    }
}

/// What came before, to tell a regular expression from a division and a
/// prefix `+`/`-` from an infix one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Prev {
    /// Start, an operator, an opening bracket: an operand comes next.
    Operator,
    /// A name, number, string or closing bracket: an operator comes next.
    Value,
}

/// Keywords after which an operand (so possibly a regex) comes next.
const OPERAND_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

/// Err(line) when the score passes `limit` at `line`.
pub fn check(source: &str, limit: u32) -> Result<(), u32> {
    Scanner {
        src: source.as_bytes(),
        pos: 0,
        line: 1,
        frames: vec![Frame::new(FrameKind::Root)],
        total: 0,
        limit,
        prev: Prev::Operator,
        newline_before: false,
    }
    .run()
}

struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    frames: Vec<Frame>,
    /// Sum of the frames' scores.
    total: u32,
    limit: u32,
    prev: Prev,
    /// A line break since the previous token (automatic semicolon insertion).
    newline_before: bool,
}

impl Scanner<'_> {
    fn peek(&self, ahead: usize) -> u8 {
        self.src.get(self.pos + ahead).copied().unwrap_or(0)
    }

    fn top(&mut self) -> &mut Frame {
        // The root frame is never popped.
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn add(&mut self, field: fn(&mut Frame) -> &mut u32) -> Result<(), u32> {
        *field(self.top()) += 1;
        self.total += 1;
        if self.total > self.limit {
            return Err(self.line);
        }
        Ok(())
    }

    fn end_statement(&mut self) {
        let f = self.top();
        let freed = f.heads + f.ops;
        f.heads = 0;
        f.ops = 0;
        self.total -= freed;
    }

    fn end_item(&mut self) {
        let f = self.top();
        let freed = f.ops;
        f.ops = 0;
        self.total -= freed;
    }

    fn open(&mut self, kind: FrameKind) -> Result<(), u32> {
        self.frames.push(Frame::new(kind));
        self.total += BRACKET_WEIGHT;
        if self.total > self.limit {
            return Err(self.line);
        }
        Ok(())
    }

    /// Pops the innermost frame; returns its kind (Root when unbalanced).
    fn close(&mut self) -> FrameKind {
        if self.frames.len() == 1 {
            return FrameKind::Root;
        }
        let f = self
            .frames
            .pop()
            .unwrap_or_else(|| Frame::new(FrameKind::Root));
        self.total -= f.score();
        if f.kind == FrameKind::Brace {
            // A block ended: brace-less heads before it are complete.
            let t = self.top();
            let freed = t.heads;
            t.heads = 0;
            self.total -= freed;
        }
        f.kind
    }

    fn run(mut self) -> Result<(), u32> {
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            match c {
                b'\n' => {
                    self.line += 1;
                    self.newline_before = true;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'/' if self.peek(1) == b'/' => self.skip_line_comment(),
                b'/' if self.peek(1) == b'*' => self.skip_block_comment(),
                b'/' if self.prev == Prev::Operator => {
                    self.skip_regex();
                    self.token(Prev::Value);
                }
                b'\'' | b'"' => {
                    self.skip_string(c);
                    self.token(Prev::Value);
                }
                b'`' => {
                    self.pos += 1;
                    self.template()?;
                }
                b'(' | b'[' | b'{' => {
                    self.pos += 1;
                    self.token(Prev::Operator);
                    self.open(match c {
                        b'(' => FrameKind::Paren,
                        b'[' => FrameKind::Bracket,
                        _ => FrameKind::Brace,
                    })?;
                }
                b')' | b']' | b'}' => {
                    self.pos += 1;
                    self.token(Prev::Value);
                    if self.close() == FrameKind::Template {
                        self.template()?;
                    }
                }
                b';' => {
                    self.pos += 1;
                    self.token(Prev::Operator);
                    self.end_statement();
                }
                b',' => {
                    self.pos += 1;
                    self.token(Prev::Operator);
                    self.end_item();
                }
                b'?' => {
                    let next = self.peek(1);
                    if next == b'?' || (next == b'.' && !self.peek(2).is_ascii_digit()) {
                        self.pos += 2;
                        if self.peek(0) == b'=' {
                            self.pos += 1;
                            self.add(|f| &mut f.ops)?;
                        }
                    } else {
                        self.pos += 1;
                        self.add(|f| &mut f.ops)?;
                    }
                    self.token(Prev::Operator);
                }
                b':' | b'.' if !self.peek(1).is_ascii_digit() || c == b':' => {
                    self.pos += 1;
                    if c == b':' {
                        // Labels nest the statement they label.
                        self.add(|f| &mut f.ops)?;
                    }
                    self.token(Prev::Operator);
                }
                b'0'..=b'9' | b'.' => {
                    self.skip_number();
                    self.token(Prev::Value);
                }
                b'=' | b'+' | b'-' | b'*' | b'%' | b'&' | b'|' | b'^' | b'!' | b'~' | b'<'
                | b'>' | b'/' => self.operator()?,
                _ if c == b'_'
                    || c == b'$'
                    || c == b'\\'
                    || c.is_ascii_alphabetic()
                    || c >= 0x80 =>
                {
                    self.word()?
                }
                _ => {
                    // `#`, `@` and stray bytes: boa will report them.
                    self.pos += 1;
                    self.token(Prev::Operator);
                }
            }
        }
        Ok(())
    }

    /// Bookkeeping for every token: automatic semicolon insertion ends the
    /// statement when a line break separates a value from a new name.
    fn token(&mut self, next: Prev) {
        self.newline_before = false;
        self.prev = next;
    }

    fn word(&mut self) -> Result<(), u32> {
        let start = self.pos;
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            if c == b'_' || c == b'$' || c == b'\\' || c.is_ascii_alphanumeric() || c >= 0x80 {
                self.pos += 1;
            } else {
                break;
            }
        }
        let word = &self.src[start..self.pos];
        let word = std::str::from_utf8(word).unwrap_or("");
        if self.newline_before
            && self.prev == Prev::Value
            && !matches!(word, "in" | "instanceof" | "of")
        {
            self.end_statement();
        }
        match word {
            "else" => self.add(|f| &mut f.elses)?,
            "if" | "for" | "while" | "with" | "do" => self.add(|f| &mut f.heads)?,
            "typeof" | "void" | "delete" | "new" | "await" | "yield" => self.add(|f| &mut f.ops)?,
            _ => {}
        }
        let prev = if OPERAND_KEYWORDS.contains(&word) {
            Prev::Operator
        } else {
            Prev::Value
        };
        self.token(prev);
        Ok(())
    }

    /// A run of operator characters. Prefix operators, assignments, `=>`
    /// and `**` nest to their right; comparisons and other infix operators
    /// do not.
    fn operator(&mut self) -> Result<(), u32> {
        let start = self.pos;
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            let op = matches!(
                c,
                b'=' | b'+' | b'-' | b'*' | b'%' | b'&' | b'|' | b'^' | b'!' | b'~' | b'<' | b'>'
            ) || (c == b'/' && self.pos == start);
            if !op {
                break;
            }
            self.pos += 1;
        }
        let run = &self.src[start..self.pos];
        let mut nest = run.iter().filter(|&&c| c == b'!' || c == b'~').count() as u32;
        let comparison = matches!(run, b"==" | b"===" | b"!=" | b"!==" | b"<=" | b">=");
        if run.ends_with(b"=") && !comparison {
            nest += 1;
        }
        if run
            .windows(2)
            .any(|w| w == b"=>" || w == b"**" || w == b"++" || w == b"--")
        {
            nest += 1;
        }
        if self.prev == Prev::Operator && matches!(run.first(), Some(b'+' | b'-')) {
            nest += 1;
        }
        for _ in 0..nest {
            self.add(|f| &mut f.ops)?;
        }
        self.token(Prev::Operator);
        Ok(())
    }

    fn skip_line_comment(&mut self) {
        while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
            self.pos += 1;
        }
    }

    fn skip_block_comment(&mut self) {
        self.pos += 2;
        while self.pos < self.src.len() {
            if self.src[self.pos] == b'*' && self.peek(1) == b'/' {
                self.pos += 2;
                return;
            }
            if self.src[self.pos] == b'\n' {
                self.line += 1;
                self.newline_before = true;
            }
            self.pos += 1;
        }
    }

    fn skip_string(&mut self, quote: u8) {
        self.pos += 1;
        while self.pos < self.src.len() {
            match self.src[self.pos] {
                b'\\' => {
                    if self.peek(1) == b'\n' {
                        self.line += 1;
                    }
                    self.pos += 2;
                }
                b'\n' => return, // unterminated: boa reports it
                c if c == quote => {
                    self.pos += 1;
                    return;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn skip_regex(&mut self) {
        self.pos += 1;
        let mut in_class = false;
        while self.pos < self.src.len() {
            match self.src[self.pos] {
                b'\\' => self.pos += 2,
                b'\n' => return,
                b'[' => {
                    in_class = true;
                    self.pos += 1;
                }
                b']' => {
                    in_class = false;
                    self.pos += 1;
                }
                b'/' if !in_class => {
                    self.pos += 1;
                    while self.pos < self.src.len() && self.src[self.pos].is_ascii_alphabetic() {
                        self.pos += 1;
                    }
                    return;
                }
                _ => self.pos += 1,
            }
        }
    }

    fn skip_number(&mut self) {
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            let exponent_sign = (c == b'+' || c == b'-')
                && matches!(self.src.get(self.pos.wrapping_sub(1)), Some(b'e' | b'E'))
                && !self.src[..self.pos].starts_with(b"0x");
            if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || exponent_sign {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Inside a template literal, after its opening backtick or after the
    /// `}` that closed a `${`: skips text up to the closing backtick, or
    /// opens a frame at `${`.
    fn template(&mut self) -> Result<(), u32> {
        while self.pos < self.src.len() {
            match self.src[self.pos] {
                b'\\' => self.pos += 2,
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b'`' => {
                    self.pos += 1;
                    self.token(Prev::Value);
                    return Ok(());
                }
                b'$' if self.peek(1) == b'{' => {
                    self.pos += 2;
                    self.token(Prev::Operator);
                    return self.open(FrameKind::Template);
                }
                _ => self.pos += 1,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u32 = 8000;

    #[test]
    fn ordinary_pacs_score_low() {
        let mut src = String::from("function FindProxyForURL(url, host) {\n");
        for i in 0..3000 {
            src += &format!(
                "  if (dnsDomainIs(host, \".d{i}.example\") || shExpMatch(url, \"*/x{i}/*\")) {{ return \"PROXY p:3128\"; }}\n"
            );
            src += &format!("  var v{i} = !isPlainHostName(host) ? 'a' : 'b';\n");
        }
        src += "  return `DIRECT${''}`;\n}\n";
        assert_eq!(check(&src, 100), Ok(()));
    }

    #[test]
    fn long_else_if_chain_counts_each_else() {
        let mut src = String::from("function F(h) { if (h == 'a') return 'x';\n");
        for i in 0..500 {
            src += &format!(" else if (h == 'a{i}') return 'y';\n");
        }
        src += "}";
        assert_eq!(check(&src, 600), Ok(()));
        assert!(check(&src, 400).unwrap_err() > 300);
    }

    #[test]
    fn deep_shapes_are_refused_with_their_line() {
        let paren = format!("var x =\n{}1{};", "(".repeat(5000), ")".repeat(5000));
        assert_eq!(check(&paren, LIMIT), Err(2));
        for shape in [
            "!", "a = ", "a ? 1 : ", "if (1) ", "- ", "typeof ", "x => ", "L: ",
        ] {
            let src = format!("var a;\n{}1;", shape.repeat(20_000));
            assert_eq!(check(&src, LIMIT), Err(2), "{shape}");
        }
    }

    #[test]
    fn brackets_inside_strings_comments_and_regexes_do_not_count() {
        let noise =
            "'((((';\n\"[[[[\" /* {{{{ */ // ((((\nx = /\\((((/.test(x);\n`((( ${ '(' } (((`;\n";
        let src = noise.repeat(3000);
        assert_eq!(check(&src, 100), Ok(()));
    }

    #[test]
    fn asi_separated_statements_do_not_accumulate() {
        let src = "var a = 1\nvar b = !a\n".repeat(5000);
        assert_eq!(check(&src, 100), Ok(()));
    }
}
