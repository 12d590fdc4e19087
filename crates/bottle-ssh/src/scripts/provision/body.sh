bad=0
trust_root "$state" "$agent" "$public" "$@"
if [ "$bad" != 0 ]; then os_release; exit 0; fi
# The ids themselves come from the user's exec (it runs as the user).
id -u "$user" >/dev/null 2>&1 || { echo "missing user"; bad=1; }
[ -d "$home" ] || { echo "missing home"; bad=1; }
[ "$bad" = 0 ] || exit 0
# The forwarder is a plain relay: `guard = "off"`, the operator's explicit
# choice (a guarded bottle's provision is provision_guarded, whose guard
# serves the socket itself).
[ "$guard" = off ] || { echo "bad guard: this provision only relays (guard off)" >&2; exit 1; }
fw_prog=socat fw_arg="UNIX-LISTEN:$public" fw_name=socat
umask 077
enter_state "$state" "$token"
trap 'finish; release_lock "$state" "$token"' EXIT

lines_into "$state/keys" "$nrecord" "the key record"
lines_into "$state/policy" "$npolicy" "the guard policy"

forwarder_started=""
agent_up

read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
# The forwarder is the only path from the public socket to the agent; a
# live one is reused.
if is_ours "$fpid" "$fstart" "$fw_prog" "$fw_arg" && [ -S "$public" ]; then
  echo "forwarder-reused $fpid"
else
  stop_forwarder "$fpid" "$fstart" "$state" "$public"
  rm -f "$public"
  socat "UNIX-LISTEN:$public,fork,mode=666,unlink-early" "UNIX-CONNECT:$agent" </dev/null >/dev/null 2>&1 3<&- &
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

if ! load_keys "$agent" "" "$agent_started"; then
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
