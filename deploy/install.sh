#!/bin/sh
# Installs Embargo from its release tarball (embargo-VERSION-x86_64-linux.tar.gz, made by
# `cargo xtask dist`): the binary, the systemd unit and sysusers file, the default policy in
# /etc/embargo (an existing embargo.toml or entity file is never overwritten), the bash, zsh and
# fish completions and embargo(8).
#
#   sudo ./install.sh                      # into /usr/local, then creates the embargo user
#   ./install.sh --prefix /usr             # where the distribution's own files live
#   DESTDIR=/tmp/root ./install.sh         # stage into a folder (packaging, tests): nothing
#                                          # outside it is touched, no user is created
#
# The unit lands where systemd looks for it: PREFIX/lib/systemd/system for /usr and /usr/local,
# /etc/systemd/system for any other prefix (and the sysusers file alike); its ExecStart names
# PREFIX/bin/embargo. The service is neither enabled nor started: the default policy attaches
# to no interface; name them in /etc/embargo/embargo.toml, then `systemctl enable --now embargo`.
set -eu

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

prefix=/usr/local
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 64; }
                  prefix=$2; shift 2 ;;
        --prefix=*) prefix=${1#--prefix=}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done
case "$prefix" in
    /*) ;;
    *) echo "install.sh: --prefix must be an absolute path, not '$prefix'" >&2; exit 64 ;;
esac
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/
dest=${DESTDIR:-}
dest=${dest%/}
here=$(cd "$(dirname "$0")" && pwd)

case "$prefix" in
    /usr|/usr/local) unitdir=$prefix/lib/systemd/system; sysusersdir=$prefix/lib/sysusers.d ;;
    *) unitdir=/etc/systemd/system; sysusersdir=/etc/sysusers.d ;;
esac
bindir=$prefix/bin
datadir=$prefix/share

# install(1) replaces a file (it never writes through a symlink at the target).
put() { # mode source target
    install -D -m "$1" "$here/$2" "$dest$3"
    echo "installed $3"
}

put 0755 bin/embargo "$bindir/embargo"

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
sed "s|/usr/local/bin/embargo|$bindir/embargo|g" "$here/systemd/embargo.service" >"$tmp"
install -D -m 0644 "$tmp" "$dest$unitdir/embargo.service"
echo "installed $unitdir/embargo.service"
put 0644 sysusers/embargo.conf "$sysusersdir/embargo.conf"

# The policy: kept as it is where one exists.
(cd "$here" && find etc -type f | sort) | while IFS= read -r f; do
    if [ -e "$dest/$f" ] || [ -L "$dest/$f" ]; then
        echo "kept /$f (exists; the shipped one is $here/$f)"
    else
        put 0644 "$f" "/$f"
    fi
done

put 0644 completions/embargo.bash "$datadir/bash-completion/completions/embargo"
put 0644 completions/_embargo "$datadir/zsh/site-functions/_embargo"
put 0644 completions/embargo.fish "$datadir/fish/vendor_completions.d/embargo.fish"
put 0644 man/embargo.8.gz "$datadir/man/man8/embargo.8.gz"
for f in "$here"/doc/*; do
    put 0644 "doc/${f##*/}" "$datadir/doc/embargo/${f##*/}"
done

# Only on the real system: the embargo user and systemd's view of the new unit.
if [ -z "$dest" ]; then
    if command -v systemd-sysusers >/dev/null 2>&1; then
        systemd-sysusers embargo.conf
    fi
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    echo "next: name the interfaces in /etc/embargo/embargo.toml, check it with"
    echo "  $bindir/embargo check --config /etc/embargo/embargo.toml"
    echo "then: systemctl enable --now embargo"
fi
