//! From JSON to [`Node`]s: operator lookup, argument normalisation, `$ref`
//! inlining and `fractional` pre-processing, with every problem reported by path.

use serde_json::{Map, Value};

use super::{
    ArithmeticOp, Bucket, CompareOp, EqualityOp, Fractional, IterateOp, Node, Var, VarPath, Weight,
    split_path,
};

/// A rule that cannot be evaluated: unknown operator, unresolved `$ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileProblem {
    /// JSON Pointer of the offending node, relative to the compiled rule.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// Compiles `rule`. `evaluators` are the document's `$evaluators`, inlined where a
/// `{"$ref": name}` object appears (once, as flagd does: a `$ref` inside an
/// evaluator is not resolved). Problems are returned alongside the tree; a rule
/// with problems must not be evaluated.
pub fn compile(rule: &Value, evaluators: &Map<String, Value>) -> (Node, Vec<CompileProblem>) {
    let mut compiler = Compiler::new(evaluators, usize::MAX);
    let node = compiler.node(rule, true);
    (node, compiler.problems)
}

/// A rule compiled within a node budget by [`compile_within`].
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The compiled tree.
    pub node: Node,
    /// What makes the rule unevaluable (see [`compile`]).
    pub problems: Vec<CompileProblem>,
    /// How many expressions (operators, operands and literals, `$ref`s
    /// counted as often as they are inlined) the tree was compiled from.
    pub nodes: usize,
}

/// A rule that compiles to more than the node budget given to [`compile_within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeBudgetExceeded;

/// [`compile`], counting every expression compiled and stopping as soon as
/// the count passes `max_nodes`: a rule whose `$ref`s multiply into a huge
/// tree is refused after `max_nodes` steps, never built.
pub fn compile_within(
    rule: &Value,
    evaluators: &Map<String, Value>,
    max_nodes: usize,
) -> Result<Compiled, NodeBudgetExceeded> {
    let mut compiler = Compiler::new(evaluators, max_nodes);
    let node = compiler.node(rule, true);
    if compiler.nodes > max_nodes {
        return Err(NodeBudgetExceeded);
    }
    Ok(Compiled {
        node,
        problems: compiler.problems,
        nodes: compiler.nodes,
    })
}

struct Compiler<'e> {
    evaluators: &'e Map<String, Value>,
    problems: Vec<CompileProblem>,
    path: String,
    /// Expressions compiled so far.
    nodes: usize,
    /// Past this many expressions compilation stops (every further node is null).
    max_nodes: usize,
}

/// Whether a JSON value holds no operator anywhere, so it can stay a literal.
fn is_constant(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().all(is_constant),
        Value::Object(map) => map.len() != 1,
        _ => true,
    }
}

/// Escapes a member name for a JSON Pointer.
pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl<'e> Compiler<'e> {
    fn new(evaluators: &'e Map<String, Value>, max_nodes: usize) -> Self {
        Compiler {
            evaluators,
            problems: Vec::new(),
            path: String::new(),
            nodes: 0,
            max_nodes,
        }
    }

    fn problem(&mut self, message: String) {
        self.problems.push(CompileProblem {
            path: self.path.clone(),
            message,
        });
    }

    fn at<T>(&mut self, segment: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.path.len();
        self.path.push('/');
        self.path.push_str(&escape_pointer(segment));
        let out = f(self);
        self.path.truncate(saved);
        out
    }

    fn node(&mut self, value: &Value, refs_allowed: bool) -> Node {
        self.nodes = self.nodes.saturating_add(1);
        if self.nodes > self.max_nodes {
            // Over budget: the caller refuses the rule; build nothing more.
            return Node::Literal(Value::Null);
        }
        match value {
            Value::Array(items) if !is_constant(value) => Node::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.at(&i.to_string(), |c| c.node(item, refs_allowed)))
                    .collect(),
            ),
            Value::Object(map) if map.len() == 1 => {
                let Some((op, args)) = map.iter().next() else {
                    return Node::Literal(value.clone());
                };
                self.at(op, |c| c.operation(op, args, refs_allowed))
            }
            _ => Node::Literal(value.clone()),
        }
    }

    /// Arguments as JsonLogic reads them: an array is the list, anything else one argument.
    fn args(&mut self, args: &Value, refs_allowed: bool) -> Vec<Node> {
        match args {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.at(&i.to_string(), |c| c.node(item, refs_allowed)))
                .collect(),
            other => vec![self.node(other, refs_allowed)],
        }
    }

    fn operation(&mut self, op: &str, args: &Value, refs_allowed: bool) -> Node {
        let r = refs_allowed;
        match op {
            "$ref" => self.reference(args, refs_allowed),
            "var" => self.var(args, r),
            "missing" => Node::Missing(self.args(args, r)),
            "missing_some" => Node::MissingSome(self.args(args, r)),
            "if" | "?:" => Node::If(self.args(args, r)),
            "==" => Node::Equality(EqualityOp::Loose, self.args(args, r)),
            "===" => Node::Equality(EqualityOp::Strict, self.args(args, r)),
            "!=" => Node::Equality(EqualityOp::LooseNot, self.args(args, r)),
            "!==" => Node::Equality(EqualityOp::StrictNot, self.args(args, r)),
            "!" => Node::Not(self.args(args, r)),
            "!!" => Node::Truthy(self.args(args, r)),
            "and" => Node::And(self.args(args, r)),
            "or" => Node::Or(self.args(args, r)),
            "<" => Node::Compare(CompareOp::Less, self.args(args, r)),
            "<=" => Node::Compare(CompareOp::LessOrEqual, self.args(args, r)),
            ">" => Node::Compare(CompareOp::Greater, self.args(args, r)),
            ">=" => Node::Compare(CompareOp::GreaterOrEqual, self.args(args, r)),
            "+" => Node::Arithmetic(ArithmeticOp::Add, self.args(args, r)),
            "-" => Node::Arithmetic(ArithmeticOp::Subtract, self.args(args, r)),
            "*" => Node::Arithmetic(ArithmeticOp::Multiply, self.args(args, r)),
            "/" => Node::Arithmetic(ArithmeticOp::Divide, self.args(args, r)),
            "%" => Node::Arithmetic(ArithmeticOp::Remainder, self.args(args, r)),
            "min" => Node::Arithmetic(ArithmeticOp::Min, self.args(args, r)),
            "max" => Node::Arithmetic(ArithmeticOp::Max, self.args(args, r)),
            "cat" => Node::Cat(self.args(args, r)),
            "substr" => Node::Substr(self.args(args, r)),
            "in" => Node::In(self.args(args, r)),
            "merge" => Node::Merge(self.args(args, r)),
            "map" => self.iterate(IterateOp::Map, args, r),
            "filter" => self.iterate(IterateOp::Filter, args, r),
            "all" => self.iterate(IterateOp::All, args, r),
            "some" => self.iterate(IterateOp::Some, args, r),
            "none" => self.iterate(IterateOp::None, args, r),
            "reduce" => {
                let mut nodes = self.args(args, r).into_iter();
                let mut next = || nodes.next().unwrap_or(Node::Literal(Value::Null));
                Node::Reduce(Box::new([next(), next(), next()]))
            }
            "fractional" => self.fractional(args, r),
            "sem_ver" => Node::SemVer(self.args(args, r)),
            "starts_with" => Node::StartsWith(self.args(args, r)),
            "ends_with" => Node::EndsWith(self.args(args, r)),
            unknown => {
                self.problem(format!("unknown operator \"{unknown}\""));
                Node::Literal(Value::Null)
            }
        }
    }

    fn reference(&mut self, name: &Value, refs_allowed: bool) -> Node {
        let Value::String(name) = name else {
            self.problem("\"$ref\" must name an evaluator with a string".to_owned());
            return Node::Literal(Value::Null);
        };
        if !refs_allowed {
            self.problem(format!(
                "\"$ref\": \"{name}\" inside an evaluator is not resolved (evaluators are inlined once)"
            ));
            return Node::Literal(Value::Null);
        }
        match self.evaluators.get(name) {
            Some(rule) => self.node(rule, false),
            None => {
                self.problem(format!("\"$ref\" names no evaluator: \"{name}\""));
                Node::Literal(Value::Null)
            }
        }
    }

    fn var(&mut self, args: &Value, r: bool) -> Node {
        let (path, default) = match args {
            Value::Array(items) => (
                items.first().unwrap_or(&Value::Null),
                items.get(1).map(|d| self.at("1", |c| c.node(d, r))),
            ),
            other => (other, None),
        };
        let path = match path {
            Value::String(s) => VarPath::Static(split_path(s)),
            Value::Number(n) => VarPath::Static(split_path(&n.to_string())),
            Value::Null => VarPath::Static(Vec::new()),
            other => VarPath::Dynamic(self.node(other, r)),
        };
        Node::Var(Box::new(Var { path, default }))
    }

    fn iterate(&mut self, op: IterateOp, args: &Value, r: bool) -> Node {
        let mut nodes = self.args(args, r).into_iter();
        let array = nodes.next().unwrap_or(Node::Literal(Value::Null));
        let rule = nodes.next().unwrap_or(Node::Literal(Value::Null));
        Node::Iterate(op, Box::new(array), Box::new(rule))
    }

    fn fractional(&mut self, args: &Value, r: bool) -> Node {
        let items: &[Value] = match args {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        let (bucket_by, entries, offset) = match items.first() {
            Some(Value::Array(_)) | None => (None, items, 0),
            Some(first) => (Some(self.at("0", |c| c.node(first, r))), &items[1..], 1),
        };
        let mut buckets = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let bucket = self.at(&(i + offset).to_string(), |c| c.bucket(entry, r));
            match bucket {
                Some(bucket) => buckets.push(bucket),
                // A malformed entry makes the whole operator yield null, as in flagd.
                None => {
                    return Node::Fractional(Box::new(Fractional {
                        bucket_by,
                        buckets: Vec::new(),
                    }));
                }
            }
        }
        Node::Fractional(Box::new(Fractional { bucket_by, buckets }))
    }

    fn bucket(&mut self, entry: &Value, r: bool) -> Option<Bucket> {
        let Value::Array(parts) = entry else {
            return None;
        };
        let (variant, weight) = match parts.as_slice() {
            [variant] => (variant, None),
            [variant, weight] => (variant, Some(weight)),
            _ => return None,
        };
        let variant = self.at("0", |c| c.node(variant, r));
        let weight = match weight {
            None => Weight::Fixed(1),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(w) if w.fract() == 0.0 => {
                    Weight::Fixed(w.clamp(0.0, f64::from(u32::MAX)) as u32)
                }
                _ => Weight::Invalid,
            },
            Some(expr @ Value::Object(_)) => Weight::Dynamic(self.at("1", |c| c.node(expr, r))),
            Some(_) => Weight::Invalid,
        };
        Some(Bucket { variant, weight })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(rule: Value) -> Vec<CompileProblem> {
        let evaluators = json!({"known": {"==": [1, 1]}, "nested": {"$ref": "known"}});
        let Value::Object(evaluators) = evaluators else {
            unreachable!()
        };
        compile(&rule, &evaluators).1
    }

    #[test]
    fn unknown_operators_are_reported_with_their_path() {
        let found = problems(json!({"if": [{"and": [true, {"nope": [1]}]}, "a", "b"]}));
        assert_eq!(
            found,
            vec![CompileProblem {
                path: "/if/0/and/1/nope".to_owned(),
                message: "unknown operator \"nope\"".to_owned()
            }]
        );
    }

    #[test]
    fn references_resolve_once() {
        assert!(problems(json!({"if": [{"$ref": "known"}, "a", "b"]})).is_empty());
        let missing = problems(json!({"if": [{"$ref": "absent"}, "a", "b"]}));
        assert_eq!(missing[0].path, "/if/0/$ref");
        assert!(missing[0].message.contains("absent"));
        let nested = problems(json!({"$ref": "nested"}));
        assert_eq!(nested.len(), 1);
        assert!(nested[0].message.contains("inside an evaluator"));
    }

    #[test]
    fn objects_with_several_keys_are_data() {
        assert!(problems(json!({"in": ["a", [{"x": 1, "y": 2}]]})).is_empty());
    }
}
