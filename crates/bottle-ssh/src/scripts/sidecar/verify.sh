set -u
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
state=$1 agent=$2 name=$3 guard=$4; shift 4
bad=0
trust_root "$state" "$agent" "$agent" "$@"
[ "$bad" = 0 ] || { echo "done"; exit 0; }
echo "netns $("$READLINK" /proc/self/ns/net)"
read_record "$state/agent.pid"; apid=$rp astart=$rs
read_record "$state/forwarder.pid"; fpid=$rp fstart=$rs
if agent_is_ours "$apid" "$astart" "$agent" && [ -S "$agent" ]; then echo "agent $apid alive"; else echo "agent ${apid:-none} dead"; fi
if [ "$guard" = off ]; then fw_prog=socat fw_arg="ABSTRACT-LISTEN:$name"; else fw_prog=$state/guard- fw_arg="--listen-abstract $name"; fi
if is_ours "$fpid" "$fstart" "$fw_prog" "$fw_arg" && owns_abstract "$fpid" "$name"; then echo "forwarder $fpid alive"; else echo "forwarder ${fpid:-none} dead"; fi
out=$(SSH_AUTH_SOCK=$agent ssh-add -l -E sha256 2>&1)
printf '%s\n' "$out" | while read -r _ fp _; do
  case $fp in SHA256:*) echo "key $fp";; esac
done
echo "done"
