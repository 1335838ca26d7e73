//! Reading a request's context without the schema (the fast path of
//! `Query::to_request`) gives exactly what Cedar's schema-directed reading
//! gives: the same context, or the same error. Random contexts meet a schema
//! whose context has every kind of type: primitives, sets, records, optional
//! attributes, extension types (written implicitly as strings) and entity
//! references (written implicitly as `{"type", "id"}`).

use proptest::prelude::*;
use serde_json::{Value, json};
use stele_policy::{EntityRef, Query};

const SCHEMA: &str = r#"
entity User;
entity Doc;
type Inner = { level: Long, tag?: String };
action read appliesTo {
  principal: User,
  resource: Doc,
  context: {
    zone: String,
    count?: Long,
    flag?: Bool,
    tags?: Set<String>,
    inner?: Inner,
    ip?: ipaddr,
    limit?: decimal,
    owner?: User,
    owners?: Set<User>,
  }
};
"#;

const NAMES: [&str; 10] = [
    "zone", "count", "flag", "tags", "inner", "ip", "limit", "owner", "owners", "stray",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        Just(json!(null)),
        Just(json!("corp")),
        Just(json!("10.0.0.1")),
        Just(json!("1.25")),
        Just(json!({"type": "User", "id": "alice"})),
        Just(json!({"__entity": {"type": "User", "id": "bob"}})),
        Just(json!({"__extn": {"fn": "ip", "arg": "10.0.0.2"}})),
        Just(json!({"fn": "decimal", "arg": "2.5"})),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![Just("level"), Just("tag"), Just("other")],
                inner,
                0..3
            )
            .prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn context() -> impl Strategy<Value = Value> {
    proptest::collection::btree_map(0..NAMES.len(), value(), 0..6).prop_map(|attributes| {
        Value::Object(
            attributes
                .into_iter()
                .map(|(i, v)| (NAMES[i].to_string(), v))
                .collect(),
        )
    })
}

fn entity(type_name: &str, id: &str) -> EntityRef {
    EntityRef {
        type_name: type_name.into(),
        id: id.into(),
    }
}

/// Alice reading a document, in `context`.
fn query(context: &Value) -> Query {
    Query::from_parts(
        &entity("User", "alice"),
        &entity("Action", "read"),
        &entity("Doc", "d"),
        Some(context.clone()),
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn the_fast_reading_equals_cedars(context in context()) {
        let schema = cedar_policy::Schema::from_cedarschema_str(SCHEMA).unwrap().0;
        let query = query(&context);
        let fast = query.to_request(&schema);
        let cedar = query.to_request_by_schema(&schema);
        match (&fast, &cedar) {
            (Ok(fast), Ok(cedar)) => prop_assert_eq!(fast.context(), cedar.context(), "{}", context),
            (Err(fast), Err(cedar)) => prop_assert_eq!(fast, cedar),
            _ => prop_assert!(false, "{context}: fast {fast:?}, Cedar {cedar:?}"),
        }
    }
}

#[test]
fn plain_and_implicit_contexts_both_read() {
    let schema = cedar_policy::Schema::from_cedarschema_str(SCHEMA)
        .unwrap()
        .0;
    for context in [
        json!({"zone": "corp", "count": 2, "tags": ["a"], "inner": {"level": 1}}),
        json!({"zone": "corp", "ip": "10.0.0.1", "owner": {"type": "User", "id": "alice"}}),
    ] {
        let query = query(&context);
        let fast = query.to_request(&schema).unwrap();
        let cedar = query.to_request_by_schema(&schema).unwrap();
        assert_eq!(fast.context(), cedar.context(), "{context}");
    }
}

/// An escape as the whole context: Cedar reads `{"__extn": {"fn":
/// "unknown", …}}` as an unknown, not a record, even where the schema
/// declares an attribute of that name; the fast path must not read it as a
/// record.
#[test]
fn an_escape_at_the_top_of_the_context_is_read_as_cedar_reads_it() {
    let schema = cedar_policy::Schema::from_cedarschema_str(
        r#"entity User; entity Doc;
        action read appliesTo { principal: User, resource: Doc,
          context: { "__extn": { "fn": String, "arg": String } } };"#,
    )
    .unwrap()
    .0;
    let query = query(&json!({"__extn": {"fn": "unknown", "arg": "x"}}));
    let fast = query.to_request(&schema).map(|r| r.context().cloned());
    let cedar = query
        .to_request_by_schema(&schema)
        .map(|r| r.context().cloned());
    assert_eq!(fast, cedar);
}
