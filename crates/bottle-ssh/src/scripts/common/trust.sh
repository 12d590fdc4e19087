NL='
'
TAB='	'
untrusted=
seen=$NL
# physical DIR: $ph, the directory with every symlink resolved (builtins
# only, no subshell: `cd -P` sets PWD to the physical path; the script's
# own directory is / afterwards, as nothing here uses relative paths).
physical() {
  ph=
  cd -P -- "$1" 2>/dev/null || return 1
  ph=$PWD
  cd / || :
}
# trust_load PATH…: stat the given absolute paths and their parents, each once.
trust_load() {
  tl_todo=
  for tl_p in "$@"; do
    case $tl_p in /*) ;; *) continue;; esac
    case $tl_p in *"$NL"*|*"$TAB"*) untrusted=$untrusted$tl_p$TAB"has a tab or newline in its name"$NL; continue;; esac
    while :; do
      case $seen in *"$NL$tl_p$NL"*) ;; *) seen=$seen$tl_p$NL; tl_todo=$tl_todo$tl_p$NL;; esac
      [ "$tl_p" != / ] || break
      tl_p=${tl_p%/*}; tl_p=${tl_p:-/}
    done
  done
  [ -n "$tl_todo" ] || return 0
  tl_ifs=$IFS; IFS=$NL; set -f
  # shellcheck disable=SC2086 # one path per line
  set -- $tl_todo
  set +f; IFS=$tl_ifs
  tl_out=$("$STAT" -c '%u %f %n' "$@" 2>/dev/null) || {
    for tl_p in "$@"; do untrusted=$untrusted$tl_p$TAB"could not be checked (stat failed)"$NL; done
    return 0
  }
  tl_lines=0
  while IFS=' ' read -r tl_u tl_f tl_n; do
    [ -n "$tl_n" ] || continue
    tl_lines=$((tl_lines+1))
    tl_why=
    case $tl_u$tl_f in *[!0-9a-f]*|'') tl_why="could not be checked (stat printed $tl_u $tl_f)";; esac
    # A symlink's own owner and mode change nothing (only its directory
    # decides who can replace it); check_tools follows it hop by hop.
    if [ -z "$tl_why" ] && [ $(( 0x$tl_f & 61440 )) != 40960 ]; then
      [ "$tl_u" = 0 ] || tl_why="owned by uid $tl_u"
      if [ $(( 0x$tl_f & 18 )) != 0 ]; then tl_why="${tl_why:+$tl_why, }writable by group or others (mode $(printf %o $(( 0x$tl_f & 4095 ))))"; fi
    fi
    [ -z "$tl_why" ] || untrusted=$untrusted$tl_n$TAB$tl_why$NL
  done <<EOF
$tl_out
EOF
  # One line per path, or nothing is known about them.
  if [ "$tl_lines" != "$#" ]; then
    for tl_p in "$@"; do untrusted=$untrusted$tl_p$TAB"could not be checked (stat printed $tl_lines lines for $# paths)"$NL; done
  fi
}
# why_untrusted PATH: true when PATH or a parent (all loaded) is untrusted,
# with "PATH WHY" for the first such one in $wu_out (no subshell: it runs
# for every program and directory).
why_untrusted() {
  wu_p=$1
  while :; do
    case $NL$untrusted in *"$NL$wu_p$TAB"*)
      wu_w=${untrusted#*"$wu_p$TAB"}; wu_out="$wu_p ${wu_w%%"$NL"*}"; return 0;;
    esac
    [ "$wu_p" != / ] || return 1
    wu_p=${wu_p%/*}; wu_p=${wu_p:-/}
  done
}
trust_env() {
  PATH=/usr/bin:/bin
  STAT='' READLINK=''
  for d in /usr/bin /bin; do
    [ -n "$STAT" ] || { [ -x "$d/stat" ] && STAT=$d/stat; }
    [ -n "$READLINK" ] || { [ -x "$d/readlink" ] && READLINK=$d/readlink; }
  done
  [ -n "$STAT" ] || { echo "missing tool stat"; bad=1; return; }
  [ -n "$READLINK" ] || { echo "missing tool readlink"; bad=1; return; }
  dirs=
  for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
    physical "$d" && dirs=$dirs$ph$NL
  done
  need=
  for d in "$@"; do
    physical "$d" || { echo "untrusted $d does not exist"; bad=1; continue; }
    need=$need$ph$NL
  done
  for f in /etc/ld.so.preload /etc/ld.so.cache; do [ ! -e "$f" ] || need=$need$f$NL; done
  # What check_tools and trust_root will look at, in the same one stat:
  # the bootstrap tools, each candidate of $trust_tools on the fixed PATH,
  # and the existing paths of $trust_extra.
  pre=
  for f in "$STAT" "$READLINK"; do physical "${f%/*}/" && pre=$pre$ph/${f##*/}$NL; done
  old=$IFS; IFS=$NL; set -f
  for t in ${trust_tools:-}; do
    case $t in /*|'') continue;; esac
    # shellcheck disable=SC2086 # one directory per line
    for r in $dirs; do if [ -e "$r/$t" ]; then pre=$pre$r/$t$NL; fi; done
  done
  for f in ${trust_extra:-}; do
    if [ -e "$f" ] || [ -L "$f" ]; then pre=$pre$f$NL; fi
  done
  # shellcheck disable=SC2086
  trust_load $dirs $need $pre
  set +f; IFS=$old
  # shellcheck disable=SC2123 # rebuilt from the trusted directories below
  PATH='' skipped=''
  for r in $dirs; do
    case :$PATH: in *":$r:"*) continue;; esac
    if why_untrusted "$r"; then skipped=$skipped$r$NL; continue; fi
    PATH=${PATH:+$PATH:}$r
  done
  export PATH
  for r in $need; do
    if why_untrusted "$r"; then echo "untrusted $wu_out"; bad=1; fi
  done
  # The bootstrap tools are run by their fixed paths: check them as tools.
  check_tools "$STAT" "$READLINK"
}
# check_tools TOOL…: found on the trusted PATH (a shell builtin is fine),
# every symlink hop trusted. The PATH directories are physical already, so
# the first hops of all tools are checked with one stat.
check_tools() {
  ct_found=''
  ct_paths=''
  for ct_t in "$@"; do
    ct_p=''
    case $ct_t in
      /*) if [ -x "$ct_t" ] && physical "${ct_t%/*}/"; then ct_p=${ph%/}/${ct_t##*/}; fi;;
      *)
        ct_ifs=$IFS; IFS=:
        for ct_d in $PATH; do
          if [ -f "$ct_d/$ct_t" ] && [ -x "$ct_d/$ct_t" ]; then ct_p=$ct_d/$ct_t; break; fi
        done
        IFS=$ct_ifs
        # A shell builtin or applet (busybox ash) needs no file.
        if [ -z "$ct_p" ] && command -v "$ct_t" >/dev/null 2>&1; then continue; fi;;
    esac
    if [ -z "$ct_p" ]; then
      bad=1
      # Only in a directory left off PATH: say why rather than "missing".
      for ct_d in $skipped; do
        if [ -e "$ct_d/$ct_t" ] && why_untrusted "$ct_d"; then echo "untrusted $wu_out (for $ct_t)"; continue 2; fi
      done
      echo "missing tool $ct_t"; continue
    fi
    ct_found=$ct_found$ct_t$TAB$ct_p$NL
    ct_paths=$ct_paths$ct_p$NL
  done
  ct_ifs=$IFS; IFS=$NL; set -f
  # shellcheck disable=SC2086 # one path per line
  trust_load $ct_paths
  set +f; IFS=$ct_ifs
  while IFS=$TAB read -r ct_t ct_p; do
    [ -n "$ct_t" ] || continue
    ct_hops=0
    while :; do
      if why_untrusted "$ct_p"; then echo "untrusted $wu_out (for $ct_t)"; bad=1; break; fi
      [ -L "$ct_p" ] || break
      ct_hops=$((ct_hops+1))
      [ "$ct_hops" -lt 20 ] || { echo "untrusted $ct_p too many symlinks (for $ct_t)"; bad=1; break; }
      ct_l=$("$READLINK" "$ct_p") || { echo "untrusted $ct_p cannot be resolved (for $ct_t)"; bad=1; break; }
      case $ct_l in /*) ;; *) ct_l=${ct_p%/*}/$ct_l;; esac
      physical "${ct_l%/*}/" || { echo "untrusted $ct_l cannot be resolved (for $ct_t)"; bad=1; break; }
      ct_d=$ph
      if [ "$ct_d" = / ]; then ct_p=/${ct_l##*/}; else ct_p=$ct_d/${ct_l##*/}; fi
      trust_load "$ct_p"
    done
  done <<EOF
$ct_found
EOF
}
# trust_root STATE AGENT PUBLIC TOOL…: root's environment for a script that
# uses the state directory and both sockets; an existing state directory
# must be a trusted directory (never adopted).
trust_root() {
  tr_state=$1 tr_agent=$2 tr_public=$3; shift 3
  # For trust_env's one stat: the tools and the state directory.
  trust_tools=
  for t in "$@"; do trust_tools=$trust_tools$t$NL; done
  trust_extra=${trust_extra:-}$NL$tr_state
  trust_env "${tr_state%/*}/" "${tr_agent%/*}/" "${tr_public%/*}/"
  check_tools "$@"
  # A socket setting names bottle's own socket: absent, or a socket (no
  # link) left by an earlier run (the state directory is there). Anything
  # else is never unlinked or replaced.
  for tr_s in "$tr_agent" "$tr_public"; do
    # The guard's delivery has no socket to name: it passes the state.
    [ "$tr_s" != "$tr_state" ] || continue
    if [ -L "$tr_s" ] || { [ -e "$tr_s" ] && ! [ -S "$tr_s" ]; }; then
      echo "untrusted $tr_s exists and is not a socket"; bad=1
    elif [ -S "$tr_s" ] && ! [ -d "$tr_state" ]; then
      echo "untrusted $tr_s is a socket bottle did not make"; bad=1
    fi
  done
  if [ -e "$tr_state" ] || [ -L "$tr_state" ]; then
    trust_load "$tr_state"
    if why_untrusted "$tr_state"; then echo "untrusted $wu_out"; bad=1;
    elif ! [ -d "$tr_state" ]; then echo "untrusted $tr_state not a directory"; bad=1; fi
  fi
}
# os_release: `os ID ID_LIKE…` from /etc/os-release, for an install hint
# (builtins only).
os_release() {
  os=''
  if [ -f /etc/os-release ]; then
    while IFS='=' read -r k v; do case $k in ID|ID_LIKE) os="$os $v";; esac; done < /etc/os-release
  fi
  echo "os$os"
}
