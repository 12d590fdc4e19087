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
