[ -d "$home" ] || { echo "missing home"; bad=1; }
[ "$bad" = 0 ] || exit 0
# Our real ids from /proc/self/status ("Uid:<TAB>N<TAB>…", builtins
# only); one `id` ("uid=N(name) gid=N(name) …") where /proc is not there.
u='' g=''
while IFS='	' read -r k v _; do
  case $k in Uid:) u=$v;; Gid:) g=$v;; esac
done 2>/dev/null </proc/self/status
case $u in ''|*[!0-9]*) u='';; esac
case $g in ''|*[!0-9]*) g='';; esac
if [ -z "$u" ] || [ -z "$g" ]; then
  ids=$(id) || exit 1
  u=${ids#uid=} g=${ids#* gid=}; u=${u%%[!0-9]*} g=${g%%[!0-9]*}
fi
echo "uid $u"; echo "gid $g"
umask 077
ssh=${home%/}/.ssh
if [ "$when" = if-clean ]; then
  # Only where the undo (deprovision's user part) leaves things as they
  # were: no ~/.ssh yet; for signing, git's directory there, its config not.
  if [ -e "$ssh" ] || [ -L "$ssh" ] || { [ "$nsign" -gt 0 ] && {
    ! [ -d "${home%/}/.config/git" ] || [ -L "${home%/}/.config/git" ] ||
    [ -e "${home%/}/.config/git/config" ] || [ -L "${home%/}/.config/git/config" ]; }; }; then
    echo "not-clean"; exit 0
  fi
fi
if [ -L "$ssh" ] || { [ -e "$ssh" ] && ! [ -d "$ssh" ]; }; then
  rm -f "$ssh" && echo "removed $ssh"
fi
# The escalation check (a walk of the program directories) runs beside
# the writes below; its lines come before `done` (waited for at exit).
escalation_check &
esc=$!
# An existing ~/.ssh is made private; chmod says why it failed, the hint
# names the likely cause.
if [ -d "$ssh" ] && ! chmod 700 "$ssh"; then
  echo "cannot make $ssh private (mode 700): it must belong to $(id -un 2>/dev/null || id -u)" >&2; exit 1
fi
# lines_to FILE LINES: the next LINES lines of stdin into FILE (new).
lines_to() {
  i=0 ok=1
  while [ "$i" -lt "$2" ]; do
    IFS= read -r line || { ok=''; break; }
    printf '%s\n' "$line"
    i=$((i+1))
  done > "$1" || ok=''
  [ -n "$ok" ]
}
# put_in DIR NAME LINES: into a new file with an unpredictable name
# (created exclusively), renamed over DIR/NAME (a reader never sees half a
# file).
put_in() {
  tmp=$(mktemp "$1/.bottle.XXXXXXXXXX") || { echo "cannot create a file in $1" >&2; exit 1; }
  lines_to "$tmp" "$3" || { echo "$2 ended early" >&2; rm -f "$tmp"; exit 1; }
  if ! { chmod 600 "$tmp" && mv -f "$tmp" "$1/$2"; }; then rm -f "$tmp"; exit 1; fi
}
# put NAME LINES: ~/.ssh's files go to a new private directory first and
# are renamed in together at the end (`moved_in`): each one whole, and the
# programs run do not grow with the keys. Where ~/.ssh is not there yet,
# that directory (in the home, mode 700 from mktemp) becomes ~/.ssh: one
# mktemp and one mv; otherwise it is made in ~/.ssh, emptied into it and
# removed.
if [ -d "$ssh" ]; then
  stage=$(mktemp -d "$ssh/.bottle.XXXXXXXXXX") || { echo "cannot create a directory in $ssh" >&2; exit 1; }
  whole=''
else
  stage=$(mktemp -d "${home%/}/.bottle.XXXXXXXXXX") || { echo "cannot create $ssh (made in $home, then renamed)" >&2; exit 1; }
  whole=1
fi
trap 'if [ -e "$stage" ]; then rm -rf "$stage"; fi; drain; wait "$esc"' EXIT
put() {
  lines_to "$stage/$1" "$2" || { echo "$1 ended early" >&2; exit 1; }
}
moved_in() {
  # Each file is 600 already (written under umask 077).
  if [ -f "$stage/bottle-ssh-keygen" ]; then chmod 700 "$stage/bottle-ssh-keygen" || exit 1; fi
  if [ -n "$whole" ]; then
    mv -f "$stage" "$ssh" || exit 1
    # Unless something made ~/.ssh meanwhile (mv moved the stage into
    # it): then its files go in one by one after all.
    [ -d "$ssh/${stage##*/}" ] || return 0
    stage=$ssh/${stage##*/}
  fi
  mv -f "$stage"/* "$ssh/" || exit 1
}
put config "$nconfig"
if [ "$nknown" -gt 0 ]; then
  put known_hosts "$nknown"
elif is_mine "$ssh/known_hosts"; then
  rm -f "$ssh/known_hosts" && echo "removed $ssh/known_hosts"
fi
# shellcheck disable=SC2086 # names are bottle-<hex>.pub
for n in $pubs; do put "$n" 2; done
# Public key files of an earlier plan.
for f in "$ssh"/bottle-*.pub; do
  case " $pubs " in *" ${f##*/} "*) continue;; esac
  # Only names bottle writes (bottle-<hex>.pub): the user names files here,
  # and a newline in one would split the report line.
  case ${f#"$ssh"/bottle-} in *[!0-9a-f]*.pub) continue;; esac
  if is_mine "$f"; then rm -f "$f" && echo "removed $f"; fi
done
# [signing]: git's settings and allowed signers in ~/.ssh, included from
# git's XDG user file unless that file is the user's own (never touched).
gitdir=${home%/}/.config/git
if [ "$nsign" -gt 0 ]; then
  put bottle-signing.gitconfig "$nsign"
  put bottle-allowed-signers "$nallowed"
  if { [ -e "$gitdir/config" ] || [ -L "$gitdir/config" ]; } && ! is_mine "$gitdir/config"; then
    echo "git-config-theirs"
    i=0; while [ "$i" -lt "$ninclude" ]; do IFS= read -r _ || break; i=$((i+1)); done
  else
    mkdir -p "$gitdir" || exit 1
    put_in "$gitdir" config "$ninclude"
  fi
  # Read after the include: stdin's order is the arguments' order.
  put bottle-ssh-keygen "$nwrapper"
else
  for f in "$ssh/bottle-signing.gitconfig" "$ssh/bottle-allowed-signers" "$ssh/bottle-ssh-keygen" \
    "$gitdir/config"; do
    if is_mine "$f"; then rm -f "$f" && echo "removed $f"; fi
  done
fi
moved_in
wait "$esc"
