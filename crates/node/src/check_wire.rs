//! A decision request on the gRPC wire, both ways: a `CheckRequest` read
//! as the decision path's [`Question`], and a [`Query`] written as a
//! `CheckRequest` (what the `stele` command and the load generator send).

use stele_decision::Question;
use stele_policy::{EntityRef, Query, QueryError};
use stele_proto::v1::{self as proto, CheckRequest};

/// The question a `CheckRequest` asks. Errors name the missing or bad
/// field.
pub fn question(request: CheckRequest) -> Result<Question, QueryError> {
    let entity = |role: &str, entity: Option<proto::EntityRef>| {
        entity
            .map(|e| EntityRef {
                type_name: e.r#type,
                id: e.id,
            })
            .ok_or_else(|| QueryError(format!("{role} is missing")))
    };
    let context = if request.context_json.trim().is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&request.context_json)
                .map_err(|e| QueryError(format!("context is not valid JSON: {e}")))?,
        )
    };
    let query = Query::from_parts(
        &entity("principal", request.principal)?,
        &entity("action", request.action)?,
        &entity("resource", request.resource)?,
        context,
    )?;
    Ok(query.into())
}

/// `query` as a `CheckRequest`, answered from `min_version` or later.
pub fn check_request(query: &Query, min_version: Option<u64>) -> CheckRequest {
    let [principal, action, resource] = query.entity_refs().map(|entity| proto::EntityRef {
        r#type: entity.type_name,
        id: entity.id,
    });
    CheckRequest {
        principal: Some(principal),
        action: Some(action),
        resource: Some(resource),
        context_json: query.context().to_string(),
        min_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_back_from_its_request() {
        let query = Query::parse(
            r#"User::"al\"ice""#,
            r#"Action::"read""#,
            r#"Doc::"d1""#,
            Some(r#"{"level": 3}"#),
        )
        .unwrap();
        let read = question(check_request(&query, Some(4))).unwrap();
        assert_eq!(read.query, query);
        assert!(read.described.is_empty());
    }

    #[test]
    fn a_missing_entity_is_named() {
        let mut request = check_request(
            &Query::parse(r#"User::"a""#, r#"Action::"r""#, r#"Doc::"d""#, None).unwrap(),
            None,
        );
        request.resource = None;
        assert_eq!(question(request).err().unwrap().0, "resource is missing");
    }
}
