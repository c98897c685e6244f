//! `mcpsoc eval`: the monitor's content detectors over a labelled corpus, precision and recall.
//!
//! The corpus is JSON lines (see `tests/corpus/`), one case per line:
//! `{"id","kind":"tool_definition"|"tool_result"|"arguments","label":"malicious"|"benign",
//! "family":<family>|null,"server","tool":{...},"text":<result text>|null,"arguments":{...}|null,
//! "note"}`. A case is flagged when any finding is raised: tool definitions go through
//! [`Detectors::scan_tool`], results through [`Detectors::scan_result`] on `text`, arguments
//! through [`Detectors::scan_arguments`]. Blank lines are allowed; any other line that does not
//! hold a valid case is reported with its line number and the run fails.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::EvalArgs;
use crate::config::Config;
use crate::monitor::detect::{DetectorConfig, Detectors, Family, Finding};

/// What a case holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// An MCP Tool object in `tool`.
    ToolDefinition,
    /// Result text in `text`.
    ToolResult,
    /// Call arguments in `arguments`.
    Arguments,
}

/// The ground truth of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Should raise a finding.
    Malicious,
    /// Should stay quiet.
    Benign,
}

/// One labelled corpus case.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique id.
    pub id: String,
    /// What it holds.
    pub kind: CaseKind,
    /// Malicious or benign.
    pub label: Label,
    /// Attack family (malicious cases only).
    #[serde(default)]
    pub family: Option<Family>,
    /// Where it comes from: `package@version` for real servers.
    #[serde(default)]
    pub server: Option<String>,
    /// The MCP Tool object (for results and arguments at least `{"name"}`).
    #[serde(default)]
    pub tool: Option<Value>,
    /// Result text.
    #[serde(default)]
    pub text: Option<String>,
    /// Call arguments.
    #[serde(default)]
    pub arguments: Option<Value>,
    /// Free-form note.
    #[serde(default)]
    pub note: Option<String>,
}

impl Case {
    /// Checks the fields the kind needs.
    fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("empty id".into());
        }
        match (self.label, self.family) {
            (Label::Malicious, None) => return Err("malicious case without a family".into()),
            (Label::Benign, Some(_)) => return Err("benign case with a family".into()),
            _ => {}
        }
        match self.kind {
            CaseKind::ToolDefinition if !matches!(self.tool, Some(Value::Object(_))) => {
                Err("tool_definition needs a `tool` object".into())
            }
            CaseKind::ToolResult if self.text.is_none() => {
                Err("tool_result needs a `text` string".into())
            }
            CaseKind::Arguments if matches!(self.arguments, None | Some(Value::Null)) => {
                Err("arguments case needs `arguments`".into())
            }
            _ => Ok(()),
        }
    }

    /// The findings the detectors raise on this case.
    pub fn scan(&self, detectors: &Detectors) -> Vec<Finding> {
        match self.kind {
            CaseKind::ToolDefinition => self
                .tool
                .as_ref()
                .map(|t| detectors.scan_tool(t))
                .unwrap_or_default(),
            CaseKind::ToolResult => self
                .text
                .as_deref()
                .map(|t| detectors.scan_result(t))
                .unwrap_or_default(),
            CaseKind::Arguments => self
                .arguments
                .as_ref()
                .map(|a| detectors.scan_arguments(a))
                .unwrap_or_default(),
        }
    }
}

/// Reads a corpus file: the cases, or every malformed line as `path:line: reason`.
pub fn load_corpus(path: &Path) -> anyhow::Result<Result<Vec<Case>, Vec<String>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read corpus", path.display()))?;
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    let mut ids = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let case: Case = match serde_json::from_str(line) {
            Ok(case) => case,
            Err(e) => {
                errors.push(format!("{}:{number}: {e}", path.display()));
                continue;
            }
        };
        if let Err(e) = case.validate() {
            errors.push(format!(
                "{}:{number}: case {:?}: {e}",
                path.display(),
                case.id
            ));
            continue;
        }
        if !ids.insert(case.id.clone()) {
            errors.push(format!(
                "{}:{number}: duplicate id {:?}",
                path.display(),
                case.id
            ));
            continue;
        }
        cases.push(case);
    }
    Ok(if errors.is_empty() {
        Ok(cases)
    } else {
        Err(errors)
    })
}

/// Overall confusion counts and rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overall {
    /// tp / (tp + fp); 1 when nothing was flagged.
    pub precision: f64,
    /// tp / (tp + fn); 1 when there is no malicious case.
    pub recall: f64,
    /// Malicious and flagged.
    pub tp: u64,
    /// Benign and flagged.
    pub fp: u64,
    /// Malicious and missed.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// Benign and quiet.
    pub tn: u64,
}

/// Recall of one family.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FamilyScore {
    /// tp / (tp + fn).
    pub recall: f64,
    /// Flagged cases of the family.
    pub tp: u64,
    /// Missed cases of the family.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

/// The result of an evaluation, as printed by `--json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Overall numbers.
    pub overall: Overall,
    /// Recall per family of the malicious cases.
    pub families: BTreeMap<String, FamilyScore>,
    /// Benign cases that were flagged.
    pub false_positives: Vec<String>,
    /// Malicious cases that were missed.
    pub false_negatives: Vec<String>,
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

/// Evaluates `detectors` on `cases`; also returns the rules that fired on each false positive.
pub fn evaluate(detectors: &Detectors, cases: &[Case]) -> (Report, BTreeMap<String, Vec<String>>) {
    let mut report = Report::default();
    let mut fp_rules = BTreeMap::new();
    for case in cases {
        let findings = case.scan(detectors);
        let flagged = !findings.is_empty();
        match (case.label, flagged) {
            (Label::Malicious, true) => report.overall.tp += 1,
            (Label::Malicious, false) => {
                report.overall.fn_ += 1;
                report.false_negatives.push(case.id.clone());
            }
            (Label::Benign, true) => {
                report.overall.fp += 1;
                report.false_positives.push(case.id.clone());
                let mut rules: Vec<String> = findings.iter().map(|f| f.rule.clone()).collect();
                rules.dedup();
                fp_rules.insert(case.id.clone(), rules);
            }
            (Label::Benign, false) => report.overall.tn += 1,
        }
        if let (Label::Malicious, Some(family)) = (case.label, case.family) {
            let score = report
                .families
                .entry(family.as_str().to_string())
                .or_default();
            if flagged {
                score.tp += 1;
            } else {
                score.fn_ += 1;
            }
        }
    }
    let o = &mut report.overall;
    o.precision = ratio(o.tp, o.tp + o.fp);
    o.recall = ratio(o.tp, o.tp + o.fn_);
    for score in report.families.values_mut() {
        score.recall = ratio(score.tp, score.tp + score.fn_);
    }
    (report, fp_rules)
}

/// The readable table.
pub fn render_table(
    report: &Report,
    cases: usize,
    fp_rules: &BTreeMap<String, Vec<String>>,
) -> String {
    let o = &report.overall;
    let mut s = String::new();
    let _ = writeln!(s, "cases      {cases}");
    let _ = writeln!(
        s,
        "precision  {:.3}   (tp {} / fp {})",
        o.precision, o.tp, o.fp
    );
    let _ = writeln!(
        s,
        "recall     {:.3}   (tp {} / fn {})",
        o.recall, o.tp, o.fn_
    );
    let _ = writeln!(s, "tn         {}", o.tn);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<16} {:>7} {:>5} {:>5}",
        "family", "recall", "tp", "fn"
    );
    for (name, score) in &report.families {
        let _ = writeln!(
            s,
            "{:<16} {:>7.3} {:>5} {:>5}",
            name, score.recall, score.tp, score.fn_
        );
    }
    if !report.false_positives.is_empty() {
        let _ = writeln!(s, "\nfalse positives:");
        for id in &report.false_positives {
            let rules = fp_rules.get(id).map(|r| r.join(", ")).unwrap_or_default();
            let _ = writeln!(s, "  {id}  [{rules}]");
        }
    }
    if !report.false_negatives.is_empty() {
        let _ = writeln!(s, "\nfalse negatives:");
        for id in &report.false_negatives {
            let _ = writeln!(s, "  {id}");
        }
    }
    s
}

/// Runs `mcpsoc eval`. The detectors run with their default settings (every rule on).
pub fn run(_config: &Config, args: &EvalArgs) -> anyhow::Result<()> {
    let cases = match load_corpus(&args.corpus)? {
        Ok(cases) => cases,
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{}: {} malformed corpus line(s); fix them and run again",
                args.corpus.display(),
                errors.len()
            );
        }
    };
    let detectors = Detectors::new(DetectorConfig::default());
    let (report, fp_rules) = evaluate(&detectors, &cases);
    let output = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        render_table(&report, cases.len(), &fp_rules)
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the report"),
    }
}
