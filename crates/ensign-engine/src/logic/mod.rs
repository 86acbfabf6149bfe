//! JsonLogic, compiled: targeting rules are turned once, at load, into a tree of
//! [`Node`]s that the hot path walks without parsing, re-serialising or cloning
//! JSON.
//!
//! Semantics follow JsonLogic's reference (JavaScript coercions, JsonLogic
//! truthiness) plus flagd's operators `fractional`, `sem_ver`, `starts_with`
//! and `ends_with`, which return null on bad arguments. `$flagd.flagKey` and
//! `$flagd.timestamp` are answered from the [`Env`], not copied into the context.

pub(crate) mod compile;
mod eval;
pub mod val;

pub use compile::{CompileProblem, Compiled, NodeBudgetExceeded, compile, compile_within};
pub use eval::{Env, evaluate};

use serde_json::Value;

/// A compiled JsonLogic expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A constant holding no logic (scalars, and arrays or objects of constants).
    Literal(Value),
    /// An array literal with logic inside; evaluates each element.
    List(Vec<Node>),
    /// `var`: a context lookup with an optional default.
    Var(Box<Var>),
    /// `missing`: the keys (arguments, or the first argument's elements) absent from the data.
    Missing(Vec<Node>),
    /// `missing_some`: `[minimum, keys]`.
    MissingSome(Vec<Node>),
    /// `if` and `?:`: condition/value pairs with an optional final else.
    If(Vec<Node>),
    /// `==`, `===`, `!=`, `!==`.
    Equality(EqualityOp, Vec<Node>),
    /// `!`.
    Not(Vec<Node>),
    /// `!!`.
    Truthy(Vec<Node>),
    /// `and`: the first falsy argument, or the last.
    And(Vec<Node>),
    /// `or`: the first truthy argument, or the last.
    Or(Vec<Node>),
    /// `<`, `<=` (both with the between form), `>`, `>=`.
    Compare(CompareOp, Vec<Node>),
    /// `+`, `-`, `*`, `/`, `%`, `min`, `max`.
    Arithmetic(ArithmeticOp, Vec<Node>),
    /// `cat`.
    Cat(Vec<Node>),
    /// `substr`.
    Substr(Vec<Node>),
    /// `in`: substring or array membership.
    In(Vec<Node>),
    /// `merge`: flattens arrays one level.
    Merge(Vec<Node>),
    /// `map`, `filter`, `all`, `some`, `none`: array first, per-element rule second.
    Iterate(IterateOp, Box<Node>, Box<Node>),
    /// `reduce`: array, rule over `current`/`accumulator`, initial value.
    Reduce(Box<[Node; 3]>),
    /// flagd's `fractional`.
    Fractional(Box<Fractional>),
    /// flagd's `sem_ver`.
    SemVer(Vec<Node>),
    /// flagd's `starts_with`.
    StartsWith(Vec<Node>),
    /// flagd's `ends_with`.
    EndsWith(Vec<Node>),
}

/// A `var` lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    /// Where to look.
    pub path: VarPath,
    /// What to return when nothing is there.
    pub default: Option<Node>,
}

/// The path of a `var`.
#[derive(Debug, Clone, PartialEq)]
pub enum VarPath {
    /// A path known at load time, split on dots (empty: the whole data).
    Static(Vec<Segment>),
    /// A path computed by an expression.
    Dynamic(Node),
}

/// One step of a dotted path.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// The member name.
    pub key: Box<str>,
    /// The same step as an array index, when it is one.
    pub index: Option<usize>,
}

impl Segment {
    /// A step named `key`.
    pub fn new(key: &str) -> Self {
        Segment {
            key: key.into(),
            index: key.parse().ok(),
        }
    }
}

/// Splits a dotted `var` path into segments.
pub fn split_path(path: &str) -> Vec<Segment> {
    if path.is_empty() {
        Vec::new()
    } else {
        path.split('.').map(Segment::new).collect()
    }
}

/// The equality operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EqualityOp {
    /// `==`.
    Loose,
    /// `===`.
    Strict,
    /// `!=`.
    LooseNot,
    /// `!==`.
    StrictNot,
}

/// The ordering operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `<`.
    Less,
    /// `<=`.
    LessOrEqual,
    /// `>`.
    Greater,
    /// `>=`.
    GreaterOrEqual,
}

/// The arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithmeticOp {
    /// `+`: sum of all arguments.
    Add,
    /// `-`: difference, or negation of one argument.
    Subtract,
    /// `*`: product of all arguments.
    Multiply,
    /// `/`.
    Divide,
    /// `%` (JavaScript remainder).
    Remainder,
    /// `min`.
    Min,
    /// `max`.
    Max,
}

/// The array operators that apply a rule to each element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IterateOp {
    /// `map`.
    Map,
    /// `filter`.
    Filter,
    /// `all` (false for an empty array).
    All,
    /// `some`.
    Some,
    /// `none`.
    None,
}

/// A compiled `fractional`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fractional {
    /// The bucketing expression; `None` is the shorthand (flag key and targeting key).
    pub bucket_by: Option<Node>,
    /// The buckets in order.
    pub buckets: Vec<Bucket>,
}

/// One `[variant, weight]` entry of a `fractional`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// The variant expression (usually a string literal).
    pub variant: Node,
    /// The weight.
    pub weight: Weight,
}

/// A bucket's weight.
#[derive(Debug, Clone, PartialEq)]
pub enum Weight {
    /// A literal weight, already clamped at zero.
    Fixed(u32),
    /// An expression evaluated per request (time-based rollouts).
    Dynamic(Node),
    /// A literal that is not a whole number: the `fractional` yields null.
    Invalid,
}
