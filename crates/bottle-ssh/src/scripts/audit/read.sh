set -u
state=$1 after=$2
if ! [ -d "$state" ] || [ -L "$state" ]; then echo "done"; exit 0; fi
# print_after ID: the lines after the one whose id is ID (all for "").
print_after() {
  found=; [ -n "$1" ] || found=1
  for f in "$state/audit.jsonl.1" "$state/audit.jsonl"; do
    if ! [ -f "$f" ] || [ -L "$f" ]; then continue; fi
    while IFS= read -r l; do
      if [ -n "$found" ]; then printf 'r %s\n' "$l"
      else case $l in "{\"id\":\"$1\","*) found=1;; esac; fi
    done < "$f"
  done
  [ -n "$found" ]
}
print_after "$after" || print_after ""
echo "done"
