//! Native evaluation of plain expressions. Most scripts analysts write are one expression over a
//! record's fields — comparisons, arithmetic, `&&`/`||`, `if … { } else { }`, `in_list` — and running
//! them through rhai costs a scope of converted values and an AST walk per call (~8 µs here). Such an
//! expression is also compiled into a tree of native nodes that reads the JSON fields directly. Of the
//! business library, `today()` and `days_since(date)` are native too (the same definitions).
//!
//! The rule is: **the native result is rhai's result, or there is none.** Whatever the subset does not
//! cover is declined — at compile time (statements other than leading `let`s, other functions,
//! closures, string building) or at run time (a value of a type the operation is not defined for here, an overflow, a
//! missing variable) — and then rhai evaluates the script as before, errors included. A test compares
//! both on a corpus of expressions and generated records.
//!
//! Scripts may start with `let name = expression;` bindings (a computed score built from parts):
//! each is evaluated once, in order, before the final expression — as rhai does, so a binding that
//! fails fails the script even when the final expression does not use it.

use serde_json::{Map, Number, Value};

mod columnar;
pub use columnar::ColumnRef;

/// A compiled native expression.
#[derive(Debug, Clone)]
pub struct NativeExpr {
    /// The `let` bindings, in order (`Node::Local(i)` reads the i-th).
    lets: Vec<Node>,
    root: Node,
    /// The variables it reads, by position (`Node::Field`).
    fields: Vec<String>,
    /// Whether it calls `today()` or `days_since` (today's date is then taken once per evaluation).
    uses_today: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Field(usize),
    /// A `let` binding's value, by position.
    Local(usize),
    Not(Box<Node>),
    Neg(Box<Node>),
    Binary(Op, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    If(Box<Node>, Box<Node>, Option<Box<Node>>),
    /// `in_list(value, [literals])`.
    InList(Box<Node>, Vec<Node>),
    /// `today()`: the date (UTC) as `YYYY-MM-DD`.
    Today,
    /// `days_since(date)`: whole days from the date (its first 10 characters) to today.
    DaysSince(Box<Node>),
    /// `value.method()`: a number's conversion or rounding.
    Method(Method, Box<Node>),
}

/// The methods of numbers evaluated natively (rhai's definitions: `to_int` truncates a float and
/// fails beyond the integer range, `floor`/`ceiling`/`round` are defined for floats only, `abs`
/// fails on the smallest integer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    ToInt,
    ToFloat,
    Floor,
    Ceiling,
    Round,
    Abs,
}

impl Method {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "to_int" => Self::ToInt,
            "to_float" => Self::ToFloat,
            "floor" => Self::Floor,
            "ceiling" => Self::Ceiling,
            "round" => Self::Round,
            "abs" => Self::Abs,
            _ => return None,
        })
    }

    /// The method on `value`: rhai's result, or `None` where rhai fails or has no such method
    /// for the value's type.
    pub(crate) fn apply(self, value: V<'_>) -> Option<V<'_>> {
        Some(match (self, value) {
            (Self::ToInt, V::Int(i)) => V::Int(i),
            #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
            (Self::ToInt, V::Float(f)) => {
                if f > i64::MAX as f64 || f < i64::MIN as f64 {
                    return None;
                }
                V::Int(f.trunc() as i64)
            }
            #[allow(clippy::cast_precision_loss)]
            (Self::ToFloat, V::Int(i)) => V::Float(i as f64),
            (Self::ToFloat, V::Float(f)) => V::Float(f),
            (Self::Floor, V::Float(f)) => V::Float(f.floor()),
            (Self::Ceiling, V::Float(f)) => V::Float(f.ceil()),
            (Self::Round, V::Float(f)) => V::Float(f.round()),
            (Self::Abs, V::Int(i)) => V::Int(i.checked_abs()?),
            (Self::Abs, V::Float(f)) => V::Float(f.abs()),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value while evaluating (strings borrowed from the record or the expression).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum V<'a> {
    Unit,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl NativeExpr {
    /// Compile `source` natively; `None` when it is outside the subset (rhai runs it).
    pub fn compile(source: &str) -> Option<Self> {
        let tokens = tokenize(source)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            fields: Vec::new(),
            locals: Vec::new(),
            uses_today: false,
        };
        let mut lets = Vec::new();
        while parser.peek() == Some(&Token::Ident("let".into())) {
            parser.at += 1;
            let Some(Token::Ident(name)) = parser.peek().cloned() else {
                return None;
            };
            if RESERVED.contains(&name.as_str()) {
                return None;
            }
            parser.at += 1;
            parser.expect("=")?;
            lets.push(parser.expression()?);
            parser.expect(";")?;
            // Declared after its own value: `let x = x + 1` reads the earlier `x`.
            parser.locals.push(name);
        }
        let root = parser.expression()?;
        if parser.at != parser.tokens.len() {
            return None;
        }
        Some(Self {
            lets,
            root,
            fields: parser.fields,
            uses_today: parser.uses_today,
        })
    }

    /// The variables the expression reads.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Evaluate over `record` (each field a variable of its own name, `record.x` the same field):
    /// rhai's result, or `None` where this subset does not decide (rhai must run then).
    pub fn eval(&self, record: &Map<String, Value>) -> Option<Value> {
        self.eval_by(|name| record.get(name))
    }

    /// [`NativeExpr::eval`] with each variable's value from `lookup` (`None`: no such variable).
    pub fn eval_by<'a>(&self, lookup: impl Fn(&str) -> Option<&'a Value>) -> Option<Value> {
        let today = if self.uses_today {
            let date = chrono::Utc::now().date_naive();
            Some((date.to_string(), date))
        } else {
            None
        };
        let mut values = Vec::with_capacity(self.fields.len());
        for name in &self.fields {
            values.push(from_json(lookup(name)?)?);
        }
        let today = today.as_ref().map(|(text, date)| (text.as_str(), *date));
        let mut locals = Vec::with_capacity(self.lets.len());
        for value in &self.lets {
            let context = Context {
                fields: &values,
                locals: &locals,
                today,
            };
            let value = eval(value, &context)?;
            locals.push(value);
        }
        let context = Context {
            fields: &values,
            locals: &locals,
            today,
        };
        to_json(eval(&self.root, &context)?)
    }
}

fn from_json(value: &Value) -> Option<V<'_>> {
    Some(match value {
        Value::Null => V::Unit,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => V::Int(i),
            None if n.is_f64() => V::Float(n.as_f64()?),
            None => return None,
        },
        Value::String(s) => V::Str(s),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

pub(crate) fn to_json(value: V<'_>) -> Option<Value> {
    Some(match value {
        V::Unit => Value::Null,
        V::Bool(b) => Value::Bool(b),
        V::Int(i) => Value::Number(i.into()),
        V::Float(f) => Value::Number(Number::from_f64(f)?),
        V::Str(s) => Value::String(s.to_owned()),
    })
}

/// What an evaluation reads besides the nodes: the fields' values and today's date.
struct Context<'c, 'a> {
    fields: &'c [V<'a>],
    locals: &'c [V<'a>],
    today: Option<(&'a str, chrono::NaiveDate)>,
}

fn eval<'a>(node: &'a Node, context: &Context<'_, 'a>) -> Option<V<'a>> {
    Some(match node {
        Node::Today => V::Str(context.today?.0),
        Node::DaysSince(date) => match eval(date, context)? {
            V::Str(text) => {
                let day = text.get(..10).unwrap_or(text);
                let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
                V::Int((context.today?.1 - date).num_days())
            }
            _ => return None,
        },
        Node::Unit => V::Unit,
        Node::Bool(b) => V::Bool(*b),
        Node::Int(i) => V::Int(*i),
        Node::Float(f) => V::Float(*f),
        Node::Str(s) => V::Str(s),
        Node::Field(i) => context.fields[*i],
        Node::Local(i) => context.locals[*i],
        Node::Not(inner) => match eval(inner, context)? {
            V::Bool(b) => V::Bool(!b),
            _ => return None,
        },
        Node::Neg(inner) => match eval(inner, context)? {
            V::Int(i) => V::Int(i.checked_neg()?),
            V::Float(f) => V::Float(-f),
            _ => return None,
        },
        Node::And(left, right) => match eval(left, context)? {
            V::Bool(false) => V::Bool(false),
            V::Bool(true) => match eval(right, context)? {
                V::Bool(b) => V::Bool(b),
                _ => return None,
            },
            _ => return None,
        },
        Node::Or(left, right) => match eval(left, context)? {
            V::Bool(true) => V::Bool(true),
            V::Bool(false) => match eval(right, context)? {
                V::Bool(b) => V::Bool(b),
                _ => return None,
            },
            _ => return None,
        },
        Node::If(condition, then, otherwise) => match eval(condition, context)? {
            V::Bool(true) => eval(then, context)?,
            V::Bool(false) => match otherwise {
                Some(otherwise) => eval(otherwise, context)?,
                None => V::Unit,
            },
            _ => return None,
        },
        Node::InList(value, items) => {
            let value = list_text(eval(value, context)?)?;
            let mut found = false;
            for item in items {
                found |= list_text(eval(item, context)?)? == value;
            }
            V::Bool(found)
        }
        Node::Binary(op, left, right) => binary(*op, eval(left, context)?, eval(right, context)?)?,
        Node::Method(method, value) => method.apply(eval(value, context)?)?,
    })
}

/// How `in_list` compares (rhai's text of the value), for the types whose text is unambiguous.
fn list_text(value: V<'_>) -> Option<String> {
    match value {
        V::Int(i) => Some(i.to_string()),
        V::Str(s) => Some(s.to_owned()),
        V::Bool(b) => Some(b.to_string()),
        V::Unit | V::Float(_) => None,
    }
}

pub(crate) fn binary<'a>(op: Op, left: V<'a>, right: V<'a>) -> Option<V<'a>> {
    use V::{Bool, Float, Int, Str, Unit};
    Some(match (op, left, right) {
        (Op::Add, Int(a), Int(b)) => Int(a.checked_add(b)?),
        (Op::Sub, Int(a), Int(b)) => Int(a.checked_sub(b)?),
        (Op::Mul, Int(a), Int(b)) => Int(a.checked_mul(b)?),
        (Op::Div, Int(a), Int(b)) => Int(a.checked_div(b)?),
        (Op::Rem, Int(a), Int(b)) => Int(a.checked_rem(b)?),
        (Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem, Float(_) | Int(_), Float(_) | Int(_)) => {
            let (a, b) = (float(left)?, float(right)?);
            Float(match op {
                Op::Add => a + b,
                Op::Sub => a - b,
                Op::Mul => a * b,
                Op::Div => a / b,
                _ => a % b,
            })
        }
        (Op::Eq | Op::Ne, _, _) => {
            let equal = match (left, right) {
                (Int(a), Int(b)) => a == b,
                (Float(_) | Int(_), Float(_) | Int(_)) => float(left)? == float(right)?,
                (Str(a), Str(b)) => a == b,
                (Bool(a), Bool(b)) => a == b,
                (Unit, Unit) => true,
                // A value against `()` (an empty field): never equal.
                (Unit, _) | (_, Unit) => false,
                _ => return None,
            };
            Bool(equal == (op == Op::Eq))
        }
        (Op::Lt | Op::Le | Op::Gt | Op::Ge, _, _) => {
            let ordering = match (left, right) {
                (Int(a), Int(b)) => a.cmp(&b),
                (Float(_) | Int(_), Float(_) | Int(_)) => {
                    float(left)?.partial_cmp(&float(right)?)?
                }
                (Str(a), Str(b)) => a.cmp(b),
                _ => return None,
            };
            Bool(match op {
                Op::Lt => ordering.is_lt(),
                Op::Le => ordering.is_le(),
                Op::Gt => ordering.is_gt(),
                _ => ordering.is_ge(),
            })
        }
        _ => return None,
    })
}

fn float(value: V<'_>) -> Option<f64> {
    match value {
        V::Int(i) => Some(i as f64),
        V::Float(f) => Some(f),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Symbol(&'static str),
}

const SYMBOLS: [&str; 24] = [
    "==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "+", "-", "*", "/", "%", "(", ")", "{", "}",
    "[", "]", ",", ".", "=", ";",
];

/// Names a `let` may not bind here (keywords, the functions and variables this subset knows).
const RESERVED: &[&str] = &[
    "true",
    "false",
    "if",
    "else",
    "let",
    "const",
    "fn",
    "record",
    "today",
    "days_since",
    "in_list",
    "this",
    "global",
    "Fn",
    "call",
    "curry",
    "eval",
    "print",
    "debug",
    "type_of",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "in",
    "return",
    "throw",
    "try",
    "catch",
    "switch",
    "loop",
    "while",
    "for",
    "do",
    "until",
    "break",
    "continue",
    "import",
    "export",
];

fn tokenize(source: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                tokens.push(Token::Float(text.parse().ok()?));
            } else {
                let text: String = chars[start..i].iter().collect();
                tokens.push(Token::Int(text.parse().ok()?));
            }
            // `1_000`, `1e3`, `0x10`, `1.`: rhai's, not ours.
            if i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                return None;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == '"' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i)? {
                    '"' => break,
                    '\\' => {
                        text.push(match chars.get(i + 1)? {
                            '"' => '"',
                            '\\' => '\\',
                            'n' => '\n',
                            't' => '\t',
                            _ => return None,
                        });
                        i += 2;
                    }
                    other => {
                        text.push(*other);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Str(text));
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let symbol = SYMBOLS.iter().find(|s| rest.starts_with(**s))?;
            // `//` and `/*` are comments: rhai's. (`=` is only read after `let name`.)
            if rest == "//" || rest == "/*" {
                return None;
            }
            tokens.push(Token::Symbol(symbol));
            i += symbol.len();
        }
    }
    Some(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    fields: Vec<String>,
    /// The `let` names declared so far, by position (a later one shadows an earlier one).
    locals: Vec<String>,
    uses_today: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if self.peek() == Some(&Token::Symbol(symbol_of(symbol))) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, symbol: &str) -> Option<()> {
        self.eat(symbol).then_some(())
    }

    fn expression(&mut self) -> Option<Node> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Node> {
        let mut left = self.equality()?;
        while self.eat("&&") {
            left = Node::And(Box::new(left), Box::new(self.equality()?));
        }
        Some(left)
    }

    fn equality(&mut self) -> Option<Node> {
        let mut left = self.comparison()?;
        loop {
            let op = if self.eat("==") {
                Op::Eq
            } else if self.eat("!=") {
                Op::Ne
            } else {
                return Some(left);
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.comparison()?));
        }
    }

    fn comparison(&mut self) -> Option<Node> {
        let mut left = self.sum()?;
        loop {
            let op = if self.eat("<=") {
                Op::Le
            } else if self.eat(">=") {
                Op::Ge
            } else if self.eat("<") {
                Op::Lt
            } else if self.eat(">") {
                Op::Gt
            } else {
                return Some(left);
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.sum()?));
        }
    }

    fn sum(&mut self) -> Option<Node> {
        let mut left = self.product()?;
        loop {
            let op = if self.eat("+") {
                Op::Add
            } else if self.eat("-") {
                Op::Sub
            } else {
                return Some(left);
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.product()?));
        }
    }

    fn product(&mut self) -> Option<Node> {
        let mut left = self.unary()?;
        loop {
            let op = if self.eat("*") {
                Op::Mul
            } else if self.eat("/") {
                Op::Div
            } else if self.eat("%") {
                Op::Rem
            } else {
                return Some(left);
            };
            left = Node::Binary(op, Box::new(left), Box::new(self.unary()?));
        }
    }

    fn unary(&mut self) -> Option<Node> {
        if self.eat("!") {
            return Some(Node::Not(Box::new(self.unary()?)));
        }
        if self.eat("-") {
            // A negative literal is a literal (rhai folds it too).
            return Some(match self.unary()? {
                Node::Int(i) => Node::Int(i.checked_neg()?),
                Node::Float(f) => Node::Float(-f),
                other => Node::Neg(Box::new(other)),
            });
        }
        self.postfix()
    }

    /// A primary expression and the number methods called on it (`x.to_int()`,
    /// `(s / 10.0).ceiling()`): they bind tighter than a sign or `!`, as in rhai.
    fn postfix(&mut self) -> Option<Node> {
        let mut node = self.primary()?;
        while self.eat(".") {
            let Some(Token::Ident(name)) = self.peek().cloned() else {
                return None;
            };
            self.at += 1;
            let method = Method::named(&name)?;
            self.expect("(")?;
            self.expect(")")?;
            node = Node::Method(method, Box::new(node));
        }
        Some(node)
    }

    fn field(&mut self, name: String) -> Node {
        if let Some(slot) = self.locals.iter().rposition(|l| *l == name) {
            return Node::Local(slot);
        }
        let index = match self.fields.iter().position(|f| *f == name) {
            Some(index) => index,
            None => {
                self.fields.push(name);
                self.fields.len() - 1
            }
        };
        Node::Field(index)
    }

    fn primary(&mut self) -> Option<Node> {
        let token = self.peek()?.clone();
        self.at += 1;
        match token {
            Token::Int(i) => Some(Node::Int(i)),
            Token::Float(f) => Some(Node::Float(f)),
            Token::Str(s) => Some(Node::Str(s)),
            Token::Symbol("(") => {
                if self.eat(")") {
                    return Some(Node::Unit);
                }
                let inner = self.expression()?;
                self.expect(")")?;
                Some(inner)
            }
            Token::Ident(name) => match name.as_str() {
                "true" => Some(Node::Bool(true)),
                "false" => Some(Node::Bool(false)),
                "if" => self.if_rest(),
                "today" => {
                    self.expect("(")?;
                    self.expect(")")?;
                    self.uses_today = true;
                    Some(Node::Today)
                }
                "days_since" => {
                    self.expect("(")?;
                    let date = self.expression()?;
                    self.expect(")")?;
                    self.uses_today = true;
                    Some(Node::DaysSince(Box::new(date)))
                }
                "in_list" => {
                    self.expect("(")?;
                    let value = self.expression()?;
                    self.expect(",")?;
                    self.expect("[")?;
                    let mut items = Vec::new();
                    if !self.eat("]") {
                        loop {
                            let item = self.unary()?;
                            if !matches!(item, Node::Int(_) | Node::Str(_) | Node::Bool(_)) {
                                return None;
                            }
                            items.push(item);
                            if self.eat("]") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    self.expect(")")?;
                    Some(Node::InList(Box::new(value), items))
                }
                "record" => {
                    self.expect(".")?;
                    match self.peek()?.clone() {
                        Token::Ident(field) => {
                            self.at += 1;
                            // `record.x` is the field even where a `let x` shadows `x`.
                            let locals = std::mem::take(&mut self.locals);
                            let node = self.field(field);
                            self.locals = locals;
                            Some(node)
                        }
                        _ => None,
                    }
                }
                // Keywords and anything called like a function are rhai's.
                "else" | "let" | "const" | "fn" | "loop" | "while" | "for" | "return"
                | "switch" | "this" | "import" | "export" | "throw" | "try" | "catch" | "do"
                | "until" | "break" | "continue" | "in" | "global" | "Fn" | "call" | "curry"
                | "eval" | "print" | "debug" | "type_of" | "is_def_var" | "is_def_fn"
                | "is_shared" => None,
                _ => {
                    // A `.` after a name is a method call (`postfix`) or a property (rhai's).
                    if matches!(self.peek(), Some(Token::Symbol("(" | "[" | "{"))) {
                        return None;
                    }
                    Some(self.field(name))
                }
            },
            _ => None,
        }
    }

    /// After `if`: `condition { expression } [else { expression } | else if …]`.
    fn if_rest(&mut self) -> Option<Node> {
        let condition = self.expression_without_block()?;
        let then = self.block()?;
        let otherwise = if self.peek() == Some(&Token::Ident("else".into())) {
            self.at += 1;
            if self.peek() == Some(&Token::Ident("if".into())) {
                self.at += 1;
                Some(Box::new(self.if_rest()?))
            } else {
                Some(Box::new(self.block()?))
            }
        } else {
            None
        };
        Some(Node::If(Box::new(condition), Box::new(then), otherwise))
    }

    /// An `if` condition: an expression that stops before the block's `{`.
    fn expression_without_block(&mut self) -> Option<Node> {
        let end = self.tokens[self.at..]
            .iter()
            .position(|t| *t == Token::Symbol("{"))?
            + self.at;
        let rest = self.tokens.split_off(end);
        let condition = self.expression();
        let consumed_all = self.at == self.tokens.len();
        self.tokens.extend(rest);
        if consumed_all { condition } else { None }
    }

    fn block(&mut self) -> Option<Node> {
        self.expect("{")?;
        let inner = self.expression()?;
        self.expect("}")?;
        Some(inner)
    }
}

fn symbol_of(text: &str) -> &'static str {
    SYMBOLS.iter().find(|s| **s == text).copied().unwrap_or("")
}

#[cfg(test)]
mod tests;
