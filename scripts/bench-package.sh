#!/usr/bin/env bash
# Issue 13's package figures (`make bench-package`, docs/benchmarks.md):
#   1. the size of each .deb and .rpm scripts/package.sh builds, and the
#      installed size of the .deb;
#   2. the time from a clean root with the .deb to a launch recorded through
#      `ltigrade sandbox`: dpkg -i, write a consumer into the installed
#      config, start the sandbox from the installed binary, take one signed
#      launch from it and record it as the hub hook would (`ltigrade record`),
#      then `sessions list` shows it.
# There is no JupyterHub in the loop: step 2 hands `ltigrade record` the launch
# the hub would receive, as testdata/script/sandbox.txtar does; the hub's own
# login time is bench-hub's figure. The clean root is the one
# packaging/package_test.go uses: an overlay of the host's /usr in a private
# mount namespace, with a copy of the host's dpkg database and user files.
# Needs root, unshare, dpkg and python3. Set DEB= to time an existing package.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
[ "$(id -u)" = 0 ] || { echo "bench-package: needs root (mount namespace, chroot, dpkg --root)" >&2; exit 2; }

work=$(mktemp -d /tmp/ltigrade-bench-package.XXXXXX)
trap 'rm -rf "$work"' EXIT

if [ -z "${DEB:-}" ]; then
	DIST=$work/dist ARCHES=${ARCHES:-} bash scripts/package.sh >"$work/pkgs"
	echo "== package sizes"
	while read -r p; do
		printf '%-48s %6.2f MB  (%d bytes)\n' "$(basename "$p")" "$(echo "$(stat -c %s "$p") / 1000000" | bc -l)" "$(stat -c %s "$p")"
	done <"$work/pkgs"
	DEB=$(grep '_amd64\.deb$' "$work/pkgs")
fi
printf 'installed size of %s: %s KiB\n' "$(basename "$DEB")" "$(dpkg-deb -f "$DEB" Installed-Size)"

R=$work/root
prep0=$(date +%s.%N)
mkdir -p "$R"/{.ov/upper,.ov/work,usr,etc,var/lib,var/cache,tmp,dev,proc,run}
chmod 1777 "$R/tmp"
for l in bin sbin lib lib64; do ln -s "usr/$l" "$R/$l"; done
for f in passwd group shadow gshadow login.defs nsswitch.conf manpath.config; do
	[ -e /etc/$f ] && cp -a /etc/$f "$R/etc/"
done
cp -a /var/lib/dpkg "$R/var/lib/"
rm -f "$R"/var/lib/dpkg/lock "$R"/var/lib/dpkg/lock-frontend

prep1=$(date +%s.%N)
printf 'clean root prepared (copies of the dpkg database and user files): %.2f s\n' "$(echo "$prep1 - $prep0" | bc -l)"

# Everything below runs in one private mount namespace; the overlay goes away with it.
export R DEB
unshare --mount --propagation private -- bash -euo pipefail -c '
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$R/.ov/upper,workdir=$R/.ov/work" "$R/usr"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
inroot() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 chroot "$R" "$@"; }
now() { date +%s.%N; }

t0=$(now)
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg --root="$R" -i "$DEB" >/dev/null 2>&1
t1=$(now)
# The admin adds a consumer: its secret in a 0600 file, as the example config says.
inroot sh -c "umask 077; printf %s bench-secret-0xBEEF >/etc/ltigrade/sandbox.secret"
cat >>"$R/etc/ltigrade/config.toml" <<TOML

[[lti11.consumers]]
key = "sandbox-key"
secret_file = "/etc/ltigrade/sandbox.secret"
TOML
# env execs chroot execs ltigrade: $! is the sandbox itself, so INT reaches it.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8 chroot "$R" /usr/bin/ltigrade sandbox --listen 127.0.0.1:0 --url-file /tmp/sb.url --course-repo https://github.com/example/course >/dev/null 2>&1 &
sb=$!
python3 - "$R/tmp/sb.url" >"$R/tmp/launch.json" <<PY
import json, os, sys, time, urllib.parse as up, urllib.request
for _ in range(400):
    if os.path.exists(sys.argv[1]) and open(sys.argv[1]).read().strip():
        break
    time.sleep(0.025)
base = open(sys.argv[1]).read().strip()
launch = json.loads(urllib.request.urlopen(base + "launch.json?student=alice&assignment=hw1").read())
args = {}
for k, v in up.parse_qsl(up.urlsplit(launch["action"]).query):
    args.setdefault(k, v)
for k, v in launch["params"].items():
    args.setdefault(k, v)
json.dump({"username": args["custom_canvas_user_id"], "consumer_key": args["oauth_consumer_key"],
           "next_url": args["next"], "auth_state": {k: v for k, v in args.items() if not k.startswith("oauth_")}}, sys.stdout)
PY
inroot /usr/bin/ltigrade record /tmp/launch.json >/dev/null
inroot /usr/bin/ltigrade sessions list | grep -q alice
t2=$(now)
kill -INT $sb 2>/dev/null || true
wait $sb 2>/dev/null || true
echo "== clean root with the .deb to a recorded launch"
printf "dpkg -i (unpack, postinst, man-db trigger): %6.2f s\n" "$(echo "$t1 - $t0" | bc -l)"
printf "config, sandbox up, one launch recorded:    %6.2f s\n" "$(echo "$t2 - $t1" | bc -l)"
printf "total:                                      %6.2f s\n" "$(echo "$t2 - $t0" | bc -l)"
'
