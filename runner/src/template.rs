//! The one template engine: minijinja with strict undefined, over a JSON
//! context. A string that is exactly one `{{ expr }}` yields the expression's
//! native JSON value (a list stays a list); any other string renders as text.

use minijinja::value::ValueKind;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use std::collections::BTreeSet;
use std::ops::Range;

/// A template that could not be compiled, rendered or evaluated; the message
/// is written for the playbook author (minijinja's reason, and for undefined
/// values the path that is missing and what exists instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What went wrong.
    pub message: String,
    /// The template read a value the context does not have.
    pub undefined: bool,
}

impl TemplateError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            undefined: false,
        }
    }
}

/// A step on the way from a lazy JSON root to one of its nodes.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// A JSON value seen by templates without converting it whole: a map's
/// templates read a handful of fields of a large event, so only the nodes
/// they touch become template values.
#[derive(Debug)]
struct LazyJson {
    root: std::sync::Arc<serde_json::Value>,
    path: Vec<Step>,
}

impl LazyJson {
    fn node(&self) -> &serde_json::Value {
        self.path.iter().fold(&*self.root, |node, step| match step {
            Step::Key(k) => &node[k.as_str()],
            Step::Index(i) => &node[*i],
        })
    }

    fn child(&self, step: Step, node: &serde_json::Value) -> Value {
        match node {
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                let mut path = self.path.clone();
                path.push(step);
                Value::from_object(LazyJson {
                    root: self.root.clone(),
                    path,
                })
            }
            scalar => Value::from_serialize(scalar),
        }
    }
}

impl minijinja::value::Object for LazyJson {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        match self.node() {
            serde_json::Value::Array(_) => minijinja::value::ObjectRepr::Seq,
            _ => minijinja::value::ObjectRepr::Map,
        }
    }

    fn get_value(self: &std::sync::Arc<Self>, key: &Value) -> Option<Value> {
        match self.node() {
            serde_json::Value::Object(m) => {
                let k = key.as_str()?;
                Some(self.child(Step::Key(k.to_string()), m.get(k)?))
            }
            serde_json::Value::Array(a) => {
                let i = key.as_usize()?;
                Some(self.child(Step::Index(i), a.get(i)?))
            }
            _ => None,
        }
    }

    fn enumerate(self: &std::sync::Arc<Self>) -> minijinja::value::Enumerator {
        match self.node() {
            serde_json::Value::Object(m) => minijinja::value::Enumerator::Values(
                m.keys().map(|k| Value::from(k.as_str())).collect(),
            ),
            serde_json::Value::Array(a) => minijinja::value::Enumerator::Seq(a.len()),
            _ => minijinja::value::Enumerator::Empty,
        }
    }
}

/// One field of [`CompiledFields`].
enum Field<'t> {
    Expression(minijinja::Expression<'t, 't>),
    Text(&'t str),
    Literal(&'t serde_json::Value),
}

/// Field templates compiled once ([`Templates::compile_fields`]).
pub struct CompiledFields<'t> {
    templates: &'t Templates,
    fields: Vec<Field<'t>>,
}

impl CompiledFields<'_> {
    /// Each field rendered over `ctx`, as [`Templates::render_value`] would.
    /// A field that reads something `ctx` lacks, or renders to null, is
    /// `Ok(None)`: events of one sender differ in which fields they carry.
    pub fn render(
        &self,
        ctx: &std::sync::Arc<serde_json::Value>,
    ) -> Vec<Result<Option<serde_json::Value>, TemplateError>> {
        let root = Value::from_object(LazyJson {
            root: ctx.clone(),
            path: Vec::new(),
        });
        self.fields
            .iter()
            .map(|field| {
                let value = match field {
                    Field::Literal(v) => return Ok(Some((*v).clone()).filter(|v| !v.is_null())),
                    Field::Expression(expr) => match expr.eval(&root) {
                        Ok(v) if contains_undefined(&v) => return Ok(None),
                        Ok(v) => serde_json::to_value(&v).map_err(|e| {
                            TemplateError::new(format!("the value cannot be turned into JSON: {e}"))
                        })?,
                        Err(e) if e.kind() == ErrorKind::UndefinedError => return Ok(None),
                        Err(e) => return Err(TemplateError::new(reason(&e, ""))),
                    },
                    Field::Text(t) => match self.templates.render_text(t, ctx, &root) {
                        Ok(text) => serde_json::Value::String(text),
                        Err(e) if e.undefined => return Ok(None),
                        Err(e) => return Err(e),
                    },
                };
                Ok(Some(value).filter(|v| !v.is_null()))
            })
            .collect()
    }
}

/// The template environment every playbook string goes through.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::new()
    }
}

/// The longest text `fromjson` parses: a string field of an alert or an
/// output, never a whole document's worth of memory per template.
const FROMJSON_MAX_BYTES: usize = 1 << 20;
/// The deepest nesting `fromjson` returns: whatever it yields may be
/// journaled, and must read back (serde_json stops at 128 levels).
const FROMJSON_MAX_DEPTH: usize = 64;

/// `{{ alert.Message | fromjson }}`: JSON carried as a string (an SNS
/// notification's `Message`) parsed into a value, within bounds.
fn fromjson(text: &str) -> Result<minijinja::Value, minijinja::Error> {
    let refuse = |why: String| minijinja::Error::new(ErrorKind::InvalidOperation, why);
    if text.len() > FROMJSON_MAX_BYTES {
        return Err(refuse(format!(
            "fromjson: the text is {} bytes, over the {FROMJSON_MAX_BYTES}-byte cap",
            text.len()
        )));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| refuse(format!("fromjson: not JSON ({e})")))?;
    let depth = crate::plugin_host::json_depth(&value);
    if depth > FROMJSON_MAX_DEPTH {
        return Err(refuse(format!(
            "fromjson: nested {depth} levels deep, over the cap of {FROMJSON_MAX_DEPTH}"
        )));
    }
    Ok(minijinja::Value::from_serialize(&value))
}

/// `{{ event.published | rfc3339 }}`: a time as senders write it (RFC 3339
/// text, or Unix seconds or milliseconds as a number or digits) turned into
/// RFC 3339 UTC with milliseconds, the normalized alert's `time`.
fn rfc3339(value: minijinja::Value) -> Result<String, minijinja::Error> {
    use chrono::{DateTime, SecondsFormat, Utc};
    if value.is_undefined() {
        // An absent field, as strict mode reports any other read of one.
        return Err(minijinja::Error::new(
            ErrorKind::UndefinedError,
            "rfc3339 of an undefined value",
        ));
    }
    let refuse = || {
        let shown: String = value.to_string().chars().take(64).collect();
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("rfc3339: `{shown}` is not RFC 3339 text or Unix seconds or milliseconds"),
        )
    };
    let text = value.as_str().map(str::trim);
    let number = match text {
        Some(t) if !t.chars().all(|c| c.is_ascii_digit()) => {
            let t = DateTime::parse_from_rfc3339(t).map_err(|_| refuse())?;
            return Ok(t
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true));
        }
        Some(digits) => digits.parse::<f64>().map_err(|_| refuse())?,
        None if value.kind() == ValueKind::Number => {
            f64::try_from(value.clone()).map_err(|_| refuse())?
        }
        None => return Err(refuse()),
    };
    // Seconds until the year 5138; anything larger is milliseconds.
    let millis = if number.abs() < 1e11 {
        number * 1000.0
    } else {
        number
    };
    if !(0.0..4.0e15).contains(&millis) {
        return Err(refuse());
    }
    DateTime::from_timestamp_millis(millis.round() as i64)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .ok_or_else(refuse)
}

impl Templates {
    /// Strict undefined (a typo is an error, never an empty string), no
    /// auto-escaping (outputs feed APIs, not HTML).
    pub fn new() -> Self {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        // Strict mode lets `[inputs.nope]` render as "[undefined]": refuse any
        // emitted value that has an undefined inside it, too.
        env.set_formatter(|out, state, value| {
            if contains_undefined(value) {
                return Err(minijinja::Error::new(
                    ErrorKind::UndefinedError,
                    "the value contains an undefined part",
                ));
            }
            minijinja::escape_formatter(out, state, value)
        });
        env.add_filter("fromjson", fromjson);
        env.add_filter("rfc3339", rfc3339);
        Self { env }
    }

    /// Renders every string inside `value` (recursively through arrays and
    /// objects; keys are kept as written). A string that is exactly one
    /// expression `{{ expr }}` (surrounding whitespace allowed) evaluates to
    /// the expression's native JSON value (list, number, bool, object, null)
    /// rather than text, so `for_each: "{{ inputs.iocs }}"` yields a list and
    /// `count: "{{ steps.x.output.n }}"` a number. Other strings render as text.
    pub fn render_value(
        &self,
        value: &serde_json::Value,
        ctx: &serde_json::Value,
    ) -> Result<serde_json::Value, TemplateError> {
        let root = Value::from_serialize(ctx);
        self.render_value_in(value, ctx, &root)
    }

    fn render_value_in(
        &self,
        value: &serde_json::Value,
        ctx: &serde_json::Value,
        root: &Value,
    ) -> Result<serde_json::Value, TemplateError> {
        Ok(match value {
            serde_json::Value::String(s) => self.render_string(s, ctx, root)?,
            serde_json::Value::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|v| self.render_value_in(v, ctx, root))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => serde_json::Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_value_in(v, ctx, root)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => other.clone(),
        })
    }

    fn render_string(
        &self,
        template: &str,
        ctx: &serde_json::Value,
        root: &Value,
    ) -> Result<serde_json::Value, TemplateError> {
        if let Some(source) = single_expression(template) {
            // A string that only looks like one expression (`{{ a }} and {{ b }}`)
            // does not compile as one; it is rendered as text below.
            if let Ok(expr) = self.compile_expression(source) {
                let value = expr
                    .eval(root)
                    .map_err(|e| self.explain(&e, source, true, ctx))?;
                if contains_undefined(&value) {
                    return Err(self.undefined(source, None, true, ctx));
                }
                return serde_json::to_value(&value).map_err(|e| {
                    TemplateError::new(format!("the value cannot be turned into JSON: {e}"))
                });
            }
        }
        self.render_text(template, ctx, root)
            .map(serde_json::Value::String)
    }

    /// Compiles each field's template once, to render over many contexts
    /// (a source map over every event of a batch).
    pub fn compile_fields<'t>(
        &'t self,
        fields: &'t [(String, serde_json::Value)],
    ) -> CompiledFields<'t> {
        let compiled = fields
            .iter()
            .map(|(_, template)| match template {
                serde_json::Value::String(t) => single_expression(t)
                    .and_then(|source| self.compile_expression(source).ok())
                    .map(Field::Expression)
                    .unwrap_or(Field::Text(t)),
                other => Field::Literal(other),
            })
            .collect();
        CompiledFields {
            templates: self,
            fields: compiled,
        }
    }

    /// Renders `template` as text.
    pub fn render_str(
        &self,
        template: &str,
        ctx: &serde_json::Value,
    ) -> Result<String, TemplateError> {
        self.render_text(template, ctx, &Value::from_serialize(ctx))
    }

    fn render_text(
        &self,
        template: &str,
        ctx: &serde_json::Value,
        root: &Value,
    ) -> Result<String, TemplateError> {
        if !has_markup(template) {
            return Ok(template.to_string());
        }
        self.env
            .render_str(template, root)
            .map_err(|e| self.explain(&e, template, false, ctx))
    }

    /// A condition (`if:`): either a bare expression
    /// `steps.a.output.verdict == 'malicious'` or one wrapped in `{{ }}`;
    /// evaluates to bool by Jinja truthiness. An undefined result is an error,
    /// not false: a misspelt path must not silently skip a step.
    pub fn eval_condition(
        &self,
        expr: &str,
        ctx: &serde_json::Value,
    ) -> Result<bool, TemplateError> {
        let source = condition_source(expr)?;
        let compiled = self
            .compile_expression(source)
            .map_err(|e| condition_syntax(&e, source))?;
        let value = compiled
            .eval(Value::from_serialize(ctx))
            .map_err(|e| self.explain(&e, source, true, ctx))?;
        if contains_undefined(&value) {
            return Err(self.undefined(source, None, true, ctx));
        }
        Ok(value.is_true())
    }

    /// True when `template` is exactly one `{{ expr }}` that compiles, i.e.
    /// [`render_value`](Self::render_value) will give its native value.
    pub fn is_single_expression(&self, template: &str) -> bool {
        single_expression(template).is_some_and(|s| self.compile_expression(s).is_ok())
    }

    /// The variables a template (or condition, when `is_condition`) reads, as
    /// dotted paths as deep as statically known, e.g. `{"inputs.host_id",
    /// "steps.lookup.output.verdict"}`. A subscript stops the path
    /// (`steps['a'].output` gives `steps`); loop variables and `{% set %}`
    /// names are not included, nor global functions (`range`, `dict`...).
    /// A syntax error is `Err` with minijinja's message.
    pub fn references(
        &self,
        template: &str,
        is_condition: bool,
    ) -> Result<BTreeSet<String>, TemplateError> {
        let found = if is_condition {
            let source = condition_source(template)?;
            self.compile_expression(source)
                .map_err(|e| condition_syntax(&e, source))?
                .undeclared_variables(true)
        } else {
            if !has_markup(template) {
                return Ok(BTreeSet::new());
            }
            self.env
                .template_from_str(template)
                .map_err(|e| TemplateError::new(reason(&e, template)))?
                .undeclared_variables(true)
        };
        self.check_names(template, is_condition)?;
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        Ok(found
            .into_iter()
            .filter(|path| !globals.contains(root_of(path)))
            .collect())
    }

    /// Refuses a filter or test the engine does not have: minijinja looks
    /// them up only when rendering, so `| nosuchfilter` would compile and
    /// then fail the run. Names come from the lexer (a `|` or `is [not]`
    /// followed by a name), and each is looked up by evaluating it once.
    fn check_names(&self, template: &str, is_condition: bool) -> Result<(), TemplateError> {
        use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
        let source = if is_condition {
            condition_source(template)?
        } else {
            template
        };
        let tokens: Vec<Token<'_>> = tokenize(
            source,
            is_condition,
            minijinja::syntax::SyntaxConfig,
            WhitespaceConfig::default(),
        )
        .filter_map(Result::ok)
        .map(|(t, _)| t)
        .collect();
        for (i, token) in tokens.iter().enumerate() {
            let (kind, name) = match (token, tokens.get(i + 1), tokens.get(i + 2)) {
                (Token::Pipe, Some(Token::Ident(name)), _) => ("filter", *name),
                (Token::Ident("is"), Some(Token::Ident("not")), Some(Token::Ident(name))) => {
                    ("test", *name)
                }
                (Token::Ident("is"), Some(Token::Ident(name)), _) if *name != "not" => {
                    ("test", *name)
                }
                _ => continue,
            };
            if !self.knows(kind, name) {
                return Err(TemplateError::new(format!(
                    "unknown {kind} `{name}` (see docs/playbooks.md for the filters and tests soar has)"
                )));
            }
        }
        Ok(())
    }

    /// Whether the engine has the filter or test `name`.
    fn knows(&self, kind: &str, name: &str) -> bool {
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        let probe = match kind {
            "filter" => format!("none | {name}"),
            _ => format!("none is {name}"),
        };
        let missing = match kind {
            "filter" => ErrorKind::UnknownFilter,
            _ => ErrorKind::UnknownTest,
        };
        match self.env.compile_expression(&probe) {
            Ok(expr) => !matches!(expr.eval(()), Err(e) if e.kind() == missing),
            Err(e) => e.kind() != missing,
        }
    }

    /// `Environment::compile_expression`, minus a panic: minijinja's lexer
    /// panics ("empty lexer stack") on a `}}` outside brackets in an
    /// expression, which user text like `a }} {{ b` contains.
    fn compile_expression<'s>(
        &'s self,
        source: &'s str,
    ) -> Result<minijinja::Expression<'s, 's>, minijinja::Error> {
        if closes_early(source) {
            return Err(minijinja::Error::new(
                ErrorKind::SyntaxError,
                "unexpected `}}` inside an expression",
            ));
        }
        self.env.compile_expression(source)
    }

    /// Turns a minijinja error into an author-facing one.
    fn explain(
        &self,
        err: &minijinja::Error,
        source: &str,
        is_expression: bool,
        ctx: &serde_json::Value,
    ) -> TemplateError {
        if err.kind() == ErrorKind::UndefinedError {
            return self.undefined(source, err.range(), is_expression, ctx);
        }
        TemplateError::new(reason(err, source))
    }

    /// "undefined value: `inputs.nope` (`inputs` has: a, b)": names the
    /// first path that does not resolve, from the error's span when it covers
    /// a plain path, else from the variables the template reads.
    fn undefined(
        &self,
        source: &str,
        range: Option<Range<usize>>,
        is_expression: bool,
        ctx: &serde_json::Value,
    ) -> TemplateError {
        let from_span = range
            .and_then(|r| path_at(source, r))
            .and_then(|path| missing(ctx, &path));
        let found = from_span.or_else(|| {
            let refs = if is_expression {
                self.compile_expression(source)
                    .map(|e| e.undeclared_variables(true))
                    .unwrap_or_default()
            } else {
                self.env
                    .template_from_str(source)
                    .map(|t| t.undeclared_variables(true))
                    .unwrap_or_default()
            };
            let refs: BTreeSet<String> = refs.into_iter().collect();
            refs.iter().find_map(|path| missing(ctx, path))
        });
        let mut err = match found {
            Some(what) => TemplateError::new(format!("undefined value: {what}")),
            None => TemplateError::new(format!("undefined value in `{}`", source.trim())),
        };
        err.undefined = true;
        err
    }
}

/// minijinja's reason ("unknown filter: filter nofilter is unknown"), with
/// the line when the template has several.
fn reason(err: &minijinja::Error, source: &str) -> String {
    let mut text = match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    };
    if source.contains('\n') {
        if let Some(line) = err.line() {
            text.push_str(&format!(" (template line {line})"));
        }
    }
    text
}

fn condition_syntax(err: &minijinja::Error, source: &str) -> TemplateError {
    let mut text = reason(err, source);
    if source.contains("{{") || source.contains("{%") {
        text.push_str(
            "; a condition is one expression, e.g. `steps.a.output.verdict == 'malicious'` \
             (optionally wrapped whole in `{{ }}`)",
        );
    }
    TemplateError::new(text)
}

/// The expression of a condition: the inside of a whole-string `{{ }}`, else
/// the string itself.
fn condition_source(expr: &str) -> Result<&str, TemplateError> {
    let source = single_expression(expr).unwrap_or_else(|| expr.trim());
    if source.is_empty() {
        return Err(TemplateError::new("empty condition"));
    }
    Ok(source)
}

/// The inside of a string that is written as one `{{ ... }}` (whitespace
/// control markers `-`/`+` allowed); whether it really is one expression is
/// decided by compiling it.
fn single_expression(template: &str) -> Option<&str> {
    let inner = template.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    let inner = inner.strip_prefix(['-', '+']).unwrap_or(inner);
    let inner = inner.strip_suffix(['-', '+']).unwrap_or(inner);
    let inner = inner.trim();
    (!inner.is_empty()).then_some(inner)
}

/// True if `source` has a variable-end `}}` (optionally `-}}`/`+}}`) outside
/// string literals and brackets, mirroring minijinja's lexer.
fn closes_early(source: &str) -> bool {
    let bytes = source.as_bytes();
    let mut depth = 0isize;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if depth == 0
            && (rest.starts_with(b"}}")
                || (matches!(rest[0], b'-' | b'+') && rest[1..].starts_with(b"}}")))
        {
            return true;
        }
        match rest[0] {
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Strings without any Jinja markup are literals; skipping the engine for
/// them keeps rendering cheap and their text byte-exact.
fn has_markup(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

fn root_of(path: &str) -> &str {
    path.split('.').next().unwrap_or(path)
}

/// True if `value` is undefined or has an undefined item or entry.
fn contains_undefined(value: &Value) -> bool {
    match value.kind() {
        ValueKind::Undefined => true,
        ValueKind::Seq => value
            .try_iter()
            .map(|mut items| items.any(|v| contains_undefined(&v)))
            .unwrap_or(false),
        ValueKind::Map => value
            .try_iter()
            .map(|mut keys| {
                keys.any(|k| {
                    value
                        .get_item(&k)
                        .map(|v| contains_undefined(&v))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// The dotted path an error span points at, widened to the left so that
/// `.nope.deeper` becomes `inputs.nope.deeper`; `None` unless it is a plain path.
fn path_at(source: &str, range: Range<usize>) -> Option<String> {
    let end = range.end.min(source.len());
    let mut start = range.start.min(end);
    let bytes = source.as_bytes();
    while start > 0
        && (bytes[start - 1].is_ascii_alphanumeric() || b"_.".contains(&bytes[start - 1]))
    {
        start -= 1;
    }
    let path = source.get(start..end)?.trim();
    let plain = !path.is_empty()
        && path.split('.').all(|seg| {
            !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    plain.then(|| path.to_string())
}

/// Walks `path` through `ctx`; describes the first segment that does not
/// resolve, or `None` when the whole path exists.
fn missing(ctx: &serde_json::Value, path: &str) -> Option<String> {
    let mut current = ctx;
    let mut walked = String::new();
    for seg in path.split('.') {
        let next = match current {
            serde_json::Value::Object(map) => map.get(seg),
            serde_json::Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        let here = if walked.is_empty() {
            seg.to_string()
        } else {
            format!("{walked}.{seg}")
        };
        let Some(next) = next else {
            let what = if walked.is_empty() {
                format!("variables: {}", keys(current))
            } else {
                match current {
                    serde_json::Value::Object(_) => format!("`{walked}` has: {}", keys(current)),
                    serde_json::Value::Array(items) => {
                        format!("`{walked}` is a list of {} item(s)", items.len())
                    }
                    other => format!("`{walked}` is {}", kind_of(other)),
                }
            };
            return Some(format!("`{here}` ({what})"));
        };
        current = next;
        walked = here;
    }
    None
}

fn keys(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            let mut names: Vec<&str> = map.keys().map(String::as_str).take(20).collect();
            if map.len() > 20 {
                names.push("...");
            }
            names.join(", ")
        }
        _ => "nothing".to_string(),
    }
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> serde_json::Value {
        json!({
            "inputs": { "host_id": "h-1", "iocs": ["a", "b"], "count": 3, "empty": {} },
            "steps": {
                "lookup": { "status": "succeeded", "output": { "verdict": "malicious", "n": 61 }, "error": null },
                "skipped": { "status": "skipped", "output": null, "error": null }
            },
        })
    }

    #[test]
    fn strict_undefined_is_an_error_naming_the_path() {
        let t = Templates::new();
        let err = t
            .render_str("host {{ inputs.nope }}", &json!({"inputs": {}}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "undefined value: `inputs.nope` (`inputs` has: nothing)"
        );
        let err = t
            .render_value(&json!("{{ inputs.nope }}"), &json!({"inputs": {"a": 1}}))
            .unwrap_err();
        assert_eq!(
            err.message,
            "undefined value: `inputs.nope` (`inputs` has: a)"
        );
        // An attribute of a missing key names the missing key, not the leaf.
        let err = t
            .render_str("{{ inputs.nope.deeper }}", &ctx())
            .unwrap_err();
        assert!(
            err.message
                .contains("`inputs.nope` (`inputs` has: count, empty, host_id, iocs)"),
            "{err}"
        );
        let err = t.render_str("{{ nope }}", &ctx()).unwrap_err();
        assert_eq!(
            err.message,
            "undefined value: `nope` (variables: inputs, steps)"
        );
    }

    #[test]
    fn undefined_inside_a_list_or_an_operation_is_an_error_too() {
        let t = Templates::new();
        for template in [
            "{{ [inputs.nope] }}",
            "x {{ [inputs.nope] }}",
            "{{ {'k': inputs.nope} }}",
            "{{ inputs.host_id ~ inputs.nope }}",
        ] {
            let err = t.render_value(&json!(template), &ctx()).unwrap_err();
            assert!(err.message.contains("`inputs.nope`"), "{template}: {err}");
        }
        let err = t
            .render_str("{{ steps.skipped.output.verdict }}", &ctx())
            .unwrap_err();
        assert!(
            err.message.contains("`steps.skipped.output` is null"),
            "{err}"
        );
    }

    #[test]
    fn single_expressions_keep_their_native_type() {
        let t = Templates::new();
        let c = ctx();
        assert_eq!(
            t.render_value(&json!("{{ inputs.iocs }}"), &c).unwrap(),
            json!(["a", "b"])
        );
        assert_eq!(
            t.render_value(&json!("  {{inputs.count}} "), &c).unwrap(),
            json!(3)
        );
        assert_eq!(
            t.render_value(&json!("{{- steps.lookup.output.n -}}"), &c)
                .unwrap(),
            json!(61)
        );
        assert_eq!(
            t.render_value(&json!("{{ inputs.count > 2 }}"), &c)
                .unwrap(),
            json!(true)
        );
        assert_eq!(
            t.render_value(&json!("{{ steps.lookup.error }}"), &c)
                .unwrap(),
            json!(null)
        );
        assert_eq!(
            t.render_value(&json!("{{ {'a': {'b': inputs.count}} }}"), &c)
                .unwrap(),
            json!({"a": {"b": 3}})
        );
        assert_eq!(
            t.render_value(&json!("{{ inputs.host_id }}"), &c).unwrap(),
            json!("h-1")
        );
        // Two expressions, or text around one, is text.
        assert_eq!(
            t.render_value(&json!("{{ inputs.count }} {{ inputs.count }}"), &c)
                .unwrap(),
            json!("3 3")
        );
        assert_eq!(
            t.render_value(&json!("n={{ inputs.count }}"), &c).unwrap(),
            json!("n=3")
        );
        assert!(t.is_single_expression("{{ inputs.iocs }}"));
        assert!(!t.is_single_expression("{{ a }} {{ b }}"));
        assert!(!t.is_single_expression("inputs.iocs"));
    }

    #[test]
    fn nested_objects_render_every_string_and_keep_keys_and_literals() {
        let t = Templates::new();
        let value = json!({
            "host_id": "{{ inputs.host_id }}",
            "tags": ["soar", "{{ steps.lookup.output.verdict }}", 7],
            "meta": { "note": "verdict={{ steps.lookup.output.verdict | upper }}", "{{ key }}": true },
            "raw": "no template here {x}",
        });
        assert_eq!(
            t.render_value(&value, &ctx()).unwrap(),
            json!({
                "host_id": "h-1",
                "tags": ["soar", "malicious", 7],
                "meta": { "note": "verdict=MALICIOUS", "{{ key }}": true },
                "raw": "no template here {x}",
            })
        );
    }

    #[test]
    fn unknown_filters_and_tests_are_refused_before_any_run() {
        let t = Templates::new();
        let err = t
            .references("{{ alert.host | nosuchfilter }}", false)
            .unwrap_err();
        assert!(
            err.message.contains("unknown filter `nosuchfilter`"),
            "{err}"
        );
        let err = t.references("alert.x is nosuchtest", true).unwrap_err();
        assert!(err.message.contains("unknown test `nosuchtest`"), "{err}");
        let err = t
            .references("{% if alert.x is not oddish %}y{% endif %}", false)
            .unwrap_err();
        assert!(err.message.contains("unknown test `oddish`"), "{err}");
        // Known ones, including those that need arguments, and a `|` inside
        // a string literal, pass.
        for ok in [
            "{{ alert.m | fromjson | default(none) }}",
            "{{ alert.h | replace('a', 'b') | lower }}",
            "{{ 'a|nosuch' ~ alert.h }}",
            "{% if alert.x is not none and alert.y is defined %}y{% endif %}",
        ] {
            assert!(t.references(ok, false).is_ok(), "{ok}");
        }
        assert!(t.references("alert.n is odd", true).is_ok());
    }

    #[test]
    fn rfc3339_reads_the_times_senders_write() {
        let t = Templates::new();
        let r = |v: serde_json::Value| {
            t.render_value(
                &json!("{{ alert.t | rfc3339 }}"),
                &json!({"alert": {"t": v}}),
            )
        };
        let want = json!("2023-06-15T16:06:52.400Z");
        assert_eq!(r(json!(1686845212400u64)).unwrap(), want, "Falcon: ms");
        assert_eq!(r(json!("1686845212400")).unwrap(), want);
        assert_eq!(r(json!(1686845212.4)).unwrap(), want, "seconds");
        assert_eq!(r(json!("2023-06-15T16:06:52.400Z")).unwrap(), want, "Okta");
        assert_eq!(
            r(json!("2023-06-15T16:06:52Z")).unwrap(),
            json!("2023-06-15T16:06:52.000Z")
        );
        // Offsets are applied, with or without a fraction.
        assert_eq!(r(json!("2023-06-15T21:36:52.400+05:30")).unwrap(), want);
        assert_eq!(
            r(json!("2023-06-15T11:06:52-05:00")).unwrap(),
            json!("2023-06-15T16:06:52.000Z")
        );
        assert_eq!(r(json!(1686845212.4004)).unwrap(), want, "rounded");
        for bad in [
            json!("yesterday"),
            json!(-5),
            json!(1e300),
            json!(true),
            json!("x".repeat(500)),
        ] {
            assert!(
                r(bad.clone()).unwrap_err().message.contains("rfc3339"),
                "{bad}"
            );
        }
    }

    #[test]
    fn fromjson_parses_a_string_of_json_within_bounds() {
        let t = Templates::new();
        // An SNS notification carries its finding as a JSON string.
        let ctx = json!({"alert": {"Message": "{\"detail\":{\"severity\":8.5,\"type\":\"Recon:EC2/PortProbeUnprotectedPort\"}}"}});
        let v = t
            .render_value(&json!("{{ (alert.Message | fromjson).detail }}"), &ctx)
            .unwrap();
        assert_eq!(
            v,
            json!({"severity": 8.5, "type": "Recon:EC2/PortProbeUnprotectedPort"})
        );
        let bad = |text: String| {
            t.render_value(
                &json!("{{ alert.m | fromjson }}"),
                &json!({"alert": {"m": text}}),
            )
            .unwrap_err()
            .message
        };
        assert!(bad("{not json".into()).contains("fromjson: not JSON"));
        // `[]` is depth 0: n + 1 brackets nest n levels.
        let nested = |n: usize| "[".repeat(n + 1) + &"]".repeat(n + 1);
        let at_cap = json!({"alert": {"m": nested(FROMJSON_MAX_DEPTH)}});
        assert!(t
            .render_value(&json!("{{ alert.m | fromjson }}"), &at_cap)
            .is_ok());
        assert!(bad(nested(FROMJSON_MAX_DEPTH + 1)).contains("over the cap of 64"));
        // Deeper than serde_json reads: refused, no panic.
        let deeper = "[".repeat(5000) + &"]".repeat(5000);
        assert!(bad(deeper).contains("fromjson"));
        let big = format!("\"{}\"", "a".repeat(FROMJSON_MAX_BYTES));
        assert!(bad(big).contains("byte cap"));
    }

    #[test]
    fn text_rendering_loops_and_filters() {
        let t = Templates::new();
        let text = t
            .render_str(
                "{% for i in inputs.iocs %}{{ loop.index }}:{{ i }} {% endfor %}",
                &ctx(),
            )
            .unwrap();
        assert_eq!(text, "1:a 2:b ");
        // No HTML escaping: values go to APIs.
        assert_eq!(t.render_str("{{ '<b>&' }}", &ctx()).unwrap(), "<b>&");
        let err = t
            .render_str("{{ inputs.iocs | nofilter }}", &ctx())
            .unwrap_err();
        assert!(err.message.contains("unknown filter"), "{err}");
        assert!(err.message.contains("nofilter"), "{err}");
        let err = t.render_str("{{ inputs.iocs ", &ctx()).unwrap_err();
        assert!(err.message.starts_with("syntax error"), "{err}");
    }

    #[test]
    fn conditions_bare_or_wrapped() {
        let t = Templates::new();
        let c = ctx();
        assert!(t
            .eval_condition("steps.lookup.output.verdict == 'malicious'", &c)
            .unwrap());
        assert!(t
            .eval_condition("{{ steps.lookup.output.verdict == 'malicious' }}", &c)
            .unwrap());
        assert!(!t.eval_condition("steps.lookup.output.n < 10", &c).unwrap());
        assert!(!t.eval_condition("inputs.empty", &c).unwrap());
        assert!(t.eval_condition("inputs.iocs", &c).unwrap());
        assert!(!t.eval_condition("inputs.nope is defined", &c).unwrap());
        let err = t
            .eval_condition("steps.lookup.output.verdcit == 'x'", &c)
            .unwrap_err();
        assert!(
            err.message.contains("`steps.lookup.output.verdcit`"),
            "{err}"
        );
        let err = t.eval_condition("inputs.nope", &c).unwrap_err();
        assert!(err.message.contains("`inputs.nope`"), "{err}");
        let err = t.eval_condition("{{ a }} == 'x'", &c).unwrap_err();
        assert!(
            err.message.contains("a condition is one expression"),
            "{err}"
        );
        assert!(t.eval_condition("  ", &c).is_err());
        // minijinja's lexer panics on a bare `}}` in an expression; we do not.
        for text in ["a }} b", "{{ a }} or {{ b }}", "x -}}", "'}}' == '}}' }}"] {
            let err = t.eval_condition(text, &c).unwrap_err();
            assert!(err.message.starts_with("syntax error"), "{text}: {err}");
            assert!(t.references(text, true).is_err(), "{text}");
        }
        assert!(t.eval_condition("'}}' == '}}'", &c).unwrap());
        assert!(t
            .eval_condition("{'a': {'b': 1}} == {'a': {'b': 1}}", &c)
            .unwrap());
    }

    #[test]
    fn references_are_dotted_paths() {
        let t = Templates::new();
        let refs = t
            .references(
                "{{ inputs.host_id }} {% for x in steps.a.output.items %}{{ x.name }}{{ loop.index }}{% endfor %}{{ range(3) | list }}",
                false,
            )
            .unwrap();
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            ["inputs.host_id", "steps.a.output.items"]
        );
        let refs = t
            .references("steps.lookup.output.verdict == 'malicious' and item", true)
            .unwrap();
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            ["item", "steps.lookup.output.verdict"]
        );
        let refs = t.references("{{ steps['a'].output }}", false).unwrap();
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["steps"]);
        assert!(t.references("plain text", false).unwrap().is_empty());
        let err = t.references("{{ inputs. }}", false).unwrap_err();
        assert!(err.message.starts_with("syntax error"), "{err}");
        assert!(t.references("a ==", true).is_err());
    }
}
