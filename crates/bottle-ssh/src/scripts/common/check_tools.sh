bad=0
for t in "$@"; do
  command -v "$t" >/dev/null 2>&1 || { echo "missing tool $t"; bad=1; }
done
