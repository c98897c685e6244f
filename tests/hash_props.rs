//! Properties of the canonical tool definition hash: it must not move when a server re-orders
//! keys, re-indents, escapes differently or adds non-definition fields, and it must move on any
//! semantic change, including a single invisible character.

use mcpsoc::protocol::hash::{
    HASH_PREFIX, LEGACY_DEFINITION_FIELDS, legacy_definition_hash, tool_definition_hash,
};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

// ---------------------------------------------------------------------------------------------
// Strategies

/// Strings with the characters that matter here: ASCII, JSON specials, controls, non-ASCII,
/// zero-width and bidi controls, Unicode tags, astral characters.
fn arb_string() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        6 => proptest::char::range('a', 'z'),
        1 => Just(' '),
        1 => Just('"'),
        1 => Just('\\'),
        1 => Just('/'),
        1 => Just('\n'),
        1 => Just('\u{0}'),
        1 => Just('\u{1f}'),
        1 => Just('\u{7f}'),
        1 => Just('é'),
        1 => Just('\u{200b}'),
        1 => Just('\u{202e}'),
        1 => Just('\u{feff}'),
        1 => Just('\u{e0041}'),
        1 => Just('😀'),
        1 => any::<char>(),
    ];
    proptest::collection::vec(ch, 0..12).prop_map(|cs| cs.into_iter().collect())
}

/// Numbers whose text round-trips exactly: integers and short binary fractions.
fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000)
            .prop_map(|n| { Value::Number(Number::from_f64(f64::from(n) / 8.0).expect("finite")) }),
    ]
}

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_number(),
        arb_string().prop_map(Value::String),
    ]
}

/// Arbitrary nested JSON.
fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(arb_string(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(arb_string(), arb_json(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// A tool as a server lists it: every definition field, plus optional ones, with arbitrary
/// content, and always at least one number and one boolean inside.
fn arb_tool() -> impl Strategy<Value = Value> {
    (
        arb_string(),
        arb_string(),
        proptest::option::of(arb_string()),
        arb_object(),
        proptest::option::of(arb_object()),
        any::<bool>(),
        0u32..100_000,
        arb_object(),
    )
        .prop_map(
            |(name, description, title, props, output, read_only, max_len, hints)| {
                let mut tool = Map::new();
                tool.insert("name".into(), Value::String(name));
                tool.insert("description".into(), Value::String(description));
                if let Some(title) = title {
                    tool.insert("title".into(), Value::String(title));
                }
                let mut schema = Map::new();
                schema.insert("type".into(), Value::String("object".into()));
                schema.insert("properties".into(), props);
                schema.insert("maxProperties".into(), Value::from(max_len));
                tool.insert("inputSchema".into(), Value::Object(schema));
                if let Some(output) = output {
                    tool.insert("outputSchema".into(), output);
                }
                let mut annotations = match hints {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                annotations.insert("readOnlyHint".into(), Value::Bool(read_only));
                tool.insert("annotations".into(), Value::Object(annotations));
                Value::Object(tool)
            },
        )
}

/// Fields a server may add beyond the six the first hash scheme covered.
fn arb_extra_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    let name = prop_oneof![
        Just("_meta".to_string()),
        Just("icons".to_string()),
        Just("execution".to_string()),
        Just("x-vendor".to_string()),
        arb_string().prop_filter("not a definition field", |s| {
            !LEGACY_DEFINITION_FIELDS.contains(&s.as_str())
        }),
    ];
    proptest::collection::vec((name, arb_json()), 1..4)
}

// ---------------------------------------------------------------------------------------------
// Hand-written JSON text with chosen key order, whitespace and escaping

/// A tiny deterministic generator for layout choices.
struct Layout(u64);

impl Layout {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn whitespace(&mut self, out: &mut String) {
        for _ in 0..self.next() % 3 {
            out.push([' ', '\n', '\t', '\r'][(self.next() % 4) as usize]);
        }
    }
}

/// Writes a JSON string, escaping non-ASCII as `\uXXXX` (surrogate pairs when astral) when
/// `escape_all` is set: another spelling of the same string.
fn write_string(s: &str, escape_all: bool, out: &mut String) {
    if !escape_all {
        out.push_str(&Value::String(s.to_string()).to_string());
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || !c.is_ascii() || c == '/' => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes `value` with object keys in a shuffled order, random whitespace, and optionally every
/// non-ASCII character escaped.
fn write_shuffled(value: &Value, layout: &mut Layout, escape_all: bool, out: &mut String) {
    layout.whitespace(out);
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            for i in (1..entries.len()).rev() {
                let j = (layout.next() % (i as u64 + 1)) as usize;
                entries.swap(i, j);
            }
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                layout.whitespace(out);
                write_string(k, escape_all, out);
                layout.whitespace(out);
                out.push(':');
                write_shuffled(v, layout, escape_all, out);
            }
            layout.whitespace(out);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_shuffled(item, layout, escape_all, out);
            }
            layout.whitespace(out);
            out.push(']');
        }
        Value::String(s) => write_string(s, escape_all, out),
        other => out.push_str(&other.to_string()),
    }
    layout.whitespace(out);
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("hand-written JSON parses: {e}\n{text}"))
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// Paths to every string (values and object keys) inside the definition fields of a tool.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone)]
enum Target {
    Value(Vec<Step>),
    KeyOf(Vec<Step>, String),
}

fn collect(
    value: &Value,
    path: &mut Vec<Step>,
    strings: &mut Vec<Target>,
    scalars: &mut Vec<Vec<Step>>,
) {
    match value {
        Value::String(_) => strings.push(Target::Value(path.clone())),
        Value::Number(_) | Value::Bool(_) => scalars.push(path.clone()),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                collect(item, path, strings, scalars);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                strings.push(Target::KeyOf(path.clone(), k.clone()));
                path.push(Step::Key(k.clone()));
                collect(v, path, strings, scalars);
                path.pop();
            }
        }
        Value::Null => {}
    }
}

/// (strings, numbers and booleans) of the definition part of `tool`.
fn definition_targets(tool: &Value) -> (Vec<Target>, Vec<Vec<Step>>) {
    let mut strings = Vec::new();
    let mut scalars = Vec::new();
    for field in LEGACY_DEFINITION_FIELDS {
        if let Some(v) = tool.get(field).filter(|v| !v.is_null()) {
            let mut path = vec![Step::Key(field.to_string())];
            collect(v, &mut path, &mut strings, &mut scalars);
        }
    }
    (strings, scalars)
}

fn at_mut<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |v, step| match step {
        Step::Key(k) => v.get_mut(k.as_str()).expect("path exists"),
        Step::Index(i) => v.get_mut(*i).expect("path exists"),
    })
}

/// Inserts `c` into `s` at the char boundary nearest `pos`.
fn insert_char(s: &str, pos: usize, c: char) -> String {
    let boundaries: Vec<usize> = s
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect();
    let at = boundaries[pos % boundaries.len()];
    let mut out = s.to_string();
    out.insert(at, c);
    out
}

/// Inserts `c` into the chosen string; `None` when the edit would merge two object keys.
fn mutate_string(tool: &Value, target: &Target, pos: usize, c: char) -> Option<Value> {
    let mut out = tool.clone();
    match target {
        Target::Value(path) => {
            let v = at_mut(&mut out, path);
            let s = v.as_str().expect("a string");
            *v = Value::String(insert_char(s, pos, c));
        }
        Target::KeyOf(path, key) => {
            let Value::Object(map) = at_mut(&mut out, path) else {
                panic!("an object");
            };
            let new_key = insert_char(key, pos, c);
            if map.contains_key(&new_key) {
                return None;
            }
            let v = map.remove(key).expect("key exists");
            map.insert(new_key, v);
        }
    }
    Some(out)
}

fn mutate_scalar(tool: &Value, path: &[Step]) -> Value {
    let mut out = tool.clone();
    let v = at_mut(&mut out, path);
    *v = match &*v {
        Value::Bool(b) => Value::Bool(!b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(if i == i64::MAX { i - 1 } else { i + 1 })
            } else if let Some(u) = n.as_u64() {
                Value::from(u - 1)
            } else {
                let f = n.as_f64().expect("a float");
                let g = if f == 0.0 { 1.0 } else { f * 2.0 };
                Value::Number(Number::from_f64(g).expect("finite"))
            }
        }
        other => panic!("not a scalar: {other}"),
    };
    out
}

fn is_well_formed(hash: &str) -> bool {
    hash.strip_prefix(HASH_PREFIX).is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn equal_inputs_give_equal_well_formed_hashes(tool in arb_tool(), any_value in arb_json()) {
        let h = tool_definition_hash(&tool);
        prop_assert!(is_well_formed(&h), "{h}");
        prop_assert_eq!(&h, &tool_definition_hash(&tool.clone()));
        prop_assert_eq!(&h, &tool_definition_hash(&parse(&tool.to_string())));
        // Any JSON at all hashes without panicking, deterministically.
        let g = tool_definition_hash(&any_value);
        prop_assert!(is_well_formed(&g));
        prop_assert_eq!(g, tool_definition_hash(&any_value.clone()));
    }

    #[test]
    fn stable_under_reformatting_key_order_and_escaping(tool in arb_tool(), seed in any::<u64>()) {
        let h = tool_definition_hash(&tool);
        let compact = serde_json::to_string(&tool).expect("serializes");
        let pretty = serde_json::to_string_pretty(&tool).expect("serializes");
        prop_assert_eq!(&h, &tool_definition_hash(&parse(&compact)));
        prop_assert_eq!(&h, &tool_definition_hash(&parse(&pretty)));
        for escape_all in [false, true] {
            let mut text = String::new();
            write_shuffled(&tool, &mut Layout(seed), escape_all, &mut text);
            prop_assert_eq!(
                &h,
                &tool_definition_hash(&parse(&text)),
                "shuffled (escape_all {}): {}",
                escape_all,
                text
            );
        }
    }

    #[test]
    fn every_field_counts_and_null_is_absent(tool in arb_tool(), extra in arb_extra_fields()) {
        let h = tool_definition_hash(&tool);
        let mut with_extra = tool.clone();
        let map = with_extra.as_object_mut().expect("a tool object");
        let mut added = false;
        for (k, v) in extra {
            added |= !v.is_null();
            map.insert(k, v);
        }
        if added {
            // icons, _meta, execution or an unknown field: what a client sees, so a change.
            prop_assert_ne!(&h, &tool_definition_hash(&with_extra));
        }
        // The first scheme never saw those fields (how stored pins are recognised).
        prop_assert_eq!(legacy_definition_hash(&tool), legacy_definition_hash(&with_extra));
        // An absent optional field and a null one are the same definition.
        let mut with_null = tool.clone();
        let map = with_null.as_object_mut().expect("a tool object");
        map.entry("title").or_insert(Value::Null);
        map.entry("outputSchema").or_insert(Value::Null);
        map.entry("_meta").or_insert(Value::Null);
        prop_assert_eq!(&h, &tool_definition_hash(&with_null));
    }

    #[test]
    fn any_inserted_character_in_any_definition_string_changes_the_hash(
        tool in arb_tool(),
        pick in any::<prop::sample::Index>(),
        pos in any::<usize>(),
        c in prop_oneof![
            Just('\u{200b}'),
            Just('\u{202e}'),
            Just('\u{e0041}'),
            Just('\u{feff}'),
            Just(' '),
            Just('x'),
            any::<char>(),
        ],
    ) {
        let (strings, _) = definition_targets(&tool);
        prop_assert!(!strings.is_empty(), "a tool always has a name");
        let target = pick.get(&strings);
        let Some(changed) = mutate_string(&tool, target, pos, c) else {
            return Ok(()); // the edit would collide with a sibling key
        };
        prop_assert_ne!(
            tool_definition_hash(&tool),
            tool_definition_hash(&changed),
            "inserting {:?} at {:?} did not change the hash",
            c,
            target
        );
        // The same edit survives a trip through text: the canonical form keeps it.
        prop_assert_eq!(
            tool_definition_hash(&changed),
            tool_definition_hash(&parse(&changed.to_string()))
        );
    }

    #[test]
    fn any_changed_number_or_boolean_changes_the_hash(
        tool in arb_tool(),
        pick in any::<prop::sample::Index>(),
    ) {
        let (_, scalars) = definition_targets(&tool);
        prop_assert!(scalars.len() >= 2, "maxProperties and readOnlyHint are always there");
        let path = pick.get(&scalars);
        let changed = mutate_scalar(&tool, path);
        prop_assert_ne!(
            tool_definition_hash(&tool),
            tool_definition_hash(&changed),
            "changing {:?} did not change the hash",
            path
        );
    }

    #[test]
    fn meta_contents_count(
        tool in arb_tool(),
        meta in arb_json(),
        other_meta in arb_json(),
    ) {
        let mut a = tool.clone();
        let mut b = tool.clone();
        a.as_object_mut().expect("object").insert("_meta".into(), meta.clone());
        b.as_object_mut().expect("object").insert("_meta".into(), other_meta.clone());
        prop_assert_eq!(
            meta == other_meta,
            tool_definition_hash(&a) == tool_definition_hash(&b)
        );
    }
}

#[test]
fn named_invisible_characters_each_change_the_hash() {
    let base = serde_json::json!({
        "name": "read_file",
        "description": "Read a file.",
        "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}},
    });
    let h = tool_definition_hash(&base);
    for c in ['\u{200b}', '\u{202e}', '\u{e0041}', '\u{2066}', '\u{00ad}'] {
        for field in ["name", "description"] {
            let mut changed = base.clone();
            let s = changed[field].as_str().expect("string").to_string();
            changed[field] = Value::String(format!("{s}{c}"));
            assert_ne!(h, tool_definition_hash(&changed), "{c:?} in {field}");
        }
        let mut changed = base.clone();
        changed["inputSchema"]["properties"]["path"]["type"] = Value::String(format!("str{c}ing"));
        assert_ne!(h, tool_definition_hash(&changed), "{c:?} in the schema");
    }
    // A type change that looks the same in text: 1 vs 1.0, true vs "true".
    let one = serde_json::json!({"name": "t", "inputSchema": {"maxLength": 1}});
    let one_f = serde_json::json!({"name": "t", "inputSchema": {"maxLength": 1.0}});
    assert_ne!(tool_definition_hash(&one), tool_definition_hash(&one_f));
    let t = serde_json::json!({"name": "t", "annotations": {"readOnlyHint": true}});
    let t_s = serde_json::json!({"name": "t", "annotations": {"readOnlyHint": "true"}});
    assert_ne!(tool_definition_hash(&t), tool_definition_hash(&t_s));
}
