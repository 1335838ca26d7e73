//! What a cluster member may be, checked before anything reaches Raft:
//! membership is written into the log for good, so a bad entry must never
//! get there.

use std::collections::BTreeSet;

use thiserror::Error;

/// A member or a membership that must not reach Raft.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MemberError {
    #[error("member {id}={addr}: {why}")]
    Member {
        id: u64,
        addr: String,
        why: &'static str,
    },
    #[error("node id {0} is given twice")]
    DuplicateId(u64),
    #[error("address {0} is given twice")]
    DuplicateAddress(String),
}

/// A member: an id from 1, and an address `HOST:PORT` (no scheme; nodes
/// dial `http://HOST:PORT`).
pub fn check_member(id: u64, addr: &str) -> Result<(), MemberError> {
    let bad = |why: &'static str| {
        Err(MemberError::Member {
            id,
            addr: addr.to_string(),
            why,
        })
    };
    if id == 0 {
        return bad("node ids start at 1");
    }
    if addr.contains("://") {
        return bad("give HOST:PORT, without a scheme");
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("the address must be HOST:PORT");
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return bad("the host is missing or not a host name or IP address");
    }
    if !matches!(port.parse::<u16>(), Ok(port) if port > 0) {
        return bad("the port must be a number from 1 to 65535");
    }
    Ok(())
}

/// A whole membership: every member valid, no id or address twice.
pub fn check_members<'a>(
    members: impl IntoIterator<Item = (u64, &'a str)>,
) -> Result<(), MemberError> {
    let mut ids = BTreeSet::new();
    let mut addrs = BTreeSet::new();
    for (id, addr) in members {
        check_member(id, addr)?;
        if !ids.insert(id) {
            return Err(MemberError::DuplicateId(id));
        }
        if !addrs.insert(addr) {
            return Err(MemberError::DuplicateAddress(addr.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_checked_before_they_are_written() {
        assert!(check_member(1, "127.0.0.1:7001").is_ok());
        assert!(check_member(2, "node-2.internal:7001").is_ok());
        assert!(check_member(3, "[::1]:7001").is_ok());
        for (id, addr) in [
            (0, "127.0.0.1:7001"),
            (1, "http://127.0.0.1:7001"),
            (1, "127.0.0.1"),
            (1, ":7001"),
            (1, "127.0.0.1:0"),
            (1, "127.0.0.1:70000"),
        ] {
            assert!(check_member(id, addr).is_err(), "{id}={addr}");
        }
        assert!(check_members([(1, "a:1"), (1, "b:1")]).is_err());
        assert!(check_members([(1, "a:1"), (2, "a:1")]).is_err());
        assert!(check_members([(1, "a:1"), (2, "b:1")]).is_ok());
    }
}
