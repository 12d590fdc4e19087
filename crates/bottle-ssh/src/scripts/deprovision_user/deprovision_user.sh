set -u
ssh=${1%/}/.ssh
for f in "$ssh/config" "$ssh/known_hosts" "$ssh"/bottle-*.pub "$ssh/bottle-signing.gitconfig" \
  "$ssh/bottle-allowed-signers" "$ssh/bottle-ssh-keygen" "${1%/}/.config/git/config"; do
  # Only names bottle writes: a user's name with a newline would split the line.
  case $f in "$ssh"/bottle-*.pub) case ${f#"$ssh"/bottle-} in *[!0-9a-f]*.pub) continue;; esac;; esac
  if is_mine "$f"; then rm -f "$f" && echo "removed $f"; fi
done
# rmdir (POSIX) removes only an empty directory.
if [ -d "$ssh" ] && ! [ -L "$ssh" ] && rmdir "$ssh" 2>/dev/null; then echo "removed $ssh"; fi
echo "done"
