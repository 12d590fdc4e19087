set -u
trap 'while IFS= read -r _; do :; done 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
state=$1 agent=$2 public=$3 name=$4 token=$5 nrecord=$6 when=$7; shift 7
bad=0
trust_root "$state" "$agent" "$public" "$@"
if [ "$bad" != 0 ]; then os_release; exit 0; fi
umask 077
if [ "$when" = if-clean ]; then
  for f in "$state" "$agent" "$public"; do
    if [ -e "$f" ] || [ -L "$f" ]; then echo "not-clean"; exit 0; fi
  done
  # Not -p: of two provisions at once, one makes it.
  mkdir -m 700 "$state" 2>/dev/null || { echo "not-clean"; exit 0; }
fi
enter_state "$state" "$token"
trap 'while IFS= read -r _; do :; done 2>/dev/null; release_lock "$state" "$token"' EXIT
echo "netns $("$READLINK" /proc/self/ns/net)"
i=0
while [ "$i" -lt "$nrecord" ]; do
  IFS= read -r line || { echo "the key record ended early" >&2; exit 1; }
  printf '%s\n' "$line"
  i=$((i+1))
done > "$state/keys.new" && mv -f "$state/keys.new" "$state/keys" || exit 1
# An agent of the bottle layout has no place in this one.
read_record "$state/agent.pid"; apid=$rp astart=$rs
if is_ours "$apid" "$astart" ssh-agent "$agent"; then
  stop "$apid" "$astart" ssh-agent "$agent" || exit 1
fi
if [ -f "$state/agent.pid" ]; then rm -f "$state/agent.pid" && echo "removed $state/agent.pid"; fi
if [ -S "$agent" ] || [ -L "$agent" ]; then rm -f "$agent" && echo "removed $agent"; fi
read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
if is_ours "$fpid" "$fstart" socat "UNIX-LISTEN:$public" "ABSTRACT-CONNECT:$name" && [ -S "$public" ]; then
  echo "forwarder-reused $fpid"
else
  stop_forwarder "$fpid" "$fstart" "$state" "$public"
  rm -f "$public"
  socat "UNIX-LISTEN:$public,fork,mode=666,unlink-early" "ABSTRACT-CONNECT:$name" </dev/null >/dev/null 2>&1 &
  fpid=$!
  record "$state/forwarder.pid" "$fpid"
  read_record "$state/forwarder.pid"; fstart=$rs
  wait_socket "$fpid" "$fstart" "$public" socat socat "UNIX-LISTEN:$public"
  echo "forwarder-started $fpid"
fi
echo "done"
