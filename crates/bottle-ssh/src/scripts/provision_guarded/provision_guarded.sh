set -u
# Podman may drop the output of a process that leaves its stdin unread: an
# early exit reads (and discards) the stream first.
trap 'while IFS= read -r _; do :; done 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
user=$1 home=$2 state=$3 agent=$4 public=$5 mode=$6 token=$7 guard=$8; shift 8
case $guard in ''|*[!0-9a-f]*) echo "bad guard hash" >&2; exit 1;; esac
bad=0
g=$state/guard-$guard
# Root runs the guard and ssh-agent here, nothing else of the image's
# (the guard is checked in trust_root's one stat).
trust_extra=$g
trust_root "$state" "$agent" "$public" ssh-agent
if [ "$bad" != 0 ]; then os_release; exit 0; fi
if ! [ -f "$g" ] || [ -L "$g" ]; then
  # Nothing is delivered for a user or home that is not there (the guard
  # checks both itself otherwise).
  check_tools id
  [ "$bad" = 0 ] || { os_release; exit 0; }
  id -u "$user" >/dev/null 2>&1 || { echo "missing user"; bad=1; }
  [ -d "$home" ] || { echo "missing home"; bad=1; }
  [ "$bad" = 0 ] || exit 0
  echo "guard-missing"; echo "done"; exit 0
fi
# Its directory was checked above; the file itself too, before it runs.
trust_load "$g"
if why_untrusted "$g"; then echo "untrusted $wu_out"; os_release; exit 0; fi
trap - EXIT
exec "$g" provision "$user" "$home" "$state" "$agent" "$public" "$mode" "$token" "$guard" "$@"
