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
