#!/bin/sh
# Runs inside the fresh Debian root of tests/package/test-package.sh, as
# root, as PID 1 of its own PID namespace (systemd is not running: the
# daemons are started from the installed units' own ExecStartPre= and
# ExecStart= lines, with what the units' User=, StateDirectory=,
# RuntimeDirectory= and UMask= would give them).
# Usage: in-root.sh ROUND V1 V2 MIRROR   (ROUND: docs | nodocs)
set -eu
round=$1 v1=$2 v2=$3
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8
export DROVER_API=ipc:///run/drover/api.sock
fail() {
    echo "package-test[$round]: FAIL: $*" >&2
    for f in /tmp/droverd.log /tmp/agent.log; do
        [ -s $f ] && { echo "--- $f" >&2; tail -n 30 $f >&2; }
    done
    exit 1
}
step() { echo "   [$round] $*"; }
# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
    t=$(($1 * 10)) what=$2
    shift 2
    while ! "$@" >/dev/null 2>&1; do
        t=$((t - 1))
        [ $t -gt 0 ] || fail "timed out waiting for $what"
        sleep 0.1
    done
}
# unit_line UNIT KEY: the value of KEY= in the installed unit, "+" dropped.
unit_line() {
    sed -n "s/^$2=+\{0,1\}//p" "/lib/systemd/system/$1.service"
}
apt_q() { apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >/tmp/apt.log 2>&1 || { cat /tmp/apt.log >&2; fail "apt-get $*"; }; }

dpid="" apid=""
start_daemons() {
    # droverd: User=drover, StateDirectory=drover (0700),
    # RuntimeDirectory=drover (0750), UMask=0077.
    install -d -o drover -g drover -m 0700 /var/lib/drover
    install -d -o drover -g drover -m 0750 /run/drover
    sh -c "$(unit_line droverd ExecStartPre)" || fail "droverd's ExecStartPre"
    # Ready is the "serving" line of this start (the log is appended to, and
    # a socket file may be left from the last): systemd's reload below comes
    # only after Type=notify readiness too, and a SIGHUP before droverd
    # handles it would end the process.
    served=$(grep -c 'droverd serving' /tmp/droverd.log 2>/dev/null || true)
    setpriv --reuid drover --regid drover --init-groups \
        sh -c "umask 0077; exec $(unit_line droverd ExecStart)" >>/tmp/droverd.log 2>&1 &
    dpid=$!
    wait_for 30 "droverd to serve" sh -c \
        "[ \$(grep -c 'droverd serving' /tmp/droverd.log) -gt ${served:-0} ]"
    test -S /run/drover/api.sock || fail "droverd serves and has no API socket"
    # drover-agent: root, StateDirectory=drover-agent (0700).
    install -d -m 0700 /var/lib/drover-agent
    sh -c "$(unit_line drover-agent ExecStartPre)" || fail "drover-agent's ExecStartPre"
    # systemd would run `systemctl reload droverd` from the ExecStartPre.
    kill -HUP $dpid
    sh -c "exec $(unit_line drover-agent ExecStart)" >>/tmp/agent.log 2>&1 &
    apid=$!
    wait_for 60 "the agent to connect" sh -c \
        "runuser -u alice -- drover agents -o json | grep -q '\"connected\": true'"
}
stop_daemons() {
    kill $apid $dpid 2>/dev/null || true
    wait $apid $dpid 2>/dev/null || true
}
no_daemons() {
    for e in /proc/[0-9]*/exe; do
        case $(readlink "$e" 2>/dev/null) in
        */droverd* | */drover-agent* | */drover-web*) return 1 ;;
        esac
    done
}

step "apt-get install drover droverd drover-agent drover-web $v1 (and python3 for the example)"
apt_q update
apt_q install /tmp/debs-1/drover_*.deb /tmp/debs-1/droverd_*.deb /tmp/debs-1/drover-agent_*.deb \
    /tmp/debs-1/drover-web_*.deb python3
for p in drover droverd drover-agent drover-web; do
    [ "$(dpkg-query -W -f='${Status} ${Version}' $p)" = "install ok installed $v1" ] ||
        fail "$p is not configured: $(dpkg-query -W -f='${Status}' $p)"
done
for b in drover droverd drover-agent drover-web; do
    ldd /usr/bin/$b | grep -q 'not found' && fail "$b: $(ldd /usr/bin/$b | grep 'not found')"
done
dpkg-query -W -f='${Conffiles}\n' droverd | grep -q ' /etc/drover/droverd.yaml ' ||
    fail "/etc/drover/droverd.yaml is not a conffile of droverd"
dpkg-query -W -f='${Conffiles}\n' drover-agent | grep -q ' /etc/drover/agent.yaml ' ||
    fail "/etc/drover/agent.yaml is not a conffile of drover-agent"
dpkg-query -W -f='${Conffiles}\n' drover-web | grep -q ' /etc/drover/drover-web.yaml ' ||
    fail "/etc/drover/drover-web.yaml is not a conffile of drover-web"
[ -s /usr/share/drover/openapi.json ] || fail "no /usr/share/drover/openapi.json"
for f in /usr/share/bash-completion/completions/drover /usr/share/zsh/vendor-completions/_drover; do
    [ -s $f ] || fail "no shell completion $f"
done
for p in local aws gcp azure; do
    [ -x /usr/lib/drover/providers/$p ] || fail "provider $p is not installed (executable)"
done
[ -s /usr/lib/drover/providers/cloud-init.yaml.in ] || fail "no providers/cloud-init.yaml.in"
[ "$(echo '{"pool": "p"}' | DROVER_PROVIDER_STATE=/tmp/prov /usr/lib/drover/providers/local list)" = '{"nodes": []}' ] ||
    fail "the local provider does not answer list"
echo '{"pool": "p"}' | PATH=/usr/bin:/bin /usr/lib/drover/providers/aws list --launch-template lt-1 2>/tmp/prov.err &&
    fail "the aws provider answered without the aws CLI"
grep -q '^aws: aws: command not found' /tmp/prov.err || fail "aws provider: $(cat /tmp/prov.err)"
[ ! -e /usr/lib/drover/providers/__pycache__ ] || fail "a provider wrote __pycache__ under /usr/lib"
getent passwd drover >/dev/null || fail "no user drover"
[ "$(getent passwd drover | cut -d: -f6)" = /var/lib/drover ] && [ -d /var/lib/drover ] ||
    fail "drover's home /var/lib/drover does not exist"
grep -qi 'warning' /tmp/apt.log && fail "apt/dpkg/adduser warned: $(grep -i warning /tmp/apt.log)"
[ ! -e /etc/drover/keys/droverd.key_secret ] && [ ! -e /etc/drover/keys/agent.key_secret ] ||
    fail "key pairs were made at install time (an image baked now would share them)"
# Enabled now; (re)started by postinst and stopped by prerm under systemd
# (not PID 1 here: the scripts' own lines are checked instead).
for u in droverd drover-agent drover-web; do
    [ -L /etc/systemd/system/multi-user.target.wants/$u.service ] || fail "$u.service is not enabled"
    grep -q "_dh_action=restart" /var/lib/dpkg/info/$u.postinst &&
        grep -q "deb-systemd-invoke \$_dh_action '$u.service'" /var/lib/dpkg/info/$u.postinst ||
        fail "$u's postinst does not start it, or restart it after an upgrade"
    grep -q "deb-systemd-invoke stop '$u.service'" /var/lib/dpkg/info/$u.prerm ||
        fail "$u's prerm does not stop it on remove"
done
if [ "$round" = nodocs ]; then
    [ ! -e /usr/share/doc/drover ] || [ -z "$(ls /usr/share/doc/drover)" ] ||
        fail "/usr/share/doc/drover is not excluded"
else
    [ -e /usr/share/doc/drover/copyright ] || fail "no /usr/share/doc/drover/copyright"
fi

step "first start: key pairs and name made; droverd and an agent from the units' command lines"
useradd -m -G drover alice
useradd -m bob
start_daemons
[ -e /etc/drover/keys/droverd.key_secret ] || fail "droverd's key pair was not made at first start"
[ "$(stat -c '%U %a' /etc/drover/keys/droverd.key_secret)" = "drover 600" ] ||
    fail "droverd.key_secret: $(stat -c '%U %a' /etc/drover/keys/droverd.key_secret)"
name=$(uname -n)
grep -q "name = \"$name\"" /etc/drover/keys/agent.key || fail "agent key not named $name"
cmp -s /etc/drover/keys/agent.key "/etc/drover/authorized-keys/$name.key" ||
    fail "the agent's key is not authorized on this machine's droverd"
grep -q 'copy it to droverd' /etc/drover/keys/droverd.key &&
    fail "droverd.key's header says to copy droverd's own key into authorized-keys"
keysum=$(cat /etc/drover/keys/* | md5sum)

step "the example pipeline, as alice (group drover)"
run=$(runuser -u alice -- drover submit /usr/share/drover/examples/ml/pipeline.yaml \
    -p rows=1000 -p epochs=10) || fail "submit as alice"
runuser -u alice -- drover run watch "$run" >/tmp/watch.log 2>&1 ||
    { cat /tmp/watch.log >&2; fail "the example pipeline failed"; }
if runuser -u bob -- drover runs >/tmp/bob.log 2>&1; then
    fail "bob (not in group drover) could use the API socket"
fi

# The HTTP API and the upgrade once (round docs): round nodocs checks the
# packages install, run and purge without /usr/share/doc.
if [ "$round" = nodocs ]; then
    stop_daemons
else
    step "drover-web from its unit's command line (a user in group drover), an API token, the run over HTTP"
    # the unit: DynamicUser=yes, SupplementaryGroups=drover
    setpriv --reuid nobody --regid nogroup --groups drover \
        sh -c "exec $(unit_line drover-web ExecStart)" >>/tmp/web.log 2>&1 &
    wpid=$!
    token=$(runuser -u alice -- drover token create pkgtest --role read) || fail "token create"
    http_get() { # PATH: the body of GET http://127.0.0.1:7080PATH with the token, or fail
        python3 -c 'import sys, urllib.request as u
r = u.Request("http://127.0.0.1:7080" + sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
sys.stdout.write(u.urlopen(r, timeout=10).read().decode())' "$1" "$token"
    }
    wait_for 30 "drover-web to answer" http_get /healthz
    http_get "/api/v1/runs/$run" | grep -q '"status": *"succeeded"' ||
        fail "GET /api/v1/runs/$run: $(http_get "/api/v1/runs/$run" 2>&1 | head -c 300)"
    http_get /metrics | grep -q '^drover_tasks{' || fail "GET /metrics has no drover_tasks"
    # the web console, from /usr/share/drover/web (drover-web's default
    # --assets): index.html with its Content-Security-Policy, and its script
    python3 -c 'import sys, urllib.request as u
r = u.urlopen("http://127.0.0.1:7080/", timeout=10)
page, csp = r.read().decode(), r.headers.get("Content-Security-Policy", "")
if "assets/app.js" not in page or "script-src" not in csp or "unsafe" in csp:
    sys.exit("GET /: %r, CSP %r" % (page[:200], csp))
js = u.urlopen("http://127.0.0.1:7080/assets/app.js", timeout=10)
if not js.headers.get("Content-Type", "").startswith("text/javascript") or len(js.read()) < 1000:
    sys.exit("GET /assets/app.js: not the console script")' >/tmp/console.err 2>&1 ||
        fail "the web console: $(cat /tmp/console.err)"
    python3 -c 'import drover, sys; sys.exit(0 if drover.Client else 1)' ||
        fail "the Python client (import drover) is not installed"
    kill $wpid && wait $wpid 2>/dev/null

    step "upgrade to $v2"
    stop_daemons
    apt_q install /tmp/debs-2/drover_*.deb /tmp/debs-2/droverd_*.deb /tmp/debs-2/drover-agent_*.deb \
        /tmp/debs-2/drover-web_*.deb
    for p in drover droverd drover-agent drover-web; do
        [ "$(dpkg-query -W -f='${Status} ${Version}' $p)" = "install ok installed $v2" ] ||
            fail "$p after upgrade: $(dpkg-query -W -f='${Status} ${Version}' $p)"
    done
    [ "$(cat /etc/drover/keys/* | md5sum)" = "$keysum" ] || fail "the upgrade changed the keys"
    start_daemons
    runuser -u alice -- drover run get "$run" >/dev/null || fail "run $run lost in the upgrade"
    run2=$(runuser -u alice -- drover submit /usr/share/drover/examples/ml/pipeline.yaml -p rows=500 -p epochs=5) ||
        fail "submit after upgrade"
    runuser -u alice -- drover run watch "$run2" >/tmp/watch.log 2>&1 ||
        { cat /tmp/watch.log >&2; fail "the example pipeline failed after the upgrade"; }
    stop_daemons
fi

if [ "$round" = docs ]; then
    step "apt-get remove, then apt-get purge"
    apt_q remove drover droverd drover-agent drover-web
    [ ! -e /usr/bin/droverd ] || fail "droverd still installed after remove"
    [ -e /etc/drover/droverd.yaml ] || fail "remove deleted the conffile droverd.yaml"
    [ "$(dpkg-query -W -f='${Status}' droverd)" = "deinstall ok config-files" ] ||
        fail "droverd after remove: $(dpkg-query -W -f='${Status}' droverd)"
    apt_q purge drover droverd drover-agent drover-web
else
    step "apt-get purge (directly)"
    apt_q purge drover droverd drover-agent drover-web
fi

step "nothing left"
left=""
for f in /etc/drover /var/lib/drover /var/lib/drover-agent /run/drover /usr/libexec/drover /usr/lib/drover \
    /usr/share/drover/web \
    /etc/systemd/system/multi-user.target.wants/droverd.service \
    /etc/systemd/system/multi-user.target.wants/drover-agent.service \
    /etc/systemd/system/multi-user.target.wants/drover-web.service; do
    [ ! -e "$f" ] && [ ! -L "$f" ] || left="$left $f"
done
[ -z "$left" ] || fail "left after purge:$left"
getent passwd drover >/dev/null && fail "user drover left after purge"
getent group drover >/dev/null && fail "group drover left after purge"
dpkg -l | grep -q '^.. *drover' && fail "dpkg still knows: $(dpkg -l | grep '^.. *drover')"
no_daemons || fail "a drover daemon is still running"
step "OK"
