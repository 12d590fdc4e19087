//! Shell scripts run in the container. Every value arrives as a positional
//! parameter (`$1`, …); nothing from a plan is ever part of the script text.

/// Shared helpers: `is_ours PID NEEDLE…` is true for a live, non-zombie
/// process whose argv contains every needle (a recorded pid may be stale or
/// reused after a restart; a bottle's PID 1 may not reap zombies).
/// `take_lock STATE TOKEN` / `release_lock STATE TOKEN`: the in-container lock.
const HELPERS: &str = r#"
is_ours() {
  p=$1; shift
  case $p in ''|*[!0-9]*) return 1;; esac
  [ -r "/proc/$p/cmdline" ] || return 1
  st=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$p/stat" 2>/dev/null) || return 1
  [ "$st" != Z ] || return 1
  c=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || return 1
  for n in "$@"; do case $c in *"$n"*) ;; *) return 1;; esac; done
  return 0
}
# Alive and not a zombie. While a child is between fork and exec its cmdline
# can read empty, so a process just started is waited for with this, and
# checked with is_ours only once its socket exists.
is_alive() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  st=$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null) || return 1
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
uptime_s() { u=$(cat /proc/uptime); echo "${u%%.*}"; }
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
    "id", "sed", "tr", "grep", "cat", "rm", "mkdir", "mv", "sleep",
];

/// Exec #1 (root): `$1` user, `$2` home, `$3` state dir, `$4` lock token,
/// `$5…` tools to look for. Prints `missing tool|user|home [NAME]`, `uid N`,
/// `gid N`. When nothing is missing it takes the lock (released by exec #2).
pub(crate) fn preflight() -> String {
    format!("{HELPERS}{PREFLIGHT_BODY}")
}

const PREFLIGHT_BODY: &str = r#"
set -u
user=$1 home=$2 state=$3 token=$4; shift 4
bad=0
for t in "$@"; do
  command -v "$t" >/dev/null 2>&1 || { echo "missing tool $t"; bad=1; }
done
if uid=$(id -u "$user" 2>/dev/null) && gid=$(id -g "$user" 2>/dev/null); then
  echo "uid $uid"; echo "gid $gid"
else
  echo "missing user"; bad=1
fi
[ -d "$home" ] || { echo "missing home"; bad=1; }
[ "$bad" = 0 ] || exit 0
umask 077
mkdir -p "$state" && chmod 700 "$state" || exit 1
take_lock "$state" "$token"
# A symlink (or non-directory) at ~/.ssh would redirect what root writes next.
if [ -L "$home/.ssh" ] || { [ -e "$home/.ssh" ] && ! [ -d "$home/.ssh" ]; }; then
  rm -f "$home/.ssh" && echo "removed $home/.ssh"
fi
echo ok
"#;

/// Releases the lock after a failure between exec #1 and exec #2:
/// `$1` state, `$2` token.
pub(crate) fn release() -> String {
    format!("{HELPERS}release_lock \"$1\" \"$2\"\n")
}

/// Exec #2 (root): `$1` state dir, `$2` agent socket, `$3` public socket,
/// `$4` `reuse` (keep a live agent) or `fresh` (replace it, e.g. when the
/// user locked it through the forwarder), `$5` lock token.
/// Stdin: agent protocol messages (key material), relayed to the agent only.
/// Prints `agent-started|agent-reused PID`, `forwarder-started|forwarder-reused PID`,
/// `removed PATH`, `key SHA256:…` (what the agent holds afterwards).
pub(crate) fn provision() -> String {
    format!("{HELPERS}{PROVISION_BODY}")
}

const PROVISION_BODY: &str = r#"
set -u
# Keep the key stream on fd 3 only, so no other command can read it.
exec 3<&0 0</dev/null
state=$1 agent=$2 public=$3 mode=$4 token=$5
umask 077
[ -d "$state" ] || { echo "state dir $state is missing" >&2; exit 1; }
take_lock "$state" "$token"
trap 'release_lock "$state" "$token"' EXIT
trap 'exit 1' INT TERM HUP

# Converge files: drop what the previous run wrote and this one does not.
if [ -f "$state/files.new" ]; then
  if [ -f "$state/files" ]; then
    while IFS= read -r f; do
      [ -n "$f" ] || continue
      grep -qxF -- "$f" "$state/files.new" && continue
      if [ -d "$f" ] && ! [ -L "$f" ]; then rm -d "$f" 2>/dev/null; else rm -f "$f"; fi
      echo "removed $f"
    done < "$state/files"
  fi
  mv -f "$state/files.new" "$state/files"
fi

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
# Both start at once (the forwarder connects to the agent only per client).
if [ -n "$agent_started" ]; then
  wait_socket "$apid" "$agent" ssh-agent ssh-agent "$agent"
  echo "agent-started $apid"
fi
if [ -n "$forwarder_started" ]; then
  wait_socket "$fpid" "$public" socat socat "UNIX-LISTEN:$public"
  echo "forwarder-started $fpid"
fi

# The agent may close on EOF before its replies are read: they are not
# relied on; the identities are listed afterwards instead.
socat -t 5 STDIO "UNIX-CONNECT:$agent" <&3 >/dev/null || { echo "could not write to the agent" >&2; exit 1; }
exec 3<&-
out=$(SSH_AUTH_SOCK=$agent ssh-add -l -E sha256 2>&1)
printf '%s\n' "$out" | while read -r bits fp rest; do
  case $fp in SHA256:*) echo "key $fp";; esac
done
echo done
"#;

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

/// Deprovision (root): `$1` state, `$2` agent, `$3` public, `$4` lock token.
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
if [ -f "$state/files" ]; then
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    if [ -d "$f" ] && ! [ -L "$f" ]; then rm -d "$f" 2>/dev/null && echo "removed $f"
    elif [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f" && echo "removed $f"; fi
  done < "$state/files"
fi
if [ -d "$state" ]; then rm -rf "$state" && echo "removed $state"; fi
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
