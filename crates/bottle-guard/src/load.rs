//! `bottle-guard load`: root's key stream into the agent.
//!
//! The provisioner sends agent protocol frames (remove all, then one add
//! per key). The guard writes them to the agent one at a time and reads
//! each answer, so a refusal (a locked or broken agent) is told apart from
//! success, then lists what the agent holds. With the guard doing this, a
//! guarded bottle's root runs neither `socat` nor `ssh-add`.

use crate::wire::Reader;
use crate::{fingerprint, msg, MAX_FRAME};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// How long a just-started agent may take to accept connections (it binds
/// before it listens).
pub const AGENT_START: Duration = Duration::from_secs(5);
/// How long the agent may take to answer one request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to the agent at `agent`, waiting up to [`AGENT_START`]
/// for one that is starting, with [`ANSWER_TIMEOUT`] on its reads.
pub fn connect(agent: &Path) -> std::io::Result<UnixStream> {
    let began = Instant::now();
    let stream = loop {
        match UnixStream::connect(agent) {
            Ok(s) => break s,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) && began.elapsed() < AGENT_START =>
            {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    };
    stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    Ok(stream)
}

/// More frames than any plan loads (one per key, and one remove-all).
pub const MAX_FRAMES: usize = 1024;
/// `SSH_AGENT_SUCCESS`.
const SUCCESS: u8 = 6;
/// `SSH2_AGENT_IDENTITIES_ANSWER`.
const IDENTITIES_ANSWER: u8 = 12;

/// Why the keys did not all go in.
#[derive(Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The agent answered a request with something other than success:
    /// the request's index and message number.
    Refused { index: usize, kind: u8 },
    /// The key stream or the agent's answers broke the protocol.
    Malformed(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Refused { index, kind } => write!(
                f,
                "the agent refused request {index} ({})",
                crate::request_name(*kind)
            ),
            LoadError::Malformed(why) => f.write_str(why),
        }
    }
}

fn malformed(why: impl std::fmt::Display) -> LoadError {
    LoadError::Malformed(why.to_string())
}

/// One length-prefixed frame from `from`; `None` at a clean end between
/// frames. Zeroized on drop: the frames carry private keys.
fn read_frame(from: &mut impl Read) -> Result<Option<Zeroizing<Vec<u8>>>, LoadError> {
    let mut len = [0u8; 4];
    match from.read(&mut len[..1]) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(malformed(e)),
    }
    from.read_exact(&mut len[1..]).map_err(malformed)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(malformed("a frame length out of bounds"));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    from.read_exact(&mut body).map_err(malformed)?;
    Ok(Some(body))
}

fn write_frame(to: &mut impl Write, body: &[u8]) -> Result<(), LoadError> {
    crate::wire::write_frame(to, body).map_err(malformed)
}

/// Write each frame of `keys` to `agent`, read its answer, then list the
/// agent's identities: their `SHA256:` fingerprints, in the agent's order.
/// Only add and remove-all requests are sent on: the stream is root's, but
/// the guard passes on nothing it was not made for.
pub fn load(
    agent: &mut (impl Read + Write),
    keys: &mut impl Read,
) -> Result<Vec<String>, LoadError> {
    let mut index = 0;
    while let Some(frame) = read_frame(keys)? {
        if index == MAX_FRAMES {
            return Err(malformed("more frames than any plan loads"));
        }
        let kind = frame[0];
        // Add, remove-all, add-constrained.
        if ![17, 19, 25].contains(&kind) {
            return Err(malformed(format!(
                "request {index} is a {}, not a key to load",
                crate::request_name(kind)
            )));
        }
        write_frame(agent, &frame)?;
        let answer = read_frame(agent)?.ok_or_else(|| malformed("the agent closed"))?;
        if answer[..] != [SUCCESS] {
            return Err(LoadError::Refused { index, kind });
        }
        index += 1;
    }
    write_frame(agent, &[msg::REQUEST_IDENTITIES])?;
    let answer = read_frame(agent)?.ok_or_else(|| malformed("the agent closed"))?;
    identities(&answer).map_err(malformed)
}

/// The fingerprints in an `IDENTITIES_ANSWER`, read to its last byte.
fn identities(answer: &[u8]) -> Result<Vec<String>, String> {
    let mut r = Reader::new(answer);
    let bad = |e: crate::wire::Malformed| format!("the agent's identities: {}", e.0);
    if r.byte().map_err(bad)? != IDENTITIES_ANSWER {
        return Err("the agent did not list its identities".into());
    }
    let n = r.u32().map_err(bad)? as usize;
    if n > MAX_FRAMES {
        return Err("the agent lists more identities than were loaded".into());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let blob = r.string().map_err(bad)?;
        r.string().map_err(bad)?;
        out.push(fingerprint(blob).map_err(bad)?);
    }
    r.finish().map_err(bad)?;
    Ok(out)
}
