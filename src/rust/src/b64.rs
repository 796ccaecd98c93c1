//! Base64 (standard alphabet, padded), the one encoding of the DBFS API's
//! payloads and of inline protocol messages. SIMD, chosen at run time: a
//! staged 80 MB request is 107 MB of base64 to write and read again, and the
//! scalar codec spent a quarter of a loopback call's CPU there.

use base64_simd::STANDARD;

pub fn encode(data: &[u8]) -> String {
    STANDARD.encode_to_string(data)
}

/// Append the encoding of `data` to `out`.
pub fn encode_into(data: &[u8], out: &mut String) {
    STANDARD.encode_append(data, out);
}

/// Decode `text` (surrounding whitespace ignored).
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, String> {
    let t = text.as_ref();
    let start = t.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(t.len());
    let end = t.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    STANDARD.decode_to_vec(&t[start..end]).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_input() {
        for n in [0usize, 1, 2, 3, 4, 100, 1 << 20] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
            let mut s = String::from("x");
            encode_into(&data, &mut s);
            assert_eq!(&s[1..], encode(&data));
            assert_eq!(decode(format!(" {}\n", encode(&data))).unwrap(), data);
        }
        assert_eq!(encode(b"hello"), "aGVsbG8=");
        assert!(decode("a$b=").is_err());
        assert!(decode("aGVsbG8").is_err());
    }
}
