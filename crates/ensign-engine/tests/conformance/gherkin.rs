//! A small, synchronous Gherkin reader: just enough of the language for the
//! flagd-testbed feature files.
//!
//! Supported: `Feature:` (with tags and free-text description), `Background:`,
//! `Scenario:` / `Example:`, `Scenario Outline:` / `Scenario Template:`,
//! `Examples:` / `Scenarios:` blocks with their own tags, step keywords
//! (`Given`, `When`, `Then`, `And`, `But`, `*`), data tables under steps, doc
//! strings (`"""` or `` ``` ``), `#` comments and blank lines. Table cells are
//! trimmed and unescaped as Gherkin specifies (`\|`, `\\`, `\n`; any other
//! backslash is kept literally, so `A\u0000B` stays backslash text).
//!
//! Anything else (`Rule:`, stray text after steps, ragged tables, an outline
//! without examples, a placeholder with no column) is a [`ParseError`]: the
//! conformance run must never drop a scenario silently because the reader
//! misunderstood the file.

use std::fmt;

/// A parsed `.feature` file.
#[derive(Debug, Clone, Default)]
pub struct Feature {
    /// The text after `Feature:`.
    pub name: String,
    /// Tags on the feature, each with its leading `@`.
    pub tags: Vec<String>,
    /// Steps of the `Background:` section, run before every scenario.
    pub background: Vec<Step>,
    /// Scenarios and scenario outlines in file order.
    pub scenarios: Vec<Scenario>,
}

/// A `Scenario:` or `Scenario Outline:`.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The text after the keyword.
    pub name: String,
    /// Tags on the scenario.
    pub tags: Vec<String>,
    /// 1-based line of the keyword.
    pub line: usize,
    /// Whether this is an outline (expanded once per examples row).
    pub outline: bool,
    /// The scenario's own steps (without the background).
    pub steps: Vec<Step>,
    /// `Examples:` blocks (outlines only).
    pub examples: Vec<Examples>,
}

/// One `Examples:` block of an outline.
#[derive(Debug, Clone)]
pub struct Examples {
    /// The text after `Examples:` (often empty).
    pub name: String,
    /// Tags on this block.
    pub tags: Vec<String>,
    /// 1-based line of the keyword.
    pub line: usize,
    /// Column names of the table.
    pub header: Vec<String>,
    /// The data rows.
    pub rows: Vec<TableRow>,
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    /// 1-based line of the row.
    pub line: usize,
    /// Trimmed, unescaped cells.
    pub cells: Vec<String>,
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// `Given`, `When`, `Then`, `And`, `But` or `*`.
    pub keyword: String,
    /// The text after the keyword.
    pub text: String,
    /// 1-based line of the step.
    pub line: usize,
    /// The data table attached to the step (empty when there is none).
    pub table: Vec<TableRow>,
    /// The doc string attached to the step.
    pub doc_string: Option<String>,
}

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

const STEP_KEYWORDS: [&str; 6] = ["Given", "When", "Then", "And", "But", "*"];

/// Where the reader is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Before `Feature:`.
    Start,
    /// Between `Feature:` and the first child.
    FeatureHeader,
    /// Inside `Background:`.
    Background,
    /// Inside a scenario, before its examples.
    Scenario,
    /// Inside an `Examples:` block.
    Examples,
}

/// An open doc string: its delimiter and the indentation to strip.
struct DocString {
    delimiter: &'static str,
    indent: usize,
    lines: Vec<String>,
}

struct Reader {
    feature: Feature,
    section: Section,
    pending_tags: Vec<String>,
    pending_tags_line: usize,
    /// Free text is allowed right after a header, before any step or row.
    description_allowed: bool,
    doc_string: Option<DocString>,
}

/// Parses the text of a `.feature` file.
pub fn parse(text: &str) -> Result<Feature, ParseError> {
    let mut reader = Reader {
        feature: Feature::default(),
        section: Section::Start,
        pending_tags: Vec::new(),
        pending_tags_line: 0,
        description_allowed: false,
        doc_string: None,
    };
    for (index, raw) in text.lines().enumerate() {
        reader.line(index + 1, raw).map_err(|message| ParseError {
            line: index + 1,
            message,
        })?;
    }
    reader.finish()
}

impl Reader {
    fn line(&mut self, number: usize, raw: &str) -> Result<(), String> {
        if self.doc_string.is_some() {
            return self.doc_string_line(raw);
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(());
        }
        if line.starts_with('@') {
            return self.tags(number, line);
        }
        if let Some(name) = line.strip_prefix("Feature:") {
            return self.start_feature(name);
        }
        if line.starts_with("Rule:") {
            return Err("`Rule:` is not supported by this reader".to_owned());
        }
        if let Some(name) = line.strip_prefix("Background:") {
            return self.start_background(name);
        }
        for keyword in ["Scenario Outline:", "Scenario Template:"] {
            if let Some(name) = line.strip_prefix(keyword) {
                return self.start_scenario(number, name, true);
            }
        }
        for keyword in ["Scenario:", "Example:"] {
            if let Some(name) = line.strip_prefix(keyword) {
                return self.start_scenario(number, name, false);
            }
        }
        for keyword in ["Examples:", "Scenarios:"] {
            if let Some(name) = line.strip_prefix(keyword) {
                return self.start_examples(number, name);
            }
        }
        let is_step = STEP_KEYWORDS.iter().find_map(|keyword| {
            let rest = line.strip_prefix(keyword)?;
            (rest.starts_with(' ') || rest.is_empty()).then_some((*keyword, rest.trim()))
        });
        if let Some((keyword, rest)) = is_step
            && matches!(self.section, Section::Background | Section::Scenario)
        {
            return self.step(number, keyword, rest);
        }
        // Between a header and its first step, any other line is description
        // text, as in Gherkin (even `|` or `"""` lines).
        if self.description_allowed {
            return Ok(());
        }
        if line.starts_with('|') {
            return self.table_row(number, line);
        }
        for delimiter in ["\"\"\"", "```"] {
            if line.starts_with(delimiter) {
                return self.open_doc_string(raw, delimiter);
            }
        }
        if let Some((keyword, _)) = is_step {
            return Err(format!(
                "step keyword {keyword:?} outside a scenario or background"
            ));
        }
        Err(format!("unexpected text: {line:?}"))
    }

    fn tags(&mut self, number: usize, line: &str) -> Result<(), String> {
        let without_comment = line.split(" #").next().unwrap_or_default();
        for token in without_comment.split_whitespace() {
            if !token.starts_with('@') || token.len() == 1 {
                return Err(format!("malformed tag {token:?}"));
            }
            self.pending_tags.push(token.to_owned());
        }
        if self.pending_tags_line == 0 {
            self.pending_tags_line = number;
        }
        Ok(())
    }

    fn take_tags(&mut self) -> Vec<String> {
        self.pending_tags_line = 0;
        std::mem::take(&mut self.pending_tags)
    }

    fn start_feature(&mut self, name: &str) -> Result<(), String> {
        if self.section != Section::Start {
            return Err("a second `Feature:` in one file".to_owned());
        }
        self.feature.name = name.trim().to_owned();
        self.feature.tags = self.take_tags();
        self.section = Section::FeatureHeader;
        self.description_allowed = true;
        Ok(())
    }

    fn start_background(&mut self, _name: &str) -> Result<(), String> {
        if self.section != Section::FeatureHeader {
            return Err("`Background:` must come once, before the first scenario".to_owned());
        }
        if !self.pending_tags.is_empty() {
            return Err("tags are not allowed on `Background:`".to_owned());
        }
        self.section = Section::Background;
        self.description_allowed = true;
        Ok(())
    }

    fn start_scenario(&mut self, number: usize, name: &str, outline: bool) -> Result<(), String> {
        if self.section == Section::Start {
            return Err("a scenario before `Feature:`".to_owned());
        }
        self.close_scenario()?;
        let tags = self.take_tags();
        self.feature.scenarios.push(Scenario {
            name: name.trim().to_owned(),
            tags,
            line: number,
            outline,
            steps: Vec::new(),
            examples: Vec::new(),
        });
        self.section = Section::Scenario;
        self.description_allowed = true;
        Ok(())
    }

    fn start_examples(&mut self, number: usize, name: &str) -> Result<(), String> {
        let tags = self.take_tags();
        let scenario = match self.section {
            Section::Scenario | Section::Examples => self.feature.scenarios.last_mut(),
            _ => None,
        }
        .ok_or("`Examples:` outside a scenario")?;
        if !scenario.outline {
            return Err(format!(
                "`Examples:` under the plain scenario {:?} (use `Scenario Outline:`)",
                scenario.name
            ));
        }
        if let Some(previous) = scenario.examples.last()
            && previous.header.is_empty()
        {
            return Err(format!(
                "the `Examples:` block of line {} has no table",
                previous.line
            ));
        }
        scenario.examples.push(Examples {
            name: name.trim().to_owned(),
            tags,
            line: number,
            header: Vec::new(),
            rows: Vec::new(),
        });
        self.section = Section::Examples;
        self.description_allowed = false;
        Ok(())
    }

    fn current_steps(&mut self) -> Option<&mut Vec<Step>> {
        match self.section {
            Section::Background => Some(&mut self.feature.background),
            Section::Scenario => self.feature.scenarios.last_mut().map(|s| &mut s.steps),
            _ => None,
        }
    }

    fn step(&mut self, number: usize, keyword: &str, text: &str) -> Result<(), String> {
        self.no_pending_tags()?;
        let steps = self
            .current_steps()
            .ok_or_else(|| format!("step {keyword} {text:?} outside a scenario or background"))?;
        steps.push(Step {
            keyword: keyword.to_owned(),
            text: text.to_owned(),
            line: number,
            table: Vec::new(),
            doc_string: None,
        });
        self.description_allowed = false;
        Ok(())
    }

    fn table_row(&mut self, number: usize, line: &str) -> Result<(), String> {
        self.no_pending_tags()?;
        let cells = split_cells(line)?;
        let row = TableRow {
            line: number,
            cells,
        };
        self.description_allowed = false;
        if self.section == Section::Examples {
            let examples = self
                .feature
                .scenarios
                .last_mut()
                .and_then(|s| s.examples.last_mut())
                .ok_or("table row outside an `Examples:` block")?;
            if examples.header.is_empty() {
                if row.cells.is_empty() {
                    return Err("an examples header needs at least one column".to_owned());
                }
                examples.header = row.cells;
            } else if row.cells.len() != examples.header.len() {
                return Err(format!(
                    "examples row has {} cells, the header has {}",
                    row.cells.len(),
                    examples.header.len()
                ));
            } else {
                examples.rows.push(row);
            }
            return Ok(());
        }
        let step = self
            .current_steps()
            .and_then(|steps| steps.last_mut())
            .ok_or("a table row that belongs to no step")?;
        if step.doc_string.is_some() {
            return Err("a step cannot have both a doc string and a table".to_owned());
        }
        if let Some(first) = step.table.first()
            && first.cells.len() != row.cells.len()
        {
            return Err(format!(
                "table row has {} cells, the first row has {}",
                row.cells.len(),
                first.cells.len()
            ));
        }
        step.table.push(row);
        Ok(())
    }

    fn open_doc_string(&mut self, raw: &str, delimiter: &'static str) -> Result<(), String> {
        let has_step = self
            .current_steps()
            .and_then(|steps| steps.last())
            .is_some_and(|step| step.table.is_empty() && step.doc_string.is_none());
        if !has_step {
            return Err("a doc string that belongs to no step".to_owned());
        }
        let indent = raw.len() - raw.trim_start().len();
        self.doc_string = Some(DocString {
            delimiter,
            indent,
            lines: Vec::new(),
        });
        Ok(())
    }

    fn doc_string_line(&mut self, raw: &str) -> Result<(), String> {
        let Some(doc) = self.doc_string.as_mut() else {
            return Ok(());
        };
        if raw.trim() == doc.delimiter {
            let text = doc.lines.join("\n");
            self.doc_string = None;
            let step = self
                .current_steps()
                .and_then(|steps| steps.last_mut())
                .ok_or("a doc string that belongs to no step")?;
            step.doc_string = Some(text);
            self.description_allowed = false;
            return Ok(());
        }
        let leading = raw.len() - raw.trim_start().len();
        doc.lines.push(raw[leading.min(doc.indent)..].to_owned());
        Ok(())
    }

    fn no_pending_tags(&self) -> Result<(), String> {
        if self.pending_tags.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "tags {:?} (line {}) are followed by something that cannot carry tags",
                self.pending_tags, self.pending_tags_line
            ))
        }
    }

    /// Checks the scenario being closed is complete.
    fn close_scenario(&self) -> Result<(), String> {
        let Some(scenario) = self.feature.scenarios.last() else {
            return Ok(());
        };
        if scenario.outline && scenario.examples.is_empty() {
            return Err(format!(
                "the outline {:?} (line {}) has no `Examples:`",
                scenario.name, scenario.line
            ));
        }
        if let Some(examples) = scenario.examples.iter().find(|e| e.header.is_empty()) {
            return Err(format!(
                "the `Examples:` block of line {} has no table",
                examples.line
            ));
        }
        Ok(())
    }

    fn finish(self) -> Result<Feature, ParseError> {
        let end = |message: String| ParseError { line: 0, message };
        if self.doc_string.is_some() {
            return Err(end("unterminated doc string".to_owned()));
        }
        if !self.pending_tags.is_empty() {
            return Err(ParseError {
                line: self.pending_tags_line,
                message: format!("tags {:?} at the end of the file", self.pending_tags),
            });
        }
        if self.section == Section::Start {
            return Err(end("no `Feature:` in the file".to_owned()));
        }
        self.close_scenario().map_err(end)?;
        Ok(self.feature)
    }
}

/// Splits `| a | b\|c |` into trimmed, unescaped cells.
fn split_cells(line: &str) -> Result<Vec<String>, String> {
    let inner = line
        .strip_prefix('|')
        .ok_or("a table row must start with `|`")?;
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('|') => cell.push('|'),
                Some('\\') => cell.push('\\'),
                Some('n') => cell.push('\n'),
                Some(other) => {
                    cell.push('\\');
                    cell.push(other);
                }
                None => cell.push('\\'),
            },
            '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            other => cell.push(other),
        }
    }
    if !cell.trim().is_empty() {
        return Err(format!("table row does not end with `|`: {line:?}"));
    }
    Ok(cells)
}

/// One runnable instance of a scenario: a plain scenario, or an outline with
/// one examples row substituted in.
#[derive(Debug, Clone)]
pub struct Case {
    /// The scenario name (placeholders substituted).
    pub scenario: String,
    /// 1-based line of the scenario.
    pub scenario_line: usize,
    /// The examples block and row, for outlines.
    pub example: Option<ExampleRow>,
    /// Feature, scenario and examples tags together.
    pub tags: Vec<String>,
    /// Background steps followed by the scenario's steps, substituted.
    pub steps: Vec<Step>,
}

/// Where an outline case came from.
#[derive(Debug, Clone)]
pub struct ExampleRow {
    /// The examples block's name.
    pub block_name: String,
    /// 1-based line of the `Examples:` keyword.
    pub block_line: usize,
    /// 1-based line of the row.
    pub row_line: usize,
    /// `(column, value)` pairs of the row.
    pub values: Vec<(String, String)>,
}

impl Case {
    /// Whether the case carries `tag` (with its `@`).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// Expands a feature into its cases: one per plain scenario, one per examples
/// row of every outline.
pub fn expand(feature: &Feature) -> Result<Vec<Case>, ParseError> {
    let mut cases = Vec::new();
    for scenario in &feature.scenarios {
        let mut tags = feature.tags.clone();
        tags.extend(scenario.tags.iter().cloned());
        let all_steps: Vec<Step> = feature
            .background
            .iter()
            .chain(&scenario.steps)
            .cloned()
            .collect();
        if !scenario.outline {
            cases.push(Case {
                scenario: scenario.name.clone(),
                scenario_line: scenario.line,
                example: None,
                tags,
                steps: all_steps,
            });
            continue;
        }
        for examples in &scenario.examples {
            let mut block_tags = tags.clone();
            block_tags.extend(examples.tags.iter().cloned());
            for row in &examples.rows {
                let values: Vec<(String, String)> = examples
                    .header
                    .iter()
                    .cloned()
                    .zip(row.cells.iter().cloned())
                    .collect();
                let substitute = |text: &str| substitute(text, &values, row.line);
                let steps = all_steps
                    .iter()
                    .map(|step| {
                        Ok(Step {
                            keyword: step.keyword.clone(),
                            text: substitute(&step.text)?,
                            line: step.line,
                            table: step
                                .table
                                .iter()
                                .map(|r| {
                                    Ok(TableRow {
                                        line: r.line,
                                        cells: r
                                            .cells
                                            .iter()
                                            .map(|c| substitute(c))
                                            .collect::<Result<_, _>>()?,
                                    })
                                })
                                .collect::<Result<_, ParseError>>()?,
                            doc_string: step.doc_string.as_deref().map(substitute).transpose()?,
                        })
                    })
                    .collect::<Result<Vec<_>, ParseError>>()?;
                cases.push(Case {
                    scenario: substitute(&scenario.name)?,
                    scenario_line: scenario.line,
                    example: Some(ExampleRow {
                        block_name: examples.name.clone(),
                        block_line: examples.line,
                        row_line: row.line,
                        values,
                    }),
                    tags: block_tags.clone(),
                    steps,
                });
            }
        }
    }
    Ok(cases)
}

/// Replaces every `<column>` by the row's value; a placeholder naming no
/// column is an error rather than literal text.
fn substitute(text: &str, values: &[(String, String)], line: usize) -> Result<String, ParseError> {
    let mut out = text.to_owned();
    for (column, value) in values {
        out = out.replace(&format!("<{column}>"), value);
    }
    if let Some(placeholder) = leftover_placeholder(text, values) {
        return Err(ParseError {
            line,
            message: format!("placeholder <{placeholder}> names no examples column"),
        });
    }
    Ok(out)
}

/// A `<name>` in the template that no column substitutes.
fn leftover_placeholder(template: &str, values: &[(String, String)]) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let name = &after[..end];
        let looks_like_placeholder = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ' '));
        if looks_like_placeholder && !values.iter().any(|(column, _)| column == name) {
            return Some(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
@outer
Feature: Sample
  Some description.
  """markdown
  | a table that is description text |
  """

  Background:
    Given an evaluator

  # a comment
  Scenario: Plain
    Then the resolved metadata should contain
      | key | value  |
      | a\|b | x\\y\z |

  @outline
  Scenario Outline: Outline <name>
    Given a thing "<name>"

    @v1
    Examples: first
      | name |
      | one  |
      | two  |

    Examples:
      | name |
      |      |
"#;

    #[test]
    fn reads_and_expands() {
        let feature = parse(SAMPLE).unwrap();
        assert_eq!(feature.tags, ["@outer"]);
        assert_eq!(feature.background.len(), 1);
        assert_eq!(feature.scenarios.len(), 2);
        let table = &feature.scenarios[0].steps[0].table;
        assert_eq!(table[1].cells, ["a|b", "x\\y\\z"]);

        let cases = expand(&feature).unwrap();
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[1].scenario, "Outline one");
        assert_eq!(cases[1].steps[1].text, "a thing \"one\"");
        assert_eq!(cases[1].tags, ["@outer", "@outline", "@v1"]);
        assert_eq!(cases[3].steps[1].text, "a thing \"\"");
        assert_eq!(cases[3].tags, ["@outer", "@outline"]);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        let ragged =
            "Feature: f\n Scenario Outline: o\n Given x \"<a>\"\n Examples:\n | a |\n | 1 | 2 |\n";
        assert!(parse(ragged).is_err());
        let no_examples = "Feature: f\n Scenario Outline: o\n Given x\n";
        assert!(parse(no_examples).is_err());
        let stray = "Feature: f\n Scenario: s\n Given x\n random text\n";
        assert!(parse(stray).is_err());
        let unknown_column =
            "Feature: f\n Scenario Outline: o\n Given x \"<b>\"\n Examples:\n | a |\n | 1 |\n";
        assert!(expand(&parse(unknown_column).unwrap()).is_err());
    }
}
