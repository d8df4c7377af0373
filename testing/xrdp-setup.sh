#!/usr/bin/env bash
# Starts Debian's xrdp on 127.0.0.1:13389 with a local test user, for the
# acceptance test (appliance/tests/acceptance.rs). Needs root and the
# packages xrdp, xorgxrdp, xterm. Prints the RAP_ACCEPTANCE_XRDP value.
# No systemd: the daemons run in the background of the calling shell.
# `--keep-disconnected` restarts it with KillDisconnected=false, so a
# disconnected X session waits for its user to reconnect (the restart test).
set -euo pipefail

kill_disconnected=true
[ "${1:-}" = --keep-disconnected ] && kill_disconnected=false

user=rapaccept
password=${RAP_XRDP_PASSWORD:-acceptance-$RANDOM-pass}
port=13389

id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
echo "$user:$password" | chpasswd
# A plain session: xterm is enough to type into.
printf '#!/bin/sh\nexec xterm -geometry 100x30+40+40\n' > "/home/$user/.xsession"
chmod +x "/home/$user/.xsession"
chown "$user:" "/home/$user/.xsession"

# Only the listener ([Globals], the first port= line); the session
# sections' port=-1 means "ask sesman" and must stay.
sed -i "0,/^port=/s|^port=.*|port=tcp://127.0.0.1:$port|" /etc/xrdp/xrdp.ini
adduser --quiet xrdp ssl-cert || true
mkdir -p /etc/X11
if grep -q '^allowed_users' /etc/X11/Xwrapper.config 2>/dev/null; then
  sed -i 's/^allowed_users=.*/allowed_users=anybody/' /etc/X11/Xwrapper.config
else
  echo 'allowed_users=anybody' >> /etc/X11/Xwrapper.config
fi
sed -i "s/^KillDisconnected=.*/KillDisconnected=$kill_disconnected/" /etc/xrdp/sesman.ini

pkill -x xrdp 2>/dev/null || true
pkill -x xrdp-sesman 2>/dev/null || true
# A clean slate: no X session of the test user left from an earlier run
# (the restart test counts the user's X servers).
if pkill -u "$user" 2>/dev/null; then
  for _ in $(seq 1 25); do pgrep -u "$user" >/dev/null || break; sleep 0.2; done
  pkill -KILL -u "$user" 2>/dev/null || true
fi
sleep 0.5
sh /usr/share/xrdp/socksetup >/dev/null 2>&1 || true
mkdir -p /var/run/xrdp && chown xrdp:xrdp /var/run/xrdp 2>/dev/null || true
(xrdp-sesman --nodaemon >/tmp/xrdp-sesman.log 2>&1 &)
(runuser -u xrdp -g xrdp -G ssl-cert -- xrdp --nodaemon >/tmp/xrdp.log 2>&1 &)

for _ in $(seq 1 50); do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "127.0.0.1:$port $user $password"
    exit 0
  fi
  sleep 0.2
done
echo "xrdp did not start; see /tmp/xrdp.log and /tmp/xrdp-sesman.log" >&2
exit 1
