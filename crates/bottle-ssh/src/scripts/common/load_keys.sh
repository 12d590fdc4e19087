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
