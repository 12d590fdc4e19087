set -u
agent=$1 public=$2 apid=$3 fpid=$4
out=$(SSH_AUTH_SOCK=$public ssh-add -l -E sha256 2>&1); echo "public-rc $?"
printf '%s\n' "$out" | while read -r _ fp _; do
  case $fp in SHA256:*) echo "public-key $fp";; esac
done
SSH_AUTH_SOCK=$agent ssh-add -l >/dev/null 2>&1; echo "private-rc $?"
for p in "$apid" "$fpid"; do
  case $p in ''|*[!0-9]*) continue;; esac
  # Opening mem is what the kernel's ptrace check guards (reading offset 0
  # fails anyway). A subshell: a failed redirection on `:` exits the shell.
  if ( : < "/proc/$p/mem" ) 2>/dev/null; then echo "readable /proc/$p/mem"; else echo "denied /proc/$p/mem"; fi
  if ( : < "/proc/$p/environ" ) 2>/dev/null; then echo "readable /proc/$p/environ"; else echo "denied /proc/$p/environ"; fi
done
