set -u
# Podman may drop the output of a process that leaves its stdin unread.
trap 'while IFS= read -r _; do :; done 2>/dev/null' EXIT
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
state=$1 hash=$2 token=$3; shift 3
case $hash in ''|*[!0-9a-f]*) echo "bad guard hash" >&2; exit 1;; esac
bad=0
trust_root "$state" "$state" "$state" "$@"
[ "$bad" = 0 ] || { echo "done"; exit 0; }
umask 077
enter_state "$state" "$token"
trap 'release_lock "$state" "$token"' EXIT
cat > "$state/guard.new" || exit 1
chmod 700 "$state/guard.new" || exit 1
"$state/guard.new" check --sha256 "$hash"
rc=$?
if [ "$rc" != 0 ]; then
  rm -f "$state/guard.new"
  if [ "$rc" = 126 ]; then echo "the guard cannot run from $state: is /run mounted noexec? (the bottle layout needs /run to allow exec, e.g. --tmpfs /run:exec, or use agent = sidecar)" >&2; fi
  exit 1
fi
for f in "$state"/guard-*; do
  if [ "$f" != "$state/guard-$hash" ] && [ -f "$f" ]; then rm -f "$f"; fi
done
mv -f "$state/guard.new" "$state/guard-$hash" || exit 1
echo "done"
