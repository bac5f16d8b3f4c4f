//! Columnar evaluation of native expressions: one expression over a batch of records held as typed
//! columns (the form the report engine's column cache keeps them in), one pass per node over the batch
//! instead of one tree walk per record — for batch runs over many records.
//!
//! The rule of the row-wise path holds per row: the result is rhai's result, or none (the caller then
//! evaluates that record with [`crate::Script::eval`]). Typed columns add one ambiguity: a number read
//! from a column does not say whether the document held `12` or `12.0`, and rhai computes integers and
//! floats differently (`12 / 5` is 2, `12.0 / 5` is 2.4; the result's type differs too). So arithmetic
//! and `in_list` on numbers that came from a column decline, unless the value is a float with a
//! fraction (the document can only have held a float). Comparisons do not care and run everywhere.

use serde_json::Value;

use super::{NativeExpr, Node, Op, V, binary, to_json};

/// One field's values for a batch, as the column cache holds them.
#[derive(Debug, Clone, Copy)]
pub enum ColumnRef<'a> {
    Int(&'a [Option<i64>]),
    Float(&'a [Option<f64>]),
    Bool(&'a [Option<bool>]),
    Text(&'a [Option<String>]),
    /// Text stored once per distinct value.
    Dict {
        codes: &'a [Option<u32>],
        values: &'a [String],
    },
}

impl<'a> ColumnRef<'a> {
    fn len(&self) -> usize {
        match self {
            Self::Int(v) => v.len(),
            Self::Float(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Text(v) => v.len(),
            Self::Dict { codes, .. } => codes.len(),
        }
    }

    /// Whether row `row` is empty (`()`).
    fn is_empty(&self, row: usize) -> bool {
        match self {
            Self::Int(v) => v[row].is_none(),
            Self::Float(v) => v[row].is_none(),
            Self::Bool(v) => v[row].is_none(),
            Self::Text(v) => v[row].is_none(),
            Self::Dict { codes, .. } => codes[row].is_none(),
        }
    }

    /// The rows `range` of the column.
    fn slice(&self, range: std::ops::Range<usize>) -> Self {
        match self {
            Self::Int(v) => Self::Int(&v[range]),
            Self::Float(v) => Self::Float(&v[range]),
            Self::Bool(v) => Self::Bool(&v[range]),
            Self::Text(v) => Self::Text(&v[range]),
            Self::Dict { codes, values } => Self::Dict {
                codes: &codes[range],
                values,
            },
        }
    }

    /// Row `row` as a value, and whether it is a number whose document form is uncertain.
    fn get(&self, row: usize) -> Option<Cell<'a>> {
        Some(match self {
            Self::Int(v) => v[row].map_or(Cell::sure(V::Unit), |i| Cell::unsure(V::Int(i))),
            Self::Float(v) => match v[row] {
                None => Cell::sure(V::Unit),
                Some(f) if f.fract() != 0.0 && f.is_finite() => Cell::sure(V::Float(f)),
                Some(f) => Cell::unsure(V::Float(f)),
            },
            Self::Bool(v) => Cell::sure(v[row].map_or(V::Unit, V::Bool)),
            Self::Text(v) => Cell::sure(v[row].as_deref().map_or(V::Unit, V::Str)),
            Self::Dict { codes, values } => Cell::sure(match codes[row] {
                None => V::Unit,
                Some(code) => V::Str(values.get(code as usize)?),
            }),
        })
    }
}

/// A value of one row while evaluating a batch.
#[derive(Debug, Clone, Copy)]
struct Cell<'a> {
    value: V<'a>,
    /// A number read from a column whose document form (integer or float) is not known.
    unsure: bool,
}

impl<'a> Cell<'a> {
    fn sure(value: V<'a>) -> Self {
        Self {
            value,
            unsure: false,
        }
    }

    fn unsure(value: V<'a>) -> Self {
        Self {
            value,
            unsure: true,
        }
    }
}

/// A node's result over the batch: one value for every row (literals) or one per row.
#[derive(Clone)]
enum Operand<'a> {
    Scalar(Option<Cell<'a>>),
    Vector(Vec<Option<Cell<'a>>>),
    /// Booleans (`None`: not decided), e.g. a comparison's results.
    Bools(Vec<Option<bool>>),
    /// Integers known to be integers (not read from a column), e.g. a sum of `if` branches.
    Ints(Vec<Option<i64>>),
    /// A column's rows of the chunk, read in place.
    Column(ColumnRef<'a>),
}

impl<'a> Operand<'a> {
    fn at(&self, row: usize) -> Option<Cell<'a>> {
        match self {
            Self::Scalar(cell) => *cell,
            Self::Vector(cells) => cells[row],
            Self::Bools(values) => values[row].map(|b| Cell::sure(V::Bool(b))),
            Self::Ints(values) => values[row].map(|i| Cell::sure(V::Int(i))),
            Self::Column(column) => column.get(row),
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(self, Self::Scalar(_))
    }

    /// The rows as booleans (`None`: not decided, or `()`), when they are held that way.
    fn as_bools(&self) -> Option<&[Option<bool>]> {
        match self {
            Self::Bools(values) => Some(values),
            Self::Column(ColumnRef::Bool(values)) => Some(values),
            _ => None,
        }
    }
}

/// Typed kernels for the common shapes (a column against a literal, `if` over booleans with
/// integer branches, sums of integers): the same results as the generic per-row path, without
/// building a value per row. `None`: not this shape.
fn kernel<'a>(op: Op, left: &Operand<'a>, right: &Operand<'a>, rows: usize) -> Option<Operand<'a>> {
    use std::cmp::Ordering;
    let compare = |ordering: Ordering| match op {
        Op::Lt => ordering.is_lt(),
        Op::Le => ordering.is_le(),
        Op::Gt => ordering.is_gt(),
        Op::Ge => ordering.is_ge(),
        Op::Eq => ordering.is_eq(),
        _ => ordering.is_ne(),
    };
    let comparison = matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne);
    let equality = matches!(op, Op::Eq | Op::Ne);
    match (left, right) {
        // A column against `()`: only `==` / `!=` are defined.
        (Operand::Column(column), Operand::Scalar(Some(Cell { value: V::Unit, .. })))
            if equality =>
        {
            Some(Operand::Bools(
                (0..rows)
                    .map(|row| Some(column.is_empty(row) == (op == Op::Eq)))
                    .collect(),
            ))
        }
        (
            Operand::Column(ColumnRef::Int(values)),
            Operand::Scalar(Some(Cell {
                value: V::Int(b), ..
            })),
        ) if comparison => Some(Operand::Bools(
            values[..rows]
                .iter()
                .map(|v| match v {
                    Some(a) => Some(compare(a.cmp(b))),
                    None if equality => Some(op == Op::Ne),
                    None => None,
                })
                .collect(),
        )),
        (
            Operand::Column(ColumnRef::Float(values)),
            Operand::Scalar(Some(Cell {
                value: number @ (V::Float(_) | V::Int(_)),
                ..
            })),
        ) if comparison => {
            let b = match number {
                V::Float(f) => *f,
                V::Int(i) => *i as f64,
                _ => return None,
            };
            Some(Operand::Bools(
                values[..rows]
                    .iter()
                    .map(|v| match v {
                        Some(a) => Some(compare(a.partial_cmp(&b)?)),
                        None if equality => Some(op == Op::Ne),
                        None => None,
                    })
                    .collect(),
            ))
        }
        // A boolean column against `true` / `false` (an empty row is `()`: never equal).
        (
            Operand::Column(ColumnRef::Bool(values)),
            Operand::Scalar(Some(Cell {
                value: V::Bool(b), ..
            })),
        ) if equality => Some(Operand::Bools(
            values[..rows]
                .iter()
                .map(|v| Some(v.is_some_and(|a| a == *b) == (op == Op::Eq)))
                .collect(),
        )),
        (
            Operand::Column(ColumnRef::Dict { codes, values }),
            Operand::Scalar(Some(Cell {
                value: V::Str(text),
                ..
            })),
        ) if equality => {
            let wanted = values.iter().position(|v| v == text).map(|p| p as u32);
            Some(Operand::Bools(
                codes[..rows]
                    .iter()
                    .map(|code| Some((code.is_some() && *code == wanted) == (op == Op::Eq)))
                    .collect(),
            ))
        }
        (Operand::Ints(a), Operand::Ints(b)) if matches!(op, Op::Add | Op::Sub | Op::Mul) => {
            Some(Operand::Ints(
                a.iter()
                    .zip(b)
                    .map(|(a, b)| match op {
                        Op::Add => (*a)?.checked_add((*b)?),
                        Op::Sub => (*a)?.checked_sub((*b)?),
                        _ => (*a)?.checked_mul((*b)?),
                    })
                    .collect(),
            ))
        }
        _ => None,
    }
}

impl NativeExpr {
    /// Evaluate over `rows` records given as typed columns (`column(name)` for each field the
    /// expression reads; `None` when there is no such column — then nothing is decided). Per row:
    /// the value rhai would compute, or `None` where this path does not decide (evaluate that record
    /// with [`crate::Script::eval`]).
    pub fn eval_columns<'a>(
        &'a self,
        column: impl Fn(&str) -> Option<ColumnRef<'a>>,
        rows: usize,
    ) -> Option<Vec<Option<Value>>> {
        let mut results = Vec::with_capacity(rows);
        self.eval_chunks(column, rows, |batch, result| {
            results.extend((0..batch.rows).map(|row| {
                batch
                    .decided(row)
                    .then(|| result.at(row).and_then(|cell| to_json(cell.value)))
                    .flatten()
            }));
        })?;
        Some(results)
    }

    /// Per row of [`NativeExpr::eval_columns`]: whether the result is decided and is not `true` —
    /// a condition that surely does not hold. Conditions made of comparisons, `&&`, `||` and `!`
    /// are answered without building a value per row.
    pub fn surely_not_true<'a>(
        &'a self,
        column: impl Fn(&str) -> Option<ColumnRef<'a>>,
        rows: usize,
    ) -> Option<Vec<bool>> {
        let mut results = Vec::with_capacity(rows);
        self.eval_chunks(column, rows, |batch, result| match result.as_bools() {
            Some(values) if batch.locals.is_empty() => {
                results.extend(values.iter().map(|v| *v == Some(false)));
            }
            _ => results.extend((0..batch.rows).map(|row| {
                batch.decided(row)
                    && result
                        .at(row)
                        .and_then(|cell| to_json(cell.value))
                        .is_some_and(|v| v != Value::Bool(true))
            })),
        })?;
        Some(results)
    }

    /// Evaluate chunk by chunk, handing each chunk's result to `emit`.
    fn eval_chunks<'a>(
        &'a self,
        column: impl Fn(&str) -> Option<ColumnRef<'a>>,
        rows: usize,
        mut emit: impl for<'b> FnMut(&Batch<'_, 'b>, &Operand<'b>),
    ) -> Option<()> {
        let columns: Vec<ColumnRef<'a>> = self
            .fields
            .iter()
            .map(|name| column(name).filter(|c| c.len() >= rows))
            .collect::<Option<_>>()?;
        let today = self.uses_today.then(|| {
            let date = chrono::Utc::now().date_naive();
            (date.to_string(), date)
        });
        let today = today.as_ref().map(|(text, date)| (text.as_str(), *date));
        // Chunks small enough that every node's values stay in the CPU cache.
        let mut offset = 0;
        while offset < rows {
            let mut batch = Batch {
                columns: &columns,
                locals: Vec::with_capacity(self.lets.len()),
                today,
                offset,
                rows: CHUNK.min(rows - offset),
            };
            for value in &self.lets {
                let value = batch.eval(value);
                batch.locals.push(value);
            }
            let result = batch.eval(&self.root);
            emit(&batch, &result);
            offset += CHUNK;
        }
        Some(())
    }
}

/// Rows evaluated together.
const CHUNK: usize = 1024;

struct Batch<'c, 'a> {
    columns: &'c [ColumnRef<'a>],
    /// The `let` bindings evaluated so far over this chunk.
    locals: Vec<Operand<'a>>,
    today: Option<(&'a str, chrono::NaiveDate)>,
    /// The chunk's first row in the columns.
    offset: usize,
    rows: usize,
}

impl<'a> Batch<'_, 'a> {
    /// Whether every `let` binding is decided for `row`: one that is not leaves the row undecided,
    /// used or not (rhai would have failed on it).
    fn decided(&self, row: usize) -> bool {
        self.locals.iter().all(|local| local.at(row).is_some())
    }

    fn map(&self, operand: Operand<'a>, f: impl Fn(Cell<'a>) -> Option<Cell<'a>>) -> Operand<'a> {
        match operand {
            Operand::Scalar(cell) => Operand::Scalar(cell.and_then(f)),
            other => Operand::Vector(
                (0..self.rows)
                    .map(|row| other.at(row).and_then(&f))
                    .collect(),
            ),
        }
    }

    fn zip(
        &self,
        left: Operand<'a>,
        right: Operand<'a>,
        f: impl Fn(Option<Cell<'a>>, Option<Cell<'a>>) -> Option<Cell<'a>>,
    ) -> Operand<'a> {
        if left.is_scalar() && right.is_scalar() {
            Operand::Scalar(f(left.at(0), right.at(0)))
        } else {
            Operand::Vector(
                (0..self.rows)
                    .map(|row| f(left.at(row), right.at(row)))
                    .collect(),
            )
        }
    }

    /// `left && right` (`go_on` true) or `left || right` (`go_on` false): the right side's value
    /// where the left one is `go_on`, else the left one's.
    fn logical(&self, go_on: bool, left: Operand<'a>, right: Operand<'a>) -> Operand<'a> {
        if let (Some(l), Some(r)) = (left.as_bools(), right.as_bools()) {
            return Operand::Bools(
                l.iter()
                    .zip(r)
                    .map(|(l, r)| if *l == Some(go_on) { *r } else { *l })
                    .collect(),
            );
        }
        self.zip(left, right, |l, r| match l?.value {
            V::Bool(b) if b != go_on => Some(Cell::sure(V::Bool(b))),
            V::Bool(_) => match r?.value {
                V::Bool(b) => Some(Cell::sure(V::Bool(b))),
                _ => None,
            },
            _ => None,
        })
    }

    fn eval(&self, node: &'a Node) -> Operand<'a> {
        let sure = |v: V<'a>| Operand::Scalar(Some(Cell::sure(v)));
        match node {
            Node::Unit => sure(V::Unit),
            Node::Bool(b) => sure(V::Bool(*b)),
            Node::Int(i) => sure(V::Int(*i)),
            Node::Float(f) => sure(V::Float(*f)),
            Node::Str(s) => sure(V::Str(s)),
            Node::Today => Operand::Scalar(self.today.map(|(text, _)| Cell::sure(V::Str(text)))),
            Node::Local(index) => self.locals[*index].clone(),
            Node::Field(index) => {
                Operand::Column(self.columns[*index].slice(self.offset..self.offset + self.rows))
            }
            Node::Not(inner) => {
                let inner = self.eval(inner);
                if let Some(values) = inner.as_bools() {
                    return Operand::Bools(values.iter().map(|v| v.map(|b| !b)).collect());
                }
                self.map(inner, |c| match c.value {
                    V::Bool(b) => Some(Cell::sure(V::Bool(!b))),
                    _ => None,
                })
            }
            Node::Method(method, inner) => {
                let method = *method;
                self.map(self.eval(inner), move |c| {
                    if c.unsure {
                        return None;
                    }
                    Some(Cell::sure(method.apply(c.value)?))
                })
            }
            Node::Neg(inner) => self.map(self.eval(inner), |c| match c.value {
                _ if c.unsure => None,
                V::Int(i) => Some(Cell::sure(V::Int(i.checked_neg()?))),
                V::Float(f) => Some(Cell::sure(V::Float(-f))),
                _ => None,
            }),
            Node::DaysSince(inner) => {
                let today = self.today;
                self.map(self.eval(inner), move |c| match c.value {
                    V::Str(text) => {
                        let day = text.get(..10).unwrap_or(text);
                        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
                        Some(Cell::sure(V::Int((today?.1 - date).num_days())))
                    }
                    _ => None,
                })
            }
            // `a && b` looks at b only where a is true, `a || b` only where a is false (rhai does not
            // evaluate the right side otherwise).
            Node::And(left, right) => self.logical(true, self.eval(left), self.eval(right)),
            Node::Or(left, right) => self.logical(false, self.eval(left), self.eval(right)),
            Node::If(condition, then, otherwise) => {
                let condition = self.eval(condition);
                let then = self.eval(then);
                let otherwise = match otherwise {
                    Some(otherwise) => self.eval(otherwise),
                    None => sure(V::Unit),
                };
                let pick = |row: usize| match condition.at(row)?.value {
                    V::Bool(true) => then.at(row),
                    V::Bool(false) => otherwise.at(row),
                    _ => None,
                };
                // Booleans choosing between two integers: integers.
                if let (
                    Operand::Bools(_) | Operand::Column(ColumnRef::Bool(_)),
                    Operand::Scalar(Some(Cell {
                        value: V::Int(a), ..
                    })),
                    Operand::Scalar(Some(Cell {
                        value: V::Int(b), ..
                    })),
                ) = (&condition, &then, &otherwise)
                {
                    let (a, b) = (*a, *b);
                    let choose = |c: Option<bool>| c.map(|c| if c { a } else { b });
                    return Operand::Ints(match &condition {
                        Operand::Bools(values) => values.iter().map(|c| choose(*c)).collect(),
                        Operand::Column(ColumnRef::Bool(values)) => {
                            values.iter().map(|c| choose(*c)).collect()
                        }
                        _ => unreachable!("matched above"),
                    });
                }
                let all_scalar = [&condition, &then, &otherwise]
                    .iter()
                    .all(|o| matches!(o, Operand::Scalar(_)));
                if all_scalar {
                    Operand::Scalar(pick(0))
                } else {
                    Operand::Vector((0..self.rows).map(pick).collect())
                }
            }
            Node::InList(value, items) => {
                let items: Vec<String> = items
                    .iter()
                    .filter_map(|item| match item {
                        Node::Int(i) => Some(i.to_string()),
                        Node::Str(s) => Some(s.clone()),
                        Node::Bool(b) => Some(b.to_string()),
                        _ => None,
                    })
                    .collect();
                self.map(self.eval(value), move |c| {
                    let text = match c.value {
                        V::Int(i) if !c.unsure => i.to_string(),
                        V::Str(s) => s.to_owned(),
                        V::Bool(b) => b.to_string(),
                        _ => return None,
                    };
                    Some(Cell::sure(V::Bool(items.contains(&text))))
                })
            }
            Node::Binary(op, left, right) => {
                let op = *op;
                let (left, right) = (self.eval(left), self.eval(right));
                if let Some(result) = kernel(op, &left, &right, self.rows) {
                    return result;
                }
                self.zip(left, right, move |l, r| {
                    let (l, r) = (l?, r?);
                    let arithmetic = matches!(op, Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Rem);
                    if arithmetic && (l.unsure || r.unsure) {
                        return None;
                    }
                    let value = binary(op, l.value, r.value)?;
                    // Beyond 2^53 a float no longer says which integer it was.
                    if let V::Float(f) = value
                        && f.abs() > 9_007_199_254_740_992.0
                    {
                        return None;
                    }
                    Some(Cell::sure(value))
                })
            }
        }
    }
}
