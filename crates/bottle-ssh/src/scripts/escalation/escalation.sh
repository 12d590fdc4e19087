if command -v sudo >/dev/null 2>&1 && sudo -n true </dev/null >/dev/null 2>&1; then echo "escalation sudo"; fi
# Without find or head the walk would find nothing and look clean: no
# `escalation-checked` then (the check did not run), never "no way to root".
if command -v find >/dev/null 2>&1 && command -v head >/dev/null 2>&1; then
  find /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin /usr/lib /usr/libexec /opt -xdev -type f \( -perm -4000 -user 0 -o -perm -2000 -group 0 \) 2>/dev/null |
  while IFS= read -r f; do
    case ${f##*/} in
      su|sudo|passwd|chsh|chfn|newgrp|gpasswd|chage|expiry|mount|umount|fusermount|fusermount3|ping|ping6|unix_chkpwd|ssh-keysign|crontab|wall|write|newuidmap|newgidmap|pkexec|dbus-daemon-launch-helper|Xorg.wrap) continue;;
    esac
    [ -x "$f" ] && echo "escalation setuid $f"
  done | head -n 20
  echo "escalation-checked"
fi
