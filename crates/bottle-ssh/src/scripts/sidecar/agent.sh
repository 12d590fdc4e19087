set -u
exec 3<&0 0</dev/null
state=$1 agent=$2 name=$3 mode=$4 token=$5 guard=$6 npolicy=$7; shift 7
keys_open=1
finish() { if [ -n "$keys_open" ]; then while IFS= read -r _ <&3; do :; done 2>/dev/null; fi; }
trap finish EXIT
trap 'exit 1' INT TERM HUP
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
bad=0
trust_root "$state" "$agent" "$agent" "$@"
if [ "$bad" != 0 ]; then os_release; exit 0; fi
# The guard, or with `off` (the operator's explicit choice) a plain relay.
case $guard in
  off) g='' fw_prog=socat fw_arg="ABSTRACT-LISTEN:$name" fw_name=socat;;
  ''|*[!0-9a-f]*) echo "bad guard hash" >&2; exit 1;;
  *) g=$state/guard-$guard fw_prog=$g fw_arg="--listen-abstract $name" fw_name="the guard"
     if ! [ -f "$g" ] || [ -L "$g" ]; then echo "guard-missing"; echo "done"; exit 0; fi;;
esac
umask 077
enter_state "$state" "$token"
trap 'finish; release_lock "$state" "$token"' EXIT
echo "netns $("$READLINK" /proc/self/ns/net)"
lines_into "$state/policy" "$npolicy" "the guard policy"

forwarder_started=""
agent_up

read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
if is_ours "$fpid" "$fstart" "$fw_prog" "$fw_arg" && owns_abstract "$fpid" "$name"; then
  echo "forwarder-reused $fpid"
else
  if is_ours "$fpid" "$fstart" "$state/guard-" "--listen-abstract $name"; then
    stop "$fpid" "$fstart" "$state/guard-" "--listen-abstract $name"
  else
    stop "$fpid" "$fstart" socat "ABSTRACT-LISTEN:$name"
  fi
  # The bottle shares this namespace: a listener already there is not ours.
  if listened "$name"; then
    echo "untrusted @$name is listened on by a process that is not the agent's forwarder (the bottle shares this network namespace)"
    exit 0
  fi
  if [ -n "$g" ]; then
    "$g" serve --sha256 "$guard" --listen-abstract "$name" --agent "$agent" --policy "$state/policy" --audit "$state" </dev/null >/dev/null 2>&1 3<&- &
  else
    socat "ABSTRACT-LISTEN:$name,fork" "UNIX-CONNECT:$agent" </dev/null >/dev/null 2>&1 3<&- &
  fi
  fpid=$!
  record "$state/forwarder.pid" "$fpid"
  read_record "$state/forwarder.pid"; fstart=$rs
  forwarder_started=1
fi
if [ -n "$agent_started" ]; then
  wait_socket "$apid" "$astart" "$agent" ssh-agent ssh-agent "$agent"
  echo "agent-started $apid"
fi
if ! load_keys "$agent" "$g" "$agent_started"; then
  [ -z "$agent_started" ] || { echo "could not load the keys into ssh-agent on $agent" >&2; exit 1; }
  echo "agent-unusable"
else
  exec 3<&-
  keys_open=
fi
if [ -n "$forwarder_started" ]; then
  i=0
  until owns_abstract "$fpid" "$name"; do
    i=$((i+1))
    if [ "$i" -ge 1000 ] || ! is_alive "$fpid"; then echo "$fw_name did not start on @$name" >&2; exit 1; fi
    sleep 0.01
  done
  is_ours "$fpid" "$fstart" "$fw_prog" "$fw_arg" || { echo "$fw_name on @$name is not the process we started" >&2; exit 1; }
  echo "forwarder-started $fpid"
fi
echo "done"
