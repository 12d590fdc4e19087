//! Shell scripts run in the container. Every value arrives as a positional
//! parameter (`$1`, …); nothing from a plan is ever part of the script text.

use crate::render::FILE_MARK;

/// Shared helpers of root's scripts.
///
/// `is_ours PID START NEEDLE…` is true for a live, non-zombie process that
/// runs as root, started at START (field 22 of `/proc/PID/stat`, recorded
/// with the pid) and whose argv contains every needle: a recorded pid may
/// be stale, or reused after a restart by a process of the user's.
/// `take_lock STATE TOKEN` / `release_lock STATE TOKEN`: the in-container lock.
pub(crate) const HELPERS: &str = r#"
# ssh-agent's PKCS#11/FIDO middleware allow-list: a pattern that matches no
# path, so a client's smartcard or security-key request is refused before
# any library is opened (the default, /usr/lib*/*,/usr/local/lib*/*, has
# root load whatever the user can write there). `agent_is_ours` also
# requires it: an agent started without it is neither reused nor reported
# alive.
agent_providers='!*'
agent_is_ours() { # PID START SOCKET
  is_ours "$1" "$2" ssh-agent "-P $agent_providers -a $3"
}
# The forwarder on PUBLIC: a guard from STATE (any version), or the socat
# relay of a bottle provisioned before the guard.
forwarder_is_ours() { # PID START STATE PUBLIC
  is_ours "$1" "$2" "$3/guard-" "--listen $4" || is_ours "$1" "$2" socat "UNIX-LISTEN:$4"
}
stop_forwarder() { # PID START STATE PUBLIC
  if is_ours "$1" "$2" "$3/guard-" "--listen $4"; then stop "$1" "$2" "$3/guard-" "--listen $4"
  else stop "$1" "$2" socat "UNIX-LISTEN:$4"; fi
}
# The fields of /proc/PID/stat after the command name (which may hold
# spaces and parentheses): $1 of them is field 3, the state.
stat_tail() {
  case $1 in ''|*[!0-9]*) return 1;; esac
  { IFS= read -r st < "/proc/$1/stat"; } 2>/dev/null || return 1
  echo "${st##*) }"
}
# start_time PID: field 22, in clock ticks since boot.
start_time() {
  t=$(stat_tail "$1") || return 1
  # shellcheck disable=SC2086 # split into fields on purpose
  set -- $t
  [ "$#" -ge 20 ] || return 1
  eval "echo \${20}"
}
# Real, effective, saved and filesystem uid all 0.
runs_as_root() {
  { while IFS= read -r l; do
      case $l in Uid:*)
        # shellcheck disable=SC2086
        set -- $l
        [ "$2" = 0 ] && [ "$3" = 0 ] && [ "$4" = 0 ] && [ "$5" = 0 ]; return;;
      esac
    done < "/proc/$1/status"; } 2>/dev/null
  return 1
}
is_ours() {
  p=$1 s=$2; shift 2
  case $s in ''|*[!0-9]*) return 1;; esac
  is_alive "$p" || return 1
  [ "$(start_time "$p")" = "$s" ] || return 1
  runs_as_root "$p" || return 1
  c=$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null) || return 1
  for n in "$@"; do case $c in *"$n"*) ;; *) return 1;; esac; done
  return 0
}
# Alive and not a zombie. While a child is between fork and exec its cmdline
# can read empty, so a process just started is waited for with this, and
# checked with is_ours only once its socket exists.
# Builtins only (read, expansions): it runs in every polling loop.
is_alive() {
  t=$(stat_tail "$1") || return 1
  t=${t%% *}
  [ -n "$t" ] && [ "$t" != Z ]
}
# read_record FILE: "PID START" as written by record; empty when absent.
read_record() {
  rp='' rs=''
  if [ -f "$1" ]; then IFS=' ' read -r rp rs _ < "$1" 2>/dev/null || :; fi
  case $rp in ''|*[!0-9]*) rp='' rs='';; esac
  case $rs in ''|*[!0-9]*) rp='' rs='';; esac
}
# record FILE PID: the pid and its start time (a new file renamed over FILE).
record() {
  s=$(start_time "$2") || s=0
  echo "$2 $s" > "$1.new" && mv -f "$1.new" "$1"
}
# wait_socket PID START SOCKET NAME NEEDLE…: until SOCKET exists (at most
# ~10 s), then require PID to be ours.
wait_socket() {
  wp=$1 wt=$2 ws=$3 wn=$4; shift 4
  i=0
  until [ -S "$ws" ]; do
    i=$((i+1))
    if [ "$i" -ge 1000 ] || ! is_alive "$wp"; then echo "$wn did not start on $ws" >&2; exit 1; fi
    sleep 0.01
  done
  is_ours "$wp" "$wt" "$@" || { echo "$wn on $ws is not the process we started" >&2; exit 1; }
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
boot_id() { start_time 1; }
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

/// Root's environment, checked before any root script runs a program
/// (`trust_root STATE AGENT PUBLIC TOOL…` does all of it):
/// `trust_env DIR…` makes `PATH` the fixed system list less every directory
/// that is not trusted, then checks that each DIR (the state and socket
/// directories) is trusted. `check_tools TOOL…` finds each tool on that
/// `PATH` and follows its symlinks, every hop trusted. A path is trusted
/// when it and every directory above it are root-owned and not group- or
/// other-writable; directories are resolved to their physical paths first
/// and a program's symlinks are followed one hop at a time. Problems are printed
/// as `untrusted PATH WHY` or `missing tool NAME`, and set `bad`.
///
/// The trust root is the shell the engine runs (`/bin/sh`) and `stat` and
/// `readlink` from `/usr/bin` or `/bin`, which are checked like the rest.
pub(crate) const TRUST: &str = r#"
NL='
'
TAB='	'
untrusted=
seen=$NL
# physical DIR: the directory with every symlink resolved (builtins only).
physical() { (cd -P -- "$1" 2>/dev/null && pwd -P); }
# trust_load PATH…: stat the given absolute paths and their parents, each once.
trust_load() {
  tl_todo=
  for tl_p in "$@"; do
    case $tl_p in /*) ;; *) continue;; esac
    case $tl_p in *"$NL"*|*"$TAB"*) untrusted=$untrusted$tl_p$TAB"has a tab or newline in its name"$NL; continue;; esac
    while :; do
      case $seen in *"$NL$tl_p$NL"*) ;; *) seen=$seen$tl_p$NL; tl_todo=$tl_todo$tl_p$NL;; esac
      [ "$tl_p" != / ] || break
      tl_p=${tl_p%/*}; tl_p=${tl_p:-/}
    done
  done
  [ -n "$tl_todo" ] || return 0
  tl_ifs=$IFS; IFS=$NL; set -f
  # shellcheck disable=SC2086 # one path per line
  set -- $tl_todo
  set +f; IFS=$tl_ifs
  tl_out=$("$STAT" -c '%u %f %n' "$@" 2>/dev/null) || {
    for tl_p in "$@"; do untrusted=$untrusted$tl_p$TAB"could not be checked (stat failed)"$NL; done
    return 0
  }
  tl_lines=0
  while IFS=' ' read -r tl_u tl_f tl_n; do
    [ -n "$tl_n" ] || continue
    tl_lines=$((tl_lines+1))
    tl_why=
    case $tl_u$tl_f in *[!0-9a-f]*|'') tl_why="could not be checked (stat printed $tl_u $tl_f)";; esac
    # A symlink's own owner and mode change nothing (only its directory
    # decides who can replace it); check_tools follows it hop by hop.
    if [ -z "$tl_why" ] && [ $(( 0x$tl_f & 61440 )) != 40960 ]; then
      [ "$tl_u" = 0 ] || tl_why="owned by uid $tl_u"
      if [ $(( 0x$tl_f & 18 )) != 0 ]; then tl_why="${tl_why:+$tl_why, }writable by group or others (mode $(printf %o $(( 0x$tl_f & 4095 ))))"; fi
    fi
    [ -z "$tl_why" ] || untrusted=$untrusted$tl_n$TAB$tl_why$NL
  done <<EOF
$tl_out
EOF
  # One line per path, or nothing is known about them.
  if [ "$tl_lines" != "$#" ]; then
    for tl_p in "$@"; do untrusted=$untrusted$tl_p$TAB"could not be checked (stat printed $tl_lines lines for $# paths)"$NL; done
  fi
}
# why_untrusted PATH: true when PATH or a parent (all loaded) is untrusted,
# with "PATH WHY" for the first such one in $wu_out (no subshell: it runs
# for every program and directory).
why_untrusted() {
  wu_p=$1
  while :; do
    case $NL$untrusted in *"$NL$wu_p$TAB"*)
      wu_w=${untrusted#*"$wu_p$TAB"}; wu_out="$wu_p ${wu_w%%"$NL"*}"; return 0;;
    esac
    [ "$wu_p" != / ] || return 1
    wu_p=${wu_p%/*}; wu_p=${wu_p:-/}
  done
}
trust_env() {
  PATH=/usr/bin:/bin
  STAT='' READLINK=''
  for d in /usr/bin /bin; do
    [ -n "$STAT" ] || { [ -x "$d/stat" ] && STAT=$d/stat; }
    [ -n "$READLINK" ] || { [ -x "$d/readlink" ] && READLINK=$d/readlink; }
  done
  [ -n "$STAT" ] || { echo "missing tool stat"; bad=1; return; }
  [ -n "$READLINK" ] || { echo "missing tool readlink"; bad=1; return; }
  dirs=
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    r=$(physical "$d") && dirs=$dirs$r$NL
  done
  need=
  for d in "$@"; do
    r=$(physical "$d") || { echo "untrusted $d does not exist"; bad=1; continue; }
    need=$need$r$NL
  done
  for f in /etc/ld.so.preload /etc/ld.so.cache; do [ ! -e "$f" ] || need=$need$f$NL; done
  old=$IFS; IFS=$NL; set -f
  # shellcheck disable=SC2086
  trust_load $dirs $need
  set +f; IFS=$old
  # shellcheck disable=SC2123 # rebuilt from the trusted directories below
  PATH='' skipped=''
  for r in $dirs; do
    case :$PATH: in *":$r:"*) continue;; esac
    if why_untrusted "$r"; then skipped=$skipped$r$NL; continue; fi
    PATH=${PATH:+$PATH:}$r
  done
  export PATH
  for r in $need; do
    if why_untrusted "$r"; then echo "untrusted $wu_out"; bad=1; fi
  done
  # The bootstrap tools are run by their fixed paths: check them as tools.
  check_tools "$STAT" "$READLINK"
}
# check_tools TOOL…: found on the trusted PATH (a shell builtin is fine),
# every symlink hop trusted. The PATH directories are physical already, so
# the first hops of all tools are checked with one stat.
check_tools() {
  ct_found=''
  ct_paths=''
  for ct_t in "$@"; do
    ct_p=''
    case $ct_t in
      /*) if [ -x "$ct_t" ] && ct_d=$(physical "${ct_t%/*}/"); then ct_p=${ct_d%/}/${ct_t##*/}; fi;;
      *)
        ct_ifs=$IFS; IFS=:
        for ct_d in $PATH; do
          if [ -f "$ct_d/$ct_t" ] && [ -x "$ct_d/$ct_t" ]; then ct_p=$ct_d/$ct_t; break; fi
        done
        IFS=$ct_ifs
        # A shell builtin or applet (busybox ash) needs no file.
        if [ -z "$ct_p" ] && command -v "$ct_t" >/dev/null 2>&1; then continue; fi;;
    esac
    if [ -z "$ct_p" ]; then
      bad=1
      # Only in a directory left off PATH: say why rather than "missing".
      for ct_d in $skipped; do
        if [ -e "$ct_d/$ct_t" ] && why_untrusted "$ct_d"; then echo "untrusted $wu_out (for $ct_t)"; continue 2; fi
      done
      echo "missing tool $ct_t"; continue
    fi
    ct_found=$ct_found$ct_t$TAB$ct_p$NL
    ct_paths=$ct_paths$ct_p$NL
  done
  ct_ifs=$IFS; IFS=$NL; set -f
  # shellcheck disable=SC2086 # one path per line
  trust_load $ct_paths
  set +f; IFS=$ct_ifs
  while IFS=$TAB read -r ct_t ct_p; do
    [ -n "$ct_t" ] || continue
    ct_hops=0
    while :; do
      if why_untrusted "$ct_p"; then echo "untrusted $wu_out (for $ct_t)"; bad=1; break; fi
      [ -L "$ct_p" ] || break
      ct_hops=$((ct_hops+1))
      [ "$ct_hops" -lt 20 ] || { echo "untrusted $ct_p too many symlinks (for $ct_t)"; bad=1; break; }
      ct_l=$("$READLINK" "$ct_p") || { echo "untrusted $ct_p cannot be resolved (for $ct_t)"; bad=1; break; }
      case $ct_l in /*) ;; *) ct_l=${ct_p%/*}/$ct_l;; esac
      ct_d=$(physical "${ct_l%/*}/") || { echo "untrusted $ct_l cannot be resolved (for $ct_t)"; bad=1; break; }
      if [ "$ct_d" = / ]; then ct_p=/${ct_l##*/}; else ct_p=$ct_d/${ct_l##*/}; fi
      trust_load "$ct_p"
    done
  done <<EOF
$ct_found
EOF
}
# trust_root STATE AGENT PUBLIC TOOL…: root's environment for a script that
# uses the state directory and both sockets; an existing state directory
# must be a trusted directory (never adopted).
trust_root() {
  tr_state=$1 tr_agent=$2 tr_public=$3; shift 3
  trust_env "${tr_state%/*}/" "${tr_agent%/*}/" "${tr_public%/*}/"
  check_tools "$@"
  # A socket setting names bottle's own socket: absent, or a socket (no
  # link) left by an earlier run (the state directory is there). Anything
  # else is never unlinked or replaced.
  for tr_s in "$tr_agent" "$tr_public"; do
    # The guard's delivery has no socket to name: it passes the state.
    [ "$tr_s" != "$tr_state" ] || continue
    if [ -L "$tr_s" ] || { [ -e "$tr_s" ] && ! [ -S "$tr_s" ]; }; then
      echo "untrusted $tr_s exists and is not a socket"; bad=1
    elif [ -S "$tr_s" ] && ! [ -d "$tr_state" ]; then
      echo "untrusted $tr_s is a socket bottle did not make"; bad=1
    fi
  done
  if [ -e "$tr_state" ] || [ -L "$tr_state" ]; then
    trust_load "$tr_state"
    if why_untrusted "$tr_state"; then echo "untrusted $wu_out"; bad=1;
    elif ! [ -d "$tr_state" ]; then echo "untrusted $tr_state not a directory"; bad=1; fi
  fi
}
# os_release: `os ID ID_LIKE…` from /etc/os-release, for an install hint
# (builtins only).
os_release() {
  os=''
  if [ -f /etc/os-release ]; then
    while IFS='=' read -r k v; do case $k in ID|ID_LIKE) os="$os $v";; esac; done < /etc/os-release
  fi
  echo "os$os"
}
"#;

/// `load_keys AGENT GUARD STARTED` of the scripts that load keys (provision,
/// the sidecar's agent exec): the key stream (fd 3) into the agent, then
/// `key SHA256:…` for what it holds. With the guard (GUARD its path) it
/// waits for a new agent to listen, writes each key and reads each answer,
/// so root runs neither socat nor ssh-add; without (guard off), socat and
/// ssh-add. Non-zero when the keys did not go in.
pub(crate) const LOAD_KEYS: &str = r#"
load_keys() {
  if [ -n "$2" ]; then
    "$2" load --agent "$1" <&3 3<&-
    return
  fi
  if [ -n "$3" ]; then
    # The socket exists from bind(); connect() is refused until listen().
    # ssh-add -l: 2 is "cannot connect", 0 or 1 an answer.
    lk=0
    until SSH_AUTH_SOCK=$1 ssh-add -l >/dev/null 2>&1 || [ "$?" != 2 ]; do
      lk=$((lk+1))
      [ "$lk" -lt 500 ] || return 1
      sleep 0.01
    done
  fi
  # The agent may close on EOF before its replies are read: they are not
  # relied on; the identities are listed afterwards instead.
  socat -t 5 STDIO "UNIX-CONNECT:$1" <&3 >/dev/null 2>&1 3<&- || return 1
  lk=$(SSH_AUTH_SOCK=$1 ssh-add -l -E sha256 2>&1)
  printf '%s\n' "$lk" | while read -r _ fp _; do
    case $fp in SHA256:*) echo "key $fp";; esac
  done
}
"#;

/// Programs the scripts use besides the three the product needs.
pub(crate) const CORE_TOOLS: &[&str] = &[
    "id", "sed", "tr", "grep", "cat", "rm", "mkdir", "mv", "chmod", "sleep", "mktemp",
];

/// The user exec's check: `$@` tools to look for (on the user's own PATH:
/// nothing it runs is trusted). Prints `missing tool NAME`; sets `bad`.
const CHECK_TOOLS: &str = concat!("\n", include_str!("scripts/common/check_tools.sh"));

/// The root exec of provision: `$1` user, `$2` home, `$3` state dir, `$4`
/// agent socket, `$5` public socket, `$6` `reuse` (keep a live agent) or
/// `fresh` (replace it, e.g. when the user locked it through the forwarder),
/// `$7` lock token, `$8` lines of key record, `$9` the guard's SHA-256 (or
/// `off`: a socat relay instead, the operator's explicit choice),
/// `$10` lines of guard policy, `$11…` tools to look for.
/// Stdin: the key record's lines, the policy's lines, then agent protocol
/// messages (key material), relayed to the agent only.
/// Prints `missing tool|user|home [NAME]` and `untrusted PATH WHY`, then
/// `os ID ID_LIKE…` (and changes nothing: the key stream is never read), or
/// `guard-missing` (no guard of that hash in the state directory: deliver
/// it, then ask again; nothing else was done), or
/// `agent-started|agent-reused PID`, `agent-unusable` (a reused agent
/// would not take the keys: ask again with `fresh`),
/// `forwarder-started|forwarder-reused PID`, `key SHA256:…` (what the agent
/// holds afterwards), `done`. Holds the in-container lock while it runs.
pub(crate) fn provision() -> String {
    format!("{HELPERS}{TRUST}{LOAD_KEYS}{PROVISION_HEAD}{PROVISION_BODY}")
}

const PROVISION_HEAD: &str = r#"
set -u
# Keep the key stream on fd 3 only, so no other command can read it.
exec 3<&0 0</dev/null
user=$1 home=$2 state=$3 agent=$4 public=$5 mode=$6 token=$7 nrecord=$8 guard=$9 npolicy=${10}; shift 10
# Podman may drop the output of a process that leaves its stdin unread: an
# early exit reads (and discards) the rest of the key stream first.
keys_open=1
finish() { if [ -n "$keys_open" ]; then while IFS= read -r _ <&3; do :; done 2>/dev/null; fi; }
trap finish EXIT
trap 'exit 1' INT TERM HUP
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
"#;

const PROVISION_BODY: &str = r#"
bad=0
trust_root "$state" "$agent" "$public" "$@"
if [ "$bad" != 0 ]; then os_release; exit 0; fi
# The ids themselves come from the user's exec (it runs as the user).
id -u "$user" >/dev/null 2>&1 || { echo "missing user"; bad=1; }
[ -d "$home" ] || { echo "missing home"; bad=1; }
[ "$bad" = 0 ] || exit 0
# The forwarder: the guard (only root writes the state directory, checked
# above), or with `off` (the operator's explicit choice) a plain relay.
case $guard in
  off) g='' fw_prog=socat fw_arg="UNIX-LISTEN:$public" fw_name=socat;;
  ''|*[!0-9a-f]*) echo "bad guard hash" >&2; exit 1;;
  *) g=$state/guard-$guard fw_prog=$g fw_arg="--listen $public" fw_name=bottle-guard
     if ! [ -f "$g" ] || [ -L "$g" ]; then echo "guard-missing"; echo "done"; exit 0; fi;;
esac
umask 077
# Made private from the start; an existing one was checked above.
[ -d "$state" ] || mkdir -m 700 "$state" || exit 1
chmod 700 "$state" || exit 1
take_lock "$state" "$token"
trap 'finish; release_lock "$state" "$token"' EXIT

i=0
while [ "$i" -lt "$nrecord" ]; do
  IFS= read -r line <&3 || { echo "the key record ended early" >&2; exit 1; }
  printf '%s\n' "$line"
  i=$((i+1))
done > "$state/keys.new" && mv -f "$state/keys.new" "$state/keys" || exit 1
i=0
while [ "$i" -lt "$npolicy" ]; do
  IFS= read -r line <&3 || { echo "the guard policy ended early" >&2; exit 1; }
  printf '%s\n' "$line"
  i=$((i+1))
done > "$state/policy.new" && mv -f "$state/policy.new" "$state/policy" || exit 1

agent_started="" forwarder_started=""
read_record "$state/agent.pid"; apid=$rp astart=$rs
if [ "$mode" != fresh ] && agent_is_ours "$apid" "$astart" "$agent" && [ -S "$agent" ]; then
  echo "agent-reused $apid"
else
  stop "$apid" "$astart" ssh-agent "$agent"
  rm -f "$agent"
  ssh-agent -D -P "$agent_providers" -a "$agent" </dev/null >/dev/null 2>&1 3<&- &
  apid=$!
  record "$state/agent.pid" "$apid"
  read_record "$state/agent.pid"; astart=$rs
  agent_started=1
fi

read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
# The forwarder is the only path from the public socket to the agent. The
# guard reads the policy for each client, so a live one is reused.
if is_ours "$fpid" "$fstart" "$fw_prog" "$fw_arg" && [ -S "$public" ]; then
  echo "forwarder-reused $fpid"
else
  stop_forwarder "$fpid" "$fstart" "$state" "$public"
  rm -f "$public"
  if [ -n "$g" ]; then
    "$g" serve --sha256 "$guard" --listen "$public" --agent "$agent" --policy "$state/policy" --audit "$state" </dev/null >/dev/null 2>&1 3<&- &
  else
    socat "UNIX-LISTEN:$public,fork,mode=666,unlink-early" "UNIX-CONNECT:$agent" </dev/null >/dev/null 2>&1 3<&- &
  fi
  fpid=$!
  record "$state/forwarder.pid" "$fpid"
  read_record "$state/forwarder.pid"; fstart=$rs
  forwarder_started=1
fi
# Both start at once (the forwarder connects to the agent only per client);
# the keys go in while the forwarder comes up.
if [ -n "$agent_started" ]; then
  wait_socket "$apid" "$astart" "$agent" ssh-agent ssh-agent "$agent"
  echo "agent-started $apid"
fi

if ! load_keys "$agent" "$g" "$agent_started"; then
  [ -z "$agent_started" ] || { echo "could not load the keys into ssh-agent on $agent" >&2; exit 1; }
  # A reused agent that does not take the keys is replaced (by the caller,
  # with the key stream sent again).
  echo "agent-unusable"
  if [ -n "$forwarder_started" ]; then
    wait_socket "$fpid" "$fstart" "$public" "$fw_name" "$fw_prog" "$fw_arg"
    echo "forwarder-started $fpid"
  fi
  echo "done"; exit 0
fi
exec 3<&-
keys_open=
if [ -n "$forwarder_started" ]; then
  wait_socket "$fpid" "$fstart" "$public" "$fw_name" "$fw_prog" "$fw_arg"
  echo "forwarder-started $fpid"
fi
echo "done"
"#;

/// Root delivers the guard: `$1` state dir, `$2` its SHA-256, `$3` lock
/// token, `$4…` tools. Stdin: the executable. Writes it as
/// `STATE/guard-SHA256` (700, root), removing other versions, once it has
/// checked its own hash; prints `untrusted PATH WHY` (changing nothing),
/// then `done`.
pub(crate) fn deliver_guard() -> String {
    format!("{HELPERS}{TRUST}{DELIVER_GUARD_BODY}")
}

const DELIVER_GUARD_BODY: &str = r#"
set -u
# Podman may drop the output of a process that leaves its stdin unread.
trap 'while IFS= read -r _; do :; done 2>/dev/null' EXIT
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
state=$1 hash=$2 token=$3; shift 3
case $hash in ''|*[!0-9a-f]*) echo "bad guard hash" >&2; exit 1;; esac
bad=0
trust_root "$state" "$state" "$state" "$@"
[ "$bad" = 0 ] || { echo "done"; exit 0; }
umask 077
[ -d "$state" ] || mkdir -m 700 "$state" || exit 1
chmod 700 "$state" || exit 1
take_lock "$state" "$token"
trap 'release_lock "$state" "$token"' EXIT
cat > "$state/guard.new" || exit 1
chmod 700 "$state/guard.new" || exit 1
"$state/guard.new" check --sha256 "$hash"
rc=$?
if [ "$rc" != 0 ]; then
  rm -f "$state/guard.new"
  if [ "$rc" = 126 ]; then echo "the guard cannot run from $state: is /run mounted noexec? (the bottle layout needs /run to allow exec, e.g. --tmpfs /run:exec, or use agent = sidecar)" >&2; fi
  exit 1
fi
for f in "$state"/guard-*; do
  if [ "$f" != "$state/guard-$hash" ] && [ -f "$f" ]; then rm -f "$f"; fi
done
mv -f "$state/guard.new" "$state/guard-$hash" || exit 1
echo "done"
"#;

/// Run as the user: the ways it could become root that an image commonly
/// offers. Prints `escalation sudo` when `sudo -n true` succeeds (no
/// password asked), `escalation setuid PATH` for each setuid-root or
/// setgid-root program on the usual program directories that the user can
/// run and that is not on the allow-list (programs that need a password or
/// a privilege the user lacks), at most 20; `escalation-checked` when the
/// check ran to the end.
pub(crate) const ESCALATION: &str = concat!("\n", include_str!("scripts/escalation/escalation.sh"));

/// When a provision script may change the container: `Always`, or
/// `IfClean`: only where nothing is yet (no state directory, no sockets,
/// no `~/.ssh`); otherwise it prints `not-clean` and changes nothing.
/// What an `IfClean` run wrote is exactly what the matching deprovision
/// part removes, so a provision that fails elsewhere can undo it and leave
/// the container as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Always,
    IfClean,
}

impl Write {
    pub(crate) fn arg(self) -> &'static str {
        match self {
            Write::Always => "always",
            Write::IfClean => "if-clean",
        }
    }
}

/// The user's exec of provision, run as the user (so nothing under the
/// user's home is ever written by root, whatever the user put there):
/// `$1` [`Write`], `$2` home, `$3` lines of `config`, `$4` lines of
/// `known_hosts` (0: none), `$5` number of public key files N, `$6…` their
/// N names (in `~/.ssh`), the four signing files' line counts, then tools
/// to look for. Stdin: `config`'s lines, then `known_hosts`'s, then each
/// public key file's two lines, then the signing files'. Prints `missing
/// tool|home [NAME]` (and changes nothing), `uid N`, `gid N`, then
/// `not-clean` (and changes nothing) or `removed PATH`, the [`ESCALATION`]
/// lines, `done`.
pub(crate) fn user_files() -> String {
    format!(
        "{USER_FILES_HEAD}{}{CHECK_TOOLS}{USER_FILES_BODY}{ESCALATION}echo \"done\"\n",
        is_mine()
    )
}

const USER_FILES_HEAD: &str = concat!("\n", include_str!("scripts/user_files/head.sh"));

const USER_FILES_BODY: &str = concat!("\n", include_str!("scripts/user_files/body.sh"));

/// `is_mine FILE`: FILE is a regular file provision wrote (first line is
/// [`FILE_MARK`], or the second after a `#!` line: a script).
/// The file names the mark `@FILE_MARK@`: the mark itself is Rust's, the
/// one the files are written with.
fn is_mine() -> String {
    format!("\n{}", IS_MINE.replace("@FILE_MARK@", FILE_MARK))
}

const IS_MINE: &str = include_str!("scripts/common/is_mine.sh");

/// `preflight`, root part: `$1` user, `$2` home, `$3` state, `$4` agent,
/// `$5` public, `$6…` tools. What provision's root exec checks first, and
/// changes nothing: `untrusted PATH WHY`, `missing tool NAME`, `tool NAME
/// PATH`, `os …`, then (only when root's environment is trusted) `user UID`
/// or `user -`, `home yes|no`, `ssh-version TEXT` or `ssh-version -`, `done`.
pub(crate) fn preflight_root() -> String {
    format!("{TRUST}{PREFLIGHT_ROOT_BODY}")
}

const PREFLIGHT_ROOT_BODY: &str = r#"
set -u
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
user=$1 home=$2 state=$3 agent=$4 public=$5; shift 5
bad=0
trust_root "$state" "$agent" "$public" "$@" ssh
for t in "$@" ssh; do
  if p=$(command -v "$t" 2>/dev/null); then echo "tool $t $p"; fi
done
os_release
[ "$bad" = 0 ] || { echo "done"; exit 0; }
if u=$(id -u "$user" 2>/dev/null); then echo "user $u"; else echo "user -"; fi
if [ -d "$home" ]; then echo "home yes"; else echo "home no"; fi
if v=$(ssh -V 2>&1 </dev/null); then
  IFS= read -r first <<EOF
$v
EOF
  echo "ssh-version $first"
else
  echo "ssh-version -"
fi
echo "done"
"#;

/// Root part of verify: `$1` state, `$2` agent, `$3` public, `$4` user,
/// `$5` home, `$6` the forwarder to expect (`guard`, or `relay`: the
/// sidecar layout's socat, or a bottle with guard = "off"), `$7…`
/// tools root's scripts run. Stdin: key-scan patterns,
/// one per line as `printf` octal escapes. Prints `untrusted PATH WHY`
/// for root's environment, then the state it finds.
pub(crate) fn verify_root() -> String {
    format!("{HELPERS}{TRUST}{VERIFY_ROOT_BODY}")
}

const VERIFY_ROOT_BODY: &str = r#"
set -u
# Podman may drop the output of a process that leaves its stdin unread.
trap 'while IFS= read -r _; do :; done 2>/dev/null' EXIT
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
state=$1 agent=$2 public=$3 user=$4 home=$5 forwarder=$6; shift 6
bad=0
trust_root "$state" "$agent" "$public" "$@"
if command -v timeout >/dev/null 2>&1; then check_tools timeout; fi
# Nothing below may run a program root cannot trust.
[ "$bad" = 0 ] || { echo "done"; exit 0; }
echo "uid $(id -u "$user" 2>/dev/null)"
echo "gid $(id -g "$user" 2>/dev/null)"
read_record "$state/agent.pid"; apid=$rp astart=$rs
read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
if agent_is_ours "$apid" "$astart" "$agent"; then echo "agent $apid alive"; else echo "agent ${apid:-none} dead"; fi
# `guard` (the bottle layout) or `relay` (a socat: the sidecar layout, guard off).
if [ "$forwarder" = guard ]; then fw_prog=$state/guard- fw_arg="--listen $public"; else fw_prog=socat fw_arg="UNIX-LISTEN:$public"; fi
if is_ours "$fpid" "$fstart" "$fw_prog" "$fw_arg"; then echo "forwarder $fpid alive"; else echo "forwarder ${fpid:-none} dead"; fi
t=; if command -v timeout >/dev/null 2>&1; then t="timeout 30"; fi
ssh=${home%/}/.ssh
for f in "$agent" "$public" "$state" "$ssh" "$ssh/config" "$ssh/known_hosts" "$ssh"/bottle-*.pub \
  "$ssh/bottle-signing.gitconfig" "$ssh/bottle-allowed-signers" "$ssh/bottle-ssh-keygen"; do
  case $f in *'*'*) continue;; esac
  # The user names files in ~/.ssh: only bottle-<hex>.pub are ours (a
  # name with a newline would forge a line of this report).
  case $f in "$ssh"/bottle-*.pub) case ${f#"$ssh"/bottle-} in *[!0-9a-f]*.pub) continue;; esac;; esac
  if [ -e "$f" ]; then
    # shellcheck disable=SC2046 # four numbers
    set -- $(stat -c '%a %u %g %f' "$f")
    echo "stat $1 $2 $3 $4 $f"
    # Content, each line prefixed, so the host compares it with the plan;
    # bounded (the user may have made it large, or swapped in a FIFO).
    if [ -f "$f" ]; then echo "content $f"; $t head -c 262144 "$f" | sed 's/^/|/'; echo; echo "end-content"; fi
  else
    echo "absent $f"
  fi
done
# The key scan: regular files only (a FIFO or device would stall it),
# bounded in time; a search that does not finish fails the check rather
# than passing it. grep's own exit codes are 0/1/2; find reports 1 when
# any grep did not match, so completion is told by a line grep cannot print.
# Patterns: PEM armor, and (stdin, one per line, as printf octal escapes)
# a window of each loaded key's public-key bytes as they appear in the
# agent stream, so a captured stream in binary form is found too.
LC_ALL=C; export LC_ALL
set -- -e 'PRIVATE KEY-----'
probe=''
while IFS= read -r p; do
  case $p in ''|*[!0-7\\]*) continue;; esac
  # shellcheck disable=SC2059 # the format is the octal escapes, checked above
  b=$(printf "$p"; printf x); b=${b%x}
  set -- "$@" -e "$b"
  [ -n "$probe" ] || probe=$b
done
# The user's home too, wherever it is (once).
case $home in /root|/root/*|/home|/home/*|/tmp|/tmp/*|/run|/run/*|/var/tmp|/var/tmp/*) scan_home='';; *) scan_home=$home;; esac
found=$($t find /root /home /tmp /run /var/tmp ${scan_home:+"$scan_home"} -type f -exec grep -z -l -s -F "$@" /dev/null {} + 2>/dev/null; echo "keyscan-end $?")
rc=${found##*keyscan-end }
case $rc in 0|1) ;; *) echo "keyscan-incomplete $rc";; esac
printf '%s\n' "$found" | grep -v '^keyscan-end ' | head -n 20 | while IFS= read -r f; do [ -z "$f" ] || echo "keyfile $f"; done
# Self-tests: the scan's find and grep must find what they look for.
[ "$(find /etc/passwd -type f -exec grep -l -s -e root /dev/null {} + 2>/dev/null)" = /etc/passwd ] || echo "keyscan-incomplete find"
printf '%s\n' '-----BEGIN OPENSSH PRIVATE KEY-----' | grep -z -q -F "$@" || echo "keyscan-incomplete grep"
# NUL-separated records (-z): busybox grep stops reading a line at a NUL.
if [ -n "$probe" ]; then printf '\000\000x%sx\000' "$probe" | grep -z -q -F -e "$probe" || echo "keyscan-incomplete grep-binary"; fi
if [ -f "$state/keys" ]; then sed 's/^/keystate /' "$state/keys"; fi
echo "done"
"#;

/// User part of verify, run as the user: `$1` agent, `$2` public, `$3`
/// agent pid, `$4` forwarder pid; then [`ESCALATION`].
pub(crate) fn verify_user() -> String {
    format!("{VERIFY_USER_BODY}{ESCALATION}echo \"done\"\n")
}

const VERIFY_USER_BODY: &str = concat!("\n", include_str!("scripts/verify_user/verify_user.sh"));

/// Deprovision, root part: `$1` state, `$2` agent, `$3` public, `$4` lock
/// token, `$5…` tools. Stops the agent and forwarder, removes the sockets
/// and the state. Prints `untrusted PATH WHY` (and changes nothing) when
/// root's environment is not trusted.
pub(crate) fn deprovision() -> String {
    format!("{HELPERS}{TRUST}{DEPROVISION_BODY}")
}

const DEPROVISION_BODY: &str = r#"
set -u
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
state=$1 agent=$2 public=$3 token=$4; shift 4
bad=0
trust_root "$state" "$agent" "$public" "$@"
[ "$bad" = 0 ] || exit 0
if [ -d "$state" ]; then take_lock "$state" "$token"; fi
read_record "$state/agent.pid"; apid=$rp astart=$rs
read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
if forwarder_is_ours "$fpid" "$fstart" "$state" "$public"; then stop_forwarder "$fpid" "$fstart" "$state" "$public" && echo "stopped forwarder $fpid"; fi
if is_ours "$apid" "$astart" ssh-agent "$agent"; then stop "$apid" "$astart" ssh-agent "$agent" && echo "stopped agent $apid"; fi
for s in "$public" "$agent"; do
  if [ -S "$s" ] || [ -L "$s" ]; then rm -f "$s" && echo "removed $s"; fi
done
if [ -d "$state" ]; then rm -rf "$state" && echo "removed $state"; fi
echo "done"
"#;

/// Deprovision, user part, run as the user: `$1` home. Removes the files
/// provision wrote (those that still start with [`FILE_MARK`]) and
/// `~/.ssh` when that leaves it empty.
pub(crate) fn deprovision_user() -> String {
    format!("{}{DEPROVISION_USER_BODY}", is_mine())
}

const DEPROVISION_USER_BODY: &str = concat!(
    "\n",
    include_str!("scripts/deprovision_user/deprovision_user.sh")
);

/// `list_keys`, root part: `$1` state dir, `$2` keys file name. Prints the
/// record (`FINGERPRINT DEADLINE HOSTS` lines), nothing when there is none.
/// Builtins only: no program of the container's runs as root here.
pub(crate) const KEYS_ROOT: &str = r#"
f=$1/$2
if [ -f "$f" ] && ! [ -L "$f" ] && ! [ -L "$1" ]; then
  while IFS= read -r l; do printf '%s\n' "$l"; done < "$f"
fi
"#;

/// `list_keys`, user part: `$1` public socket. `ssh-add -l`'s own exit code.
pub(crate) const KEYS_USER: &str = concat!("\n", include_str!("scripts/keys_user/keys_user.sh"));

/// Every script, for the lint test (shellcheck, `dash -n`, `busybox sh -n`).
#[cfg(test)]
pub(crate) fn all() -> Vec<(&'static str, String)> {
    vec![
        ("provision", provision()),
        ("deliver_guard", deliver_guard()),
        ("user_files", user_files()),
        ("verify_root", verify_root()),
        ("preflight_root", preflight_root()),
        ("verify_user", verify_user()),
        ("escalation", ESCALATION.to_string()),
        ("deprovision", deprovision()),
        ("deprovision_user", deprovision_user()),
        ("keys_root", KEYS_ROOT.to_string()),
        ("keys_user", KEYS_USER.to_string()),
        ("sidecar_agent", crate::sidecar::agent_script()),
        ("sidecar_relay", crate::sidecar::relay_script()),
        ("sidecar_verify", crate::sidecar::verify_script()),
    ]
}

#[cfg(test)]
mod host_tests;
