f=$1/$2
if [ -f "$f" ] && ! [ -L "$f" ] && ! [ -L "$1" ]; then
  while IFS= read -r l; do printf '%s\n' "$l"; done < "$f"
fi
