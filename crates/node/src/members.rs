//! What a member's id and addresses may be, checked where an operator
//! types them (`--member`, `add-learner`), before anything is signed; the
//! member set itself (no id or address twice) is the ledger's
//! (`stele_ledger::MemberSet`).

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
    #[error(
        "member {id}: its client and peer addresses are both {addr}; the Raft transport has a port of its own (--peer-listen)"
    )]
    SamePort { id: u64, addr: String },
}

/// A member: an id from 1, a client address and a peer address, each
/// `HOST:PORT` (no scheme), and not the same.
pub fn check_member(id: u64, addr: &str, peer_addr: &str) -> Result<(), MemberError> {
    check_address(id, addr)?;
    check_address(id, peer_addr)?;
    if addr == peer_addr {
        return Err(MemberError::SamePort {
            id,
            addr: addr.to_string(),
        });
    }
    Ok(())
}

/// One address of a member: `HOST:PORT`.
fn check_address(id: u64, addr: &str) -> Result<(), MemberError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_checked_before_they_are_written() {
        assert!(check_member(1, "127.0.0.1:7001", "127.0.0.1:7401").is_ok());
        assert!(check_member(2, "node-2.internal:7001", "node-2.internal:7401").is_ok());
        assert!(check_member(3, "[::1]:7001", "[::1]:7401").is_ok());
        assert_eq!(
            check_member(1, "a:1", "a:1"),
            Err(MemberError::SamePort {
                id: 1,
                addr: "a:1".into()
            })
        );
        for (id, addr) in [
            (0, "127.0.0.1:7001"),
            (1, "http://127.0.0.1:7001"),
            (1, "127.0.0.1"),
            (1, ":7001"),
            (1, "127.0.0.1:0"),
            (1, "127.0.0.1:70000"),
        ] {
            assert!(check_member(id, addr, "p:1").is_err(), "{id}={addr}");
            if id > 0 {
                assert!(check_member(id, "p:1", addr).is_err(), "{id}={addr}");
            }
        }
    }
}
