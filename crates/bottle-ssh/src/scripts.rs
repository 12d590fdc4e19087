//! Shell scripts run in the container. Every value arrives as a positional
//! parameter (`$1`, …); nothing from a plan is ever part of the script text.

use crate::render::FILE_MARK;

/// Shared helpers: `is_ours PID NEEDLE…` is true for a live, non-zombie
/// process whose argv contains every needle (a recorded pid may be stale or
/// reused after a restart; a bottle's PID 1 may not reap zombies).
/// `take_lock STATE TOKEN` / `release_lock STATE TOKEN`: the in-container lock.
const HELPERS: &str = r#"
is_ours() {
  p=$1; shift
  case $p in ''|*[!0-9]*) return 1;; esac
  is_alive "$p" || return 1
  c=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || return 1
  for n in "$@"; do case $c in *"$n"*) ;; *) return 1;; esac; done
  return 0
}
# Alive and not a zombie. While a child is between fork and exec its cmdline
# can read empty, so a process just started is waited for with this, and
# checked with is_ours only once its socket exists.
# Builtins only (read, expansions): it runs in every polling loop.
is_alive() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  { IFS= read -r st < "/proc/$1/stat"; } 2>/dev/null || return 1
  st=${st##*) }; st=${st%% *}
  [ -n "$st" ] && [ "$st" != Z ]
}
# wait_socket PID SOCKET NAME NEEDLE…: until SOCKET exists (at most ~10 s),
# then require PID to be ours.
wait_socket() {
  wp=$1 ws=$2 wn=$3; shift 3
  i=0
  until [ -S "$ws" ]; do
    i=$((i+1))
    if [ "$i" -ge 1000 ] || ! is_alive "$wp"; then echo "$wn did not start on $ws" >&2; exit 1; fi
    sleep 0.01
  done
  is_ours "$wp" "$@" || { echo "$wn on $ws is not the process we started" >&2; exit 1; }
}
# Kill a process of ours and wait until it is gone: its exit handler unlinks
# its socket, which must not hit the socket of its successor.
stop() {
  is_ours "$@" || return 0
  kill "$1" 2>/dev/null
  i=0
  while is_ours "$@" && [ "$i" -lt 100 ]; do i=$((i+1)); sleep 0.05; done
  ! is_ours "$@"
}
uptime_s() { read -r u _ < /proc/uptime; echo "${u%%.*}"; }
# Start time of PID 1: changes when the container restarts.
boot_id() { set -- $(sed 's/^.*) //' /proc/1/stat); eval "echo \${20}"; }
# take_lock STATE TOKEN: a mkdir lock owned by a token, not a pid, because
# a provision holds it from its preflight exec to its key-loading exec.
# Re-entrant for the same token; broken when older than 60 s (a provisioner
# that died between its execs) or taken before the container restarted.
take_lock() {
  lock=$1/lock me=$2
  tries=0
  while ! mkdir "$lock" 2>/dev/null; do
    o=$(cat "$lock/owner" 2>/dev/null) || o=
    owner=${o%% *} rest=${o#* }
    since=${rest%% *} boot=${rest#* }
    [ -n "$o" ] && [ "$owner" = "$me" ] && return 0
    case $since in ''|*[!0-9]*) since=;; esac
    if [ -n "$since" ] && { [ "$boot" != "$(boot_id)" ] || [ $(( $(uptime_s) - since )) -ge 60 ]; }; then
      rm -rf "$lock"; continue
    fi
    tries=$((tries+1))
    if [ -z "$o" ] && [ "$tries" -ge 50 ]; then rm -rf "$lock"; continue; fi
    if [ "$tries" -ge 1200 ]; then echo "lock $lock is held by another provision" >&2; exit 75; fi
    sleep 0.1
  done
  echo "$me $(uptime_s) $(boot_id)" > "$lock/owner"
}
release_lock() {
  o=$(cat "$1/lock/owner" 2>/dev/null) || o=
  if [ "${o%% *}" = "$2" ]; then rm -rf "$1/lock"; fi
  return 0
}
"#;

/// Programs the scripts use besides the three the product needs.
pub(crate) const CORE_TOOLS: &[&str] = &[
    "id", "sed", "tr", "grep", "cat", "rm", "mkdir", "mv", "chmod", "sleep",
];

/// The checks both provision execs make before changing anything: `$@`
/// tools to look for. Prints `missing tool NAME`; sets `bad`.
const CHECK_TOOLS: &str = r#"
bad=0
for t in "$@"; do
  command -v "$t" >/dev/null 2>&1 || { echo "missing tool $t"; bad=1; }
done
"#;

/// The root exec of provision: `$1` user, `$2` home, `$3` state dir, `$4`
/// agent socket, `$5` public socket, `$6` `reuse` (keep a live agent) or
/// `fresh` (replace it, e.g. when the user locked it through the forwarder),
/// `$7` lock token, `$8` lines of key record, `$9…` tools to look for.
/// Stdin: the key record's lines, then agent protocol messages (key
/// material), relayed to the agent only.
/// Prints `missing tool|user|home [NAME]` (and changes nothing), or
/// `agent-started|agent-reused PID`,
/// `forwarder-started|forwarder-reused PID`, `key SHA256:…` (what the agent
/// holds afterwards), `done`. Holds the in-container lock while it runs.
pub(crate) fn provision() -> String {
    format!("{HELPERS}{PROVISION_HEAD}{CHECK_TOOLS}{PROVISION_BODY}")
}

const PROVISION_HEAD: &str = r#"
set -u
# Keep the key stream on fd 3 only, so no other command can read it.
exec 3<&0 0</dev/null
user=$1 home=$2 state=$3 agent=$4 public=$5 mode=$6 token=$7 nrecord=$8; shift 8
# Podman may drop the output of a process that leaves its stdin unread: an
# early exit reads (and discards) the rest of the key stream first.
keys_open=1
finish() { if [ -n "$keys_open" ]; then cat <&3 >/dev/null 2>&1; fi; }
trap finish EXIT
trap 'exit 1' INT TERM HUP
"#;

const PROVISION_BODY: &str = r#"
# The ids themselves come from the user's exec (it runs as the user).
id -u "$user" >/dev/null 2>&1 || { echo "missing user"; bad=1; }
[ -d "$home" ] || { echo "missing home"; bad=1; }
[ "$bad" = 0 ] || exit 0
umask 077
mkdir -p "$state" && chmod 700 "$state" || exit 1
take_lock "$state" "$token"
trap 'finish; release_lock "$state" "$token"' EXIT

i=0
while [ "$i" -lt "$nrecord" ]; do
  IFS= read -r line <&3 || { echo "the key record ended early" >&2; exit 1; }
  printf '%s\n' "$line"
  i=$((i+1))
done > "$state/keys.new" && mv -f "$state/keys.new" "$state/keys" || exit 1

agent_started= forwarder_started=
apid=$(cat "$state/agent.pid" 2>/dev/null) || apid=
if [ "$mode" != fresh ] && is_ours "$apid" ssh-agent "$agent" && [ -S "$agent" ]; then
  echo "agent-reused $apid"
else
  stop "$apid" ssh-agent "$agent"
  rm -f "$agent"
  ssh-agent -D -a "$agent" </dev/null >/dev/null 2>&1 3<&- &
  apid=$!
  echo "$apid" > "$state/agent.pid"
  agent_started=1
fi

fpid=$(cat "$state/forwarder.pid" 2>/dev/null) || fpid=
if is_ours "$fpid" socat "UNIX-LISTEN:$public" && [ -S "$public" ]; then
  echo "forwarder-reused $fpid"
else
  stop "$fpid" socat "UNIX-LISTEN:$public"
  rm -f "$public"
  socat "UNIX-LISTEN:$public,fork,mode=666,unlink-early" "UNIX-CONNECT:$agent" </dev/null >/dev/null 2>&1 3<&- &
  fpid=$!
  echo "$fpid" > "$state/forwarder.pid"
  forwarder_started=1
fi
# Both start at once (the forwarder connects to the agent only per client);
# the keys go in while the forwarder comes up.
if [ -n "$agent_started" ]; then
  wait_socket "$apid" "$agent" ssh-agent ssh-agent "$agent"
  # The socket exists from bind(); connect() is refused until listen().
  # ssh-add -l: 2 is "cannot connect", 0 or 1 an answer.
  i=0
  until SSH_AUTH_SOCK=$agent ssh-add -l >/dev/null 2>&1 || [ "$?" != 2 ]; do
    i=$((i+1))
    if [ "$i" -ge 500 ] || ! is_alive "$apid"; then echo "ssh-agent on $agent does not accept connections" >&2; exit 1; fi
    sleep 0.01
  done
  echo "agent-started $apid"
fi

# The agent may close on EOF before its replies are read: they are not
# relied on; the identities are listed afterwards instead.
socat -t 5 STDIO "UNIX-CONNECT:$agent" <&3 >/dev/null || { echo "could not write to the agent" >&2; exit 1; }
exec 3<&-
keys_open=
out=$(SSH_AUTH_SOCK=$agent ssh-add -l -E sha256 2>&1)
printf '%s\n' "$out" | while read -r bits fp rest; do
  case $fp in SHA256:*) echo "key $fp";; esac
done
if [ -n "$forwarder_started" ]; then
  wait_socket "$fpid" "$public" socat socat "UNIX-LISTEN:$public"
  echo "forwarder-started $fpid"
fi
echo done
"#;

/// The user's exec of provision, run as the user (so nothing under the
/// user's home is ever written by root, whatever the user put there):
/// `$1` home, `$2` lines of `config`, `$3` lines of `known_hosts` (0: none),
/// `$4…` tools to look for. Stdin: `config`'s lines, then `known_hosts`'s.
/// Prints `missing tool|home [NAME]` (and changes nothing), or `uid N`,
/// `gid N`, `removed PATH`, `done`.
pub(crate) fn user_files() -> String {
    format!(
        "{USER_FILES_HEAD}{}{CHECK_TOOLS}{USER_FILES_BODY}",
        is_mine()
    )
}

const USER_FILES_HEAD: &str = r#"
set -u
home=$1 nconfig=$2 nknown=$3; shift 3
# Podman may drop the output of a process that leaves its stdin unread: every
# exit reads (and discards) what is left of it first.
trap 'cat >/dev/null 2>&1' EXIT
trap 'exit 1' INT TERM HUP
"#;

const USER_FILES_BODY: &str = r#"
[ -d "$home" ] || { echo "missing home"; bad=1; }
[ "$bad" = 0 ] || exit 0
echo "uid $(id -u)"; echo "gid $(id -g)"
umask 077
ssh=${home%/}/.ssh
if [ -L "$ssh" ] || { [ -e "$ssh" ] && ! [ -d "$ssh" ]; }; then
  rm -f "$ssh" && echo "removed $ssh"
fi
mkdir -p "$ssh" || exit 1
# chmod says why it failed; the hint names the likely cause.
chmod 700 "$ssh" || {
  echo "cannot make $ssh private (mode 700): it must belong to $(id -un 2>/dev/null || id -u)" >&2; exit 1
}
# put NAME LINES: the next LINES lines of stdin into a new file, renamed over
# NAME (a reader never sees half a file).
put() {
  tmp=$ssh/.$1.bottle-$$
  i=0
  while [ "$i" -lt "$2" ]; do
    IFS= read -r line || { echo "$1 ended early" >&2; rm -f "$tmp"; exit 1; }
    printf '%s\n' "$line"
    i=$((i+1))
  done > "$tmp" && chmod 600 "$tmp" && mv -f "$tmp" "$ssh/$1" || { rm -f "$tmp"; exit 1; }
}
put config "$nconfig"
if [ "$nknown" -gt 0 ]; then
  put known_hosts "$nknown"
elif is_mine "$ssh/known_hosts"; then
  rm -f "$ssh/known_hosts" && echo "removed $ssh/known_hosts"
fi
echo done
"#;

/// `is_mine FILE`: FILE is a regular file provision wrote (first line is
/// [`FILE_MARK`]).
fn is_mine() -> String {
    format!(
        r#"
is_mine() {{
  [ -f "$1" ] && ! [ -L "$1" ] || return 1
  IFS= read -r first < "$1" 2>/dev/null || return 1
  [ "$first" = "{FILE_MARK}" ]
}}
"#
    )
}

/// Root part of verify: `$1` state, `$2` agent, `$3` public, `$4` user, `$5` home.
pub(crate) fn verify_root() -> String {
    format!("{HELPERS}{VERIFY_ROOT_BODY}")
}

const VERIFY_ROOT_BODY: &str = r#"
set -u
state=$1 agent=$2 public=$3 user=$4 home=$5
echo "uid $(id -u "$user" 2>/dev/null)"
echo "gid $(id -g "$user" 2>/dev/null)"
apid=$(cat "$state/agent.pid" 2>/dev/null) || apid=
fpid=$(cat "$state/forwarder.pid" 2>/dev/null) || fpid=
if is_ours "$apid" ssh-agent "$agent"; then echo "agent $apid alive"; else echo "agent ${apid:-none} dead"; fi
if is_ours "$fpid" socat "UNIX-LISTEN:$public"; then echo "forwarder $fpid alive"; else echo "forwarder ${fpid:-none} dead"; fi
for f in "$agent" "$public" "$state" "$home/.ssh" "$home/.ssh/config" "$home/.ssh/known_hosts"; do
  if [ -e "$f" ]; then
    echo "stat $(stat -c '%a %u %g %F' "$f" | tr ' ' '_' | sed 's/_/ /; s/_/ /; s/_/ /') $f"
    # Content, each line prefixed, so the host compares it with the plan.
    if [ -f "$f" ]; then echo "content $f"; sed 's/^/|/' "$f"; echo "end-content"; fi
  else
    echo "absent $f"
  fi
done
# Bounded: a home can hold large trees. A search that does not finish fails
# the check rather than passing it.
t=; if command -v timeout >/dev/null 2>&1; then t="timeout 30"; fi
found=$($t grep -rlsI -D skip -e 'PRIVATE KEY-----' /root /home /tmp /run /var/tmp 2>/dev/null); rc=$?
# 124: timed out (2, an unreadable file, still leaves a complete search).
[ "$rc" != 124 ] || echo "keyscan-incomplete $rc"
printf '%s\n' "$found" | head -n 20 | while IFS= read -r f; do [ -z "$f" ] || echo "keyfile $f"; done
if [ -f "$state/keys" ]; then sed 's/^/keystate /' "$state/keys"; fi
echo done
"#;

/// User part of verify, run as the user: `$1` agent, `$2` public, `$3`
/// agent pid, `$4` forwarder pid.
pub(crate) const VERIFY_USER: &str = r#"
set -u
agent=$1 public=$2 apid=$3 fpid=$4
out=$(SSH_AUTH_SOCK=$public ssh-add -l -E sha256 2>&1); echo "public-rc $?"
printf '%s\n' "$out" | while read -r bits fp rest; do
  case $fp in SHA256:*) echo "public-key $fp";; esac
done
SSH_AUTH_SOCK=$agent ssh-add -l >/dev/null 2>&1; echo "private-rc $?"
for p in "$apid" "$fpid"; do
  case $p in ''|*[!0-9]*) continue;; esac
  # Opening mem is what the kernel's ptrace check guards (reading offset 0
  # fails anyway). A subshell: a failed redirection on `:` exits the shell.
  if ( : < "/proc/$p/mem" ) 2>/dev/null; then echo "readable /proc/$p/mem"; else echo "denied /proc/$p/mem"; fi
  if cat "/proc/$p/environ" >/dev/null 2>&1; then echo "readable /proc/$p/environ"; else echo "denied /proc/$p/environ"; fi
done
echo done
"#;

/// Deprovision, root part: `$1` state, `$2` agent, `$3` public, `$4` lock
/// token. Stops the agent and forwarder, removes the sockets and the state.
pub(crate) fn deprovision() -> String {
    format!("{HELPERS}{DEPROVISION_BODY}")
}

const DEPROVISION_BODY: &str = r#"
set -u
state=$1 agent=$2 public=$3 token=$4
if [ -d "$state" ]; then take_lock "$state" "$token"; fi
apid=$(cat "$state/agent.pid" 2>/dev/null) || apid=
fpid=$(cat "$state/forwarder.pid" 2>/dev/null) || fpid=
if is_ours "$fpid" socat "UNIX-LISTEN:$public"; then stop "$fpid" socat "UNIX-LISTEN:$public" && echo "stopped forwarder $fpid"; fi
if is_ours "$apid" ssh-agent "$agent"; then stop "$apid" ssh-agent "$agent" && echo "stopped agent $apid"; fi
for s in "$public" "$agent"; do
  if [ -S "$s" ] || [ -L "$s" ]; then rm -f "$s" && echo "removed $s"; fi
done
if [ -d "$state" ]; then rm -rf "$state" && echo "removed $state"; fi
echo done
"#;

/// Deprovision, user part, run as the user: `$1` home. Removes the files
/// provision wrote (those that still start with [`FILE_MARK`]) and
/// `~/.ssh` when that leaves it empty.
pub(crate) fn deprovision_user() -> String {
    format!("{}{DEPROVISION_USER_BODY}", is_mine())
}

const DEPROVISION_USER_BODY: &str = r#"
set -u
ssh=${1%/}/.ssh
for f in "$ssh/config" "$ssh/known_hosts"; do
  if is_mine "$f"; then rm -f "$f" && echo "removed $f"; fi
done
if [ -d "$ssh" ] && ! [ -L "$ssh" ] && rm -d "$ssh" 2>/dev/null; then echo "removed $ssh"; fi
echo done
"#;

/// `list_keys`, root part: `$1` state dir, `$2` keys file name. Prints the
/// record (`FINGERPRINT DEADLINE HOSTS` lines), nothing when there is none.
pub(crate) const KEYS_ROOT: &str = r#"
if [ -f "$1/$2" ]; then cat "$1/$2"; fi
"#;

/// `list_keys`, user part: `$1` public socket. `ssh-add -l`'s own exit code.
pub(crate) const KEYS_USER: &str = r#"
SSH_AUTH_SOCK=$1 exec ssh-add -l -E sha256
"#;
