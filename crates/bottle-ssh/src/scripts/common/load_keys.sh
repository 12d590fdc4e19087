# lines_into FILE N WHAT: the next N lines of fd 3 into FILE (a new file
# renamed over it); WHAT names it when the stream ends early.
lines_into() {
  li=0
  while [ "$li" -lt "$2" ]; do
    IFS= read -r line <&3 || { echo "$3 ended early" >&2; exit 1; }
    printf '%s\n' "$line"
    li=$((li+1))
  done > "$1.new" && mv -f "$1.new" "$1" || exit 1
}
# agent_up: the agent on $agent, reused unless $mode is `fresh`, else
# started (`-P`: no provider can be loaded) and recorded in $state; sets
# apid, astart and agent_started.
agent_up() {
  agent_started=''
  read_record "$state/agent.pid"; apid=$rp astart=$rs
  if [ "$mode" != fresh ] && agent_is_ours "$apid" "$astart" "$agent" && [ -S "$agent" ]; then
    echo "agent-reused $apid"
    return
  fi
  stop "$apid" "$astart" ssh-agent "$agent"
  rm -f "$agent"
  ssh-agent -D -P "$agent_providers" -a "$agent" </dev/null >/dev/null 2>&1 3<&- &
  apid=$!
  record "$state/agent.pid" "$apid"
  read_record "$state/agent.pid"; astart=$rs
  agent_started=1
}
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
