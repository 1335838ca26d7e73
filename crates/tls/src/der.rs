//! The few fields of an X.509 certificate stele reads, from its DER: the
//! subject's common name, the SubjectPublicKeyInfo, and the URIs of the
//! subject alternative names. Every read is bounds-checked and a
//! certificate that does not parse is an error, never a panic. Only
//! certificates the TLS handshake already verified against the CA reach it
//! on a node.

/// A DER element: its tag and its contents.
struct Element<'a> {
    tag: u8,
    contents: &'a [u8],
    /// The whole element, header included.
    raw: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const EXTENSIONS: u8 = 0xa3;
const URI: u8 = 0x86;
/// 2.5.4.3, commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// 2.5.29.17, subjectAltName.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

/// Reads one element from the front of `input`; returns it and the rest.
fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let tag = *input.first()?;
    let first = *input.get(1)?;
    let (length, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut length = 0usize;
        for byte in input.get(2..2 + count)? {
            length = length.checked_mul(256)?.checked_add(usize::from(*byte))?;
        }
        (length, 2 + count)
    };
    let end = header.checked_add(length)?;
    let raw = input.get(..end)?;
    Some((
        Element {
            tag,
            contents: &raw[header..],
            raw,
        },
        &input[end..],
    ))
}

/// The elements of a constructed element's contents, in order.
fn children(mut contents: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut out = Vec::new();
    while !contents.is_empty() {
        let (child, rest) = element(contents)?;
        out.push(child);
        contents = rest;
    }
    Some(out)
}

/// What stele reads of a certificate.
pub struct Fields<'a> {
    pub common_name: Option<&'a str>,
    pub spki: &'a [u8],
    pub uris: Vec<&'a str>,
}

/// Reads a certificate's fields; `None` if it is not a certificate.
pub fn read(der: &[u8]) -> Option<Fields<'_>> {
    let (certificate, rest) = element(der)?;
    if certificate.tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let (tbs, _) = element(certificate.contents)?;
    if tbs.tag != SEQUENCE {
        return None;
    }
    let fields = children(tbs.contents)?;
    // version [0] is optional; then serial, signature, issuer, validity,
    // subject, subjectPublicKeyInfo, and [1], [2], [3] optional.
    let start = usize::from(fields.first()?.tag == 0xa0);
    let subject = fields.get(start + 4)?;
    let spki = fields.get(start + 5)?;
    if subject.tag != SEQUENCE || spki.tag != SEQUENCE {
        return None;
    }
    let common_name = common_name(subject.contents)?;
    let mut uris = Vec::new();
    if let Some(extensions) = fields[start + 6..].iter().find(|f| f.tag == EXTENSIONS) {
        let (list, _) = element(extensions.contents)?;
        for extension in children(list.contents)? {
            let parts = children(extension.contents)?;
            let (id, value) = (parts.first()?, parts.last()?);
            if id.tag == OID && id.contents == SUBJECT_ALT_NAME && value.tag == OCTET_STRING {
                let (names, _) = element(value.contents)?;
                for name in children(names.contents)? {
                    if name.tag == URI {
                        uris.push(std::str::from_utf8(name.contents).ok()?);
                    }
                }
            }
        }
    }
    Some(Fields {
        common_name,
        spki: spki.raw,
        uris,
    })
}

/// The first commonName of a Name; `Some(None)` when it has none.
fn common_name(name: &[u8]) -> Option<Option<&str>> {
    for set in children(name)? {
        if set.tag != SET {
            return None;
        }
        for attribute in children(set.contents)? {
            let parts = children(attribute.contents)?;
            if let [id, value] = parts.as_slice()
                && id.tag == OID
                && id.contents == COMMON_NAME
            {
                return Some(std::str::from_utf8(value.contents).ok());
            }
        }
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_or_overlong_input_is_refused_without_a_panic() {
        assert!(read(&[]).is_none());
        assert!(read(&[0x30]).is_none());
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none());
        assert!(read(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
        assert!(read(&[0x30, 0x02, 0x30, 0x00]).is_none());
        // Every prefix and every one-byte change of a real certificate.
        let issued = crate::issue::new_ca("t").unwrap();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(issued.cert_pem.as_bytes())
            .map(|d: rustls::pki_types::CertificateDer<'static>| d.to_vec())
            .unwrap();
        assert!(read(&der).is_some());
        for end in 0..der.len() {
            assert!(read(&der[..end]).is_none(), "prefix {end}");
        }
        for at in 0..der.len() {
            let mut changed = der.clone();
            changed[at] ^= 0xff;
            let _ = read(&changed);
        }
    }
}
