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
