set -u
unset LD_PRELOAD LD_LIBRARY_PATH LD_AUDIT ENV BASH_ENV
user=$1 home=$2 state=$3 agent=$4 public=$5; shift 5
bad=0
trust_root "$state" "$agent" "$public" "$@" ssh
for t in "$@" ssh; do
  if p=$(command -v "$t" 2>/dev/null); then echo "tool $t $p"; fi
done
os_release
[ "$bad" = 0 ] || { echo "done"; exit 0; }
if u=$(id -u "$user" 2>/dev/null); then echo "user $u"; else echo "user -"; fi
if [ -d "$home" ]; then echo "home yes"; else echo "home no"; fi
if v=$(ssh -V 2>&1 </dev/null); then
  IFS= read -r first <<EOF
$v
EOF
  echo "ssh-version $first"
else
  echo "ssh-version -"
fi
echo "done"
