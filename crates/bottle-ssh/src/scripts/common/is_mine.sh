is_mine() {
  [ -f "$1" ] && ! [ -L "$1" ] || return 1
  { IFS= read -r first && { IFS= read -r second || :; }; } < "$1" 2>/dev/null || return 1
  case $first in '#!'*) first=${second-};; esac
  [ "$first" = "@FILE_MARK@" ]
}
