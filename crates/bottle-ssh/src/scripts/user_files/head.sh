set -u
when=$1 home=$2 nconfig=$3 nknown=$4 npub=$5; shift 5
pubs=
i=0
while [ "$i" -lt "$npub" ]; do pubs="$pubs $1"; shift; i=$((i+1)); done
nsign=$1 nallowed=$2 ninclude=$3 nwrapper=$4; shift 4
# Podman may drop the output of a process that leaves its stdin unread: every
# exit reads (and discards) what is left of it first.
drain() { while IFS= read -r _; do :; done 2>/dev/null; }
trap drain EXIT
trap 'exit 1' INT TERM HUP
