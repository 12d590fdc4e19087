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
# enter_state STATE TOKEN: the state directory, private (an existing one
# was checked by trust_root), and the lock in it.
enter_state() {
  [ -d "$1" ] || mkdir -m 700 "$1" || exit 1
  chmod 700 "$1" || exit 1
  take_lock "$1" "$2"
}
release_lock() {
  o=$(cat "$1/lock/owner" 2>/dev/null) || o=
  if [ "${o%% *}" = "$2" ]; then rm -rf "$1/lock"; fi
  return 0
}
