//! RESP2, the Redis wire protocol: parsing requests (arrays of bulk strings,
//! and inline commands) and encoding replies.
//!
//! The parser works on a connection's input buffer and takes one complete
//! request at a time, so pipelined requests and requests split across reads
//! are both handled by calling it again: `Ok(None)` means "wait for more
//! bytes". A malformed request is an error; the caller answers with it and
//! closes that one connection, as Redis does.

use bytes::{Bytes, BytesMut};

/// How large requests may be. Redis's defaults, except where noted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Largest bulk string (Redis `proto-max-bulk-len`: 512 MiB).
    pub(crate) max_bulk: usize,
    /// Most arguments in one request (Redis: 1024 * 1024).
    pub(crate) max_args: usize,
    /// Longest inline command line (Redis: 64 KiB).
    pub(crate) max_inline: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline: 64 * 1024,
        }
    }
}

/// A request that cannot be parsed; the connection is answered and closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

fn error<T>(message: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(message.into()))
}

/// Parses a decimal integer by Redis's rules (its `string2ll`): an optional
/// `-`, then digits with no leading zero (`0` alone is fine); no `+`, no
/// spaces, no `-0`, and it must fit an `i64`.
pub(crate) fn strict_i64(digits: &[u8]) -> Option<i64> {
    let (negative, body) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    match body {
        [] => return None,
        [b'0'] if !negative => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut n: i64 = 0;
    for &d in body {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

/// Parses a decimal integer header line (`*3`, `$5`) at `from`; returns the
/// number (`None` if it is not one by Redis's rules) and where the next
/// line starts.
///
/// A line longer than `max_line` is refused whether it is complete or not,
/// so that the answer never depends on how the bytes were split.
#[allow(clippy::type_complexity)]
fn header(
    buf: &[u8],
    from: usize,
    max_line: usize,
    too_big: &str,
) -> Result<Option<(Option<i64>, usize)>, ProtocolError> {
    // The common case first, without a search for the newline: up to 18
    // digits (no overflow), no leading zero, then CRLF — a line the rules
    // below read the same way.
    let mut n: i64 = 0;
    let mut at = from + 1;
    while at < buf.len() && at < from + 19 && buf[at].is_ascii_digit() {
        n = n * 10 + i64::from(buf[at] - b'0');
        at += 1;
    }
    let digits = at - from - 1;
    if (digits == 1 || (digits > 1 && buf[from + 1] != b'0'))
        && buf.get(at..at + 2) == Some(b"\r\n")
    {
        return Ok(Some((Some(n), at + 2)));
    }
    let Some(newline) = memchr::memchr(b'\n', &buf[from..]) else {
        if buf.len() - from > max_line {
            return error(too_big);
        }
        return Ok(None);
    };
    if newline > max_line {
        return error(too_big);
    }
    // `buf[from]` is the type byte, so the line has at least one byte.
    let newline = from + newline;
    let digits = match buf[from + 1..newline].strip_suffix(b"\r") {
        Some(digits) => strict_i64(digits),
        None => None,
    };
    Ok(Some((digits, newline + 1)))
}

/// Where an argument lies in the buffer parsed: `start..end`.
pub(crate) type Span = (usize, usize);

/// Where the parser stopped inside a multibulk request that has not all
/// come yet, so that the next read goes on from there instead of scanning
/// the request again from its start. Its offsets count from where that
/// request's parse began (`from`): the caller keeps those bytes at the
/// front of its buffer and calls again with `from` = 0.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Arguments still expected (0: no request in progress).
    remaining: usize,
    /// Where the next argument's header starts.
    at: usize,
    /// The arguments found so far.
    spans: Vec<Span>,
}

impl Progress {
    /// Whether a request is partly parsed (its bytes must stay where they
    /// are).
    pub(crate) fn in_request(&self) -> bool {
        self.remaining > 0
    }
}

/// Most argument spans whose vector a connection keeps between requests.
const KEPT_SPANS: usize = 64;

/// Takes one complete request off the front of `buf`: its arguments, or
/// `Ok(None)` if more bytes are needed (nothing is consumed then).
#[cfg_attr(not(test), allow(dead_code))] // The fuzz tests use it.
pub(crate) fn parse_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    parse_request_from(buf, limits, &mut Progress::default())
}

/// As [`parse_request`], going on from `progress` (what an earlier call
/// found of a request not yet complete) and leaving it for the next call.
#[cfg_attr(not(test), allow(dead_code))] // The tests use it.
pub(crate) fn parse_request_from(
    buf: &mut BytesMut,
    limits: &Limits,
    progress: &mut Progress,
) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let mut spans = Vec::new();
    let Some(end) = parse_request_at(buf, 0, limits, progress, &mut spans)? else {
        return Ok(None);
    };
    let request = buf.split_to(end).freeze();
    Ok(Some(
        spans
            .iter()
            .map(|&(start, end)| request.slice(start..end))
            .collect(),
    ))
}

/// Parses one request starting at `buf[from]`, without copying: appends
/// the spans of its arguments (offsets in `buf`) to `out` and returns
/// where the next request starts, or `None` if more bytes are needed
/// (`progress` then keeps what was found, counted from `from`). A request
/// may have no arguments (`*0`). `out` is left as it was when more bytes
/// are needed and on an error.
///
/// An inline request with quotes is unquoted in place (the unquoted words
/// are never longer than the line), so that its arguments are spans too.
pub(crate) fn parse_request_at(
    buf: &mut [u8],
    from: usize,
    limits: &Limits,
    progress: &mut Progress,
    out: &mut Vec<Span>,
) -> Result<Option<usize>, ProtocolError> {
    if progress.remaining > 0 {
        return go_on(buf, from, limits, progress, out);
    }
    let mut at = from;
    loop {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'*') => return parse_multibulk(buf, from, at, limits, progress, out),
            // Empty lines between requests are ignored, as Redis does.
            Some(b'\r' | b'\n') => at += 1,
            Some(_) => {
                let before = out.len();
                let Some(end) = parse_inline(buf, at, limits, out)? else {
                    return Ok(None);
                };
                if out.len() > before {
                    return Ok(Some(end));
                }
                at = end;
            }
        }
    }
}

/// Where the lines that [`parse_request_at`] ignores end, from `at` on:
/// empty lines, and complete inline lines with no word. A connection lets
/// go of them even when no request follows yet (else a client sending only
/// those would grow its input without end).
pub(crate) fn skip_empty_lines(buf: &[u8], mut at: usize) -> usize {
    loop {
        match buf.get(at) {
            Some(b'\r' | b'\n') => at += 1,
            Some(_) => match memchr::memchr(b'\n', &buf[at..]) {
                Some(newline) if buf[at..at + newline].iter().all(u8::is_ascii_whitespace) => {
                    at += newline + 1;
                }
                _ => return at,
            },
            None => return at,
        }
    }
}

fn parse_multibulk(
    buf: &[u8],
    from: usize,
    at: usize,
    limits: &Limits,
    progress: &mut Progress,
    out: &mut Vec<Span>,
) -> Result<Option<usize>, ProtocolError> {
    let Some((count, next)) = header(buf, at, 32, "too big mbulk count string")? else {
        return Ok(None);
    };
    let Some(count) = count else {
        return error("invalid multibulk length");
    };
    if count <= 0 {
        return Ok(Some(next));
    }
    if count as u64 > limits.max_args as u64 {
        return error("invalid multibulk length");
    }
    // The spans go straight to `out` (room grows with the arguments found,
    // never by the count claimed: `*1048576\r\n` alone must not allocate
    // 16 MiB); only a request that has not all come is set aside.
    let before = out.len();
    let (stop, remaining) = bulk_strings(buf, next, count as usize, limits, |span| out.push(span))
        .inspect_err(|_| out.truncate(before))?;
    if remaining == 0 {
        return Ok(Some(stop));
    }
    // The spans' vector is kept from request to request, unless a large
    // request left it large.
    if progress.spans.capacity() > KEPT_SPANS {
        progress.spans = Vec::new();
    }
    progress.spans.clear();
    progress.spans.extend(
        out.drain(before..)
            .map(|(start, end)| (start - from, end - from)),
    );
    progress.remaining = remaining;
    progress.at = stop - from;
    Ok(None)
}

/// Goes on with a multibulk request an earlier call found incomplete.
fn go_on(
    buf: &[u8],
    from: usize,
    limits: &Limits,
    progress: &mut Progress,
    out: &mut Vec<Span>,
) -> Result<Option<usize>, ProtocolError> {
    let spans = &mut progress.spans;
    let found = bulk_strings(
        buf,
        from + progress.at,
        progress.remaining,
        limits,
        |(s, e)| {
            spans.push((s - from, e - from));
        },
    );
    let (stop, remaining) = found.inspect_err(|_| *progress = Progress::default())?;
    progress.remaining = remaining;
    if remaining > 0 {
        progress.at = stop - from;
        return Ok(None);
    }
    progress.at = 0;
    out.extend(
        progress
            .spans
            .drain(..)
            .map(|(start, end)| (start + from, end + from)),
    );
    Ok(Some(stop))
}

/// Checks up to `remaining` bulk strings from `at` on, as far as they have
/// come, handing each one's span to `found`; returns where it stopped and
/// how many are still to come.
fn bulk_strings(
    buf: &[u8],
    mut at: usize,
    mut remaining: usize,
    limits: &Limits,
    mut found: impl FnMut(Span),
) -> Result<(usize, usize), ProtocolError> {
    while remaining > 0 {
        match buf.get(at) {
            None => break,
            Some(b'$') => {}
            Some(&other) => {
                return error(format!("expected '$', got '{}'", printable_byte(other)));
            }
        }
        let Some((len, start)) = header(buf, at, 32, "too big bulk count string")? else {
            break;
        };
        let Some(len) = len.filter(|&len| len >= 0 && len as u64 <= limits.max_bulk as u64) else {
            return error("invalid bulk length");
        };
        let end = start.saturating_add(len as usize);
        if buf.len() < end.saturating_add(2) {
            // Room grows with what arrives (amortised doubling), never by
            // the length a header claims.
            break;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return error("bulk string not terminated by '\\r\\n'");
        }
        found((start, end));
        at = end + 2;
        remaining -= 1;
    }
    Ok((at, remaining))
}

/// A byte as Redis prints it in "expected '$', got …": itself if printable,
/// else a space (so that no error reply carries a control byte).
fn printable_byte(byte: u8) -> char {
    if byte.is_ascii_graphic() {
        char::from(byte)
    } else {
        ' '
    }
}

/// An inline request: a line of words. Returns where the next request
/// starts (the line may hold no word), `None` if the line is not all here.
fn parse_inline(
    buf: &mut [u8],
    at: usize,
    limits: &Limits,
    out: &mut Vec<Span>,
) -> Result<Option<usize>, ProtocolError> {
    let Some(newline) = memchr::memchr(b'\n', &buf[at..]) else {
        if buf.len() - at > limits.max_inline {
            return error("too big inline request");
        }
        return Ok(None);
    };
    // The same limit for a line that came whole, or the answer would depend
    // on how the bytes were split.
    if newline > limits.max_inline {
        return error("too big inline request");
    }
    let next = at + newline + 1;
    let mut end = at + newline;
    if end > at && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let line = &buf[at..end];
    if !line.contains(&b'"') && !line.contains(&b'\'') {
        // The common case: words split on whitespace, no copy.
        let mut i = at;
        while i < end {
            while i < end && buf[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while i < end && !buf[i].is_ascii_whitespace() {
                i += 1;
            }
            if i > start {
                out.push((start, i));
            }
        }
        return Ok(Some(next));
    }
    let before = out.len();
    if unquote(buf, at, end, out).is_none() {
        out.truncate(before);
        return error("unbalanced quotes in request");
    }
    Ok(Some(next))
}

/// Splits the inline line `buf[at..end]` with quoting as `redis-cli`
/// writes it: `"…"` with backslash escapes (`\n`, `\r`, `\t`, `\b`, `\a`,
/// `\\`, `\"`, `\xHH`), `'…'` with only `\'`. A closing quote must end the
/// word. The words are written over the line, in place (a word is never
/// longer than its quoted text: writing never passes reading), and their
/// spans appended to `out`. `None` if the quotes do not balance.
fn unquote(buf: &mut [u8], at: usize, end: usize, out: &mut Vec<Span>) -> Option<()> {
    let line = at..end;
    let get = |buf: &[u8], i: usize| line.contains(&i).then(|| buf[i]);
    // Read at `i`, write at `w` (`w <= i` throughout).
    let (mut i, mut w) = (at, at);
    loop {
        while get(buf, i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        let Some(first) = get(buf, i) else {
            return Some(());
        };
        let start = w;
        match first {
            b'"' => {
                i += 1;
                loop {
                    match get(buf, i)? {
                        b'"' => break,
                        b'\\' => {
                            let escaped = get(buf, i + 1)?;
                            let hex =
                                |at: usize| get(buf, at).and_then(|b| char::from(b).to_digit(16));
                            if escaped == b'x' {
                                if let (Some(high), Some(low)) = (hex(i + 2), hex(i + 3)) {
                                    buf[w] = (high * 16 + low) as u8;
                                    w += 1;
                                    i += 4;
                                    continue;
                                }
                            }
                            buf[w] = match escaped {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 0x08,
                                b'a' => 0x07,
                                other => other,
                            };
                            w += 1;
                            i += 2;
                        }
                        byte => {
                            buf[w] = byte;
                            w += 1;
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            b'\'' => {
                i += 1;
                loop {
                    match get(buf, i)? {
                        b'\'' => break,
                        b'\\' if get(buf, i + 1) == Some(b'\'') => {
                            buf[w] = b'\'';
                            w += 1;
                            i += 2;
                        }
                        byte => {
                            buf[w] = byte;
                            w += 1;
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            _ => {
                while let Some(byte) = get(buf, i).filter(|b| !b.is_ascii_whitespace()) {
                    buf[w] = byte;
                    w += 1;
                    i += 1;
                }
            }
        }
        // A closing quote must be followed by a space or the end.
        if get(buf, i).is_some_and(|b| !b.is_ascii_whitespace()) {
            return None;
        }
        out.push((start, w));
    }
}

/// Appends a simple string reply (`+OK`).
pub(crate) fn simple(out: &mut BytesMut, text: &str) {
    out.extend_from_slice(b"+");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends an error reply (`-ERR …`); `text` includes the error code.
pub(crate) fn error_reply(out: &mut BytesMut, text: &str) {
    error_reply_bytes(out, text.as_bytes());
}

/// Appends an error reply from raw bytes (which may echo a client's
/// arguments): CR and LF become spaces, as Redis maps them, so that an
/// error can never end early and smuggle a reply of its own.
pub(crate) fn error_reply_bytes(out: &mut BytesMut, text: &[u8]) {
    out.extend_from_slice(b"-");
    out.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Appends an integer reply.
pub(crate) fn integer(out: &mut BytesMut, n: i64) {
    out.extend_from_slice(b":");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends a bulk string reply, or the nil bulk for `None`.
pub(crate) fn bulk(out: &mut BytesMut, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(b"$-1\r\n"),
        Some(value) => {
            out.extend_from_slice(b"$");
            out.extend_from_slice(itoa::Buffer::new().format(value.len()).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends an array header for `len` elements (which the caller appends).
pub(crate) fn array(out: &mut BytesMut, len: usize) {
    out.extend_from_slice(b"*");
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut requests = Vec::new();
        while let Some(request) = parse_request(&mut buf, &Limits::default())? {
            requests.push(request);
        }
        Ok(requests)
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn parses_pipelined_multibulk_and_inline_requests() {
        let requests =
            parse_all(b"*1\r\n$4\r\nPING\r\nSET a  b\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n").unwrap();
        assert_eq!(
            requests,
            [vec!["PING"], vec!["SET", "a", "b"], vec!["GET", "a"]]
        );
    }

    #[test]
    fn inline_requests_unquote_as_redis_cli_quotes() {
        let requests =
            parse_all(b"SET \"two words\" 'it\\'s'\r\nECHO \"a\\x41\\n\\\"\"\r\n").unwrap();
        assert_eq!(
            requests,
            [vec!["SET", "two words", "it's"], vec!["ECHO", "aA\n\""]]
        );
        assert!(parse_all(b"GET \"open\r\n").is_err());
        assert!(parse_all(b"GET \"a\"b\r\n").is_err());
    }

    #[test]
    fn waits_for_the_rest_of_a_split_request() {
        let partial = b"*2\r\n$3\r\nGET\r\n$1";
        let mut buf = BytesMut::from(&partial[..]);
        assert_eq!(parse_request(&mut buf, &Limits::default()).unwrap(), None);
        assert_eq!(buf.len(), partial.len(), "nothing consumed");
        buf.extend_from_slice(b"\r\na\r\n");
        assert_eq!(
            parse_request(&mut buf, &Limits::default())
                .unwrap()
                .unwrap(),
            ["GET", "a"]
        );
    }

    #[test]
    fn rejects_malformed_and_oversize_requests() {
        assert!(parse_all(b"*1\r\n+PING\r\n").is_err());
        assert!(parse_all(b"*x\r\n").is_err());
        assert!(parse_all(b"*1\r\n$3\r\nabcd\r\n").is_err());
        let limits = Limits {
            max_bulk: 4,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"*1\r\n$5\r\n"[..]);
        assert!(parse_request(&mut buf, &limits).is_err());
        let limits = Limits {
            max_inline: 8,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"AAAAAAAAAAAAAAAA"[..]);
        assert!(parse_request(&mut buf, &limits).is_err());
    }

    /// Feeds `input` one byte at a time, as a slow peer may send it.
    fn parse_bytewise(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::new();
        let mut requests = Vec::new();
        for &byte in input {
            buf.extend_from_slice(&[byte]);
            while let Some(request) = parse_request(&mut buf, limits)? {
                requests.push(request);
            }
        }
        Ok(requests)
    }

    // Found by fuzzing (tests/fuzz_decoders.rs): a complete header line of
    // 40 leading zeros was accepted, the same line in pieces refused.
    #[test]
    fn a_header_line_over_32_bytes_is_refused_however_it_is_split() {
        let input = format!("*{}1\r\n$4\r\nPING\r\n", "0".repeat(40));
        assert!(parse_all(input.as_bytes()).is_err());
        assert!(parse_bytewise(input.as_bytes(), &Limits::default()).is_err());
        let input = format!("*1\r\n${}4\r\nPING\r\n", "0".repeat(40));
        assert!(parse_all(input.as_bytes()).is_err());
        assert!(parse_bytewise(input.as_bytes(), &Limits::default()).is_err());
        // 32 bytes before the newline is still a header (one that Redis's
        // rules refuse for its leading zeros).
        let input = format!("*{}1\r\n$4\r\nPING\r\n", "0".repeat(29));
        let invalid = Err(ProtocolError("invalid multibulk length".into()));
        assert_eq!(parse_all(input.as_bytes()), invalid);
        assert_eq!(
            parse_bytewise(input.as_bytes(), &Limits::default()),
            invalid
        );
    }

    // Found by fuzzing: an inline line over `max_inline` was accepted when
    // it came in one read, refused when it came in pieces.
    #[test]
    fn an_inline_line_over_the_limit_is_refused_however_it_is_split() {
        let limits = Limits {
            max_inline: 8,
            ..Limits::default()
        };
        let mut whole = BytesMut::from(&b"SET key value\r\n"[..]);
        assert!(parse_request(&mut whole, &limits).is_err());
        assert!(parse_bytewise(b"SET key value\r\n", &limits).is_err());
        // 8 bytes before the newline is still a request.
        let mut whole = BytesMut::from(&b"GET key\r\n"[..]);
        assert_eq!(
            parse_request(&mut whole, &limits).unwrap().unwrap(),
            ["GET", "key"]
        );
        assert_eq!(
            parse_bytewise(b"GET key\r\n", &limits).unwrap(),
            [vec!["GET", "key"]]
        );
    }

    #[test]
    fn integers_follow_redis_rules() {
        for good in [
            "0",
            "5",
            "-5",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(strict_i64(good.as_bytes()), good.parse().ok(), "{good}");
        }
        for bad in [
            "+5",
            "007",
            "-0",
            "",
            "-",
            " 5",
            "5 ",
            "9223372036854775808",
            "1e3",
        ] {
            assert_eq!(strict_i64(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn headers_are_refused_unless_redis_would_read_them() {
        let multibulk = Err(ProtocolError("invalid multibulk length".into()));
        let bulk = Err(ProtocolError("invalid bulk length".into()));
        assert_eq!(parse_all(b"*01\r\n$4\r\nPING\r\n"), multibulk);
        assert_eq!(parse_all(b"*+1\r\n$4\r\nPING\r\n"), multibulk);
        assert_eq!(parse_all(b"*1\r\n$+4\r\nPING\r\n"), bulk);
        assert_eq!(parse_all(b"*1\r\n$04\r\nPING\r\n"), bulk);
        assert_eq!(parse_all(b"*1\r\n$-0\r\n\r\n"), bulk);
        // No reply text echoes a header: a CR inside one stays out.
        let error = parse_all(b"*1\r2\r\n").unwrap_err().to_string();
        assert!(!error.contains('\r'), "{error:?}");
    }

    #[test]
    fn requests_of_one_read_are_spans_of_its_buffer_and_a_partial_one_appends_nothing() {
        let mut buf = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING x\r\n\r\n*0\r\n*2\r\n$3\r\nGET".to_vec();
        let (limits, mut progress, mut out) = (Limits::default(), Progress::default(), Vec::new());
        let (mut at, mut ends) = (0, Vec::new());
        while let Some(next) =
            parse_request_at(&mut buf, at, &limits, &mut progress, &mut out).unwrap()
        {
            ends.push(out.len());
            at = next;
        }
        let words = |buf: &[u8], out: &[Span]| -> Vec<Vec<u8>> {
            out.iter().map(|&(s, e)| buf[s..e].to_vec()).collect()
        };
        // GET a, PING x, and the empty `*0` request; the blank line is none.
        assert_eq!(words(&buf, &out), [&b"GET"[..], b"a", b"PING", b"x"]);
        assert_eq!(ends, [2, 4, 4]);
        // The caller keeps the partial request at the front of its buffer;
        // the rest of it completes it.
        let mut rest = buf[at..].to_vec();
        rest.extend_from_slice(b"\r\n$1\r\nb\r\n");
        let mut out = Vec::new();
        let end = parse_request_at(&mut rest, 0, &limits, &mut progress, &mut out).unwrap();
        assert_eq!(end, Some(rest.len()));
        assert_eq!(words(&rest, &out), [&b"GET"[..], b"b"]);
        // An error appends nothing either.
        let mut bad = b"*2\r\n$3\r\nGET\r\n?".to_vec();
        assert!(
            parse_request_at(&mut bad, 0, &limits, &mut Progress::default(), &mut out).is_err()
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn empty_lines_and_lines_of_spaces_are_skipped_up_to_a_request_or_a_partial_line() {
        assert_eq!(skip_empty_lines(b"\r\n \t \r\n\n*1\r\n", 0), 8);
        assert_eq!(
            skip_empty_lines(b"\r\n  ", 0),
            2,
            "a line not yet ended stays"
        );
        assert_eq!(skip_empty_lines(b"x\r\n  \r\n", 0), 0);
        assert_eq!(skip_empty_lines(b"x\r\n  \r\n", 3), 7);
    }

    #[test]
    fn quoted_inline_words_are_unquoted_in_place() {
        let mut buf = b"x SET \"a b\" 'c\\'d' \"\\x41\\n\" e\r\n".to_vec();
        let mut out = Vec::new();
        let end = parse_request_at(
            &mut buf,
            2,
            &Limits::default(),
            &mut Progress::default(),
            &mut out,
        );
        assert_eq!(end, Ok(Some(buf.len())));
        let words: Vec<&[u8]> = out.iter().map(|&(s, e)| &buf[s..e]).collect();
        assert_eq!(words, [&b"SET"[..], b"a b", b"c'd", b"A\n", b"e"]);
        assert_eq!(&buf[..2], b"x ", "nothing before the request is touched");
    }

    #[test]
    fn a_request_trickled_in_pieces_is_scanned_once() {
        // 20,000 arguments, fed 7 bytes at a time: with the progress kept,
        // each piece costs only its own bytes.
        let args: Vec<Vec<u8>> = (0..20_000).map(|i| format!("v{i}").into_bytes()).collect();
        let wire = encode(&args);
        let mut buf = BytesMut::new();
        let mut progress = Progress::default();
        let mut parsed = None;
        for piece in wire.chunks(7) {
            buf.extend_from_slice(piece);
            if let Some(request) =
                parse_request_from(&mut buf, &Limits::default(), &mut progress).unwrap()
            {
                parsed = Some(request);
            }
            // Never more than one argument's worth rescanned: the progress
            // points at most a few bytes behind the buffer's end.
            assert!(progress.remaining == 0 || buf.len() - progress.at < 32);
        }
        assert_eq!(parsed.unwrap().len(), 20_000);
        assert!(buf.is_empty());
    }

    proptest! {
        #[test]
        fn any_request_split_anywhere_parses_back(
            requests in prop::collection::vec(prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5), 1..5),
            cut in 0usize..200,
        ) {
            let wire: Vec<u8> = requests.iter().flat_map(|r| encode(r)).collect();
            let cut = cut.min(wire.len());
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut parsed = Vec::new();
            while let Some(r) = parse_request(&mut buf, &Limits::default()).unwrap() {
                parsed.push(r);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(r) = parse_request(&mut buf, &Limits::default()).unwrap() {
                parsed.push(r);
            }
            let parsed: Vec<Vec<Vec<u8>>> = parsed.into_iter().map(|r| r.into_iter().map(|a| a.to_vec()).collect()).collect();
            prop_assert_eq!(parsed, requests);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn a_header_line_reads_as_redis_reads_its_digits(
            text in "-?[0-9]{0,21}|[0-9+ -]{0,6}",
        ) {
            let line = format!("${text}\r\nrest");
            let read = header(line.as_bytes(), 0, 32, "too big").unwrap();
            prop_assert_eq!(read, Some((strict_i64(text.as_bytes()), text.len() + 3)));
        }

        #[test]
        fn garbage_never_panics(input in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_all(&input);
        }
    }
}
