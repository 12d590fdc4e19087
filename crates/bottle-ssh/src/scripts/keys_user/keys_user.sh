SSH_AUTH_SOCK=$1 exec ssh-add -l -E sha256
