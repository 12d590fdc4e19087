owns_abstract() {
  oa_ino=''
  while read -r _ _ _ oa_fl _ _ oa_i oa_p; do
    [ "$oa_p" = "@$2" ] && [ "$oa_fl" = 00010000 ] && oa_ino="$oa_ino $oa_i"
  done < /proc/net/unix
  [ -n "$oa_ino" ] || return 1
  for oa_f in /proc/"$1"/fd/*; do
    oa_l=$("$READLINK" "$oa_f" 2>/dev/null) || continue
    for oa_i in $oa_ino; do [ "$oa_l" = "socket:[$oa_i]" ] && return 0; done
  done
  return 1
}
# listened NAME: some process listens on @NAME in this network namespace.
listened() {
  while read -r _ _ _ oa_fl _ _ _ oa_p; do
    [ "$oa_p" = "@$1" ] && [ "$oa_fl" = 00010000 ] && return 0
  done < /proc/net/unix
  return 1
}
